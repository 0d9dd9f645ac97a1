//! The identity state file `<state-dir>/<iface>.key`: one line holding the Ed25519 seed in
//! standard base64. Written atomically (temp file, fsync, rename, fsync of the directory) with
//! mode 0600 in a 0700 directory; a corrupt or loosely-permissioned file is an error, never
//! silently replaced.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use super::keys::NodeIdentity;

/// Largest state file read (a seed line is 45 bytes).
const MAX_STATE_FILE_BYTES: u64 = 4096;

/// Why the identity could not be loaded or stored.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "no identity at {path}: create one with `wgmesh identity --create --state-dir {dir}` (or start the daemon, which creates it)",
        dir = path.parent().map(|p| p.display().to_string()).unwrap_or_default()
    )]
    Missing { path: PathBuf },
    #[error(
        "identity file {path} is readable or writable by group/others (mode {mode:o}); fix it with `chmod 600 {path}` after checking nobody copied it"
    )]
    InsecurePermissions { path: PathBuf, mode: u32 },
    #[error(
        "identity file {path} is corrupt ({why}); it was left untouched: restore it from a backup, or move it away to create a new identity (peers will see a new node)"
    )]
    Corrupt { path: PathBuf, why: &'static str },
    #[error(
        "interface name {0:?} is not usable in a file name (1-15 characters of A-Z a-z 0-9 _ . -)"
    )]
    BadInterfaceName(String),
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError {
    let path = path.to_path_buf();
    move |source| IdentityError::Io {
        action,
        path,
        source,
    }
}

/// Checks an interface name the way Linux does (at most 15 bytes, no '/' or whitespace), and
/// stricter: only characters that are safe in file names.
pub fn validate_interface_name(name: &str) -> Result<(), IdentityError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(IdentityError::BadInterfaceName(name.to_string()))
    }
}

/// Where an interface's identity lives.
pub fn identity_path(state_dir: &Path, interface: &str) -> Result<PathBuf, IdentityError> {
    validate_interface_name(interface)?;
    Ok(state_dir.join(format!("{interface}.key")))
}

/// Loads the identity; a missing file is [`IdentityError::Missing`].
pub fn load_identity(path: &Path) -> Result<NodeIdentity, IdentityError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(IdentityError::Missing {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(io_err("open", path)(e)),
    };
    let meta = file.metadata().map_err(io_err("inspect", path))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(IdentityError::InsecurePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    if meta.len() > MAX_STATE_FILE_BYTES {
        return Err(IdentityError::Corrupt {
            path: path.to_path_buf(),
            why: "file is too large",
        });
    }
    let mut text = Zeroizing::new(String::new());
    Read::by_ref(&mut file)
        .take(MAX_STATE_FILE_BYTES)
        .read_to_string(&mut text)
        .map_err(|_| IdentityError::Corrupt {
            path: path.to_path_buf(),
            why: "not UTF-8 text",
        })?;
    let seed =
        Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| IdentityError::Corrupt {
                    path: path.to_path_buf(),
                    why: "not base64",
                })?,
        );
    let seed: &[u8; 32] = seed
        .as_slice()
        .try_into()
        .map_err(|_| IdentityError::Corrupt {
            path: path.to_path_buf(),
            why: "the seed is not 32 bytes",
        })?;
    Ok(NodeIdentity::from_seed(seed))
}

/// Loads the identity, creating and storing a fresh one when the file does not exist.
/// Returns the identity and whether it was created.
pub fn load_or_create_identity(path: &Path) -> Result<(NodeIdentity, bool), IdentityError> {
    match load_identity(path) {
        Ok(id) => Ok((id, false)),
        Err(IdentityError::Missing { .. }) => {
            let id = NodeIdentity::generate();
            store_identity(path, &id)?;
            Ok((id, true))
        }
        Err(e) => Err(e),
    }
}

/// Writes the identity atomically: temp file (0600) + fsync + rename + fsync of the directory.
/// Creates the directory with mode 0700 when missing.
pub fn store_identity(path: &Path, identity: &NodeIdentity) -> Result<(), IdentityError> {
    let line = Zeroizing::new(format!("{}\n", STANDARD.encode(identity.seed().as_ref())));
    write_private_file_atomically(path, line.as_bytes())
}

/// Atomically replaces `path` with `contents`, mode 0600, directory created 0700.
pub fn write_private_file_atomically(path: &Path, contents: &[u8]) -> Result<(), IdentityError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err("create directory", dir))?;
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        f.write_all(contents).map_err(io_err("write", &tmp))?;
        f.sync_all().map_err(io_err("sync", &tmp))?;
        fs::rename(&tmp, path).map_err(io_err("rename into place", path))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("sync directory", dir))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_then_load_gives_the_same_identity_with_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let path = identity_path(&state, "wg0").unwrap();
        let (a, created) = load_or_create_identity(&path).unwrap();
        assert!(created);
        let (b, created) = load_or_create_identity(&path).unwrap();
        assert!(!created);
        assert_eq!(a.wireguard_public(), b.wireguard_public());
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(&state).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let leftovers: Vec<_> = fs::read_dir(&state).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");
    }

    #[test]
    fn missing_identity_is_an_error_that_says_how_to_create_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_identity(&dir.path().join("wg0.key")).unwrap_err();
        assert!(matches!(err, IdentityError::Missing { .. }));
        assert!(err.to_string().contains("--create"));
    }

    #[test]
    fn corrupt_file_is_an_error_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wg0.key");
        for (contents, why) in [
            (&b"not base64!!\n"[..], "not base64"),
            (b"AAAA\n", "the seed is not 32 bytes"),
            (b"\xff\xfe\n", "not UTF-8 text"),
        ] {
            write_private_file_atomically(&path, contents).unwrap();
            match load_or_create_identity(&path) {
                Err(IdentityError::Corrupt { why: w, .. }) => assert_eq!(w, why),
                other => panic!("expected corrupt, got {other:?}"),
            }
            assert_eq!(fs::read(&path).unwrap(), contents);
        }
    }

    #[test]
    fn group_readable_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wg0.key");
        store_identity(&path, &NodeIdentity::generate()).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            load_identity(&path),
            Err(IdentityError::InsecurePermissions { mode: 0o640, .. })
        ));
    }

    #[test]
    fn interface_names_are_checked() {
        for bad in ["", "a/b", "../x", "sixteen-chars-xx", "wg 0", ".."] {
            assert!(validate_interface_name(bad).is_err(), "{bad:?}");
        }
        for good in ["wg0", "mesh-1", "wg_home.2"] {
            assert!(validate_interface_name(good).is_ok(), "{good:?}");
        }
    }
}
