"""A real Mosquitto on a free port and the real `dials` binary on port 0, each in a temporary
folder, with typed helpers so the tests (and the benchmark) read as user stories. `DIALS_BIN`
names the binary (default `target/release/dials`), `ECHO_BIN` the Rust echo-service."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import queue
import re
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import BaseModel, Field, SecretStr

from dials_client import wire
from dials_client.jcs import canonical, checksum

REPO = Path(__file__).resolve().parents[3]
SEED = bytes([7] * 32)
"""The manager's signing seed (DIALS_SIGNING_KEY), so tests can sign as the manager."""


def binary(env: str, default: str) -> Path:
    path = Path(os.environ.get(env, REPO / default))
    if not path.is_absolute():
        path = REPO / path
    if not path.exists():
        raise RuntimeError(
            f"{path} is missing: cargo build --release --workspace --bins --examples"
        )
    return path


class TestConfig(BaseModel):
    """The config model of the services under test."""

    __test__ = False  # not a pytest test class

    voice: str = Field(
        "default-voice",
        description="What it says.",
        json_schema_extra={"x-env": "T_VOICE", "x-complexity": "simple"},
    )
    volume: int = Field(100, ge=0, le=200, description="How loud.")
    api_key: SecretStr | None = Field(
        None, description="A credential.", json_schema_extra={"x-secret": True}
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the process exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"nothing listens on {port}")


class Mosquitto:
    def __init__(self, folder: Path, stock: bool = False) -> None:
        """`stock`: Mosquitto's defaults (no `set_tcp_nodelay`), as distributions ship it."""
        self.port = free_port()
        self.conf = folder / "mosquitto.conf"
        text = f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
        if not stock:
            text += "persistence false\nuser root\nmax_inflight_messages 0\nset_tcp_nodelay true\n"
        self.conf.write_text(text)
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


class Subscriber:
    """A plain MQTT subscriber (or publisher) of its own."""

    def __init__(self, broker: Mosquitto, *topics: str) -> None:
        self.messages: queue.Queue[tuple[str, bytes, bool]] = queue.Queue()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        ready = threading.Event()

        def on_connect(c: paho.Client, u: Any, f: Any, r: Any, p: Any) -> None:
            for t in topics:
                c.subscribe(t, qos=1)
            ready.set()

        def on_message(c: paho.Client, u: Any, m: paho.MQTTMessage) -> None:
            self.messages.put((m.topic, bytes(m.payload), bool(m.retain)))

        self.client.on_connect = on_connect
        self.client.on_message = on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert ready.wait(5)

    def next(self, timeout: float = 10) -> tuple[str, bytes, bool]:
        return self.messages.get(timeout=timeout)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Dials:
    """A running `dials serve` with its own data dir."""

    def __init__(self, folder: Path, broker: Mosquitto | None) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.broker = broker
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.signing = Ed25519PrivateKey.from_private_bytes(SEED)
        self.start()
        self.token = (self.data / "admin.token").read_text().strip()
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=10
        )
        self.public_key = self.http.get("/api/v1/keys").json()["public_key"]
        self.tokens: dict[str, str] = {}

    def start(self) -> None:
        log = open(self.folder / "dials.log", "ab")  # noqa: SIM115 - the child holds it
        env = {**os.environ, "DIALS_SIGNING_KEY": base64.b64encode(SEED).decode()}
        env.pop("DIALS_TOKEN", None)
        # Restart on the port it had, so clients keep their URL.
        http = self.url.removeprefix("http://") if self.url else "127.0.0.1:0"
        self.proc = subprocess.Popen(
            [
                str(binary("DIALS_BIN", "target/release/dials")),
                "serve",
                "--http",
                http,
                "--data-dir",
                str(self.data),
                "--mqtt",
                self.broker.url if self.broker else "none",
                "--log-format",
                "json",
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline().decode()
            m = re.search(r"listening on (http://[0-9.:]+)", line)
            if m:
                self.url = m.group(1)
                return
            if not line and self.proc.poll() is not None:
                break
        raise RuntimeError(f"dials serve did not start: {(self.folder / 'dials.log').read_text()}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def service_token(self, service: str) -> str:
        if service not in self.tokens:
            r = self.http.post(
                "/api/v1/tokens",
                json={"name": f"{service}-svc", "role": "service", "service": service},
            )
            assert r.is_success, r.text
            self.tokens[service] = r.json()["token"]
        return self.tokens[service]

    def create(self, service: str, config: dict[str, Any]) -> uuid.UUID:
        r = self.http.put(
            f"/api/v1/services/{service}/config",
            json={"config": config},
            headers={"If-None-Match": "*"},
        )
        assert r.is_success, r.text
        return uuid.UUID(r.json()["epoch"])

    def put(self, service: str, config: dict[str, Any]) -> int:
        r = self.http.put(f"/api/v1/services/{service}/config", json={"config": config})
        assert r.is_success, r.text
        version: int = r.json()["version"]
        return version

    def instances(self, service: str) -> Any:
        r = self.http.get(f"/api/v1/services/{service}/instances")
        assert r.is_success, r.text
        return r.json()

    def wait_instance(self, service: str, instance: str, **want: Any) -> dict[str, Any]:
        """Waits until the manager shows `instance` with the wanted fields."""
        deadline = time.monotonic() + 10
        seen: Any = None
        while time.monotonic() < deadline:
            seen = self.instances(service)
            for i in seen.get("instances", []):
                if i.get("instance") == instance and all(i.get(k) == v for k, v in want.items()):
                    found: dict[str, Any] = i
                    return found
            time.sleep(0.05)
        raise AssertionError(f"no instance {instance} with {want}: {seen}")

    def envelope(
        self,
        service: str,
        version: int,
        epoch: uuid.UUID,
        config: dict[str, Any],
        age: float = 0,
        key: Ed25519PrivateKey | None = None,
    ) -> bytes:
        """An envelope signed as the manager signs (or with another `key`)."""
        key = key or self.signing
        issued = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=age)
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        raw_pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        unsigned = {
            "format": 1,
            "service": service,
            "version": version,
            "revision": version,
            "config": config,
            "checksum": checksum(config),
            "epoch": str(epoch),
            "issued_at": issued.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "key_id": wire.key_id(wire.parse_public_key(base64.b64encode(raw_pub).decode())),
        }
        signature = base64.b64encode(key.sign(canonical(unsigned))).decode()
        return json.dumps({**unsigned, "signature": signature}).encode()
