#!/usr/bin/env python3
"""An independent check of a dials envelope: canonical JSON (RFC 8785), SHA-256 checksum and
Ed25519 signature, written without any of dials' own code.

usage: verify-envelope.py PUBLIC_KEY_BASE64 < envelope.json
exit 0 and prints "ok" when valid; exit 1 with the reason otherwise.
"""
import base64
import hashlib
import json
import math
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def jcs(value):
    """RFC 8785 canonical form for the JSON values dials sends."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("non-finite number")
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        text = repr(value)
        if "e" in text:
            mantissa, exponent = text.split("e")
            sign = "-" if exponent.startswith("-") else "+"
            text = f"{mantissa}e{sign}{exponent.lstrip('+-').lstrip('0')}"
        return text
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(jcs(v) for v in value) + "]"
    if isinstance(value, dict):
        # Keys sorted by UTF-16 code units, as RFC 8785 says.
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + jcs(value[k]) for k in keys) + "}"
    raise ValueError(f"unexpected JSON value {value!r}")


def main():
    public = base64.b64decode(sys.argv[1])
    envelope = json.load(sys.stdin)
    expected_fields = {"format", "service", "version", "revision", "config", "checksum",
                       "epoch", "issued_at", "key_id", "signature"}
    if set(envelope) != expected_fields:
        sys.exit(f"fields are {sorted(envelope)}")
    if envelope["format"] != 1:
        sys.exit("format is not 1")
    if envelope["key_id"] != hashlib.sha256(public).hexdigest()[:16]:
        sys.exit("key_id does not match the public key")
    checksum = hashlib.sha256(jcs(envelope["config"]).encode()).hexdigest()
    if checksum != envelope["checksum"]:
        sys.exit("checksum does not match the config")
    signature = base64.b64decode(envelope.pop("signature"))
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, jcs(envelope).encode())
    except InvalidSignature:
        sys.exit("signature does not verify")
    print("ok")


if __name__ == "__main__":
    main()
