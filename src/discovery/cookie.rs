//! Address cookies of the peer exchange (PROTOCOL.md §8): `HMAC-SHA256(cookie-key, source
//! address ‖ 10-minute period)[0..16]`. A responder hands one out in every reply; an initiator
//! that echoes it in a later hello proves it receives at its address, which lifts the
//! anti-amplification budget. The key is this node's own random secret and never leaves it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::mesh::Millis;
use crate::proto::exchange::CHALLENGE_BYTES;

/// Cookies change every period; the current and the previous one are accepted.
pub const COOKIE_PERIOD: Duration = Duration::from_secs(10 * 60);

type HmacSha256 = Hmac<Sha256>;

/// Mints and checks cookies with this node's cookie key.
pub struct CookieMinter {
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for CookieMinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieMinter").finish_non_exhaustive()
    }
}

fn period_of(now: Millis) -> u64 {
    let period_ms = COOKIE_PERIOD.as_millis() as u64;
    now.as_millis() / period_ms
}

impl CookieMinter {
    /// A minter with the given key (random in production, fixed in tests).
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            key: Zeroizing::new(key),
        }
    }

    fn mac(&self, addr: SocketAddr, period: u64) -> HmacSha256 {
        // HMAC accepts keys of any length; a 32-byte key cannot fail.
        let mut mac = match HmacSha256::new_from_slice(self.key.as_ref()) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
        };
        match addr.ip().to_canonical() {
            IpAddr::V4(v4) => mac.update(&v4.octets()),
            IpAddr::V6(v6) => mac.update(&v6.octets()),
        }
        mac.update(&addr.port().to_be_bytes());
        mac.update(&period.to_be_bytes());
        mac
    }

    /// The cookie of `addr` for the period of `now`.
    pub fn cookie_for(&self, addr: SocketAddr, now: Millis) -> [u8; CHALLENGE_BYTES] {
        let tag = self.mac(addr, period_of(now)).finalize().into_bytes();
        let mut out = [0u8; CHALLENGE_BYTES];
        out.copy_from_slice(&tag[..CHALLENGE_BYTES]);
        out
    }

    /// Whether `cookie` is the cookie of `addr` for the current or the previous period
    /// (compared in constant time).
    pub fn is_valid(&self, addr: SocketAddr, cookie: &[u8; CHALLENGE_BYTES], now: Millis) -> bool {
        let period = period_of(now);
        let mut valid = self.mac(addr, period).verify_truncated_left(cookie).is_ok();
        if let Some(previous) = period.checked_sub(1) {
            valid |= self
                .mac(addr, previous)
                .verify_truncated_left(cookie)
                .is_ok();
        }
        valid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cookie_is_bound_to_address_port_and_key() {
        let m = CookieMinter::new([7; 32]);
        let t = Millis::from_secs(1_700_000_000);
        let a = addr("198.51.100.7:4000");
        let c = m.cookie_for(a, t);
        assert!(m.is_valid(a, &c, t));
        assert!(!m.is_valid(addr("198.51.100.8:4000"), &c, t));
        assert!(!m.is_valid(addr("198.51.100.7:4001"), &c, t));
        assert!(!CookieMinter::new([8; 32]).is_valid(a, &c, t));
        // An IPv4-mapped source is the same address.
        assert!(m.is_valid(addr("[::ffff:198.51.100.7]:4000"), &c, t));
    }

    #[test]
    fn current_and_previous_period_accepted_then_expired() {
        let m = CookieMinter::new([7; 32]);
        let a = addr("[2001:db8::1]:51821");
        let start = Millis(600_000 * 1000); // a period boundary
        let c = m.cookie_for(a, start);
        assert!(m.is_valid(a, &c, start + Duration::from_secs(599)));
        assert!(
            m.is_valid(a, &c, start + Duration::from_secs(600)),
            "previous"
        );
        assert!(m.is_valid(a, &c, start + Duration::from_secs(1199)));
        assert!(
            !m.is_valid(a, &c, start + Duration::from_secs(1200)),
            "expired"
        );
        assert!(
            !m.is_valid(a, &c, Millis(start.0 - 1)),
            "not from the future"
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        let m = CookieMinter::new([0xab; 32]);
        assert!(!format!("{m:?}").contains("171"));
        assert!(!format!("{m:?}").to_lowercase().contains("ab, ab"));
    }
}
