"""The RFC 8785 (JCS) canonical form that every checksum, signature and LKG MAC is taken over.

`rfc8785` does the work. It refuses integers beyond 2^53, where RFC 8785 (and the Rust side)
writes them as the nearest IEEE double: such integers are turned into floats first, so both
sides produce the same bytes (see the `large_integers` test vector).
"""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785

_SAFE = 2**53 - 1


def _as_doubles(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if -_SAFE <= value <= _SAFE else float(value)
    if isinstance(value, dict):
        return {k: _as_doubles(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_doubles(v) for v in value]
    return value


def canonical(value: Any) -> bytes:
    """The canonical UTF-8 bytes of a JSON value (as parsed by `json.loads`)."""
    return rfc8785.dumps(_as_doubles(value))


def checksum(value: Any) -> str:
    """Lowercase hex SHA-256 of the canonical form: an envelope's `checksum` of its config."""
    return hashlib.sha256(canonical(value)).hexdigest()
