"""Writes test/vectors/fwknop/*.json from what scripts/gen-fwknop-vectors.sh left in $W (its
only caller): the packets fwknop saved, the time each was made, the armored keys. Each file
states what a conforming spad concludes (format: test/vectors/fwknop/README.md)."""
import datetime
import json
import os
import re

W, OUT = os.environ["W"], os.environ["OUT"]
HMAC = os.environ["HMAC_B64"]


def read(name):
    with open(os.path.join(W, name)) as f:
        return f.read()


def signer(kind, hmac=False, fwknop=True, require_username=None):
    fpr = {"cli-rsa": os.environ["CLI_RSA"], "cli-ecc": os.environ["CLI_ECC"], "stranger": os.environ["STRANGER"]}[kind]
    return {
        "fingerprint": fpr,
        "public_key": read(kind + ".pub"),
        "fwknop": fwknop,
        "hmac_key_base64": HMAC if hmac else None,
        "require_username": require_username,
    }


def fields(name):
    log = read(name + ".log")
    get = lambda k: re.search(r"^\s*" + re.escape(k) + r": (.*)$", log, re.M).group(1).strip()
    return {
        "random": get("Random Value"),
        "username": get("Username"),
        "timestamp": int(get("Timestamp")),
        "version": get("FKO Version"),
        "type": int(get("Message Type").split()[0]),
        "message": get("Message String"),
        "client_timeout": int(get("Client Timeout")),
        "digest": get("SPA Data Digest"),
    }


def write(name, packet_from, expect, description, server, signers, now_delta=0, mutate=None, expect_fields=True):
    pkt = read(packet_from + ".pkt").strip()
    if mutate:
        pkt = mutate(pkt)
    now = int(read(packet_from + ".now").strip()) + now_delta
    doc = {
        "expect": expect,
        "description": description,
        "now": datetime.datetime.fromtimestamp(now, datetime.timezone.utc).isoformat().replace("+00:00", "Z"),
        "max_skew": 120,
        "server_key": read(server + ".sec"),
        "signers": signers,
        "packet": pkt,
    }
    if expect == "ok" and expect_fields:
        doc["expect_signer"] = signers[0]["fingerprint"]
        doc["expect_fields"] = fields(packet_from)
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


def flip_last(pkt):
    c = pkt[-1]
    return pkt[:-1] + ("A" if c != "A" else "B")


R, E = "srv-rsa", "srv-ecc"
write("ok-access-rsa", "ok-access-rsa", "ok", "RSA-2048 server and client, access tcp/22 for 198.51.100.2", R, [signer("cli-rsa")])
write("ok-access-ecc", "ok-access-ecc", "ok", "Ed25519/Curve25519 keys (the packet fwknopd itself cannot decrypt: hF, not hQ)", E, [signer("cli-ecc")])
write("ok-timeout-sha512-hmac-rsa", "ok-timeout-sha512-hmac-rsa", "ok", "type 3 (client timeout 45), SHA-512 inner digest, HMAC-SHA256 appended", R, [signer("cli-rsa", hmac=True)])
write("ok-hmac-ecc", "ok-hmac-ecc", "ok", "Curve25519 with HMAC-SHA256: the MAC covers the real first two characters", E, [signer("cli-ecc", hmac=True)])
write("ok-command-rsa", "ok-command-rsa", "ok", "type 0 command message 'uptime'", R, [signer("cli-rsa")])
write("ok-source-any-user-ecc", "ok-source-any-user-ecc", "ok", "fwknop -s (allow-IP 0.0.0.0) and -U alice", E, [signer("cli-ecc", require_username="alice")])
write("ok-sha3-ecc", "ok-sha3-ecc", "ok", "SHA3-256 inner digest (same length as SHA-256)", E, [signer("cli-ecc")])
write("nat-ecc", "nat-ecc", "FWK_NAT_UNSUPPORTED", "type 2 NAT access: refused until spa has a gateway mode", E, [signer("cli-ecc")])
write("nat-local-ecc", "nat-local-ecc", "FWK_NAT_UNSUPPORTED", "type 5 local NAT: refused", E, [signer("cli-ecc")])
write("unsigned-ecc", "unsigned-ecc", "SIG_MISSING", "encrypted to the server but not signed (no unsigned mode)", E, [signer("cli-ecc")])
write("signer-unknown-ecc", "signer-unknown-ecc", "SIGNER_UNKNOWN", "signed by a key that is not enrolled", E, [signer("cli-ecc")])
write("not-enabled-ecc", "ok-access-ecc", "FWK_NOT_ENABLED", "signer enrolled, but not with --fwknop (another user is)", E, [signer("cli-ecc", fwknop=False), signer("cli-rsa")])
write("username-mismatch-ecc", "ok-access-ecc", "USER_MISMATCH", "enrollment requires username alice, the packet says root", E, [signer("cli-ecc", require_username="alice")])
write("stale-ecc", "stale-ecc", "TS_TOO_OLD", "fwknop --time-offset-minus 5min: timestamp 300 s old, window 120 s", E, [signer("cli-ecc")])
write("hmac-broken-ecc", "hmac-broken-ecc", "FWK_HMAC_INVALID", "HMAC tag with its last character changed", E, [signer("cli-ecc", hmac=True)], mutate=flip_last)
write("hmac-missing-ecc", "hmac-missing-ecc", "FWK_HMAC_INVALID", "no HMAC, but the enrollment has an HMAC key", E, [signer("cli-ecc", hmac=True)])
write("hmac-unexpected-ecc", "ok-hmac-ecc", "FWK_HMAC_INVALID", "an HMAC appended for a user enrolled without an HMAC key", E, [signer("cli-ecc")])
write("not-for-us-ecc", "not-for-us-ecc", "PKT_NOT_FOR_US", "encrypted to another server key (the RSA one)", E, [signer("cli-ecc")])
