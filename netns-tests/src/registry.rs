//! A real `wgmesh registry serve` process in a namespace and an HTTPS client for it: a
//! self-signed certificate made with rcgen, the server started with recorded PID (kill -9 and
//! restart on the same data directory), and a keep-alive HTTP/1.1 client over rustls that
//! signs each request with a mesh's membership key the way PROTOCOL.md §15 says. Simulated
//! nodes build real signed records (`sign_local_record`, as the daemon does) and seal them
//! into entries.
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes_util::{Body, collect};
use ed25519_dalek::SigningKey;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use wgmesh::daemon::local::{LocalFacts, sign_local_record};
use wgmesh::identity::NodeIdentity;
use wgmesh::mesh::Millis;
use wgmesh::proto::record::{EndpointCandidate, EndpointKind, NatType, NodeRecord};
use wgmesh::proto::registry::{self, Entry};
use wgmesh::proto::{MeshKeys, SignedRecord};

use crate::daemon::wgmesh_bin;
use crate::lab::{Lab, sh_ok};

mod bytes_util {
    //! The request body type and a response collector.
    use http_body_util::BodyExt;
    pub type Body = http_body_util::Full<hyper::body::Bytes>;
    pub async fn collect(body: hyper::body::Incoming) -> Result<Vec<u8>, String> {
        body.collect()
            .await
            .map(|c| c.to_bytes().to_vec())
            .map_err(|e| e.to_string())
    }
}

/// A self-signed certificate for `localhost` and 127.0.0.1, written as PEM into `dir`.
pub struct TestCert {
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
    pub der: CertificateDer<'static>,
}

impl TestCert {
    pub fn new(dir: &Path) -> Self {
        let ck = rcgen::generate_simple_self_signed(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ])
        .unwrap_or_else(|e| panic!("rcgen: {e}"));
        let cert_pem = dir.join("cert.pem");
        let key_pem = dir.join("key.pem");
        std::fs::write(&cert_pem, ck.cert.pem()).unwrap_or_else(|e| panic!("write cert: {e}"));
        std::fs::write(&key_pem, ck.signing_key.serialize_pem())
            .unwrap_or_else(|e| panic!("write key: {e}"));
        Self {
            cert_pem,
            key_pem,
            der: ck.cert.der().clone(),
        }
    }

    /// A TLS connector that trusts only this certificate.
    pub fn connector(&self) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.der.clone())
            .unwrap_or_else(|e| panic!("root: {e}"));
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|e| panic!("tls: {e}"))
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConnector::from(Arc::new(config))
    }
}

/// A `wgmesh registry serve` process in namespace `ns` (or the host's when `None`).
pub struct Server {
    pub ns: Option<String>,
    pub listen: SocketAddr,
    pub data: PathBuf,
    pub log: PathBuf,
    pub pid: Option<u32>,
    child: Option<std::process::Child>,
}

impl Server {
    pub fn new(ns: Option<String>, listen: SocketAddr, data: PathBuf, log: PathBuf) -> Self {
        Self {
            ns,
            listen,
            data,
            log,
            pid: None,
            child: None,
        }
    }

    fn command(&self, cert: &TestCert, extra: &[String]) -> Command {
        let mut cmd = match &self.ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(wgmesh_bin());
                c
            }
            None => Command::new(wgmesh_bin()),
        };
        cmd.args(["registry", "serve", "--listen", &self.listen.to_string()])
            .arg("--data")
            .arg(&self.data)
            .arg("--tls-cert")
            .arg(&cert.cert_pem)
            .arg("--tls-key")
            .arg(&cert.key_pem)
            .args(extra);
        cmd
    }

    /// Runs the server command to completion expecting it to fail at start; returns stderr.
    pub fn start_fails(&self, cert: &TestCert, extra: &[String]) -> String {
        let out = self
            .command(cert, extra)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run wgmesh registry serve: {e}"));
        assert!(
            !out.status.success(),
            "wgmesh registry serve {extra:?} started although it should not"
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Starts the server (logging to `self.log`) and waits until it accepts connections.
    pub fn start(&mut self, lab: &Lab, cert: &TestCert, extra: &[String]) {
        let before = self.log_text().len();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("log {}: {e}", self.log.display()));
        let err = log.try_clone().unwrap_or_else(|e| panic!("log: {e}"));
        let child = self
            .command(cert, extra)
            .args(["--log-level", "debug"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start registry server: {e}"));
        // `ip netns exec` execs wgmesh in place: the PID is the server's.
        let pid = child.id();
        lab.record_pid(pid);
        self.pid = Some(pid);
        self.child = Some(child);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            if self
                .log_text()
                .get(before..)
                .is_some_and(|t| t.contains("registry server listening"))
            {
                return;
            }
            if !self.alive() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = self.child.as_mut().map(|c| c.try_wait());
        panic!(
            "registry server (pid {pid}) did not start within {:.1} s (exit status: {status:?}):\n{}",
            t0.elapsed().as_secs_f64(),
            self.log_text()
        );
    }

    /// Whether the server process still runs (not exited, not a zombie).
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => true,
            Some(_) => false,
            None => false,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal_and_wait(&mut self, sig: &str) {
        if let Some(pid) = self.pid {
            let _ = sh_ok("kill", &[&format!("-{sig}"), &pid.to_string()]);
            let t0 = Instant::now();
            while self.alive() && t0.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(
                !self.alive(),
                "registry server {pid} did not exit on SIG{sig}"
            );
        }
        self.pid = None;
        self.child = None;
    }

    /// SIGKILL: no chance to flush or checkpoint.
    pub fn kill9(&mut self) {
        self.signal_and_wait("KILL");
    }

    /// SIGTERM.
    pub fn stop(&mut self) {
        self.signal_and_wait("TERM");
    }
}

/// One answer: status, `retry-after`, body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
}

/// A keep-alive HTTPS connection to a registry server.
pub struct Client {
    sender: SendRequest<Body>,
}

impl Client {
    /// Connects (TLS, server name `localhost`) to `addr`.
    pub async fn connect(addr: SocketAddr, connector: &TlsConnector) -> Result<Self, String> {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS to {addr}: {e}"))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("HTTP to {addr}: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self { sender })
    }

    /// Sends one request, signed by `member` (unsigned when `None`) at unix time `time`.
    pub async fn send(
        &mut self,
        member: Option<&SigningKey>,
        method: &str,
        path: &str,
        body: Vec<u8>,
        time: u64,
    ) -> Result<Answer, String> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost");
        if let Some(key) = member {
            req = req
                .header(
                    "authorization",
                    registry::authorization(key, method, path, time, &body),
                )
                .header(registry::TIME_HEADER, time.to_string());
        }
        let req = req
            .body(Body::new(body.into()))
            .map_err(|e| e.to_string())?;
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = collect(resp.into_body()).await?;
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }
}

/// Unix seconds now.
pub fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `/v1/meshes/RID/entries`.
pub fn entries_path(rid: &[u8; 8]) -> String {
    format!("/v1/meshes/{}/entries", hex::encode(rid))
}

/// `/v1/meshes/RID/entries/SLOT`.
pub fn slot_path(rid: &[u8; 8], slot: &[u8; 32]) -> String {
    format!("{}/{}", entries_path(rid), hex::encode(slot))
}

/// A simulated node of a mesh: identity, slot key, and its real signed record.
pub struct SimNode {
    pub identity: NodeIdentity,
    pub slot: SigningKey,
    pub record: NodeRecord,
    pub signed: SignedRecord,
}

impl SimNode {
    /// Node `i` of the mesh `keys`, with hostname `host-<tag>-<i>` and two endpoints.
    pub fn new(keys: &MeshKeys, tag: &str, i: u32) -> Self {
        let identity = NodeIdentity::generate();
        let facts = LocalFacts {
            relay_load: None,
            hostname: format!("host-{tag}-{i}.example"),
            address_nonce: 0,
            endpoints: vec![
                EndpointCandidate {
                    kind: EndpointKind::Stun,
                    addr: SocketAddr::new(
                        IpAddr::V4(Ipv4Addr::new(198, 51, 100, (i % 250) as u8 + 1)),
                        51820,
                    ),
                },
                EndpointCandidate {
                    kind: EndpointKind::Lan,
                    addr: SocketAddr::new(
                        IpAddr::V4(Ipv4Addr::new(
                            192,
                            168,
                            (i / 250) as u8,
                            (i % 250) as u8 + 1,
                        )),
                        51820,
                    ),
                },
            ],
            nat_type: NatType::PortRestrictedCone,
            introducer: false,
            routes: vec![],
            control_port: keys.control_port(),
            wireguard_port: 51820,
        };
        let now = Millis(unix_secs() * 1000);
        let (record, signed) = sign_local_record(&identity, keys, &facts, None, now)
            .unwrap_or_else(|e| panic!("sign record: {e}"));
        let slot = registry::slot_key(&identity.seed(), &keys.registry_id());
        Self {
            identity,
            slot,
            record,
            signed,
        }
    }

    pub fn slot_public(&self) -> [u8; 32] {
        self.slot.verifying_key().to_bytes()
    }

    /// Its record sealed into an entry with `seq` and `ttl`.
    pub fn entry(&self, keys: &MeshKeys, seq: u64, ttl: u16) -> Entry {
        let mut nonce = [0u8; 24];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
        let sealed = registry::seal_record(keys, &self.signed, &nonce)
            .unwrap_or_else(|e| panic!("seal: {e}"));
        Entry::sign(&self.slot, &keys.registry_id(), seq, ttl, sealed)
            .unwrap_or_else(|e| panic!("entry: {e}"))
    }

    /// Byte strings that would give this node away if found in the server's files: mesh
    /// addresses (raw and text), Ed25519 and WireGuard public keys (raw, hex, base64), the
    /// hostname, the endpoints' addresses.
    pub fn secrets(&self) -> Vec<(String, Vec<u8>)> {
        use base64::Engine as _;
        let mut out = vec![
            (
                "hostname".to_string(),
                self.record.hostname.as_bytes().to_vec(),
            ),
            ("mesh IPv4".into(), self.record.mesh_ipv4.octets().to_vec()),
            (
                "mesh IPv4 text".into(),
                self.record.mesh_ipv4.to_string().into_bytes(),
            ),
            ("mesh IPv6".into(), self.record.mesh_ipv6.octets().to_vec()),
            (
                "mesh IPv6 text".into(),
                self.record.mesh_ipv6.to_string().into_bytes(),
            ),
        ];
        for (what, key) in [
            ("Ed25519 key", self.record.ed25519_public),
            ("WireGuard key", self.record.wireguard_public),
        ] {
            out.push((what.to_string(), key.to_vec()));
            out.push((format!("{what} hex"), hex::encode(key).into_bytes()));
            for engine in [
                &base64::engine::general_purpose::STANDARD,
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ] {
                // the 42 first characters: the same whatever the padding
                let mut b = engine.encode(key).into_bytes();
                b.truncate(42);
                out.push((format!("{what} base64"), b));
            }
        }
        for ep in &self.record.endpoints {
            if let IpAddr::V4(v4) = ep.addr.ip() {
                out.push(("endpoint".into(), ep.addr.ip().to_string().into_bytes()));
                out.push(("endpoint raw".into(), v4.octets().to_vec()));
            }
        }
        out
    }
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
