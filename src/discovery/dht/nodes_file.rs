//! The persisted DHT routing table, `<state-dir>/<iface>-dht.nodes`: one `IPv4:port` per
//! line (at most [`MAX_NODES`] lines, [`MAX_FILE_BYTES`] bytes), written atomically (temp file,
//! fsync, rename), read at start to bootstrap without the configured nodes or public routers.

use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};

use crate::identity::state::write_private_file_atomically;

/// Most nodes kept.
pub const MAX_NODES: usize = 200;
/// A larger file is not read (it is not ours).
pub const MAX_FILE_BYTES: u64 = 16 * 1024;

/// Why the file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum NodesFileError {
    #[error(
        "cannot read the DHT nodes file {path}: {source}; delete it, the DHT bootstraps from the configured nodes"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("DHT nodes file {path} is larger than {MAX_FILE_BYTES} bytes: delete it")]
    TooLarge { path: PathBuf },
    #[error("cannot save the DHT nodes file: {0}")]
    Write(String),
}

/// `<state-dir>/<iface>-dht.nodes`.
pub fn nodes_path(state_dir: &Path, iface: &str) -> PathBuf {
    state_dir.join(format!("{iface}-dht.nodes"))
}

/// The nodes in the file; none when it does not exist. Lines that are not `IPv4:port` are
/// skipped.
pub fn load_nodes(path: &Path) -> Result<Vec<SocketAddrV4>, NodesFileError> {
    match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_FILE_BYTES => {
            return Err(NodesFileError::TooLarge {
                path: path.to_path_buf(),
            });
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(NodesFileError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    }
    let text = std::fs::read_to_string(path).map_err(|source| NodesFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(parse_nodes(&text))
}

/// Parses the file's text (bounded, duplicates dropped).
pub fn parse_nodes(text: &str) -> Vec<SocketAddrV4> {
    let mut out: Vec<SocketAddrV4> = Vec::new();
    for line in text.lines() {
        if out.len() >= MAX_NODES {
            break;
        }
        if let Ok(a) = line.trim().parse::<SocketAddrV4>()
            && a.port() != 0
            && !a.ip().is_unspecified()
            && !out.contains(&a)
        {
            out.push(a);
        }
    }
    out
}

/// Replaces the file with `nodes` (at most [`MAX_NODES`]); an empty list leaves it as is, so a
/// node that lost its network keeps the last good table.
pub fn save_nodes(path: &Path, nodes: &[SocketAddrV4]) -> Result<bool, NodesFileError> {
    if nodes.is_empty() {
        return Ok(false);
    }
    let text: String = nodes
        .iter()
        .take(MAX_NODES)
        .map(|n| format!("{n}\n"))
        .collect();
    write_private_file_atomically(path, text.as_bytes())
        .map_err(|e| NodesFileError::Write(e.to_string()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load_round_trips_and_junk_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = nodes_path(dir.path(), "wg0");
        assert_eq!(path.file_name().unwrap(), "wg0-dht.nodes");
        assert!(load_nodes(&path).unwrap().is_empty());
        let nodes: Vec<SocketAddrV4> = vec![
            "192.0.2.21:6881".parse().unwrap(),
            "192.0.2.22:6881".parse().unwrap(),
        ];
        assert!(save_nodes(&path, &nodes).unwrap());
        assert!(!save_nodes(&path, &[]).unwrap());
        assert_eq!(load_nodes(&path).unwrap(), nodes);
        assert_eq!(
            parse_nodes("junk\n192.0.2.1:0\n0.0.0.0:5\n[::1]:5\n192.0.2.9:7\n192.0.2.9:7\n"),
            vec!["192.0.2.9:7".parse::<SocketAddrV4>().unwrap()]
        );
        std::fs::write(&path, vec![b'x'; MAX_FILE_BYTES as usize + 1]).unwrap();
        assert!(matches!(
            load_nodes(&path),
            Err(NodesFileError::TooLarge { .. })
        ));
    }

    #[test]
    fn at_most_max_nodes_are_kept() {
        let text: String = (0..300)
            .map(|i| format!("10.0.{}.{}:6881\n", i / 250, i % 250 + 1))
            .collect();
        assert_eq!(parse_nodes(&text).len(), MAX_NODES);
    }
}
