#!/usr/bin/env python3
# Recomputes the golden vectors in this folder from the public keys, with
# openssl and an implementation of the documented algorithms that shares no
# code with package identity:
#
#   fingerprint: SHA-256 of the DER SubjectPublicKeyInfo (as
#     `openssl pkey -pubin -outform DER | sha256sum`), base32 without padding,
#     four groups of 13 each followed by a Luhn mod 32 check character, shown
#     as eight groups of seven joined by dashes.
#   safety number: the two raw keys sorted bytewise (lo, hi); SHA-512 over
#     ("certchat safety number v2" 0x00 || lo || peer id(lo) || hi ||
#     peer id(hi)), then 5200 times SHA-512(hash || lo || hi); the first 60
#     bytes as twelve 5-byte big-endian numbers mod 100000, 12 groups of 5
#     digits.
#
# Run from this folder: python3 vectors.py
import base64, hashlib, subprocess

A = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

def luhn(s):
    f, total = 2, 0
    for ch in reversed(s):
        a = f * A.index(ch)
        total += a // 32 + a % 32
        f = 3 - f
    return A[(32 - total % 32) % 32]

def spki(name):
    return subprocess.run(["openssl", "pkey", "-pubin", "-in", name + ".pub.pem", "-outform", "DER"],
                          capture_output=True, check=True).stdout

def fingerprint(der):
    s = base64.b32encode(hashlib.sha256(der).digest()).decode().rstrip("=")
    c = "".join(s[i*13:(i+1)*13] + luhn(s[i*13:(i+1)*13]) for i in range(4))
    return "-".join(c[i:i+7] for i in range(0, 56, 7))

def peer_id(pub):
    return bytes([0x00, 0x24, 0x08, 0x01, 0x12, 0x20]) + pub  # identity multihash of the libp2p protobuf

def safety(a, b):
    lo, hi = sorted((a, b))
    h = hashlib.sha512(b"certchat safety number v2\0" + lo + peer_id(lo) + hi + peer_id(hi)).digest()
    for _ in range(5200):
        h = hashlib.sha512(h + lo + hi).digest()
    return " ".join("%05d" % (int.from_bytes(h[i:i+5], "big") % 100000) for i in range(0, 60, 5))

der = {n: spki(n) for n in ("alice", "bob", "carol")}
for n in ("alice", "bob"):
    open(n + ".fingerprint", "w").write(fingerprint(der[n]) + "\n")
for a, b in (("alice", "bob"), ("alice", "carol")):
    open(a + "-" + b + ".safety", "w").write(safety(der[a][-32:], der[b][-32:]) + "\n")
