//! The registry server's storage: one SQLite database (WAL, every write committed before the
//! request is answered) holding the pinned verifier of each registry id and the entries filed
//! under it, each with its absolute expiry in unix seconds so a restart loses no live entry.
//!
//! Only what the wire carries is stored: registry ids, verifiers (public), slot keys (public,
//! unlinkable to node keys) and entries whose records are sealed with the mesh's control key.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

/// A TOFU pin of a registry id that has held no entry for this long is dropped by the sweep
/// (operator pins given with `--mesh` are kept).
pub const TOFU_PIN_IDLE_SECS: u64 = 30 * 24 * 3600;

/// Name of the database file in the data directory.
pub const DB_FILE: &str = "registry.sqlite3";

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot open the registry database {path}: {error} (--data must be a directory this user can write, holding only a wgmesh registry database)"
    )]
    Open {
        path: PathBuf,
        error: rusqlite::Error,
    },
    #[error("registry database error: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// Who pinned a registry id's verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinKind {
    /// Given by the operator with `--mesh RID:VERIFIER`.
    Operator,
    /// The first member that wrote (trust on first use).
    Tofu,
}

impl PinKind {
    fn as_sql(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Tofu => "tofu",
        }
    }
}

/// The SQLite database.
pub struct Store {
    conn: Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meshes (
    rid BLOB PRIMARY KEY NOT NULL,
    verifier BLOB NOT NULL,
    kind TEXT NOT NULL,
    last_write INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries (
    rid BLOB NOT NULL,
    slot BLOB NOT NULL,
    seq INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    entry BLOB NOT NULL,
    PRIMARY KEY (rid, slot)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_expires ON entries (expires);
";

// SQLite integers are signed 64-bit: seq and times are stored bit-for-bit and compared in Rust.
fn to_sql(v: u64) -> i64 {
    v as i64
}
fn from_sql(v: i64) -> u64 {
    v as u64
}

impl Store {
    /// Opens (creating) `DIR/registry.sqlite3` in WAL mode.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(DB_FILE);
        let open = || -> Result<Connection, rusqlite::Error> {
            let conn = Connection::open(&path)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            // Every commit is in the WAL (the OS's cache) before the request is answered: a
            // killed server loses nothing. The WAL is fsynced at checkpoints, so a power loss
            // may lose the last seconds of writes, which nodes republish within 15 minutes;
            // FULL would fsync every PUT (~7 ms each on a VM disk) and serialise them on it.
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            conn.execute_batch(SCHEMA)?;
            Ok(conn)
        };
        let conn = open().map_err(|error| StoreError::Open {
            path: path.clone(),
            error,
        })?;
        Ok(Self { conn })
    }

    /// A private in-memory database (tests, fuzzing).
    pub fn in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self { conn })
    }

    /// The verifier pinned for `rid`, and by whom.
    pub fn pin(&self, rid: &[u8; 8]) -> Result<Option<([u8; 32], PinKind)>, StoreError> {
        let row: Option<(Vec<u8>, String)> = self
            .conn
            .query_row(
                "SELECT verifier, kind FROM meshes WHERE rid = ?1",
                params![&rid[..]],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(row.and_then(|(v, kind)| {
            let verifier: [u8; 32] = v.try_into().ok()?;
            let kind = if kind == "operator" {
                PinKind::Operator
            } else {
                PinKind::Tofu
            };
            Some((verifier, kind))
        }))
    }

    /// Pins `verifier` for `rid`. When it replaces another verifier, the entries filed under the
    /// old one are dropped (they came from whoever held that pin). Returns whether it changed.
    pub fn set_pin(
        &mut self,
        rid: &[u8; 8],
        verifier: &[u8; 32],
        kind: PinKind,
        now_secs: u64,
    ) -> Result<bool, StoreError> {
        let old = self.pin(rid)?;
        if old == Some((*verifier, kind)) {
            return Ok(false);
        }
        let tx = self.conn.transaction()?;
        if old.is_some_and(|(v, _)| v != *verifier) {
            tx.execute("DELETE FROM entries WHERE rid = ?1", params![&rid[..]])?;
        }
        tx.execute(
            "INSERT INTO meshes (rid, verifier, kind, last_write) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (rid) DO UPDATE SET verifier = ?2, kind = ?3",
            params![&rid[..], &verifier[..], kind.as_sql(), to_sql(now_secs)],
        )?;
        tx.commit()?;
        Ok(old.is_none_or(|(v, _)| v != *verifier))
    }

    /// Turns every operator pin into a TOFU pin (at start, before the `--mesh` pins of this run
    /// are applied, so a mesh the operator no longer lists is treated like any other).
    pub fn demote_operator_pins(&mut self) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE meshes SET kind = 'tofu' WHERE kind = 'operator'",
            [],
        )?;
        Ok(())
    }

    /// Number of registry ids with a pin.
    pub fn mesh_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM meshes", [], |r| r.get(0))?;
        Ok(from_sql(n))
    }

    /// The seq of the live entry in `slot`, if any.
    pub fn held(
        &self,
        rid: &[u8; 8],
        slot: &[u8; 32],
        now_secs: u64,
    ) -> Result<Option<u64>, StoreError> {
        let seq: Option<i64> = self
            .conn
            .query_row(
                "SELECT seq FROM entries WHERE rid = ?1 AND slot = ?2 AND expires > ?3",
                params![&rid[..], &slot[..], to_sql(now_secs)],
                |r| r.get(0),
            )
            .optional()?;
        Ok(seq.map(from_sql))
    }

    /// Number of live entries under `rid`.
    pub fn live_count(&self, rid: &[u8; 8], now_secs: u64) -> Result<u64, StoreError> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM entries WHERE rid = ?1 AND expires > ?2",
            params![&rid[..], to_sql(now_secs)],
            |r| r.get(0),
        )?;
        Ok(from_sql(n))
    }

    /// Stores (replacing) the entry of `slot`, live until `expires_secs`.
    pub fn put(
        &mut self,
        rid: &[u8; 8],
        slot: &[u8; 32],
        seq: u64,
        expires_secs: u64,
        entry: &[u8],
        now_secs: u64,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO entries (rid, slot, seq, expires, entry) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (rid, slot) DO UPDATE SET seq = ?3, expires = ?4, entry = ?5",
            params![
                &rid[..],
                &slot[..],
                to_sql(seq),
                to_sql(expires_secs),
                entry
            ],
        )?;
        tx.execute(
            "UPDATE meshes SET last_write = ?2 WHERE rid = ?1",
            params![&rid[..], to_sql(now_secs)],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Deletes the entry of `slot`; returns whether there was one.
    pub fn delete(&mut self, rid: &[u8; 8], slot: &[u8; 32]) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "DELETE FROM entries WHERE rid = ?1 AND slot = ?2",
            params![&rid[..], &slot[..]],
        )?;
        Ok(n > 0)
    }

    /// The live entries under `rid` (wire bytes), at most `max`.
    pub fn list(
        &self,
        rid: &[u8; 8],
        now_secs: u64,
        max: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT entry FROM entries WHERE rid = ?1 AND expires > ?2 ORDER BY slot LIMIT ?3",
        )?;
        let rows = stmt.query_map(
            params![&rid[..], to_sql(now_secs), to_sql(max as u64)],
            |r| r.get::<_, Vec<u8>>(0),
        )?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Deletes expired entries and TOFU pins idle for [`TOFU_PIN_IDLE_SECS`] with no entry;
    /// returns (entries, pins) deleted.
    pub fn sweep(&mut self, now_secs: u64) -> Result<(usize, usize), StoreError> {
        let tx = self.conn.transaction()?;
        let entries = tx.execute(
            "DELETE FROM entries WHERE expires <= ?1",
            params![to_sql(now_secs)],
        )?;
        let pins = tx.execute(
            "DELETE FROM meshes WHERE kind = 'tofu' AND last_write <= ?1
             AND NOT EXISTS (SELECT 1 FROM entries WHERE entries.rid = meshes.rid)",
            params![to_sql(now_secs.saturating_sub(TOFU_PIN_IDLE_SECS))],
        )?;
        tx.commit()?;
        Ok((entries, pins))
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
