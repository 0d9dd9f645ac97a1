//! Human output of `wgmesh show`, in `wg show`'s shape and vocabulary ("latest handshake:
//! 1 minute, 5 seconds ago", "transfer: 1.20 KiB received, 3.40 KiB sent"), plus the mesh's
//! facts (hostname, mesh IPs, path, NAT type, discovered via, last seen, RTT).

use std::fmt::Write as _;

use super::report::{DhtReport, PeerReport, RegistryReport, ShowReport};

/// `wg`'s duration wording: "1 day, 2 hours, 5 seconds".
pub fn pretty_duration(mut secs: u64) -> String {
    if secs == 0 {
        return "Now".into();
    }
    let units = [
        ("year", 365 * 24 * 3600),
        ("day", 24 * 3600),
        ("hour", 3600),
        ("minute", 60),
        ("second", 1),
    ];
    let mut parts = Vec::new();
    for (name, size) in units {
        let n = secs / size;
        secs %= size;
        if n > 0 {
            parts.push(format!("{n} {name}{}", if n == 1 { "" } else { "s" }));
        }
    }
    parts.join(", ")
}

/// `wg`'s byte wording: "123 B", "1.20 KiB", "3.40 MiB".
pub fn pretty_bytes(bytes: u64) -> String {
    let units = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = units[0];
    for u in &units[1..] {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = u;
    }
    format!("{value:.2} {unit}")
}

fn ago(now_unix: u64, then: u64) -> String {
    let d = now_unix.saturating_sub(then);
    if d == 0 {
        "Now".into()
    } else {
        format!("{} ago", pretty_duration(d))
    }
}

fn peer_block(out: &mut String, p: &PeerReport, now_unix: u64) {
    let _ = writeln!(out, "peer: {}", p.public_key);
    let _ = writeln!(out, "  hostname: {}", p.hostname);
    if let Some(e) = &p.endpoint {
        let _ = writeln!(out, "  endpoint: {e}");
    }
    let ips = if p.allowed_ips.is_empty() {
        "(none)".to_string()
    } else {
        p.allowed_ips.join(", ")
    };
    let _ = writeln!(out, "  allowed ips: {ips}");
    if let Some(h) = p.latest_handshake {
        let _ = writeln!(out, "  latest handshake: {}", ago(now_unix, h));
    }
    if p.transfer_rx > 0 || p.transfer_tx > 0 {
        let _ = writeln!(
            out,
            "  transfer: {} received, {} sent",
            pretty_bytes(p.transfer_rx),
            pretty_bytes(p.transfer_tx)
        );
    }
    if let Some(k) = p.persistent_keepalive {
        let _ = writeln!(
            out,
            "  persistent keepalive: every {}",
            pretty_duration(k.into())
        );
    }
    let mesh = match &p.mesh_ipv6 {
        Some(v6) => format!("{}, {v6}", p.mesh_ipv4),
        None => p.mesh_ipv4.clone(),
    };
    let _ = writeln!(out, "  mesh ips: {mesh}");
    match &p.relay_reason {
        Some(why) => {
            let _ = writeln!(out, "  path: {} ({why})", p.path);
        }
        None => {
            let _ = writeln!(out, "  path: {}", p.path);
        }
    }
    let _ = writeln!(out, "  nat type: {}", p.nat_type);
    let _ = writeln!(out, "  discovered via: {}", p.discovered_via.join(", "));
    if let Some(s) = p.last_seen {
        let _ = writeln!(
            out,
            "  last seen: {}{}",
            ago(now_unix, s),
            if p.active { "" } else { " (inactive)" }
        );
    }
    if let Some(rtt) = p.rtt_ms {
        let _ = writeln!(out, "  rtt: {rtt:.1} ms");
    }
    if p.probes > 0 {
        let mut line = String::new();
        if let Some(j) = p.jitter_ms {
            let _ = write!(line, "jitter {j:.1} ms, ");
        }
        let loss = p.loss.unwrap_or(0.0) * 100.0;
        let _ = write!(line, "loss {loss:.0}% of {} probes", p.probes);
        if let Some(q) = p.link_quality {
            let _ = write!(line, ", quality {q}/100");
        }
        let _ = writeln!(out, "  link: {line}");
    }
    if let Some(l) = p.relay_load {
        let _ = writeln!(out, "  relay load: {} of {} peers", l.relayed, l.max);
    }
}

/// "mapping endpoint-independent, port preserved, filtering …" (or "no STUN answer").
fn nat_line(n: &super::report::NatReport) -> String {
    if !n.udp {
        return "no STUN server answered (UDP blocked?)".into();
    }
    let mut parts = vec![format!("mapping {}", n.mapping)];
    match n.port_preserved {
        Some(true) => parts.push("port preserved".into()),
        Some(false) => parts.push("port not preserved".into()),
        None => {}
    }
    if let Some(f) = &n.filtering {
        parts.push(format!("filtering {f}"));
    }
    if let Some(v6) = &n.public_ipv6 {
        parts.push(format!("public ipv6 {v6}"));
    }
    parts.join(", ")
}

fn dht_lines(out: &mut String, d: &DhtReport) {
    let mut state = d.state.clone();
    if let Some(src) = &d.bootstrap_source {
        let _ = write!(state, " (bootstrap: {src})");
    }
    if let Some(s) = d.retry_in_secs {
        let _ = write!(
            state,
            ", {} failed, retry in {}",
            d.bootstrap_failures,
            pretty_duration(s)
        );
    }
    let _ = writeln!(out, "  dht: {state}, {} nodes", d.routing_table_nodes);
    if let Some(a) = &d.public_address {
        let _ = writeln!(out, "  dht public address: {a}");
    }
    let _ = writeln!(
        out,
        "  dht lookups: {} ({} announces), {} addresses found, {} greeted",
        d.lookups, d.announces, d.peers_found, d.contacts
    );
    let item = d
        .item_sequence
        .map_or("none".to_string(), |s| format!("sequence {s}"));
    let _ = writeln!(
        out,
        "  dht item: {item}, stored {} times; {} fetched, {} newer",
        d.items_stored, d.items_fetched, d.items_newer
    );
}

fn registry_lines(out: &mut String, r: &RegistryReport, now_unix: u64) {
    let mut line = format!("  registry {}: {}", r.registry, r.state);
    if let Some(s) = r.retry_in_secs {
        let _ = write!(line, ", retry in {}", pretty_duration(s));
    }
    match r.last_success {
        Some(t) => {
            let _ = write!(line, ", last success {}", ago(now_unix, t));
        }
        None => line.push_str(", no success yet"),
    }
    let _ = write!(
        line,
        "; {} entries, {} records learned",
        r.entries_seen, r.records_learned
    );
    let _ = writeln!(out, "{line}");
    if let Some(e) = &r.last_error {
        let when = r
            .last_error_at
            .map_or(String::new(), |t| format!(" ({})", ago(now_unix, t)));
        let _ = writeln!(out, "  registry {} last error{when}: {e}", r.registry);
    }
}

/// Renders the report; `now_unix` makes "N seconds ago" testable.
pub fn render(report: &ShowReport, now_unix: u64) -> String {
    let i = &report.interface;
    let mut out = String::new();
    let _ = writeln!(out, "interface: {}", i.name);
    let _ = writeln!(out, "  public key: {}", i.public_key);
    let _ = writeln!(out, "  listening port: {}", i.listen_port);
    let _ = writeln!(out, "  mesh ipv4: {}", i.mesh_ipv4);
    if let Some(v6) = &i.mesh_ipv6 {
        let _ = writeln!(out, "  mesh ipv6: {v6}");
    }
    let _ = writeln!(out, "  network id: {}", i.network_id);
    let _ = writeln!(out, "  nat type: {}", i.nat_type);
    if let Some(e) = &i.public_endpoint {
        let _ = writeln!(out, "  public endpoint: {e}");
    }
    if let Some(n) = &i.nat {
        let _ = writeln!(out, "  nat check: {}", nat_line(n));
    }
    if !i.endpoint_candidates.is_empty() {
        let list: Vec<String> = i
            .endpoint_candidates
            .iter()
            .map(|c| format!("{} {}", c.kind, c.address))
            .collect();
        let _ = writeln!(out, "  endpoints: {}", list.join(", "));
    }
    let _ = writeln!(out, "  backend: {}", i.backend);
    let _ = writeln!(
        out,
        "  introducer: {}",
        if i.introducer { "yes" } else { "no" }
    );
    let _ = writeln!(
        out,
        "  peers: {} active, {} total",
        i.peers_active, i.peers_total
    );
    if let Some(d) = &report.dht {
        dht_lines(&mut out, d);
    }
    for r in &report.registries {
        registry_lines(&mut out, r, now_unix);
    }
    for p in &report.peers {
        out.push('\n');
        peer_block(&mut out, p, now_unix);
    }
    out
}

/// Prints the report on stdout: pretty JSON, or the human form at the current time.
pub fn print_report(report: &ShowReport, json: bool) -> Result<(), serde_json::Error> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        print!("{}", render(report, now));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::report::InterfaceReport;

    #[test]
    fn durations_and_bytes_read_like_wg_show() {
        assert_eq!(pretty_duration(65), "1 minute, 5 seconds");
        assert_eq!(pretty_duration(2 * 86400 + 1), "2 days, 1 second");
        assert_eq!(pretty_duration(25), "25 seconds");
        assert_eq!(pretty_bytes(100), "100 B");
        assert_eq!(pretty_bytes(1229), "1.20 KiB");
        assert_eq!(pretty_bytes(5 * 1024 * 1024), "5.00 MiB");
    }

    #[test]
    fn render_has_the_nat_check_and_endpoints() {
        use crate::control::report::{CandidateReport, NatReport};
        let mut report = ShowReport::default();
        report.interface.nat_type = "port-restricted-cone".into();
        report.interface.public_endpoint = Some("198.51.100.2:51900".into());
        report.interface.nat = Some(NatReport {
            udp: true,
            mapping: "endpoint-independent".into(),
            port_preserved: Some(true),
            filtering: Some("address-and-port-dependent".into()),
            ..Default::default()
        });
        report.interface.endpoint_candidates = vec![
            CandidateReport {
                kind: "lan".into(),
                address: "10.0.1.11:51820".into(),
            },
            CandidateReport {
                kind: "stun".into(),
                address: "198.51.100.2:51820".into(),
            },
        ];
        let text = render(&report, 0);
        for want in [
            "nat type: port-restricted-cone",
            "public endpoint: 198.51.100.2:51900",
            "nat check: mapping endpoint-independent, port preserved, filtering address-and-port-dependent",
            "endpoints: lan 10.0.1.11:51820, stun 198.51.100.2:51820",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        report.interface.nat = Some(NatReport::default());
        assert!(render(&report, 0).contains("nat check: no STUN server answered (UDP blocked?)"));
    }

    #[test]
    fn render_has_the_interface_and_peer_blocks() {
        let report = ShowReport {
            interface: InterfaceReport {
                name: "wg0".into(),
                public_key: "PUB".into(),
                listen_port: 51820,
                mesh_ipv4: "10.1.2.3/16".into(),
                backend: "userspace".into(),
                peers_active: 1,
                peers_total: 1,
                ..Default::default()
            },
            peers: vec![PeerReport {
                public_key: "PEER".into(),
                hostname: "b".into(),
                endpoint: Some("192.168.1.2:51820".into()),
                allowed_ips: vec!["10.1.9.9/32".into()],
                latest_handshake: Some(995),
                transfer_rx: 2048,
                transfer_tx: 100,
                persistent_keepalive: Some(25),
                mesh_ipv4: "10.1.9.9".into(),
                path: "relay via c".into(),
                relay_reason: Some("handshake stale".into()),
                nat_type: "symmetric".into(),
                discovered_via: vec!["lan".into(), "gossip".into()],
                last_seen: Some(1000),
                rtt_ms: Some(1.25),
                active: true,
                jitter_ms: Some(0.5),
                loss: Some(0.02),
                probes: 100,
                link_quality: Some(99),
                relay_load: Some(super::super::report::RelayLoadReport {
                    relayed: 3,
                    max: 64,
                }),
                ..Default::default()
            }],
            dht: Some(DhtReport {
                state: "ready".into(),
                bootstrap_source: Some("configured".into()),
                routing_table_nodes: 8,
                lookups: 4,
                announces: 2,
                peers_found: 6,
                contacts: 2,
                item_sequence: Some(77),
                items_stored: 1,
                ..Default::default()
            }),
            registries: vec![RegistryReport {
                registry: "github:acme/reg".into(),
                state: "backing-off".into(),
                last_success: Some(940),
                last_error: Some("rate-limited".into()),
                last_error_at: Some(990),
                retry_in_secs: Some(50),
                entries_seen: 3,
                records_learned: 2,
                ..Default::default()
            }],
        };
        let text = render(&report, 1000);
        for want in [
            "interface: wg0",
            "peers: 1 active, 1 total",
            "peer: PEER",
            "latest handshake: 5 seconds ago",
            "transfer: 2.00 KiB received, 100 B sent",
            "persistent keepalive: every 25 seconds",
            "path: relay via c (handshake stale)",
            "discovered via: lan, gossip",
            "last seen: Now",
            "rtt: 1.2 ms",
            "link: jitter 0.5 ms, loss 2% of 100 probes, quality 99/100",
            "relay load: 3 of 64 peers",
            "dht: ready (bootstrap: configured), 8 nodes",
            "dht lookups: 4 (2 announces), 6 addresses found, 2 greeted",
            "dht item: sequence 77, stored 1 times; 0 fetched, 0 newer",
            "registry github:acme/reg: backing-off, retry in 50 seconds, last success 1 minute ago; 3 entries, 2 records learned",
            "registry github:acme/reg last error (10 seconds ago): rate-limited",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }
}
