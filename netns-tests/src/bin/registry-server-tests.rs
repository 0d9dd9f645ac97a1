//! The self-hosted registry (`wgmesh registry serve`, PROTOCOL.md §15) as a real process over
//! HTTPS (self-signed certificate) in a namespace of its own:
//! 1. a member publishes real sealed records and lists them back (they open and verify);
//! 2. a non-member cannot write: 401 without a membership signature, 403 with another mesh's;
//! 3. a member cannot overwrite or delete another node's entry (403), nor replay one (409);
//! 4. a body over 1253 bytes is refused (413); a client over its rate gets 429 + retry-after;
//! 5. kill -9 and a restart on the same data directory lose no live entry; an expired entry is
//!    not listed and is swept at start;
//! 6. the SQLite file and its WAL hold no plaintext: no mesh address, node key (raw, hex,
//!    base64), hostname or endpoint of the published records;
//! 7. `--pinned-only --mesh $(wgmesh registry verifier)` serves that mesh only; bad flags
//!    (unreadable certificate, port in use) stop the server with a clear message.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use wgmesh::proto::registry::{self, Entry, decode_list, delete_proof, open_record};
use wgmesh::proto::{MeshKeys, MeshSecret};
use wgmesh_netns_tests::daemon::wgmesh_bin;
use wgmesh_netns_tests::lab::{Lab, sh};
use wgmesh_netns_tests::nsexec::NsExec;
use wgmesh_netns_tests::preflight;
use wgmesh_netns_tests::registry::{
    Answer, Client, Server, SimNode, TestCert, contains, entries_path, slot_path, unix_secs,
};
use wgmesh_netns_tests::suite::{pass, run_suite};

const LISTEN: &str = "127.0.0.1:8443";

fn main() {
    preflight::require(false, "registry server tests");
    run_suite("registry server tests", run);
}

struct Mesh {
    keys: MeshKeys,
    member: SigningKey,
    rid: [u8; 8],
}

fn mesh() -> Mesh {
    let keys = MeshKeys::derive(&MeshSecret::generate());
    Mesh {
        member: registry::member_key(&keys),
        rid: keys.registry_id(),
        keys,
    }
}

/// Runs one request from inside the namespace on a fresh connection.
fn request(
    exec: &NsExec,
    cert: &TestCert,
    member: Option<&SigningKey>,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> Answer {
    let (connector, member) = (cert.connector(), member.cloned());
    let (method, path) = (method.to_string(), path.to_string());
    let addr: SocketAddr = LISTEN.parse().unwrap_or_else(|e| panic!("{e}"));
    exec.run(move || async move {
        let mut c = Client::connect(addr, &connector).await?;
        c.send(member.as_ref(), &method, &path, body, unix_secs())
            .await
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn put(exec: &NsExec, cert: &TestCert, m: &Mesh, slot: &[u8; 32], e: &Entry) -> u16 {
    request(
        exec,
        cert,
        Some(&m.member),
        "PUT",
        &slot_path(&m.rid, slot),
        e.encode(),
    )
    .status
}

fn list(exec: &NsExec, cert: &TestCert, m: &Mesh) -> Vec<Entry> {
    let a = request(
        exec,
        cert,
        Some(&m.member),
        "GET",
        &entries_path(&m.rid),
        vec![],
    );
    assert_eq!(a.status, 200, "list: {}", String::from_utf8_lossy(&a.body));
    decode_list(&a.body).unwrap_or_else(|e| panic!("list: {e}"))
}

fn slots(entries: &[Entry]) -> Vec<[u8; 32]> {
    let mut s: Vec<_> = entries.iter().map(|e| e.slot).collect();
    s.sort();
    s
}

fn run(lab: &Lab) {
    let ns = lab.add_ns("reg");
    let exec = NsExec::new(Some(&ns)).unwrap_or_else(|e| panic!("{e}"));
    // a random suffix: another lab with the same id (PID) must not share or remove it
    let dir = std::env::temp_dir().join(format!(
        "registry-server-tests-{}-{:08x}",
        lab.id,
        rand_core::RngCore::next_u32(&mut rand_core::OsRng)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let cert = TestCert::new(&dir);
    let data = dir.join("data");
    let listen: SocketAddr = LISTEN.parse().unwrap_or_else(|e| panic!("{e}"));
    let mut server = Server::new(
        Some(ns.clone()),
        listen,
        data.clone(),
        dir.join("server.log"),
    );
    let limits = ["--rate", "1000/s", "--burst", "1000"].map(String::from);
    server.start(lab, &cert, &limits);

    let a = mesh();
    let nodes: Vec<SimNode> = (1..=4).map(|i| SimNode::new(&a.keys, "reg", i)).collect();
    let seq0 = unix_secs() * 1000;

    // 1. publish and list
    for (i, n) in nodes.iter().enumerate() {
        let ttl = if i == 3 { 2 } else { 3600 };
        assert_eq!(
            put(
                &exec,
                &cert,
                &a,
                &n.slot_public(),
                &n.entry(&a.keys, seq0, ttl)
            ),
            204
        );
    }
    let listed = list(&exec, &cert, &a);
    assert_eq!(
        slots(&listed),
        slots(
            &nodes
                .iter()
                .map(|n| n.entry(&a.keys, 1, 1))
                .collect::<Vec<_>>()
        )
    );
    for e in &listed {
        e.verify(&a.rid)
            .unwrap_or_else(|err| panic!("listed entry: {err}"));
        let rec = open_record(&a.keys, &e.sealed).unwrap_or_else(|err| panic!("open: {err}"));
        assert!(
            nodes.iter().any(|n| n.signed == rec),
            "a listed record is one published"
        );
    }
    pass(
        "a member publishes 4 sealed records over HTTPS and lists them back; they open and verify",
    );

    // 2. non-members
    let e = nodes[0].entry(&a.keys, seq0 + 1, 3600);
    let path = slot_path(&a.rid, &nodes[0].slot_public());
    let r = request(&exec, &cert, None, "PUT", &path, e.encode());
    assert_eq!(r.status, 401, "no authorization");
    let r = request(&exec, &cert, None, "GET", &entries_path(&a.rid), vec![]);
    assert_eq!(r.status, 401, "no authorization to list");
    let b = mesh();
    let intruder = Mesh {
        keys: b.keys.clone(),
        member: b.member.clone(),
        rid: a.rid,
    };
    let stranger = SimNode::new(&b.keys, "intruder", 1);
    let stranger_entry = Entry::sign(
        &stranger.slot,
        &a.rid,
        seq0,
        3600,
        registry::seal_record(&b.keys, &stranger.signed, &[3; 24])
            .unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        put(
            &exec,
            &cert,
            &intruder,
            &stranger.slot_public(),
            &stranger_entry
        ),
        403
    );
    let r = request(
        &exec,
        &cert,
        Some(&b.member),
        "GET",
        &entries_path(&a.rid),
        vec![],
    );
    assert_eq!(r.status, 403, "another mesh's verifier cannot list");
    pass(
        "a non-member's write gets 401 without a membership signature and 403 with another mesh's verifier",
    );

    // 3. a member against another node's slot
    let own = nodes[1].entry(&a.keys, seq0 + 5, 3600);
    assert_eq!(
        put(&exec, &cert, &a, &nodes[0].slot_public(), &own),
        403,
        "entry filed in another slot"
    );
    let mut forged = nodes[0].entry(&a.keys, seq0 + 5, 3600);
    forged.signature = own.signature;
    assert_eq!(
        put(&exec, &cert, &a, &nodes[0].slot_public(), &forged),
        403,
        "forged slot signature"
    );
    let proof = delete_proof(&nodes[1].slot, &a.rid, seq0 + 5);
    let r = request(
        &exec,
        &cert,
        Some(&a.member),
        "DELETE",
        &path,
        proof.to_vec(),
    );
    assert_eq!(r.status, 403, "delete with another slot's proof");
    let replay = nodes[0].entry(&a.keys, seq0, 3600);
    assert_eq!(
        put(&exec, &cert, &a, &nodes[0].slot_public(), &replay),
        409,
        "replayed seq"
    );
    assert_eq!(slots(&list(&exec, &cert, &a)).len(), 4);
    pass(
        "a member cannot overwrite (403) or delete (403) another node's entry, nor replay an old seq (409)",
    );

    // 4. size and rate limits
    let r = request(
        &exec,
        &cert,
        Some(&a.member),
        "PUT",
        &path,
        vec![0; registry::MAX_ENTRY_BYTES + 1],
    );
    assert_eq!(r.status, 413);
    pass("a body over 1253 bytes gets 413");

    // 5. expiry, kill -9, restart
    std::thread::sleep(Duration::from_millis(2100));
    let live = list(&exec, &cert, &a);
    assert_eq!(
        slots(&live),
        slots(
            &listed
                .iter()
                .filter(|e| e.slot != nodes[3].slot_public())
                .cloned()
                .collect::<Vec<_>>()
        )
    );
    pass("an entry past its 2 s TTL is no longer listed");

    // 6. no plaintext in the database while it runs (WAL present)
    let files = db_files(&data);
    let names: Vec<String> = files.iter().map(|(p, _)| p.display().to_string()).collect();
    assert!(
        names.iter().any(|p| p.ends_with("-wal")),
        "no WAL file among {names:?}"
    );
    no_plaintext(&files, &nodes);
    pass(&format!(
        "the database ({}) holds the entries but no mesh IP, node key, hostname or endpoint",
        files
            .iter()
            .map(|(p, b)| format!(
                "{} {} B",
                p.file_name()
                    .map(|f| f.to_string_lossy())
                    .unwrap_or_default(),
                b.len()
            ))
            .collect::<Vec<_>>()
            .join(", ")
    ));

    server.kill9();
    server.start(lab, &cert, &limits);
    let after = list(&exec, &cert, &a);
    assert_eq!(slots(&after), slots(&live));
    assert_eq!(after, live, "the same entries, byte for byte");
    assert_eq!(db_rows(&data), 3, "the expired entry was swept at start");
    pass(
        "after kill -9 and a restart on the same data directory every live entry is listed; the expired one was swept",
    );

    let proof = delete_proof(&nodes[0].slot, &a.rid, seq0);
    let r = request(
        &exec,
        &cert,
        Some(&a.member),
        "DELETE",
        &path,
        proof.to_vec(),
    );
    assert_eq!(r.status, 204);
    assert_eq!(list(&exec, &cert, &a).len(), 2);
    no_plaintext(&db_files(&data), &nodes);
    pass("a node deletes its own entry with a delete proof (204); still no plaintext on disk");
    server.stop();

    // 7. pinned-only with the verifier `wgmesh registry verifier` prints, and a rate limit
    let secret_file = dir.join("mesh.secret");
    let secret = MeshSecret::generate();
    write_private(&secret_file, &secret.to_uri());
    let pin = sh(
        wgmesh_bin().to_str().unwrap_or("wgmesh"),
        &[
            "registry",
            "verifier",
            "--secret-file",
            secret_file.to_str().unwrap_or(""),
        ],
    );
    let c = Mesh {
        keys: MeshKeys::derive(&secret),
        member: registry::member_key(&MeshKeys::derive(&secret)),
        rid: MeshKeys::derive(&secret).registry_id(),
    };
    assert_eq!(
        pin.trim(),
        format!(
            "{}:{}",
            hex::encode(c.rid),
            hex::encode(c.member.verifying_key().to_bytes())
        )
    );
    let pinned = [
        "--pinned-only",
        "--mesh",
        pin.trim(),
        "--rate",
        "0.1/s",
        "--burst",
        "4",
    ]
    .map(String::from);
    server.start(lab, &cert, &pinned);
    let n = SimNode::new(&c.keys, "pinned", 1);
    assert_eq!(
        put(
            &exec,
            &cert,
            &c,
            &n.slot_public(),
            &n.entry(&c.keys, seq0, 600)
        ),
        204
    );
    let r = request(
        &exec,
        &cert,
        Some(&a.member),
        "GET",
        &entries_path(&a.rid),
        vec![],
    );
    assert_eq!(
        r.status, 403,
        "mesh A is no longer served under --pinned-only"
    );
    let d = mesh();
    let dn = SimNode::new(&d.keys, "unpinned", 1);
    assert_eq!(
        put(
            &exec,
            &cert,
            &d,
            &dn.slot_public(),
            &dn.entry(&d.keys, seq0, 600)
        ),
        403
    );
    pass(
        "--pinned-only --mesh $(wgmesh registry verifier): the pinned mesh writes (204), others get 403",
    );
    // 3 of the 4 burst tokens are spent above: the 5th request within the second is refused
    assert_eq!(list(&exec, &cert, &c).len(), 1);
    let r = request(
        &exec,
        &cert,
        Some(&c.member),
        "GET",
        &entries_path(&c.rid),
        vec![],
    );
    assert_eq!(r.status, 429, "over --burst 4 at 0.1/s");
    let wait = r.retry_after.as_deref().and_then(|s| s.parse::<u64>().ok());
    assert!(
        wait.is_some_and(|s| (1..=10).contains(&s)),
        "retry-after {wait:?}"
    );
    pass(&format!(
        "a client over its rate gets 429 with retry-after: {}",
        wait.unwrap_or(0)
    ));

    // bad flags: port in use, unreadable certificate, data directory not creatable
    let err = server.start_fails(&cert, &[]);
    assert!(err.contains("address is in use"), "{err}");
    server.stop();
    let missing = TestCert {
        cert_pem: dir.join("nope.pem"),
        key_pem: cert.key_pem.clone(),
        der: cert.der.clone(),
    };
    let err = server.start_fails(&missing, &[]);
    assert!(
        err.contains("cannot read --tls-cert") && err.contains("nope.pem"),
        "{err}"
    );
    let bad_data = Server::new(
        Some(ns.clone()),
        listen,
        PathBuf::from("/proc/registry-data"),
        dir.join("bad.log"),
    );
    let err = bad_data.start_fails(&cert, &[]);
    assert!(err.contains("data directory"), "{err}");
    pass(
        "bad flags stop the server with a message naming the problem (port in use, unreadable certificate, data directory)",
    );

    let _ = std::fs::remove_dir_all(&dir);
}

fn write_private(path: &Path, text: &str) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// The database file and its WAL/SHM, with their bytes.
fn db_files(data: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    std::fs::read_dir(data)
        .unwrap_or_else(|e| panic!("{}: {e}", data.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains("registry.sqlite3"))
        .map(|p| {
            let b = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, b)
        })
        .collect()
}

fn no_plaintext(files: &[(PathBuf, Vec<u8>)], nodes: &[SimNode]) {
    let all: Vec<u8> = files.iter().flat_map(|(_, b)| b.iter().copied()).collect();
    // the entries are there (so we looked at the right files)...
    for n in nodes.iter().take(3) {
        assert!(
            contains(&all, &n.slot_public()),
            "slot key of a stored entry not found on disk"
        );
    }
    // ...and nothing that names a node
    for n in nodes {
        for (what, needle) in n.secrets() {
            for (path, bytes) in files {
                assert!(
                    !contains(bytes, &needle),
                    "{what} of {} found in {}",
                    n.record.hostname,
                    path.display()
                );
            }
        }
    }
}

/// Rows in the entries table (read-only, beside the running server: WAL allows it).
fn db_rows(data: &Path) -> i64 {
    let conn = rusqlite::Connection::open_with_flags(
        data.join("registry.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap_or_else(|e| panic!("open db: {e}"));
    conn.query_row("SELECT COUNT(*) FROM entries", [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("count: {e}"))
}
