#!/usr/bin/env python3
"""An independent implementation of wgmesh protocol v2's fixed parts (PROTOCOL.md), written
from the spec with other libraries (PyNaCl/libsodium, cryptography, argon2-cffi, cbor2), that
checks the Rust implementation two ways:

1. docs/test-vectors.json: every derived value, the libsodium Ed25519->X25519 conversion, the
   record and goodbye signatures, the record's CBOR fields, the sealed announce envelope, and
   the Dandelion++ epoch seed and stem payload.
2. `wgmesh secret inspect --json` for generated secrets, passphrases, v1 URIs, several hours,
   several peer keys and custom subnets: output must equal this implementation's.

Usage: check_protocol.py PATH/TO/wgmesh        (exit 0 only if every check passed)
"""
import base64
import hashlib
import hmac
import ipaddress
import json
import os
import subprocess
import sys

try:
    import argon2.low_level as argon2
    import cbor2
    import nacl.bindings as sodium
    import nacl.signing
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
except ImportError as e:  # pragma: no cover
    sys.exit(f"check_protocol.py needs pynacl, cryptography, argon2-cffi, cbor2 "
             f"(netns-tests/install-deps.sh installs them): {e}")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


# ---------------------------------------------------------------- the spec, independently
def parse_secret(text):
    t = text.strip()
    if t.startswith("wgmesh://v2/"):
        enc = t[len("wgmesh://v2/"):]
        raw = base64.urlsafe_b64decode(enc + "=" * (-len(enc) % 4))
        assert len(raw) == 32
        return raw
    if t.startswith("wgmesh://v1/"):
        t = t[len("wgmesh://v1/"):].split("?", 1)[0]
    p = t.strip().encode()
    assert len(p) >= 16
    return argon2.hash_secret_raw(p, b"wgmesh/v2/passphrase", time_cost=3, memory_cost=65536,
                                  parallelism=1, hash_len=32, type=argon2.Type.ID)


def hkdf(s, label, length):
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=b"wgmesh/v2",
                info=label.encode()).derive(s)


def derive(s, subnet=None):
    d = {k: hkdf(s, k, n) for k, n in [
        ("network-id", 32), ("control-key", 32), ("wireguard-psk", 32), ("ipv4-subnet", 2),
        ("ipv6-prefix", 7), ("lan-group", 2), ("control-port", 2), ("address-key", 32),
        ("dht-key", 32), ("registry-id", 8), ("dandelion-key", 32)]}
    d["subnet"] = ipaddress.IPv4Network(subnet) if subnet else \
        ipaddress.IPv4Network(f"10.{d['ipv4-subnet'][0]}.0.0/16")
    d["prefix"] = b"\xfd" + d["ipv6-prefix"]
    return d


def mesh_ipv4(d, pub, nonce):
    h = hmac.new(d["address-key"], b"ipv4" + pub + bytes([nonce]), hashlib.sha256).digest()
    hb = 32 - d["subnet"].prefixlen
    host = int.from_bytes(h[:4], "big") % (2 ** hb - 2) + 1
    return str(d["subnet"].network_address + host)


def mesh_ipv6(d, pub):
    h = hmac.new(d["address-key"], b"ipv6" + pub, hashlib.sha256).digest()
    return str(ipaddress.IPv6Address(d["prefix"] + h[:8]))


def topic(d, hour):
    return hmac.new(d["dht-key"], hour.to_bytes(8, "big"), hashlib.sha256).digest()[:20].hex()


def inspect(s, hours, peers, subnet):
    d = derive(s, subnet)
    out = {
        "network_id": d["network-id"][:8].hex(),
        "ipv4_subnet": str(d["subnet"]),
        "ipv6_prefix": str(ipaddress.IPv6Network((d["prefix"] + bytes(8), 64))),
        "lan_group": f"239.192.{d['lan-group'][0]}.{d['lan-group'][1]}:51830",
        "control_port": 51821 + int.from_bytes(d["control-port"], "big") % 1000,
        "registry_id": d["registry-id"].hex(),
    }
    if hours:
        out["dht_topic"] = {str(h): topic(d, h) for n in hours for h in (n, n - 1) if h >= 0}
    if peers:
        out["peers"] = {}
        for k in peers:
            pub = base64.b64decode(k)
            out["peers"][k] = {"ipv4": mesh_ipv4(d, pub, 0),
                               "ipv4_nonces": [mesh_ipv4(d, pub, n) for n in range(4)],
                               "ipv6": mesh_ipv6(d, pub)}
    return out


# ---------------------------------------------------------------- 1. test vectors
def check_vectors():
    v = json.load(open(os.path.join(ROOT, "docs", "test-vectors.json")))
    ms = v["mesh_secret"]
    s = bytes.fromhex(ms["bytes"])
    check("uri parses", parse_secret(ms["uri"]) == s)
    d = derive(s)
    check("network_id", d["network-id"].hex() == ms["network_id"])
    check("control_key", d["control-key"].hex() == ms["control_key"])
    check("wireguard_psk", d["wireguard-psk"].hex() == ms["wireguard_psk"])
    check("dht topic", topic(d, 490000) == ms["dht_topic_hour_490000"])
    ins = inspect(s, [], [], None)
    for k in ("ipv4_subnet", "ipv6_prefix", "lan_group", "control_port", "registry_id"):
        check(f"vector {k}", ins[k] == ms[k], f"{ins[k]} != {ms[k]}")
    pp = v["passphrase"]
    check("argon2id passphrase", parse_secret(pp["text"]).hex() == pp["bytes"])

    ident = v["identity"]
    seed = bytes.fromhex(ident["ed25519_seed"])
    pk, sk = sodium.crypto_sign_seed_keypair(seed)
    check("ed25519 public", pk.hex() == ident["ed25519_public"])
    check("x25519 private = libsodium sk_to_curve25519",
          sodium.crypto_sign_ed25519_sk_to_curve25519(sk).hex() == ident["wireguard_private"])
    check("x25519 public = libsodium pk_to_curve25519",
          sodium.crypto_sign_ed25519_pk_to_curve25519(pk).hex() == ident["wireguard_public"])
    check("x25519 public = scalarmult_base(private)",
          sodium.crypto_scalarmult_base(bytes.fromhex(ident["wireguard_private"])).hex()
          == ident["wireguard_public"])
    wg = bytes.fromhex(ident["wireguard_public"])
    check("mesh ipv4 nonce 0", mesh_ipv4(d, wg, 0) == ident["mesh_ipv4_nonce0"])
    check("mesh ipv4 nonce 1", mesh_ipv4(d, wg, 1) == ident["mesh_ipv4_nonce1"])
    check("mesh ipv6", mesh_ipv6(d, wg) == ident["mesh_ipv6"])

    rec = v["record"]
    body, sig = bytes.fromhex(rec["body"]), bytes.fromhex(rec["signature"])
    vk = nacl.signing.VerifyKey(pk)
    try:
        vk.verify(b"wgmesh/v2 record" + d["network-id"] + body, sig)
        check("record signature verifies", True)
    except Exception as e:  # noqa: BLE001
        check("record signature verifies", False, str(e))
    try:
        vk.verify(b"wgmesh/v2 record" + bytes(32) + body, sig)
        check("record signature is bound to the network id", False)
    except Exception:  # noqa: BLE001
        check("record signature is bound to the network id", True)
    f = cbor2.loads(body)
    check("record version", f[0] == 2)
    check("record keys", f[1] == pk and f[2] == wg)
    check("record hostname", f[4] == "node-a")
    check("record mesh ipv4", str(ipaddress.IPv4Address(f[12])) == ident["mesh_ipv4_nonce0"])
    check("record mesh ipv6", str(ipaddress.IPv6Address(f[13])) == ident["mesh_ipv6"])
    check("record endpoints", [(e[0], str(ipaddress.ip_address(e[1])), e[2]) for e in f[6]] ==
          [(0, "192.168.1.10", 51820), (1, "203.0.113.5", 40000), (3, "2001:db8::5", 51820)])
    check("record routes", [str(ipaddress.ip_network((ipaddress.ip_address(r[0]), r[1])))
                            for r in f[9]] == ["192.168.1.0/24", "fd00:1::/64"])
    check("signed record = [body, sig]", cbor2.loads(bytes.fromhex(rec["signed"])) == [body, sig])

    ann = v["announce"]
    dg = bytes.fromhex(ann["datagram"])
    check("envelope header", dg[:5] == b"WGM2\x01" and dg[5:29] == bytes.fromhex(ann["nonce"]))
    pt = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(dg[29:], dg[:5], dg[5:29], d["control-key"])
    check("envelope opens with libsodium", pt.hex() == ann["payload"])
    check("announce payload = {1: signed record}", cbor2.loads(pt) == {1: [body, sig]})
    ct = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(pt, dg[:5], dg[5:29], d["control-key"])
    check("envelope seals identically", dg[29:] == ct)
    check("datagram <= 1200 bytes", len(dg) <= 1200)

    gb = v["goodbye"]
    gbody = bytes.fromhex(gb["body"])
    try:
        vk.verify(b"wgmesh/v2 goodbye" + d["network-id"] + gbody, bytes.fromhex(gb["signature"]))
        check("goodbye signature verifies", True)
    except Exception as e:  # noqa: BLE001
        check("goodbye signature verifies", False, str(e))
    check("goodbye fields", cbor2.loads(gbody) == {0: 2, 1: pk, 2: wg, 3: 1700000000001})

    dd = v["dandelion"]
    check("dandelion epoch = floor(ms / 600000)", dd["epoch"] == 1700000000000 // 600000)
    check("dandelion epoch seed",
          hmac.new(d["dandelion-key"], dd["epoch"].to_bytes(8, "big"), hashlib.sha256).hexdigest()
          == dd["epoch_seed"])
    check("stem payload = {1: signed record, 2: hop}",
          cbor2.loads(bytes.fromhex(dd["stem_payload_hop1"])) == {1: [body, sig], 2: 1}
          and cbor2.dumps({1: [body, sig], 2: 1}).hex() == dd["stem_payload_hop1"])
    it = v["dht_item"]
    salt = hkdf(s, "dht-item-salt", 16)
    check("dht item salt", salt.hex() == it["salt"])
    check("dht item target = sha1(key || salt)", hashlib.sha1(pk + salt).hexdigest() == it["target"])
    val = bytes.fromhex(it["value"])
    check("dht item <= 996 bytes", len(val) <= 996)
    check("dht item nonce", val[:24].hex() == it["nonce"])
    plain = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(val[24:], b"wgmesh/v2 dht item",
                                                              val[:24], d["control-key"])
    check("dht item opens to the signed record", cbor2.loads(plain) == [body, sig])
    signable = (b"4:salt%d:" % len(salt) + salt + b"3:seqi%de1:v%d:" % (it["seq"], len(val)) + val)
    try:
        vk.verify(signable, bytes.fromhex(it["signature"]))
        check("dht item BEP 44 signature verifies", True)
    except Exception as e:  # noqa: BLE001
        check("dht item BEP 44 signature verifies", False, str(e))


# ---------------------------------------------------------------- 2. secret inspect --json
def check_inspect(binary):
    def new_secret():
        return subprocess.run([binary, "secret", "new"], check=True, capture_output=True,
                              text=True).stdout.strip()

    peers = [base64.b64encode(bytes([i]) * 32).decode() for i in (0, 7, 255)]
    peers.append(base64.b64encode(hashlib.sha256(b"peer").digest()).decode())
    cases = [(new_secret(), [], [], None) for _ in range(3)]
    cases += [
        (new_secret(), [490000, 1], peers, None),
        (new_secret(), [0, 123456789], peers[:2], "192.168.50.0/24"),
        (new_secret(), [], peers, "100.64.0.0/10"),
        (new_secret(), [7], peers[1:], "10.99.0.0/30"),
        ("correct horse battery staple", [490001], peers, None),
        ("  an untrimmed passphrase with spaces \n", [], peers[:1], "172.20.0.0/16"),
        ("wgmesh://v1/legacy-passphrase-0123?foo=bar&x=y", [490002], peers[2:], None),
        ("wgmesh://v1/legacy-passphrase-0123", [], [], None),
        ("wgmesh://v3/not-a-known-version-so-a-passphrase", [], peers[:1], None),
    ]
    for secret, hours, pk, subnet in cases:
        args = [binary, "secret", "inspect", "--json"]
        for h in hours:
            args += ["--hour", str(h)]
        for p in pk:
            args += ["--peer", p]
        if subnet:
            args += ["--subnet", subnet]
        env = dict(os.environ, WGMESH_SECRET=secret)
        env.pop("WGMESH_SECRET_FILE", None)
        env.pop("CREDENTIALS_DIRECTORY", None)
        r = subprocess.run(args, env=env, capture_output=True, text=True)
        label = f"inspect secret-kind={secret[:12]!r}.. hours={hours} peers={len(pk)} subnet={subnet}"
        if r.returncode != 0:
            check(label, False, r.stderr)
            continue
        got = json.loads(r.stdout)
        want = inspect(parse_secret(secret), hours, pk, subnet)
        check(label, got == want, f"\n got  {got}\n want {want}")
        check(label + " prints no key", secret.strip() not in r.stdout and
              derive(parse_secret(secret))["control-key"].hex() not in r.stdout)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    check_vectors()
    check_inspect(sys.argv[1])
    print(f"crosscheck: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
