"""The last-known-good (LKG) file: the latest config the service applied from the manager, so
that it can start while the manager is away. Same format as the Rust client's, so either can
read the file the other wrote:

    {"format":1, "service", "version", "epoch", "schema_hash", "written_at", "config", "mac"}

`config` is the manager's document without the values of `x-secret` keys; `epoch` is a UUID or
null; `mac` is lowercase hex HMAC-SHA256 over the RFC 8785 form of the object without `mac`.
Unknown members make the file invalid. A client whose config is made of more layers than the
service's document adds `layers`: `{"global": {"version", "config"}?, "instance": {"version",
"config"}?}`, the `global` document and the instance's override document it merged (secret
values left out), under the same MAC. A file without `layers` reads as it always did. The key
is given, or derived from the service's token
(`key_from_token`). The file is replaced atomically: temporary file in the same folder, fsync,
rename, fsync of the folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .jcs import canonical
from .wire import loads_strict, now_rfc3339

FORMAT = 1
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")
_FIELDS = ("format", "service", "version", "epoch", "schema_hash", "written_at", "config")


class LkgError(Exception):
    """Why LKG bytes were refused. `code` is stable: malformed, unknown_format, mac_not_hex,
    bad_mac, wrong_service."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _uint(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


@dataclass(frozen=True)
class LkgLayer:
    """One layer's document (without secret values) and version in an LKG file."""

    version: int
    config: Any

    def _object(self) -> dict[str, Any]:
        return {"version": self.version, "config": self.config}


@dataclass(frozen=True)
class LkgLayers:
    """The layers besides the service's document that an LKG file keeps."""

    global_: LkgLayer | None = None
    instance: LkgLayer | None = None

    def _object(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.global_ is not None:
            out["global"] = self.global_._object()
        if self.instance is not None:
            out["instance"] = self.instance._object()
        return out

    @staticmethod
    def _read(value: Any) -> LkgLayers | None:
        """Reads `layers` as the Rust client does (null is absent; unknown members refused)."""
        if value is None:
            return None
        if not isinstance(value, dict) or set(value) - {"global", "instance"}:
            raise LkgError("malformed", "it is not an LKG file (layers is not the layers' shape)")

        def layer(v: Any) -> LkgLayer | None:
            if v is None:
                return None
            if not (
                isinstance(v, dict) and set(v) == {"version", "config"} and _uint(v["version"])
            ):
                raise LkgError("malformed", "it is not an LKG file (a layer is not its shape)")
            return LkgLayer(version=v["version"], config=v["config"])

        return LkgLayers(global_=layer(value.get("global")), instance=layer(value.get("instance")))


@dataclass(frozen=True)
class LkgContents:
    """What a valid LKG file holds, `mac` aside."""

    service: str
    version: int
    epoch: uuid.UUID | None
    schema_hash: str
    written_at: str
    config: Any
    format: int = FORMAT
    layers: LkgLayers | None = None

    def _object(self) -> dict[str, Any]:
        out = {
            "format": self.format,
            "service": self.service,
            "version": self.version,
            "epoch": None if self.epoch is None else str(self.epoch),
            "schema_hash": self.schema_hash,
            "written_at": self.written_at,
            "config": self.config,
        }
        if self.layers is not None:
            out["layers"] = self.layers._object()
        return out

    def _mac(self, key: bytes) -> bytes:
        return hmac.new(key, canonical(self._object()), hashlib.sha256).digest()

    def seal(self, key: bytes) -> bytes:
        """The file's bytes: the contents with their `mac` under `key`, and a final newline."""
        obj = self._object()
        obj["mac"] = self._mac(key).hex()
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"

    @staticmethod
    def open(data: bytes, key: bytes, service: str) -> LkgContents:
        """Reads and checks a file's bytes: shape, format, MAC under `key`, then that it was
        written for `service`."""
        try:
            obj = loads_strict(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise LkgError("malformed", f"it is not an LKG file ({e})") from None
        if not isinstance(obj, dict):
            raise LkgError("malformed", "it is not an LKG file (not a JSON object)")
        extra = set(obj) - set(_FIELDS) - {"mac", "layers"}
        missing = [f for f in _FIELDS if f not in obj]
        if extra or missing:
            raise LkgError(
                "malformed",
                f"it is not an LKG file (unknown {sorted(extra)}, missing {missing})",
            )

        uint = _uint
        mac = obj.get("mac", "")
        epoch_text = obj["epoch"]
        if not (
            uint(obj["format"])
            and uint(obj["version"])
            and all(isinstance(obj[f], str) for f in ("service", "schema_hash", "written_at"))
            and (epoch_text is None or isinstance(epoch_text, str))
            and isinstance(mac, str)
        ):
            raise LkgError("malformed", "it is not an LKG file (a member has the wrong type)")
        try:
            epoch = None if epoch_text is None else uuid.UUID(epoch_text)
        except ValueError:
            raise LkgError("malformed", "it is not an LKG file (epoch is not a UUID)") from None
        contents = LkgContents(
            format=obj["format"],
            service=obj["service"],
            version=obj["version"],
            epoch=epoch,
            schema_hash=obj["schema_hash"],
            written_at=obj["written_at"],
            config=obj["config"],
            layers=LkgLayers._read(obj.get("layers")),
        )
        if contents.format != FORMAT:
            raise LkgError("unknown_format", f"unknown format {contents.format}")
        if not _HEX.fullmatch(mac):
            raise LkgError("mac_not_hex", "its MAC is not hex")
        if not hmac.compare_digest(contents._mac(key), bytes.fromhex(mac)):
            raise LkgError(
                "bad_mac",
                "its HMAC does not match: the file was altered, or written with another key "
                "or token",
            )
        if contents.service != service:
            raise LkgError(
                "wrong_service",
                f"it was written for service {contents.service!r}, not {service!r}",
            )
        return contents


def key_from_token(token: str) -> bytes:
    """The LKG key derived from a service's token: HMAC-SHA256(key = token, "dials-lkg-v1")."""
    return hmac.new(token.encode(), b"dials-lkg-v1", hashlib.sha256).digest()


class LkgMissing(Exception):
    """There is no LKG file (not worth an error in the log)."""


class LkgFile:
    """The LKG file of one service and the key that signs it."""

    def __init__(self, path: str | os.PathLike[str], key: bytes) -> None:
        self.path = Path(path)
        self._key = key

    def __repr__(self) -> str:
        return f"LkgFile({str(self.path)!r})"

    def load(self, service: str) -> LkgContents:
        """The file's contents, or `LkgMissing`, `OSError`, `LkgError`."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            raise LkgMissing(f"the last-known-good file {self.path} does not exist") from None
        return LkgContents.open(data, self._key, service)

    def store(
        self,
        service: str,
        version: int,
        epoch: uuid.UUID | None,
        schema_hash: str,
        config: Any,
        layers: LkgLayers | None = None,
    ) -> None:
        """Replaces the file atomically."""
        data = LkgContents(
            service=service,
            version=version,
            epoch=epoch,
            schema_hash=schema_hash,
            written_at=now_rfc3339(),
            config=config,
            layers=layers,
        ).seal(self._key)
        folder = self.path.parent
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".dials-lkg-", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        try:
            dfd = os.open(folder, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dfd)
        except OSError:
            pass
        finally:
            os.close(dfd)
