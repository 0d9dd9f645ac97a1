//! Least privilege: before the async runtime starts any thread, keep only CAP_NET_ADMIN (plus
//! CAP_NET_BIND_SERVICE when a configured port is below 1024) — bounding set first, then
//! effective, then permitted. CAP_NET_ADMIN stays inheritable and ambient so that the
//! userspace WireGuard child (wireguard-go) can create its TUN device under a non-root service
//! user. Capabilities are per thread, which is why this must run on the main thread before
//! tokio spawns its workers.

use caps::{CapSet, Capability, CapsHashSet};

/// Why capabilities could not be reduced.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error(
        "wgmesh needs CAP_NET_ADMIN to configure WireGuard, addresses and routes: run it as root, or under the systemd unit (AmbientCapabilities=CAP_NET_ADMIN)"
    )]
    MissingNetAdmin,
    #[error("cannot {action} the {set} capability set: {message}")]
    Caps {
        action: &'static str,
        set: &'static str,
        message: String,
    },
}

/// The capabilities the daemon keeps.
pub fn required_capabilities(ports: &[u16]) -> CapsHashSet {
    let mut keep = CapsHashSet::new();
    keep.insert(Capability::CAP_NET_ADMIN);
    if ports.iter().any(|p| *p < 1024) {
        keep.insert(Capability::CAP_NET_BIND_SERVICE);
    }
    keep
}

fn caps_err(
    action: &'static str,
    set: &'static str,
) -> impl FnOnce(caps::errors::CapsError) -> PrivilegeError {
    move |e| PrivilegeError::Caps {
        action,
        set,
        message: e.to_string(),
    }
}

/// Drops every capability except `keep`. Returns the effective set afterwards.
pub fn drop_capabilities(keep: &CapsHashSet) -> Result<CapsHashSet, PrivilegeError> {
    let permitted = caps::read(None, CapSet::Permitted).map_err(caps_err("read", "permitted"))?;
    if !permitted.contains(&Capability::CAP_NET_ADMIN) {
        return Err(PrivilegeError::MissingNetAdmin);
    }
    let effective = caps::read(None, CapSet::Effective).map_err(caps_err("read", "effective"))?;
    if effective == *keep && permitted == *keep {
        // Already least-privileged (the systemd unit grants exactly this): make no capset()
        // call, so the unit can deny the @privileged system calls.
        return Ok(effective);
    }
    // 1. Bounding set: dropping needs CAP_SETPCAP, which we may only have as root; under a
    //    unit with CapabilityBoundingSet=CAP_NET_ADMIN the others are already gone.
    let can_setpcap = permitted.contains(&Capability::CAP_SETPCAP);
    let bounding = caps::read(None, CapSet::Bounding).map_err(caps_err("read", "bounding"))?;
    if can_setpcap {
        caps::raise(None, CapSet::Effective, Capability::CAP_SETPCAP)
            .map_err(caps_err("raise", "effective"))?;
        for cap in bounding.iter().filter(|c| !keep.contains(c)) {
            caps::drop(None, CapSet::Bounding, *cap).map_err(caps_err("drop from", "bounding"))?;
        }
    }
    // 2. Effective, then permitted (CAP_SETPCAP goes here too), then inheritable and ambient.
    let kept: CapsHashSet = keep.intersection(&permitted).copied().collect();
    caps::set(None, CapSet::Effective, &kept).map_err(caps_err("set", "effective"))?;
    caps::set(None, CapSet::Permitted, &kept).map_err(caps_err("set", "permitted"))?;
    let mut inheritable = CapsHashSet::new();
    inheritable.insert(Capability::CAP_NET_ADMIN);
    caps::set(None, CapSet::Inheritable, &inheritable).map_err(caps_err("set", "inheritable"))?;
    caps::clear(None, CapSet::Ambient).map_err(caps_err("clear", "ambient"))?;
    // Ambient keeps CAP_NET_ADMIN across exec of wireguard-go for non-root users; harmless
    // for root. Some kernels refuse ambient capabilities; the kernel backend does not need it.
    let _ = caps::raise(None, CapSet::Ambient, Capability::CAP_NET_ADMIN);
    caps::read(None, CapSet::Effective).map_err(caps_err("read", "effective"))
}

/// Capability names for logs, sorted.
pub fn describe(set: &CapsHashSet) -> String {
    let mut names: Vec<String> = set.iter().map(|c| c.to_string()).collect();
    names.sort();
    names.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_admin_always_bind_service_only_for_low_ports() {
        let k = required_capabilities(&[51820, 51821]);
        assert_eq!(k.len(), 1);
        assert!(k.contains(&Capability::CAP_NET_ADMIN));
        let k = required_capabilities(&[443, 51821]);
        assert!(k.contains(&Capability::CAP_NET_BIND_SERVICE));
    }

    #[test]
    fn dropping_in_a_child_thread_leaves_exactly_net_admin() {
        // Capabilities are per thread: test in a throw-away thread so the test process keeps
        // its own. Needs root (CAP_NET_ADMIN permitted); otherwise the error must say so.
        let handle = std::thread::spawn(|| {
            let keep = required_capabilities(&[51820]);
            drop_capabilities(&keep).map(|eff| (eff, caps::read(None, CapSet::Permitted).ok()))
        });
        match handle.join().unwrap() {
            Ok((eff, permitted)) => {
                assert_eq!(describe(&eff), "CAP_NET_ADMIN");
                assert_eq!(
                    permitted.map(|p| describe(&p)).as_deref(),
                    Some("CAP_NET_ADMIN")
                );
            }
            Err(PrivilegeError::MissingNetAdmin) => {
                assert!(
                    !caps::has_cap(None, CapSet::Permitted, Capability::CAP_NET_ADMIN).unwrap()
                );
            }
            Err(e) => panic!("unexpected: {e}"),
        }
    }
}
