//! `wgmesh netcheck [--json] [--stun HOST:PORT ...]`: checks this host's connectivity the way
//! the daemon does, without a daemon or a mesh secret: UDP reachability, public IPv4/IPv6
//! addresses, NAT mapping behaviour, filtering (RFC 5780 servers), per-server latency.

use std::fmt::Write as _;
use std::time::Instant;

use clap::Args;
use serde::Serialize;

use crate::daemon::config::DEFAULT_STUN_SERVERS;
use crate::daemon::stun_task::{check_once, resolve_servers};
use crate::discovery::stun::{CheckReport, StunClient};

/// Options of `wgmesh netcheck`.
#[derive(Debug, Args)]
#[command(
    after_help = "It always runs on a socket of its own (no daemon needed, no secret). A \
    running daemon checks from its control port at start, every 60 s and on address changes: \
    `wgmesh show` prints that result (`nat check`, `public endpoint`).\n\n\
    Classification: the same public address/port from two servers (or from both addresses of \
    an RFC 5780 server) is a cone NAT (endpoint-independent mapping); different ones are a \
    symmetric NAT; no answer at all is unknown (UDP blocked?). With an RFC 5780 server (e.g. \
    coturn listening on two IPs) the filtering is tested too: full cone (endpoint-independent), \
    restricted (address-dependent) or port-restricted (address-and-port-dependent)."
)]
pub struct NetcheckArgs {
    /// STUN servers to ask (repeatable or comma-separated); give two, or one RFC 5780 server,
    /// to tell cone from symmetric [default: stun.l.google.com:19302, stun.cloudflare.com:3478].
    #[arg(long, value_name = "HOST:PORT,...", value_delimiter = ',')]
    pub stun: Vec<String>,
    /// Print JSON (keys documented in docs/CONTROL.md, "netcheck").
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct JsonOut<'a> {
    #[serde(flatten)]
    report: &'a CheckReport,
    duration_ms: u64,
}

pub fn run(args: NetcheckArgs) -> anyhow::Result<()> {
    let servers: Vec<String> = if args.stun.is_empty() {
        DEFAULT_STUN_SERVERS.iter().map(|s| s.to_string()).collect()
    } else {
        args.stun
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let report = runtime.block_on(async {
        let resolved = resolve_servers(&servers, true).await;
        if resolved.is_empty() {
            anyhow::bail!(
                "none of the STUN servers resolved ({}): check the --stun HOST:PORT values and DNS",
                servers.join(", ")
            );
        }
        let (client, _task) = StunClient::standalone().await?;
        Ok(check_once(&client, &servers, "", None, |_| {}).await)
    })?;
    let duration_ms = started.elapsed().as_millis() as u64;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&JsonOut {
                report: &report,
                duration_ms
            })?
        );
    } else {
        print!("{}", render(&report, duration_ms));
    }
    Ok(())
}

/// The text form.
fn render(r: &CheckReport, duration_ms: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "UDP: {}",
        if r.udp {
            "yes"
        } else {
            "no answer from any STUN server (UDP blocked?)"
        }
    );
    for (name, f) in [("IPv4", &r.ipv4), ("IPv6", &r.ipv6)] {
        let Some(public) = f.public else {
            let _ = writeln!(out, "{name}: no answer");
            continue;
        };
        let nat = match f.behind_nat {
            Some(false) => "no NAT",
            _ => "behind NAT",
        };
        let _ = writeln!(out, "{name}: public {public} ({nat})");
        let _ = writeln!(out, "  nat type: {}", f.nat_type);
        let kept = match f.port_preserved {
            Some(true) => ", port preserved",
            Some(false) => ", port not preserved",
            None => "",
        };
        let _ = writeln!(out, "  mapping: {}{kept}", f.mapping);
        if let Some(filtering) = f.filtering {
            let _ = writeln!(out, "  filtering: {filtering}");
        }
    }
    if r.interface_ipv6.is_empty() {
        let _ = writeln!(out, "global IPv6 on interfaces: none");
    } else {
        let list: Vec<String> = r.interface_ipv6.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "global IPv6 on interfaces: {}", list.join(", "));
    }
    let _ = writeln!(out, "servers (from local port {}):", r.local.port());
    for s in r.servers.iter().chain(r.alternate.as_ref()) {
        let mut line = format!("  {} ({})", s.server, s.address);
        match (s.latency_ms, s.mapped) {
            (Some(ms), Some(m)) => {
                let _ = write!(line, ": {ms:.1} ms, saw {m}");
            }
            _ => line.push_str(": no answer"),
        }
        if let Some(o) = s.other_address {
            let _ = write!(line, ", RFC 5780 (other address {o})");
        }
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "checked in {duration_ms} ms");
    out
}
