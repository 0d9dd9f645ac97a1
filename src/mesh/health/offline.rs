//! Peers temporarily offline: evicted by the handshake monitor or given up by the probe monitor,
//! they are left out of plans and relay choice for 30 s.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::mesh::WgKey;
use crate::mesh::time::Millis;

/// How long a given-up peer stays out.
pub const TEMPORARILY_OFFLINE_FOR: Duration = Duration::from_secs(30);

/// Peers offline until a given time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OfflineList {
    until: BTreeMap<WgKey, Millis>,
}

impl OfflineList {
    /// Marks `key` offline for [`TEMPORARILY_OFFLINE_FOR`] from `now`.
    pub fn mark(&mut self, key: WgKey, now: Millis) {
        self.until.insert(key, now + TEMPORARILY_OFFLINE_FOR);
    }

    /// Whether `key` is offline at `now`.
    pub fn is_offline(&self, key: &WgKey, now: Millis) -> bool {
        self.until.get(key).is_some_and(|until| now < *until)
    }

    /// Forgets entries that ended before `now`.
    pub fn prune(&mut self, now: Millis) {
        self.until.retain(|_, until| now < *until);
    }

    /// Peers offline at `now`.
    pub fn offline_at(&self, now: Millis) -> impl Iterator<Item = &WgKey> {
        self.until
            .iter()
            .filter(move |(_, until)| now < **until)
            .map(|(k, _)| k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_for_30_seconds() {
        let mut list = OfflineList::default();
        let k = [1u8; 32];
        list.mark(k, Millis::from_secs(100));
        assert!(list.is_offline(&k, Millis::from_secs(100)));
        assert!(list.is_offline(&k, Millis::from_secs(129)));
        assert!(!list.is_offline(&k, Millis::from_secs(130)));
        assert_eq!(list.offline_at(Millis::from_secs(110)).count(), 1);
        list.prune(Millis::from_secs(130));
        assert_eq!(list, OfflineList::default());
    }
}
