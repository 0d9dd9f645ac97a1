//! The store on a real file: entries survive reopening, expiry is absolute, sweeps drop what
//! expired and idle TOFU pins, a new verifier drops the old one's entries.

use super::*;

const RID: [u8; 8] = [1; 8];
const V1: [u8; 32] = [2; 32];
const V2: [u8; 32] = [3; 32];

fn slot(b: u8) -> [u8; 32] {
    [b; 32]
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn entries_survive_reopening_with_their_absolute_expiry() -> Result<(), StoreError> {
    let dir = tmp();
    {
        let mut s = Store::open(dir.path())?;
        s.set_pin(&RID, &V1, PinKind::Tofu, 100)?;
        s.put(&RID, &slot(1), u64::MAX, 200, b"one", 100)?;
        s.put(&RID, &slot(2), 5, 150, b"two", 100)?;
    }
    let s = Store::open(dir.path())?;
    assert_eq!(s.pin(&RID)?, Some((V1, PinKind::Tofu)));
    assert_eq!(
        s.list(&RID, 120, 10)?,
        vec![b"one".to_vec(), b"two".to_vec()]
    );
    assert_eq!(s.list(&RID, 150, 10)?, vec![b"one".to_vec()]);
    assert_eq!(
        s.held(&RID, &slot(1), 199)?,
        Some(u64::MAX),
        "u64 seq round-trips"
    );
    assert_eq!(s.held(&RID, &slot(1), 200)?, None);
    assert_eq!(s.live_count(&RID, 120)?, 2);
    assert!(dir.path().join(DB_FILE).exists());
    Ok(())
}

#[test]
fn sweep_drops_expired_entries_and_idle_tofu_pins_only() -> Result<(), StoreError> {
    let mut s = Store::in_memory()?;
    s.set_pin(&RID, &V1, PinKind::Tofu, 100)?;
    s.set_pin(&[9; 8], &V2, PinKind::Operator, 100)?;
    s.put(&RID, &slot(1), 1, 200, b"x", 100)?;
    assert_eq!(s.sweep(199)?, (0, 0));
    assert_eq!(s.sweep(200)?, (1, 0));
    assert_eq!(s.sweep(100 + TOFU_PIN_IDLE_SECS)?, (0, 1));
    assert_eq!(s.pin(&RID)?, None);
    assert_eq!(s.pin(&[9; 8])?, Some((V2, PinKind::Operator)));
    assert_eq!(s.mesh_count()?, 1);
    Ok(())
}

#[test]
fn a_new_verifier_drops_the_old_ones_entries() -> Result<(), StoreError> {
    let mut s = Store::in_memory()?;
    assert!(s.set_pin(&RID, &V1, PinKind::Tofu, 100)?);
    s.put(&RID, &slot(1), 1, 200, b"x", 100)?;
    // same verifier, now by the operator: entries stay
    assert!(!s.set_pin(&RID, &V1, PinKind::Operator, 100)?);
    assert_eq!(s.live_count(&RID, 100)?, 1);
    s.demote_operator_pins()?;
    assert_eq!(s.pin(&RID)?, Some((V1, PinKind::Tofu)));
    assert!(s.set_pin(&RID, &V2, PinKind::Operator, 100)?);
    assert_eq!(s.live_count(&RID, 100)?, 0);
    assert!(s.delete(&RID, &slot(1)).is_ok_and(|d| !d));
    Ok(())
}

#[test]
fn an_unwritable_directory_is_a_clear_error() {
    let err = Store::open(std::path::Path::new("/proc/no-such-dir")).err();
    let text = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        text.contains("--data must be a directory this user can write"),
        "{text}"
    );
}

#[test]
fn a_file_that_is_not_a_database_is_a_clear_error() {
    let dir = tmp();
    let _ = std::fs::write(dir.path().join(DB_FILE), vec![0x42u8; 8192]);
    let text = Store::open(dir.path())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        text.contains("registry.sqlite3") && text.contains("not a database"),
        "{text}"
    );
}

#[test]
fn a_second_connection_reads_what_the_first_committed() -> Result<(), StoreError> {
    let dir = tmp();
    let mut writer = Store::open(dir.path())?;
    let reader = Store::open(dir.path())?;
    writer.set_pin(&RID, &V1, PinKind::Tofu, 100)?;
    writer.put(&RID, &slot(1), 1, 200, b"one", 100)?;
    assert_eq!(reader.pin(&RID)?, Some((V1, PinKind::Tofu)));
    assert_eq!(reader.list(&RID, 100, 10)?, vec![b"one".to_vec()]);
    Ok(())
}
