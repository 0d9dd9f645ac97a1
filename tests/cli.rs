//! The binary's contract: `secret new` prints one URI and nothing else on stdout, `secret
//! inspect` never prints a key and says clearly when no secret is given, `identity` prints the
//! WireGuard key alone and refuses a missing identity without `--create`, `--version` and
//! `help` work.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

fn wgmesh(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wgmesh"));
    cmd.args(args)
        .env_remove("WGMESH_SECRET")
        .env_remove("WGMESH_SECRET_FILE")
        .env_remove("CREDENTIALS_DIRECTORY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run wgmesh")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn secret_new_prints_one_v2_uri_and_nothing_else() {
    let o = wgmesh(&["secret", "new"], &[]);
    assert!(o.status.success());
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out:?}");
    assert!(
        lines[0].starts_with("wgmesh://v2/") && lines[0].len() == 12 + 43,
        "{out:?}"
    );
    assert_ne!(
        stdout(&wgmesh(&["secret", "new"], &[])),
        out,
        "secrets must be random"
    );
}

#[test]
fn inspect_reads_a_file_refuses_loose_modes_and_never_prints_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mesh.secret");
    let secret = stdout(&wgmesh(&["secret", "new"], &[])).trim().to_string();
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let p = path.to_str().unwrap();
    let refused = wgmesh(&["secret", "inspect", "--secret-file", p], &[]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("chmod 600"),
        "{}",
        stderr(&refused)
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let ok = wgmesh(&["secret", "inspect", "--secret-file", p, "--json"], &[]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let v: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    for key in [
        "network_id",
        "ipv4_subnet",
        "ipv6_prefix",
        "lan_group",
        "control_port",
        "registry_id",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    let tail = &secret[12..];
    assert!(!stdout(&ok).contains(tail) && !stderr(&ok).contains(tail));
}

#[test]
fn inspect_without_a_secret_says_how_to_make_one() {
    let o = wgmesh(&["secret", "inspect"], &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("wgmesh secret new"), "{}", stderr(&o));
}

#[test]
fn secret_on_the_command_line_warns_and_passphrase_warns() {
    let o = wgmesh(
        &[
            "secret",
            "inspect",
            "--secret",
            "a passphrase of enough length",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("process list") && err.contains("stronger"),
        "{err}"
    );
    assert!(!err.contains("a passphrase of enough length"));
}

#[test]
fn identity_requires_create_then_prints_the_key_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("state");
    let d = d.to_str().unwrap();
    let missing = wgmesh(&["identity", "--state-dir", d, "--interface", "wgt0"], &[]);
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("--create"));
    let created = wgmesh(
        &[
            "identity",
            "--state-dir",
            d,
            "--interface",
            "wgt0",
            "--create",
        ],
        &[],
    );
    assert!(created.status.success(), "{}", stderr(&created));
    let key = stdout(&created);
    assert_eq!(key.trim().len(), 44);
    assert_eq!(key.lines().count(), 1);
    let again = wgmesh(&["identity", "--state-dir", d, "--interface", "wgt0"], &[]);
    assert_eq!(stdout(&again), key);
}

#[test]
fn version_and_help() {
    let v = wgmesh(&["--version"], &[]);
    assert!(stdout(&v).starts_with("wgmesh "));
    let h = wgmesh(&["help", "secret"], &[]);
    assert!(h.status.success());
    assert!(stdout(&h).contains("inspect"));
}
