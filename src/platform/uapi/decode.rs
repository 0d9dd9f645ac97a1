//! Pure decoding of a UAPI `get=1` reply into a [`DeviceState`], and of the `errno=` status
//! line that ends every reply.
#![forbid(unsafe_code)]

use std::time::{Duration, SystemTime};

use crate::platform::types::{DeviceState, Key, PeerConfig, PeerState};
use crate::platform::uapi::UapiError;

fn bad(line: &str, reason: &'static str) -> UapiError {
    UapiError::Malformed {
        line: line.chars().take(120).collect(),
        reason,
    }
}

/// Parses 64 hex digits.
pub fn parse_hex_key(line: &str, v: &str) -> Result<Key, UapiError> {
    let bytes = v.as_bytes();
    if bytes.len() != 64 {
        return Err(bad(line, "key is not 64 hex digits"));
    }
    let mut key = [0u8; 32];
    for (i, out) in key.iter_mut().enumerate() {
        let hi = (bytes[2 * i] as char).to_digit(16);
        let lo = (bytes[2 * i + 1] as char).to_digit(16);
        match (hi, lo) {
            (Some(h), Some(l)) => *out = (h * 16 + l) as u8,
            _ => return Err(bad(line, "key is not hex")),
        }
    }
    Ok(key)
}

fn num<T: std::str::FromStr>(line: &str, v: &str) -> Result<T, UapiError> {
    v.parse().map_err(|_| bad(line, "not a number"))
}

/// The `errno=N` value of a reply (0 = success).
pub fn parse_errno(reply: &str) -> Result<i64, UapiError> {
    for line in reply.lines() {
        if let Some(v) = line.strip_prefix("errno=") {
            return num(line, v);
        }
    }
    Err(UapiError::Truncated)
}

#[derive(Default)]
struct PeerAcc {
    peer: Option<PeerState>,
    hs_sec: u64,
    hs_nsec: u32,
}

impl PeerAcc {
    fn finish(&mut self, out: &mut Vec<PeerState>) {
        if let Some(mut p) = self.peer.take() {
            if self.hs_sec != 0 || self.hs_nsec != 0 {
                p.last_handshake = Some(
                    SystemTime::UNIX_EPOCH
                        + Duration::from_secs(self.hs_sec)
                        + Duration::from_nanos(u64::from(self.hs_nsec)),
                );
            }
            out.push(p);
        }
        self.hs_sec = 0;
        self.hs_nsec = 0;
    }
}

/// Decodes a full `get=1` reply (ending with `errno=0`).
pub fn decode_get(reply: &str) -> Result<DeviceState, UapiError> {
    let mut dev = DeviceState::default();
    let mut acc = PeerAcc::default();
    let mut saw_errno = false;
    for line in reply.lines() {
        if line.is_empty() {
            continue;
        }
        let (k, v) = line.split_once('=').ok_or_else(|| bad(line, "no '='"))?;
        match (k, acc.peer.as_mut()) {
            ("errno", _) => {
                let e: i64 = num(line, v)?;
                if e != 0 {
                    return Err(UapiError::Errno(e));
                }
                saw_errno = true;
            }
            ("public_key", _) => {
                acc.finish(&mut dev.peers);
                acc.peer = Some(PeerState {
                    config: PeerConfig::new(parse_hex_key(line, v)?),
                    last_handshake: None,
                    rx_bytes: 0,
                    tx_bytes: 0,
                });
            }
            ("private_key", None) => {
                let private = parse_hex_key(line, v)?;
                dev.public_key = (private != [0; 32]).then(|| public_from_private(&private));
            }
            ("listen_port", None) => dev.listen_port = num(line, v)?,
            ("fwmark", None) => dev.fwmark = Some(num::<u32>(line, v)?).filter(|m| *m != 0),
            ("preshared_key", Some(p)) => {
                let k = parse_hex_key(line, v)?;
                p.config.preshared_key = (k != [0; 32]).then_some(k);
            }
            ("endpoint", Some(p)) => {
                p.config.endpoint = Some(v.parse().map_err(|_| bad(line, "bad endpoint"))?)
            }
            ("allowed_ip", Some(p)) => p
                .config
                .allowed_ips
                .push(v.parse().map_err(|_| bad(line, "bad allowed_ip"))?),
            ("persistent_keepalive_interval", Some(p)) => {
                p.config.persistent_keepalive = Some(num::<u16>(line, v)?).filter(|k| *k != 0)
            }
            ("rx_bytes", Some(p)) => p.rx_bytes = num(line, v)?,
            ("tx_bytes", Some(p)) => p.tx_bytes = num(line, v)?,
            ("last_handshake_time_sec", Some(_)) => acc.hs_sec = num(line, v)?,
            ("last_handshake_time_nsec", Some(_)) => acc.hs_nsec = num(line, v)?,
            // protocol_version and keys a newer implementation may add
            _ => {}
        }
    }
    acc.finish(&mut dev.peers);
    if !saw_errno {
        return Err(UapiError::Truncated);
    }
    Ok(dev)
}

/// X25519 public key of a private key (the UAPI reports only the private key).
fn public_from_private(private: &Key) -> Key {
    // mul_base_clamped applies the X25519 clamping (RFC 7748 section 5) itself.
    curve25519_dalek::montgomery::MontgomeryPoint::mul_base_clamped(*private).to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_reply() {
        let a = "aa".repeat(32);
        let b = "bb".repeat(32);
        let z = "00".repeat(32);
        let reply = format!(
            "private_key={z}\nlisten_port=51820\npublic_key={a}\npreshared_key={z}\n\
             protocol_version=1\nendpoint=192.0.2.1:51820\nlast_handshake_time_sec=10\n\
             last_handshake_time_nsec=5\ntx_bytes=7\nrx_bytes=9\npersistent_keepalive_interval=25\n\
             allowed_ip=10.0.0.1/32\nallowed_ip=fd00::1/128\npublic_key={b}\n\
             last_handshake_time_sec=0\nlast_handshake_time_nsec=0\nerrno=0\n\n"
        );
        let d = decode_get(&reply).unwrap();
        assert_eq!(d.listen_port, 51820);
        assert_eq!(d.public_key, None);
        assert_eq!(d.peers.len(), 2);
        let p = &d.peers[0];
        assert_eq!(p.config.public_key, [0xaa; 32]);
        assert_eq!(p.config.endpoint, Some("192.0.2.1:51820".parse().unwrap()));
        assert_eq!(p.config.allowed_ips.len(), 2);
        assert_eq!(p.config.persistent_keepalive, Some(25));
        assert_eq!((p.rx_bytes, p.tx_bytes), (9, 7));
        assert!(p.last_handshake.is_some());
        assert_eq!(d.peers[1].last_handshake, None);
    }

    #[test]
    fn public_key_matches_rfc7748() {
        // RFC 7748 section 6.1: Alice's private and public key.
        let private = parse_hex_key(
            "",
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        )
        .unwrap();
        let public = parse_hex_key(
            "",
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
        )
        .unwrap();
        assert_eq!(public_from_private(&private), public);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            decode_get("listen_port=1\n"),
            Err(UapiError::Truncated)
        ));
        assert!(matches!(decode_get("errno=2\n"), Err(UapiError::Errno(2))));
        assert!(decode_get("public_key=zz\nerrno=0\n").is_err());
        assert!(decode_get("garbage\nerrno=0\n").is_err());
        assert_eq!(parse_errno("errno=0\n\n").unwrap(), 0);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use crate::platform::types::PeerDiff;
    use crate::platform::uapi::encode::encode_diff;
    use proptest::prelude::*;

    fn arb_peer() -> impl Strategy<Value = PeerConfig> {
        (
            any::<[u8; 32]>(),
            proptest::option::of(any::<[u8; 32]>().prop_filter("non-zero", |k| *k != [0; 32])),
            proptest::option::of((any::<[u8; 4]>(), 1u16..)),
            proptest::collection::vec((any::<[u8; 4]>(), 0u8..=32), 0..4),
            proptest::option::of(1u16..),
        )
            .prop_map(|(key, psk, ep, ips, ka)| PeerConfig {
                public_key: key,
                preshared_key: psk,
                endpoint: ep.map(|(a, p)| std::net::SocketAddr::from((a, p))),
                allowed_ips: ips
                    .into_iter()
                    .filter_map(|(a, l)| {
                        ipnet::IpNet::new(std::net::Ipv4Addr::from(a).into(), l).ok()
                    })
                    .map(|n| n.trunc())
                    .collect(),
                persistent_keepalive: ka,
            })
    }

    proptest! {
        /// What `encode_diff` writes is what a device holding it would report: turn the set
        /// request into a get reply (same keys) and decode it.
        #[test]
        fn encode_then_decode_roundtrips(peers in proptest::collection::vec(arb_peer(), 0..6)) {
            let mut uniq = std::collections::BTreeMap::new();
            for p in peers { uniq.insert(p.public_key, p); }
            let peers: Vec<PeerConfig> = uniq.into_values().collect();
            let diff = PeerDiff { add: peers.clone(), ..Default::default() };
            let reply = match encode_diff(&diff) {
                None => "errno=0\n\n".to_string(),
                Some(req) => req
                    .lines()
                    .filter(|l| *l != "set=1" && *l != "replace_allowed_ips=true" && !l.is_empty())
                    .map(|l| format!("{l}\n"))
                    .collect::<String>() + "errno=0\n\n",
            };
            let dev = decode_get(&reply).unwrap();
            prop_assert_eq!(dev.peer_configs(), peers);
        }

        /// Arbitrary replies never panic the decoder.
        #[test]
        fn decoder_never_panics(s in "\\PC{0,400}") {
            let _ = decode_get(&s);
            let _ = parse_errno(&s);
        }
    }
}
