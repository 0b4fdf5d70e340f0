"""What the client does where a layer is missing, against the real manager: an instance with
no override runs with the service's document, a secret of `global` never reaches a service,
and a manager without the layers' routes (one from before them, its `…/effective` a 404) is
read through `…/config` alone."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import Dials
from pydantic import BaseModel, Field, SecretStr

from dials_client import Client, Origin

SERVICE = "tts"


class LayeredConfig(BaseModel):
    """Takes its log level and the broker password from `global`."""

    voice: str = Field("default-voice", description="What it says.")
    volume: int = Field(100, description="How loud.")
    log_level: str = Field(
        "info", description="How much it logs.", json_schema_extra={"x-global": "/log/level"}
    )
    broker_password: SecretStr | None = Field(
        None,
        description="The broker's password.",
        json_schema_extra={"x-global": "/mqtt/password", "x-secret": True},
    )


GLOBAL_SCHEMA = {
    "type": "object",
    "properties": {
        "log": {"type": "object", "properties": {"level": {"type": "string"}}},
        "mqtt": {
            "type": "object",
            "properties": {"password": {"type": ["string", "null"], "x-secret": True}},
        },
    },
}


def start(dials: Dials, tmp_path: Path, server: str, **kwargs: Any) -> Client[LayeredConfig]:
    return Client.start(
        LayeredConfig,
        SERVICE,
        server=server,
        token=dials.service_token(SERVICE),
        public_keys=[dials.public_key],
        lkg_path=tmp_path / "tts.lkg",
        instance="pi-kitchen",
        env={},
        **kwargs,
    )


@pytest.fixture
def layered(dials: Dials) -> Iterator[Dials]:
    """`global` with a log level and a secret, and the service's document."""
    r = dials.http.put("/api/v1/services/global/schema", json=GLOBAL_SCHEMA)
    assert r.is_success, r.text
    r = dials.http.put(
        "/api/v1/services/global/config",
        json={"config": {"log": {"level": "debug"}, "mqtt": {"password": "broker-pass"}}},
        headers={"If-None-Match": "*"},
    )
    assert r.is_success, r.text
    dials.create(SERVICE, {"voice": "amy", "volume": 10})
    yield dials


def test_an_instance_without_an_override_runs_with_the_services_document(
    layered: Dials, tmp_path: Path
) -> None:
    override = f"/api/v1/services/{SERVICE}/instances/pi-kitchen/config"
    assert layered.http.get(override).status_code == 404
    client = start(
        layered, tmp_path, layered.url, mqtt=layered.broker.url if layered.broker else None
    )
    try:
        config = client.get()
        assert (config.voice, config.volume, config.log_level) == ("amy", 10, "debug")
        row = layered.wait_instance(SERVICE, "pi-kitchen", version=1, status="applied")
        assert (row["override_version"], row["global_version"]) == (0, 1)
        assert row["layers"] == {"/log_level": "global"}
    finally:
        client.close()


def test_a_secret_of_global_never_reaches_a_service(layered: Dials, tmp_path: Path) -> None:
    token = layered.service_token(SERVICE)
    read = httpx.get(
        f"{layered.url}/api/v1/services/global/config",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert read.is_success, read.text
    assert read.json()["config"]["mqtt"]["password"] == "********"
    client = start(layered, tmp_path, layered.url)
    try:
        config = client.get()
        assert config.log_level == "debug"
        # The mask is no value: the key keeps its default rather than "********".
        assert config.broker_password is None
    finally:
        client.close()
    assert "broker-pass" not in (tmp_path / "tts.lkg").read_text()


class WithoutLayers(http.server.BaseHTTPRequestHandler):
    """Forwards to the real manager, except `…/effective` and `…/instances/…/config`, which
    answer 404 as a manager from before layers does."""

    upstream = ""

    def _forward(self) -> None:
        if "/instances/" in self.path and self.path.endswith(("/effective", "/config")):
            self.send_response(404)
            self.send_header("Content-Type", "application/problem+json")
            body = b'{"type":"about:blank","title":"Not Found","status":404}'
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {
            k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
        }
        r = httpx.request(self.command, self.upstream + self.path, headers=headers, content=body)
        self.send_response(r.status_code)
        for k, v in r.headers.items():
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(r.content)))
        self.end_headers()
        self.wfile.write(r.content)

    do_GET = do_PUT = do_POST = _forward

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def older_manager(layered: Dials) -> Iterator[str]:
    handler = type("Handler", (WithoutLayers,), {"upstream": layered.url})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_manager_without_the_layers_routes_is_read_through_the_services_config(
    layered: Dials, older_manager: str, tmp_path: Path
) -> None:
    # An override the older manager's clients cannot see.
    r = layered.http.put(
        f"/api/v1/services/{SERVICE}/instances/pi-kitchen/config",
        json={"config": {"volume": 120}},
    )
    assert r.is_success, r.text
    client = start(layered, tmp_path, older_manager)
    try:
        assert client.info.origin is Origin.MANAGER
        assert client.info.version == 1
        config = client.get()
        # The service's document over the defaults: neither global nor the override.
        assert (config.voice, config.volume, config.log_level) == ("amy", 10, "info")
        # A refresh goes the same way.
        layered.put(SERVICE, {"voice": "bob", "volume": 20})
        client.refresh()
        assert (client.get().voice, client.get().volume) == ("bob", 20)
        assert client.info.version == 2
    finally:
        client.close()
