//! Pure encoding of UAPI `set=1` requests (key=value lines, hex keys, blank-line terminated).
#![forbid(unsafe_code)]

use std::fmt::Write;

use crate::platform::types::{DeviceConfig, Key, PeerConfig, PeerDiff};

fn hex(key: &Key) -> String {
    let mut s = String::with_capacity(64);
    for b in key {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// `set=1` request for device settings.
pub fn encode_device(config: &DeviceConfig) -> String {
    let mut s = String::from("set=1\n");
    let _ = writeln!(s, "private_key={}", hex(&config.private_key));
    if let Some(port) = config.listen_port {
        let _ = writeln!(s, "listen_port={port}");
    }
    let _ = writeln!(s, "fwmark={}", config.fwmark.unwrap_or(0));
    s.push('\n');
    s
}

/// A new peer (`fresh`) gets only the fields that differ from a new peer's defaults; an
/// updated one gets every field, so cleared values (no PSK, no keepalive) are cleared and its
/// allowed IPs replaced.
fn push_peer(s: &mut String, p: &PeerConfig, fresh: bool) {
    let _ = writeln!(s, "public_key={}", hex(&p.public_key));
    if !fresh || p.preshared_key.is_some() {
        let psk = p.preshared_key.unwrap_or([0; 32]);
        let _ = writeln!(s, "preshared_key={}", hex(&psk));
    }
    if let Some(ep) = p.endpoint {
        let _ = writeln!(s, "endpoint={ep}");
    }
    if !fresh || p.keepalive().is_some() {
        let ka = p.persistent_keepalive.unwrap_or(0);
        let _ = writeln!(s, "persistent_keepalive_interval={ka}");
    }
    if !fresh {
        s.push_str("replace_allowed_ips=true\n");
    }
    for ip in &p.allowed_ips {
        let _ = writeln!(s, "allowed_ip={}", ip.trunc());
    }
}

/// One `set=1` request carrying the whole diff (removals, then additions, then updates).
/// `None` for an empty diff: nothing to send.
pub fn encode_diff(diff: &PeerDiff) -> Option<String> {
    if diff.is_empty() {
        return None;
    }
    let mut s = String::with_capacity(64 + diff.len() * 200);
    s.push_str("set=1\n");
    for key in &diff.remove {
        let _ = writeln!(s, "public_key={}", hex(key));
        s.push_str("remove=true\n");
    }
    for p in &diff.add {
        push_peer(&mut s, p, true);
    }
    for p in &diff.update {
        push_peer(&mut s, p, false);
    }
    s.push('\n');
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_diff_sends_nothing() {
        assert_eq!(encode_diff(&PeerDiff::default()), None);
    }

    #[test]
    fn encodes_diff_in_order() {
        let mut p = PeerConfig::new([0xab; 32]);
        p.endpoint = Some("[fd00::1]:51820".parse().unwrap());
        p.allowed_ips = vec![
            "10.0.0.9/24".parse().unwrap(),
            "fd00::2/128".parse().unwrap(),
        ];
        p.persistent_keepalive = Some(25);
        let mut q = PeerConfig::new([0xcd; 32]);
        q.allowed_ips = vec!["10.0.0.3/32".parse().unwrap()];
        let diff = PeerDiff {
            add: vec![q],
            update: vec![p],
            remove: vec![[1; 32]],
        };
        let s = encode_diff(&diff).unwrap();
        let ab = "ab".repeat(32);
        let cd = "cd".repeat(32);
        let one = "01".repeat(32);
        let zero = "00".repeat(32);
        let want = format!(
            "set=1\npublic_key={one}\nremove=true\npublic_key={cd}\nallowed_ip=10.0.0.3/32\n\
             public_key={ab}\npreshared_key={zero}\nendpoint=[fd00::1]:51820\n\
             persistent_keepalive_interval=25\nreplace_allowed_ips=true\n\
             allowed_ip=10.0.0.0/24\nallowed_ip=fd00::2/128\n\n"
        );
        assert_eq!(s, want);
    }

    #[test]
    fn encodes_device() {
        let c = DeviceConfig {
            private_key: [2; 32],
            listen_port: Some(51820),
            fwmark: None,
        };
        let s = encode_device(&c);
        assert!(s.starts_with("set=1\nprivate_key=0202"));
        assert!(s.ends_with("listen_port=51820\nfwmark=0\n\n"));
    }
}
