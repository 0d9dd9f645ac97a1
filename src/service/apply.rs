//! Carrying out an install plan and undoing it: files are written atomically with their mode
//! set before any byte lands, every file and directory install-service created is recorded in
//! the root-only manifest /etc/wgmesh/IFACE.install (outside the daemon's writable state), and
//! uninstall removes exactly those. Files shared by instances (unit, binary, sysusers.d,
//! modules-load.d) pass to another instance's manifest instead while one exists.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::plan::{
    Action, ETC_DIR, InstallPlan, InstallRequest, Role, manifest_path, plan_install,
};
use super::system_tools::{SystemTools, Tool};
use super::{ServiceError, under};

const MAX_MANIFEST_BYTES: u64 = 64 * 1024;

/// What install-service wrote for one interface.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub interface: String,
    /// Files created (absolute live paths).
    pub files: Vec<PathBuf>,
    /// Directories created (removed when empty).
    pub dirs: Vec<PathBuf>,
    /// `systemctl enable wgmesh@IFACE` was run.
    pub enabled: bool,
}

/// What install did, for the user.
#[derive(Debug)]
pub struct InstallReport {
    pub written: Vec<(PathBuf, Action)>,
    pub packaged_unit: bool,
    pub generated_secret: bool,
    pub commands: Vec<String>,
}

/// What uninstall did.
#[derive(Debug, Default)]
pub struct UninstallReport {
    pub removed: Vec<PathBuf>,
    pub handed_over: Vec<PathBuf>,
    pub commands: Vec<String>,
    pub nothing_installed: bool,
}

fn read_manifest(root: &Path, iface: &str) -> Result<Option<Manifest>, ServiceError> {
    let path = under(root, &manifest_path(iface));
    let meta = match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ServiceError::Read { path, source }),
        Ok(m) => m,
    };
    let bad = |message: String| ServiceError::Manifest {
        path: path.clone(),
        message,
    };
    if meta.len() > MAX_MANIFEST_BYTES {
        return Err(bad("too large".into()));
    }
    let bytes = std::fs::read(&path).map_err(|e| bad(e.to_string()))?;
    let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    // Only ever remove what install-service could have written.
    const PLACES: [&str; 5] = [
        ETC_DIR,
        "/etc/systemd/system",
        "/etc/sysusers.d",
        "/etc/modules-load.d",
        "/usr/local/bin",
    ];
    let clean =
        |p: &Path| p.is_absolute() && !p.components().any(|c| c == std::path::Component::ParentDir);
    let file_ok = |p: &Path| clean(p) && PLACES.iter().any(|d| p.starts_with(d));
    // Directories: those places and their parents (removed only when empty).
    let dir_ok = |p: &Path| {
        clean(p) && p != Path::new("/") && PLACES.iter().any(|d| Path::new(d).starts_with(p))
    };
    if m.interface != iface
        || !m.files.iter().all(|p| file_ok(p))
        || !m.dirs.iter().all(|p| dir_ok(p))
    {
        return Err(bad(
            "it names another interface or a path outside wgmesh's".into()
        ));
    }
    Ok(Some(m))
}

fn write_manifest(root: &Path, m: &Manifest) -> Result<(), ServiceError> {
    let mut text = serde_json::to_vec_pretty(m).map_err(|e| ServiceError::Manifest {
        path: manifest_path(&m.interface),
        message: e.to_string(),
    })?;
    text.push(b'\n');
    write_atomic(&under(root, &manifest_path(&m.interface)), &text, 0o600)
}

/// Writes `bytes` to `path` through a temporary file created with `mode`, then renames.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), ServiceError> {
    let err = |source| ServiceError::Write {
        path: path.into(),
        source,
    };
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".wgmesh-tmp");
    let tmp = PathBuf::from(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    let result = f
        .write_all(bytes)
        .and_then(|()| f.set_permissions(std::fs::Permissions::from_mode(mode)))
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

/// Creates the missing ancestors of `path` (live path) under `root`, recording them.
fn create_dirs(root: &Path, path: &Path, created: &mut Vec<PathBuf>) -> Result<(), ServiceError> {
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    let mut missing = Vec::new();
    let mut p = parent;
    while !under(root, p).exists() {
        missing.push(p.to_path_buf());
        match p.parent() {
            Some(up) => p = up,
            None => break,
        }
    }
    for dir in missing.into_iter().rev() {
        let real = under(root, &dir);
        std::fs::create_dir(&real).map_err(|source| ServiceError::Write {
            path: real.clone(),
            source,
        })?;
        let _ = std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o755));
        if !created.contains(&dir) {
            created.push(dir);
        }
    }
    Ok(())
}

struct Runner<'a> {
    tools: &'a mut dyn SystemTools,
    log: Vec<String>,
}

impl Runner<'_> {
    fn run(&mut self, tool: Tool, args: &[&str], check: bool) -> Result<bool, ServiceError> {
        let name = match tool {
            Tool::Systemctl => "systemctl",
            Tool::Sysusers => "systemd-sysusers",
        };
        self.log.push(format!("{name} {}", args.join(" ")));
        self.tools.run(tool, args, check)
    }
}

/// install-service: plans, writes, records, then reloads systemd, creates the user, loads the
/// module and enables and (re)starts `wgmesh@IFACE`. Idempotent: a second run with the same
/// request changes nothing and only makes sure the instance runs.
pub fn install(
    root: &Path,
    req: &InstallRequest,
    tools: &mut dyn SystemTools,
) -> Result<InstallReport, ServiceError> {
    let iface = req.interface.as_str();
    let mut manifest = read_manifest(root, iface)?.unwrap_or_else(|| Manifest {
        interface: iface.to_string(),
        ..Manifest::default()
    });
    let plan: InstallPlan = plan_install(root, req, &manifest.files)?;
    // The manifest's own directory first, so a failure half-way is still recorded.
    create_dirs(root, &manifest_path(iface), &mut manifest.dirs)?;
    write_manifest(root, &manifest)?;
    let mut written = Vec::new();
    for f in &plan.files {
        if f.action != Action::Keep {
            create_dirs(root, &f.path, &mut manifest.dirs)?;
            write_atomic(&under(root, &f.path), &f.contents, f.mode)?;
            if f.action == Action::Create && !manifest.files.contains(&f.path) {
                manifest.files.push(f.path.clone());
            }
            write_manifest(root, &manifest)?;
        }
        written.push((f.path.clone(), f.action));
    }
    let changed = |role: Role| {
        plan.files
            .iter()
            .any(|f| f.role == role && f.action != Action::Keep)
    };
    let mut r = Runner {
        tools,
        log: Vec::new(),
    };
    let unit = format!("wgmesh@{iface}.service");
    if changed(Role::Unit) {
        r.run(Tool::Systemctl, &["daemon-reload"], true)?;
    }
    if changed(Role::Sysusers) {
        r.run(Tool::Sysusers, &["/etc/sysusers.d/wgmesh.conf"], true)?;
    }
    if changed(Role::ModulesLoad) {
        // Loads wireguard now (the sandbox cannot); a host without the module falls back to
        // userspace WireGuard, so this may fail.
        r.run(
            Tool::Systemctl,
            &["restart", "systemd-modules-load.service"],
            false,
        )?;
    }
    r.run(Tool::Systemctl, &["enable", &unit], true)?;
    manifest.enabled = true;
    write_manifest(root, &manifest)?;
    let restart = [Role::Secret, Role::Config, Role::Unit, Role::Binary]
        .into_iter()
        .any(changed);
    r.run(
        Tool::Systemctl,
        &[if restart { "restart" } else { "start" }, &unit],
        true,
    )?;
    Ok(InstallReport {
        written,
        packaged_unit: plan.packaged_unit,
        generated_secret: plan.generated_secret,
        commands: r.log,
    })
}

/// uninstall-service: stops and disables `wgmesh@IFACE` if install-service enabled it, and
/// removes exactly the files and (empty) directories it recorded. Idempotent: without a
/// manifest there is nothing to undo.
pub fn uninstall(
    root: &Path,
    iface: &str,
    tools: &mut dyn SystemTools,
) -> Result<UninstallReport, ServiceError> {
    crate::identity::state::validate_interface_name(iface)
        .map_err(|e| ServiceError::Interface(iface.to_string(), e.to_string()))?;
    let Some(mut manifest) = read_manifest(root, iface)? else {
        return Ok(UninstallReport {
            nothing_installed: true,
            ..UninstallReport::default()
        });
    };
    let mut report = UninstallReport::default();
    let mut r = Runner {
        tools,
        log: Vec::new(),
    };
    if manifest.enabled {
        r.run(
            Tool::Systemctl,
            &["disable", "--now", &format!("wgmesh@{iface}.service")],
            true,
        )?;
        manifest.enabled = false;
        write_manifest(root, &manifest)?;
    }
    // Shared files pass to another instance install-service made, if any.
    let heir = other_manifests(root, iface)?.into_iter().next();
    let is_shared = |p: &Path| !p.starts_with(ETC_DIR);
    let (shared, own): (Vec<PathBuf>, Vec<PathBuf>) =
        manifest.files.iter().cloned().partition(|p| is_shared(p));
    let mut remove = own;
    match heir {
        Some(mut other) => {
            for p in shared {
                if !other.files.contains(&p) {
                    other.files.push(p.clone());
                }
                report.handed_over.push(p);
            }
            // Directories too: the other instance's files may live in them.
            for d in manifest.dirs.drain(..) {
                if !other.dirs.contains(&d) {
                    other.dirs.push(d);
                }
            }
            write_manifest(root, &other)?;
        }
        None => remove.extend(shared),
    }
    let mut units_removed = false;
    for p in &remove {
        match std::fs::remove_file(under(root, p)) {
            Ok(()) => report.removed.push(p.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(ServiceError::Write {
                    path: p.clone(),
                    source,
                });
            }
        }
        units_removed |= p.starts_with("/etc/systemd/system");
    }
    std::fs::remove_file(under(root, &manifest_path(iface))).map_err(|source| {
        ServiceError::Write {
            path: manifest_path(iface),
            source,
        }
    })?;
    // Deepest first; a directory that is not empty (someone else's files) stays.
    let mut dirs = manifest.dirs.clone();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in dirs {
        if std::fs::remove_dir(under(root, &d)).is_ok() {
            report.removed.push(d);
        }
    }
    if units_removed {
        r.run(Tool::Systemctl, &["daemon-reload"], true)?;
    }
    report.commands = r.log;
    Ok(report)
}

/// The manifests of the other interfaces install-service set up.
fn other_manifests(root: &Path, iface: &str) -> Result<Vec<Manifest>, ServiceError> {
    let dir = under(root, Path::new(ETC_DIR));
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".install").map(str::to_string))
        .filter(|n| n != iface)
        .collect();
    names.sort();
    let mut out = Vec::new();
    for n in names {
        if crate::identity::state::validate_interface_name(&n).is_ok()
            && let Some(m) = read_manifest(root, &n)?
        {
            out.push(m);
        }
    }
    Ok(out)
}
