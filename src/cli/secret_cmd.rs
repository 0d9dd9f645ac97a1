//! `wgmesh secret new` (a fresh `wgmesh://v2/` URI, alone on stdout) and `wgmesh secret
//! inspect` (the public values the secret derives; never a key).

use clap::{Args, Subcommand};
use ipnet::Ipv4Net;
use serde_json::{Map, Value, json};

use crate::daemon::secret_source::{SecretArgs, SecretEnv, resolve_secret};
use crate::proto::derive::MeshKeys;
use crate::proto::keys::{base64_key, parse_base64_key};
use crate::proto::secret::MeshSecret;

/// `wgmesh secret ...`
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Print a new random mesh secret (wgmesh://v2/...) and nothing else. Store it with mode
    /// 0600: `(umask 077; wgmesh secret new > mesh.secret)`.
    New,
    /// Print the public values a mesh secret derives: network id, subnets, LAN group, control
    /// port, registry id, DHT topics, peers' mesh addresses. Never prints a key.
    Inspect(InspectArgs),
}

/// Options of `wgmesh secret inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub secret: SecretArgs,
    /// Show the DHT topics for this hour (unix seconds / 3600) and the hour before; repeatable.
    #[arg(long, value_name = "N")]
    pub hour: Vec<u64>,
    /// Show the mesh addresses of the node with this WireGuard public key (base64); repeatable.
    #[arg(long, value_name = "WG_PUBKEY_BASE64")]
    pub peer: Vec<String>,
    /// Use this IPv4 mesh subnet instead of the derived 10.x.0.0/16.
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<Ipv4Net>,
    /// Print JSON (stable keys: network_id, ipv4_subnet, ipv6_prefix, lan_group,
    /// control_port, registry_id, dht_topic, peers).
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: SecretCommand) -> anyhow::Result<()> {
    match cmd {
        SecretCommand::New => {
            println!("{}", MeshSecret::generate().to_uri());
            Ok(())
        }
        SecretCommand::Inspect(args) => inspect(args),
    }
}

fn inspect(args: InspectArgs) -> anyhow::Result<()> {
    let resolved = resolve_secret(&args.secret, &SecretEnv::from_process())?;
    for w in &resolved.warnings {
        tracing::warn!("{w}");
    }
    let keys = MeshKeys::derive_with_subnet(&resolved.secret, args.subnet)?;
    let mut peers = Vec::new();
    for text in &args.peer {
        let key = parse_base64_key(text).ok_or_else(|| {
            anyhow::anyhow!(
                "--peer {text:?} is not a WireGuard public key (44 characters of base64)"
            )
        })?;
        peers.push(key);
    }
    let report = inspect_json(&keys, &args.hour, &peers);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_human(&report);
    }
    Ok(())
}

/// The public derived values as the JSON `secret inspect --json` prints.
pub fn inspect_json(keys: &MeshKeys, hours: &[u64], peers: &[[u8; 32]]) -> Value {
    let mut out = Map::new();
    out.insert("network_id".into(), json!(keys.network_id_short()));
    out.insert("ipv4_subnet".into(), json!(keys.ipv4_subnet().to_string()));
    out.insert("ipv6_prefix".into(), json!(keys.ipv6_prefix().to_string()));
    out.insert("lan_group".into(), json!(keys.lan_group().to_string()));
    out.insert("control_port".into(), json!(keys.control_port()));
    out.insert("registry_id".into(), json!(keys.registry_id_hex()));
    if !hours.is_empty() {
        let mut topics = Map::new();
        for &n in hours {
            for h in [Some(n), n.checked_sub(1)].into_iter().flatten() {
                topics.insert(h.to_string(), json!(hex::encode(keys.dht_topic(h))));
            }
        }
        out.insert("dht_topic".into(), Value::Object(topics));
    }
    if !peers.is_empty() {
        let mut map = Map::new();
        for key in peers {
            let nonces: Vec<String> = (0..4).map(|n| keys.mesh_ipv4(key, n).to_string()).collect();
            map.insert(
                base64_key(key),
                json!({
                    "ipv4": keys.mesh_ipv4(key, 0).to_string(),
                    "ipv4_nonces": nonces,
                    "ipv6": keys.mesh_ipv6(key).to_string(),
                }),
            );
        }
        out.insert("peers".into(), Value::Object(map));
    }
    Value::Object(out)
}

fn print_human(report: &Value) {
    let s = |k: &str| {
        report
            .get(k)
            .map(|v| v.to_string().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    println!("network id:    {}", s("network_id"));
    println!("ipv4 subnet:   {}", s("ipv4_subnet"));
    println!("ipv6 prefix:   {}", s("ipv6_prefix"));
    println!("lan group:     {}", s("lan_group"));
    println!("control port:  {}", s("control_port"));
    println!("registry id:   {}", s("registry_id"));
    if let Some(Value::Object(topics)) = report.get("dht_topic") {
        for (hour, topic) in topics {
            println!(
                "dht topic:     hour {hour}: {}",
                topic.as_str().unwrap_or_default()
            );
        }
    }
    if let Some(Value::Object(peers)) = report.get("peers") {
        for (key, p) in peers {
            println!("peer {key}");
            println!("  ipv4:        {}", p["ipv4"].as_str().unwrap_or_default());
            let nonces: Vec<&str> = p["ipv4_nonces"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str())
                .collect();
            println!("  ipv4 nonces: {}", nonces.join(" "));
            println!("  ipv6:        {}", p["ipv6"].as_str().unwrap_or_default());
        }
    }
}
