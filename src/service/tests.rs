//! install-service / uninstall-service against a temporary root with recorded tool calls.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::plan::{Action, ConfigOptions, InstallRequest, Role, SecretInput};
use super::system_tools::{SystemTools, Tool};
use super::*;

#[derive(Default)]
struct Recorder(Vec<String>);
impl SystemTools for Recorder {
    fn run(&mut self, tool: Tool, args: &[&str], _check: bool) -> Result<bool, ServiceError> {
        self.0.push(format!("{tool:?} {}", args.join(" ")));
        Ok(true)
    }
}

fn request(iface: &str, bin: &Path) -> InstallRequest {
    InstallRequest {
        interface: iface.into(),
        secret: SecretInput::KeepOrGenerate,
        config_file: None,
        options: ConfigOptions::default(),
        binary: Some(bin.into()),
        force: false,
    }
}

/// Every file and directory under `root`, relative.
fn tree(root: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(root).unwrap().to_path_buf());
            if p.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/hostname"), "host\n").unwrap();
    let bin = dir.path().join("wgmesh-bin");
    std::fs::write(&bin, b"\x7fELF fake binary").unwrap();
    (dir, root)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn fresh_install_writes_everything_and_uninstall_restores_the_tree() {
    let (dir, root) = setup();
    let before = tree(&root);
    let req = request("wg0", &dir.path().join("wgmesh-bin"));
    let mut tools = Recorder::default();
    let report = install(&root, &req, &mut tools).unwrap();
    assert!(report.generated_secret && !report.packaged_unit);
    assert!(report.written.iter().all(|(_, a)| *a == Action::Create));
    let secret = root.join("etc/wgmesh/wg0.secret");
    assert_eq!(mode(&secret), 0o600);
    let text = std::fs::read_to_string(&secret).unwrap();
    assert!(crate::proto::secret::MeshSecret::parse(&text).is_ok());
    assert_eq!(mode(&root.join("etc/wgmesh/wg0.install")), 0o600);
    assert_eq!(mode(&root.join("usr/local/bin/wgmesh")), 0o755);
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/wgmesh@.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/wgmesh up --interface %i"));
    assert!(unit.contains("LoadCredential=wgmesh-secret:/etc/wgmesh/%i.secret"));
    for f in [
        "etc/systemd/system/wgmesh.target",
        "etc/sysusers.d/wgmesh.conf",
        "etc/modules-load.d/wgmesh.conf",
        "etc/wgmesh/wg0.toml",
    ] {
        assert!(root.join(f).is_file(), "{f}");
    }
    // The generated config is one the daemon accepts.
    crate::daemon::config::read_config_file(&root.join("etc/wgmesh/wg0.toml")).unwrap();
    assert_eq!(
        tools.0,
        [
            "Systemctl daemon-reload",
            "Sysusers /etc/sysusers.d/wgmesh.conf",
            "Systemctl restart systemd-modules-load.service",
            "Systemctl enable wgmesh@wg0.service",
            "Systemctl restart wgmesh@wg0.service",
        ]
    );

    // Idempotent: the same request again changes nothing and only makes sure it runs.
    let mut again = Recorder::default();
    let report = install(&root, &req, &mut again).unwrap();
    assert!(!report.generated_secret);
    assert!(report.written.iter().all(|(_, a)| *a == Action::Keep));
    assert_eq!(
        again.0,
        [
            "Systemctl enable wgmesh@wg0.service",
            "Systemctl start wgmesh@wg0.service"
        ]
    );
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), text);

    let mut tools = Recorder::default();
    let report = uninstall(&root, "wg0", &mut tools).unwrap();
    assert!(!report.nothing_installed);
    assert_eq!(
        tools.0,
        [
            "Systemctl disable --now wgmesh@wg0.service",
            "Systemctl daemon-reload"
        ]
    );
    assert_eq!(
        tree(&root),
        before,
        "uninstall leaves exactly the tree install found"
    );
    // Idempotent too.
    let report = uninstall(&root, "wg0", &mut Recorder::default()).unwrap();
    assert!(report.nothing_installed);
}

#[test]
fn packaged_files_are_used_not_written() {
    let (dir, root) = setup();
    for f in [
        "usr/lib/systemd/system/wgmesh@.service",
        "usr/lib/sysusers.d/wgmesh.conf",
        "usr/lib/modules-load.d/wgmesh.conf",
        "usr/bin/wgmesh",
    ] {
        std::fs::create_dir_all(root.join(f).parent().unwrap()).unwrap();
        std::fs::write(root.join(f), "packaged").unwrap();
    }
    let before = tree(&root);
    let secret_src = dir.path().join("mesh.secret");
    let uri = crate::proto::secret::MeshSecret::generate().to_uri();
    std::fs::write(&secret_src, format!("{uri}\n")).unwrap();
    let mut req = request("mesh1", &dir.path().join("wgmesh-bin"));
    req.secret = SecretInput::Given(plan::read_secret_file(&secret_src).unwrap());
    req.options.listen_port = Some(51999);
    req.options.peer = vec!["203.0.113.7:51900".into()];
    req.options.no_dht = true;
    let mut tools = Recorder::default();
    let report = install(&root, &req, &mut tools).unwrap();
    assert!(report.packaged_unit && !report.generated_secret);
    let written: Vec<_> = report.written.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(
        written,
        [
            PathBuf::from("/etc/wgmesh/mesh1.secret"),
            "/etc/wgmesh/mesh1.toml".into()
        ]
    );
    assert_eq!(
        std::fs::read_to_string(root.join("etc/wgmesh/mesh1.secret")).unwrap(),
        format!("{uri}\n")
    );
    let cfg = crate::daemon::config::read_config_file(&root.join("etc/wgmesh/mesh1.toml"));
    let cfg = format!("{:?}", cfg.unwrap());
    assert!(
        cfg.contains("51999") && cfg.contains("203.0.113.7:51900"),
        "{cfg}"
    );
    assert_eq!(
        tools.0,
        [
            "Systemctl enable wgmesh@mesh1.service",
            "Systemctl restart wgmesh@mesh1.service"
        ]
    );
    uninstall(&root, "mesh1", &mut Recorder::default()).unwrap();
    assert_eq!(tree(&root), before);
}

#[test]
fn foreign_files_are_refused_unless_forced_and_then_kept_on_uninstall() {
    let (dir, root) = setup();
    std::fs::create_dir_all(root.join("etc/wgmesh")).unwrap();
    std::fs::write(root.join("etc/wgmesh/wg0.toml"), "# mine\n").unwrap();
    let mut req = request("wg0", &dir.path().join("wgmesh-bin"));
    req.options.introducer = true;
    let err = install(&root, &req, &mut Recorder::default()).unwrap_err();
    assert!(matches!(err, ServiceError::Foreign(ref p) if p == Path::new("/etc/wgmesh/wg0.toml")));
    assert!(err.to_string().contains("--force"), "{err}");
    req.force = true;
    let report = install(&root, &req, &mut Recorder::default()).unwrap();
    assert!(
        report
            .written
            .contains(&("/etc/wgmesh/wg0.toml".into(), Action::Replace))
    );
    uninstall(&root, "wg0", &mut Recorder::default()).unwrap();
    // Not written by a fresh install-service: left in place, and so is its directory.
    assert!(root.join("etc/wgmesh/wg0.toml").exists());
    assert!(!root.join("etc/wgmesh/wg0.secret").exists());
}

#[test]
fn shared_files_outlive_the_first_of_two_instances() {
    let (dir, root) = setup();
    let before = tree(&root);
    let bin = dir.path().join("wgmesh-bin");
    install(&root, &request("wg0", &bin), &mut Recorder::default()).unwrap();
    let mut tools = Recorder::default();
    let report = install(&root, &request("wg1", &bin), &mut tools).unwrap();
    let shared: Vec<_> = report
        .written
        .iter()
        .filter(|(p, _)| !p.starts_with("/etc/wgmesh"))
        .collect();
    assert!(shared.iter().all(|(_, a)| *a == Action::Keep), "{shared:?}");
    let report = uninstall(&root, "wg0", &mut Recorder::default()).unwrap();
    assert!(
        report
            .handed_over
            .contains(&"/etc/systemd/system/wgmesh@.service".into())
    );
    assert!(root.join("etc/systemd/system/wgmesh@.service").exists());
    assert!(root.join("etc/wgmesh/wg1.secret").exists());
    uninstall(&root, "wg1", &mut Recorder::default()).unwrap();
    assert_eq!(tree(&root), before);
}

#[test]
fn bad_input_is_refused_with_a_useful_message() {
    let (dir, root) = setup();
    let bin = dir.path().join("wgmesh-bin");
    let err = install(&root, &request("../etc", &bin), &mut Recorder::default()).unwrap_err();
    assert!(matches!(err, ServiceError::Interface(..)));
    let bad = dir.path().join("bad.secret");
    std::fs::write(&bad, "wgmesh://v2/notbase64!!").unwrap();
    let err = plan::read_secret_file(&bad).unwrap_err();
    assert!(err.to_string().contains("wgmesh secret new"), "{err}");
    assert!(
        !err.to_string().contains("notbase64"),
        "never echoes the secret: {err}"
    );
    let mut req = request("wg0", &bin);
    req.options.peer = vec!["x\"y".into()];
    assert!(matches!(
        install(&root, &req, &mut Recorder::default()),
        Err(ServiceError::BadConfig(_))
    ));
    // A manifest naming paths outside wgmesh's is never acted on.
    std::fs::create_dir_all(root.join("etc/wgmesh")).unwrap();
    std::fs::write(
        root.join("etc/wgmesh/wg0.install"),
        r#"{"interface":"wg0","files":["/etc/passwd"],"dirs":[],"enabled":false}"#,
    )
    .unwrap();
    assert!(matches!(
        uninstall(&root, "wg0", &mut Recorder::default()),
        Err(ServiceError::Manifest { .. })
    ));
    let _ = Zeroizing::new(0u8);
    let _ = Role::Secret.shared();
}
