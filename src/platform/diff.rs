//! Peer diffing for the platform: the minimal [`PeerDiff`] between what a device has and what
//! is wanted, and [`sync_peers`], which reads the device and applies only that diff (so a
//! sync with nothing to change makes no write).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use crate::platform::PlatformError;
use crate::platform::traits::WireGuardDevice;
use crate::platform::types::{ApplyReport, Key, PeerConfig, PeerDiff};

/// True when `current` (as read from the device) already satisfies `desired`.
/// A desired endpoint of `None` accepts any current endpoint.
pub fn peer_satisfies(current: &PeerConfig, desired: &PeerConfig) -> bool {
    current.public_key == desired.public_key
        && current.preshared_key.filter(|k| *k != [0; 32])
            == desired.preshared_key.filter(|k| *k != [0; 32])
        && (desired.endpoint.is_none() || current.endpoint == desired.endpoint)
        && current.keepalive() == desired.keepalive()
        && current.allowed_ip_set() == desired.allowed_ip_set()
}

impl PeerDiff {
    /// The diff that turns `current` into `desired`. Output is sorted by public key.
    pub fn between(current: &[PeerConfig], desired: &[PeerConfig]) -> PeerDiff {
        let cur: BTreeMap<&Key, &PeerConfig> = current.iter().map(|p| (&p.public_key, p)).collect();
        let want: BTreeMap<&Key, &PeerConfig> =
            desired.iter().map(|p| (&p.public_key, p)).collect();
        let mut diff = PeerDiff::default();
        for (key, peer) in &want {
            match cur.get(key) {
                None => diff.add.push((*peer).clone()),
                Some(c) if !peer_satisfies(c, peer) => diff.update.push((*peer).clone()),
                Some(_) => {}
            }
        }
        diff.remove = cur
            .keys()
            .filter(|k| !want.contains_key(*k))
            .map(|k| **k)
            .collect();
        diff
    }
}

/// Reads the device, computes the diff to `desired` and applies it. No change: no write.
pub async fn sync_peers<D: WireGuardDevice + ?Sized>(
    device: &D,
    desired: &[PeerConfig],
) -> Result<ApplyReport, PlatformError> {
    let state = device.read().await?;
    let diff = PeerDiff::between(&state.peer_configs(), desired);
    if diff.is_empty() {
        return Ok(ApplyReport::default());
    }
    device.apply(&diff).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(k: u8, ep: Option<&str>, ips: &[&str]) -> PeerConfig {
        PeerConfig {
            public_key: [k; 32],
            preshared_key: None,
            endpoint: ep.map(|e| e.parse().unwrap()),
            allowed_ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
            persistent_keepalive: None,
        }
    }

    #[test]
    fn diff_add_update_remove() {
        let cur = vec![
            peer(1, Some("1.1.1.1:1"), &["10.0.0.1/32"]),
            peer(2, None, &[]),
        ];
        let want = vec![
            peer(1, Some("1.1.1.1:2"), &["10.0.0.1/32"]),
            peer(3, None, &["10.0.0.3/32"]),
        ];
        let d = PeerDiff::between(&cur, &want);
        assert_eq!(d.add, vec![want[1].clone()]);
        assert_eq!(d.update, vec![want[0].clone()]);
        assert_eq!(d.remove, vec![[2; 32]]);
    }

    #[test]
    fn no_change_is_empty() {
        let mut cur = peer(1, Some("1.1.1.1:1"), &["10.0.0.1/32", "fd00::1/128"]);
        let mut want = cur.clone();
        want.allowed_ips.reverse();
        want.endpoint = None; // "keep what the device learnt"
        cur.persistent_keepalive = Some(0);
        assert!(PeerDiff::between(&[cur], &[want]).is_empty());
    }

    #[test]
    fn host_bits_are_normalised() {
        let cur = peer(1, None, &["10.0.0.0/24"]);
        let want = peer(1, None, &["10.0.0.7/24"]);
        assert!(PeerDiff::between(&[cur], &[want]).is_empty());
    }
}
