//! Where the mesh secret comes from, in this order of precedence: `--secret-file PATH` (`-` is
//! stdin), the systemd credential `$CREDENTIALS_DIRECTORY/wgmesh-secret`, `$WGMESH_SECRET_FILE`,
//! `$WGMESH_SECRET`, and last `--secret VALUE` (with a warning: argv is visible to every local
//! user). Secret files readable by group or others are refused unless
//! `--allow-insecure-secret-file`.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use clap::Args;
use zeroize::Zeroizing;

use crate::proto::secret::{MAX_SECRET_INPUT_BYTES, MeshSecret, SecretError, SecretKind};

/// Name of the systemd credential holding the secret.
pub const CREDENTIAL_NAME: &str = "wgmesh-secret";

/// Secret options shared by every command that needs the mesh secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct SecretArgs {
    /// Read the mesh secret from this file ("-" reads standard input). The file must not be
    /// readable by group or others.
    #[arg(long, value_name = "PATH")]
    pub secret_file: Option<PathBuf>,

    /// The mesh secret itself. Avoid: the command line is visible to every local user; prefer
    /// --secret-file, a systemd credential, WGMESH_SECRET_FILE or WGMESH_SECRET.
    #[arg(long, value_name = "SECRET")]
    pub secret: Option<String>,

    /// Accept a secret file that group or others can read.
    #[arg(long)]
    pub allow_insecure_secret_file: bool,
}

/// The environment values the lookup uses (injected so tests need not touch the process env).
#[derive(Debug, Clone, Default)]
pub struct SecretEnv {
    pub credentials_directory: Option<PathBuf>,
    pub secret_file: Option<PathBuf>,
    pub secret: Option<String>,
}

impl SecretEnv {
    /// Reads `CREDENTIALS_DIRECTORY`, `WGMESH_SECRET_FILE` and `WGMESH_SECRET`.
    pub fn from_process() -> Self {
        let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        Self {
            credentials_directory: non_empty("CREDENTIALS_DIRECTORY").map(PathBuf::from),
            secret_file: non_empty("WGMESH_SECRET_FILE").map(PathBuf::from),
            secret: non_empty("WGMESH_SECRET").and_then(|v| v.into_string().ok()),
        }
    }
}

/// Which source supplied the secret (for logs; never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretOrigin {
    File(PathBuf),
    Stdin,
    Credential(PathBuf),
    EnvFile(PathBuf),
    Env,
    Argument,
}

impl std::fmt::Display for SecretOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(p) => write!(f, "file {}", p.display()),
            Self::Stdin => write!(f, "standard input"),
            Self::Credential(p) => write!(f, "systemd credential {}", p.display()),
            Self::EnvFile(p) => write!(f, "WGMESH_SECRET_FILE ({})", p.display()),
            Self::Env => write!(f, "WGMESH_SECRET"),
            Self::Argument => write!(f, "--secret"),
        }
    }
}

/// Why no secret could be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretSourceError {
    #[error(
        "no mesh secret given: use --secret-file PATH (or WGMESH_SECRET_FILE, WGMESH_SECRET, a systemd credential named {CREDENTIAL_NAME}); create one with `(umask 077; wgmesh secret new > mesh.secret)`"
    )]
    None,
    #[error("cannot read the mesh secret from {origin}: {source}")]
    Read {
        origin: SecretOrigin,
        source: std::io::Error,
    },
    #[error(
        "secret file {path} can be read by group or others (mode {mode:o}): run `chmod 600 {path}`, or pass --allow-insecure-secret-file"
    )]
    Insecure { path: PathBuf, mode: u32 },
    #[error("the mesh secret from {origin} is unusable: {source}")]
    Invalid {
        origin: SecretOrigin,
        source: SecretError,
    },
}

/// A secret and where it came from, plus warnings the caller should log.
pub struct ResolvedSecret {
    pub secret: MeshSecret,
    pub origin: SecretOrigin,
    pub warnings: Vec<String>,
}

fn read_file(
    path: &Path,
    origin: SecretOrigin,
    allow_insecure: bool,
) -> Result<Zeroizing<Vec<u8>>, SecretSourceError> {
    let read_err = |source| SecretSourceError::Read {
        origin: origin.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o044 != 0 && !allow_insecure {
        return Err(SecretSourceError::Insecure {
            path: path.to_path_buf(),
            mode,
        });
    }
    read_bounded(file).map_err(read_err)
}

fn read_bounded(reader: impl Read) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::new());
    // One byte more than allowed, so an oversize input is reported as too long.
    reader
        .take(MAX_SECRET_INPUT_BYTES as u64 + 1)
        .read_to_end(&mut buf)?;
    Ok(buf)
}

/// Finds and parses the secret from the first source that is set.
pub fn resolve_secret(
    args: &SecretArgs,
    env: &SecretEnv,
) -> Result<ResolvedSecret, SecretSourceError> {
    let mut warnings = Vec::new();
    let (origin, raw): (SecretOrigin, Zeroizing<Vec<u8>>) = if let Some(path) = &args.secret_file {
        if path.as_os_str() == "-" {
            let raw = read_bounded(std::io::stdin().lock()).map_err(|source| {
                SecretSourceError::Read {
                    origin: SecretOrigin::Stdin,
                    source,
                }
            })?;
            (SecretOrigin::Stdin, raw)
        } else {
            let origin = SecretOrigin::File(path.clone());
            (
                origin.clone(),
                read_file(path, origin, args.allow_insecure_secret_file)?,
            )
        }
    } else if let Some(dir) = env
        .credentials_directory
        .as_ref()
        .map(|d| d.join(CREDENTIAL_NAME))
        .filter(|p| p.exists())
    {
        let origin = SecretOrigin::Credential(dir.clone());
        (
            origin.clone(),
            read_file(&dir, origin, args.allow_insecure_secret_file)?,
        )
    } else if let Some(path) = &env.secret_file {
        let origin = SecretOrigin::EnvFile(path.clone());
        (
            origin.clone(),
            read_file(path, origin, args.allow_insecure_secret_file)?,
        )
    } else if let Some(value) = &env.secret {
        (SecretOrigin::Env, Zeroizing::new(value.as_bytes().to_vec()))
    } else if let Some(value) = &args.secret {
        warnings.push(
            "the mesh secret was given with --secret: every local user can read it in the process list; use --secret-file or WGMESH_SECRET_FILE instead".to_string(),
        );
        (
            SecretOrigin::Argument,
            Zeroizing::new(value.as_bytes().to_vec()),
        )
    } else {
        return Err(SecretSourceError::None);
    };
    let secret = MeshSecret::parse_bytes(&raw).map_err(|source| SecretSourceError::Invalid {
        origin: origin.clone(),
        source,
    })?;
    if secret.kind() == SecretKind::Passphrase {
        warnings.push(
            "the mesh secret is a passphrase: a generated secret (`wgmesh secret new`) is stronger against guessing".to_string(),
        );
    }
    Ok(ResolvedSecret {
        secret,
        origin,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write(dir: &Path, name: &str, contents: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, contents).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn precedence_is_file_credential_envfile_env_argument() {
        let dir = tempfile::tempdir().unwrap();
        let [s1, s2, s3, s4, s5] =
            [1u8, 2, 3, 4, 5].map(|b| MeshSecret::from_bytes([b; 32]).to_uri());
        let file = write(dir.path(), "f", &s1, 0o600);
        let creds = dir.path().join("creds");
        fs::create_dir(&creds).unwrap();
        write(&creds, CREDENTIAL_NAME, &s2, 0o400);
        let envfile = write(dir.path(), "e", &s3, 0o600);
        let mut args = SecretArgs {
            secret_file: Some(file),
            secret: Some(s5.clone()),
            ..Default::default()
        };
        let mut env = SecretEnv {
            credentials_directory: Some(creds.clone()),
            secret_file: Some(envfile),
            secret: Some(s4.clone()),
        };
        let first =
            |a: &SecretArgs, e: &SecretEnv| resolve_secret(a, e).unwrap().secret.as_bytes()[0];
        assert_eq!(first(&args, &env), 1);
        args.secret_file = None;
        assert_eq!(first(&args, &env), 2);
        env.credentials_directory = None;
        assert_eq!(first(&args, &env), 3);
        env.secret_file = None;
        assert_eq!(first(&args, &env), 4);
        env.secret = None;
        let r = resolve_secret(&args, &env).unwrap();
        assert_eq!(r.secret.as_bytes()[0], 5);
        assert!(r.warnings.iter().any(|w| w.contains("process list")));
        args.secret = None;
        assert!(matches!(
            resolve_secret(&args, &env),
            Err(SecretSourceError::None)
        ));
    }

    #[test]
    fn readable_secret_file_is_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "s", &MeshSecret::generate().to_uri(), 0o644);
        let mut args = SecretArgs {
            secret_file: Some(p),
            ..Default::default()
        };
        let err = resolve_secret(&args, &SecretEnv::default()).err().unwrap();
        assert!(matches!(
            err,
            SecretSourceError::Insecure { mode: 0o644, .. }
        ));
        args.allow_insecure_secret_file = true;
        assert!(resolve_secret(&args, &SecretEnv::default()).is_ok());
    }

    #[test]
    fn passphrase_warns_and_errors_do_not_echo() {
        let env = SecretEnv {
            secret: Some("a long enough passphrase".into()),
            ..Default::default()
        };
        let r = resolve_secret(&SecretArgs::default(), &env).unwrap();
        assert!(r.warnings.iter().any(|w| w.contains("stronger")));
        let env = SecretEnv {
            secret: Some("wgmesh://v2/sekritsekrit".into()),
            ..Default::default()
        };
        let msg = resolve_secret(&SecretArgs::default(), &env)
            .err()
            .unwrap()
            .to_string();
        assert!(!msg.contains("sekrit"), "{msg}");
    }
}
