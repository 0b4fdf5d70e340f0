"""The manager's REST API, as far as a service needs it: register the schema, read the config.
Errors are sentences for the log (`ManagerError`), never carrying the token."""

from __future__ import annotations

import ssl
import urllib.parse
import uuid
from dataclasses import dataclass
from typing import Any

import httpx


class ManagerError(Exception):
    """The manager could not be asked, or said no."""


@dataclass(frozen=True)
class ConfigResponse:
    """`GET /api/v1/services/{s}/config`."""

    service: str
    version: int
    revision: int
    epoch: uuid.UUID
    config: Any
    secrets: dict[str, int]


@dataclass(frozen=True)
class LayerDoc:
    """One layer besides the service's document: its version and document (None: none)."""

    version: int
    config: Any | None
    secrets: dict[str, int]


@dataclass(frozen=True)
class LayerRead:
    """Every layer of this instance, as read over REST. `global_` and `instance` are None
    from a manager that does not know layers."""

    service: ConfigResponse
    global_: LayerDoc | None
    instance: LayerDoc | None


def _secrets(value: Any) -> dict[str, int]:
    return {str(k): int(v) for k, v in (value or {}).items()}


def _describe(e: httpx.HTTPError) -> str:
    if isinstance(e, httpx.TimeoutException):
        return f"the request did not answer in time ({e})"
    if isinstance(e, httpx.ConnectError):
        return f"the manager is unreachable ({e})"
    return f"the request failed ({e})"


def _problem(r: httpx.Response) -> str:
    hint = {401: " (check the token)", 403: " (the token may not do this)"}.get(r.status_code, "")
    detail = ""
    try:
        body = r.json()
        if isinstance(body, dict):
            detail = str(body.get("detail", ""))
            for err in (body.get("errors") or [])[:5]:
                if isinstance(err, dict):
                    detail += f"; {err.get('path')}: {err.get('message')}"
    except ValueError:
        pass
    status = f"{r.status_code} {r.reason_phrase}".strip()
    return f"the manager answered {status}{hint}" + (f": {detail}" if detail else "")


class Manager:
    """A REST connection to the manager for one service."""

    def __init__(self, base: str, service: str, token: str, instance: str = "") -> None:
        self.base = base.rstrip("/")
        self.service = service
        self.instance = instance
        # Only http:// is accepted, so no TLS is ever negotiated here. A bare context that
        # trusts nothing (it fails closed) spares loading the CA bundle, which would cost tens
        # of milliseconds at every start, including a start from the LKG file.
        no_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._http = httpx.Client(
            headers={"Authorization": f"Bearer {token}"},
            transport=httpx.HTTPTransport(verify=no_tls),
        )

    def __repr__(self) -> str:
        return f"Manager({self.base!r}, {self.service!r})"

    def close(self) -> None:
        self._http.close()

    def _url(self, tail: str) -> str:
        return f"{self.base}/api/v1/services/{self.service}/{tail}"

    def register_schema(self, schema: Any, timeout: float) -> None:
        """`PUT …/schema`."""
        try:
            r = self._http.put(self._url("schema"), json=schema, timeout=timeout)
        except httpx.HTTPError as e:
            raise ManagerError(_describe(e)) from None
        if not r.is_success:
            raise ManagerError(_problem(r))

    def read_config(self, timeout: float) -> ConfigResponse:
        """`GET …/config`."""
        try:
            r = self._http.get(self._url("config"), timeout=timeout)
        except httpx.HTTPError as e:
            raise ManagerError(_describe(e)) from None
        if not r.is_success:
            raise ManagerError(_problem(r))
        try:
            body = r.json()
            response = ConfigResponse(
                service=str(body["service"]),
                version=int(body["version"]),
                revision=int(body["revision"]),
                epoch=uuid.UUID(body["epoch"]),
                config=body["config"],
                secrets={str(k): int(v) for k, v in (body.get("secrets") or {}).items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ManagerError(f"the manager's answer is not a config: {e}") from None
        if response.service != self.service:
            raise ManagerError(f"the manager answered with the config of {response.service!r}")
        return response

    def read_layers(self, timeout: float) -> LayerRead:
        """Every layer of this instance: `GET …/instances/{instance}/effective` (its
        `documents`, secrets in clear for the service's own token), or, from a manager that
        does not know layers (404 there), `GET …/config`."""
        instance = urllib.parse.quote(self.instance, safe="")
        try:
            r = self._http.get(self._url(f"instances/{instance}/effective"), timeout=timeout)
        except httpx.HTTPError as e:
            raise ManagerError(_describe(e)) from None
        if r.status_code == 404:
            return LayerRead(self.read_config(timeout), None, None)
        if not r.is_success:
            raise ManagerError(_problem(r))
        try:
            body = r.json()
            documents = body["documents"]
            versions = body["versions"]
            service = ConfigResponse(
                service=str(body["service"]),
                version=int(versions["service"]),
                revision=0,
                epoch=uuid.UUID(body["epoch"]),
                config=documents["service"],
                secrets=_secrets(documents.get("service_secrets")),
            )
            global_version = versions.get("global")
            global_ = (
                None
                if global_version is None
                else LayerDoc(int(global_version), documents.get("global"), {})
            )
            instance_layer = LayerDoc(
                int(versions["instance"]),
                documents.get("instance"),
                _secrets(documents.get("instance_secrets")),
            )
            named = (str(body["service"]), str(body["instance"]))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ManagerError(f"the manager's answer is not an effective config: {e}") from None
        if named != (self.service, self.instance):
            raise ManagerError(
                f"the manager answered with the config of {named[0]!r} instance {named[1]!r}"
            )
        return LayerRead(service, global_, instance_layer)
