"""The wire formats a service shares with the manager: the signed envelope on
`config/updated/{service}` and how a receiver judges it, the applied report on
`config/applied/{service}/{instance}`, topic names, and service and instance names.

Plain functions over bytes and values, no I/O. They follow the Rust crate `dials-wire` and are
checked against its test vectors (`crates/dials-wire/tests/vectors/`).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .jcs import canonical, checksum

FORMAT = 1
"""The only envelope format this code accepts."""

STALE_AFTER = dt.timedelta(seconds=300)
"""An envelope issued longer ago than this is not applied from MQTT: re-read over REST."""

SECRET_MASK = "********"
"""How the manager shows a secret to a token that may not read it."""

MAX_INSTANCE_BYTES = 128
MAX_ERROR_CHARS = 2000

_SERVICE = re.compile(r"[a-z][a-z0-9-]{0,62}")
_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)"
)


def check_service(name: str) -> str:
    """`name` if it is a service name (`^[a-z][a-z0-9-]{0,62}$`), else `ValueError`."""
    if not _SERVICE.fullmatch(name):
        raise ValueError(
            f"invalid service name {name!r}: lowercase letters, digits and '-', "
            "starting with a letter, at most 63 characters"
        )
    return name


def check_instance(name: str) -> str:
    """`name` if it is an instance name (1 to 128 bytes, no `/ + #`, no control characters)."""
    if not name:
        raise ValueError("invalid instance name '': it is empty")
    if len(name.encode()) > MAX_INSTANCE_BYTES:
        raise ValueError(f"invalid instance name {name!r}: it is longer than 128 bytes")
    if any(c in name for c in "/+#"):
        raise ValueError(f"invalid instance name {name!r}: '/', '+' and '#' are not allowed")
    if any(_is_control(c) for c in name):
        raise ValueError(f"invalid instance name {name!r}: control characters are not allowed")
    return name


def _is_control(c: str) -> bool:
    o = ord(c)
    return o < 0x20 or 0x7F <= o <= 0x9F


def parse_rfc3339(text: str) -> dt.datetime | None:
    """An RFC 3339 time as an aware datetime (fractions beyond microseconds cut), or None."""
    m = _RFC3339.fullmatch(text)
    if not m:
        return None
    year, month, day, hour, minute, second, frac, zone = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    if zone in ("Z", "z"):
        tz = dt.timezone.utc
    else:
        sign = 1 if zone[0] == "+" else -1
        tz = dt.timezone(sign * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    try:
        return dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            min(int(second), 59),
            micro,
            tzinfo=tz,
        )
    except ValueError:
        return None


def now_rfc3339() -> str:
    """The current time, RFC 3339 UTC with microseconds."""
    return dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")


class Topics:
    """The topics under a prefix; the prefix is prepended exactly as configured."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def updated(self, service: str) -> str:
        return f"{self.prefix}config/updated/{service}"

    def applied(self, service: str, instance: str) -> str:
        return f"{self.prefix}config/applied/{service}/{instance}"

    def global_(self) -> str:
        """Where the `global` document's envelopes are published."""
        return f"{self.prefix}config/updated/global"

    def override(self, service: str, instance: str) -> str:
        """Where one instance's override document's envelopes are published."""
        return f"{self.prefix}config/override/{service}/{instance}"

    def health(self) -> str:
        return f"{self.prefix}system/health/config-manager"


# ---------------------------------------------------------------------------------------------
# Keys and envelopes


def parse_public_key(text: str) -> Ed25519PublicKey:
    """A public key given as standard base64 of its 32 raw bytes."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"public key is not base64: {e}") from None
    if len(raw) != 32:
        raise ValueError("a public key is 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def key_id(key: Ed25519PublicKey) -> str:
    """First 16 hex digits of SHA-256 of the raw 32-byte public key."""
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class EnvelopeError(Exception):
    """Why an envelope was refused; `code` is the test vectors' reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Envelope:
    """A verified envelope (format 1)."""

    service: str
    version: int
    revision: int
    config: Any
    checksum: str
    epoch: uuid.UUID
    issued_at: str
    key_id: str


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate field {k!r}")
        out[k] = v
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads_strict(data: bytes | str) -> Any:
    """JSON as the Rust side reads it: no NaN or Infinity; duplicate members refused."""
    return json.loads(data, object_pairs_hook=_unique_members, parse_constant=_no_constant)


def _is_uint(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


_ENVELOPE_FIELDS = {
    "format",
    "service",
    "version",
    "revision",
    "config",
    "checksum",
    "epoch",
    "issued_at",
    "key_id",
    "signature",
}


def verify_envelope(payload: bytes, trusted: list[Ed25519PublicKey]) -> Envelope:
    """Parses received bytes and checks format, signature (under one of `trusted`) and
    checksum. Epoch, version and freshness are the receiver's to judge (`judge_update`)."""
    try:
        value = loads_strict(payload)
    except (ValueError, UnicodeDecodeError) as e:
        raise EnvelopeError("malformed", f"malformed envelope: {e}") from None
    if not isinstance(value, dict):
        raise EnvelopeError("malformed", "malformed envelope: not a JSON object")
    signature = value.pop("signature", None)
    if not isinstance(signature, str):
        raise EnvelopeError("malformed", "malformed envelope: no signature")
    fmt = value.get("format")
    if not _is_uint(fmt) or fmt != FORMAT:
        shown = fmt if _is_uint(fmt) else 0
        raise EnvelopeError("unknown_format", f"unknown envelope format {shown}")
    kid = value.get("key_id")
    kid = kid if isinstance(kid, str) else ""
    key = next((k for k in trusted if key_id(k) == kid), None)
    if key is None:
        raise EnvelopeError("unknown_key", f"envelope signed by key {kid}, which is not trusted")
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise EnvelopeError("bad_signature", "envelope signature does not verify") from None
    if len(raw) != 64:
        raise EnvelopeError("bad_signature", "envelope signature does not verify")
    try:
        key.verify(raw, canonical(value))
    except (InvalidSignature, ValueError, TypeError):
        raise EnvelopeError("bad_signature", "envelope signature does not verify") from None
    value["signature"] = signature
    if set(value) != _ENVELOPE_FIELDS:
        raise EnvelopeError("malformed", "malformed envelope: not the envelope's fields")
    for field in ("version", "revision"):
        if not _is_uint(value[field]):
            raise EnvelopeError("malformed", f"malformed envelope: {field} is not a number")
    for field in ("service", "checksum", "issued_at", "key_id", "epoch"):
        if not isinstance(value[field], str):
            raise EnvelopeError("malformed", f"malformed envelope: {field} is not a string")
    try:
        epoch = uuid.UUID(value["epoch"])
    except ValueError:
        raise EnvelopeError("malformed", "malformed envelope: epoch is not a UUID") from None
    if checksum(value["config"]) != value["checksum"]:
        raise EnvelopeError("bad_checksum", "envelope checksum does not match its config")
    return Envelope(
        service=value["service"],
        version=value["version"],
        revision=value["revision"],
        config=value["config"],
        checksum=value["checksum"],
        epoch=epoch,
        issued_at=value["issued_at"],
        key_id=value["key_id"],
    )


@dataclass(frozen=True)
class Verdict:
    """What a receiver does with an update: `apply` it (then `envelope` is set), `ignore` it
    or `reread` the config over REST; `reason` as the test vectors name it."""

    action: Literal["apply", "ignore", "reread"]
    reason: str = ""
    envelope: Envelope | None = None
    detail: str = ""

    def __str__(self) -> str:
        return self.action if not self.reason else f"{self.action}:{self.reason}"


def judge_update(
    payload: bytes,
    *,
    service: str,
    epoch: uuid.UUID | None,
    version: int,
    trusted: list[Ed25519PublicKey],
    now: dt.datetime,
) -> Verdict:
    """The receiver's whole check of an update, in the contract's order."""
    if not payload:
        return Verdict("ignore", "deleted")
    try:
        env = verify_envelope(payload, trusted)
    except EnvelopeError as e:
        return Verdict("ignore", e.code, detail=str(e))
    if env.service != service:
        return Verdict("ignore", "other_service", detail=env.service)
    if epoch is None:
        return Verdict("reread", "no_epoch_yet")
    if env.epoch != epoch:
        return Verdict("reread", "unknown_epoch", detail=str(env.epoch))
    if env.version < version:
        return Verdict("ignore", "old_version", detail=str(env.version))
    if env.version == version:
        return Verdict("ignore", "same_version")
    issued = parse_rfc3339(env.issued_at)
    if issued is None or now - issued > STALE_AFTER:
        return Verdict("reread", "stale")
    return Verdict("apply", envelope=env)


# ---------------------------------------------------------------------------------------------
# Applied reports

Status = Literal["applied", "rejected", "failed"]


def applied_report(
    *,
    service: str,
    instance: str,
    version: int,
    status: Status,
    error: str | None,
    at: str | None,
    schema_hash: str | None,
    overrides: list[str] | None,
    layers: dict[str, str] | None = None,
    global_version: int | None = None,
    override_version: int | None = None,
) -> bytes:
    """The bytes of a report on `config/applied/{service}/{instance}`, fields in the order the
    Rust client writes them; optional fields left out when absent."""
    body: dict[str, Any] = {
        "service": service,
        "instance": instance,
        "version": version,
        "status": status,
    }
    if error is not None:
        body["error"] = error[:MAX_ERROR_CHARS]
    if at is not None:
        body["at"] = at
    if schema_hash is not None:
        body["schema_hash"] = schema_hash
    if overrides is not None:
        body["overrides"] = overrides
    if layers is not None:
        body["layers"] = dict(sorted(layers.items()))
    if global_version is not None:
        body["global_version"] = global_version
    if override_version is not None:
        body["override_version"] = override_version
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
