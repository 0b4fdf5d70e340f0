"""The broker URL of the contract (`mqtt://[user[:password]@]host[:port]`, `mqtts://` for
TLS) and the paho-mqtt client made from it."""

from __future__ import annotations

import contextlib
import socket
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


@dataclass(frozen=True)
class BrokerUrl:
    host: str
    port: int
    tls: bool
    user: str | None
    password: str | None

    def display(self) -> str:
        """The URL without the password."""
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.user}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{user}{host}:{self.port}"

    @staticmethod
    def parse(url: str) -> BrokerUrl:
        parts = urlsplit(url.strip())
        schemes = {
            "mqtt": (False, 1883),
            "tcp": (False, 1883),
            "mqtts": (True, 8883),
            "ssl": (True, 8883),
        }
        if parts.scheme not in schemes:
            raise ValueError(
                f"{url!r}: the broker URL must start with mqtt://, tcp://, mqtts:// or ssl://"
            )
        tls, default_port = schemes[parts.scheme]
        if not parts.hostname:
            raise ValueError(f"{url!r}: no host")
        try:
            port = parts.port or default_port
        except ValueError as e:
            raise ValueError(f"{url!r}: {e}") from None
        user = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password) if parts.password is not None else None
        return BrokerUrl(parts.hostname, port, tls, user, password)


def _nodelay(client: paho.Client, userdata: Any, sock: Any) -> None:
    # Reports and acknowledgements are small writes right after a read: with Nagle's
    # algorithm they would wait for the broker's delayed ACK (40 ms on Linux).
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def make_client(broker: BrokerUrl, client_id: str, ca_file: str | None) -> paho.Client:
    """A paho client for a clean MQTT 3.1.1 session with `broker`; not connected yet."""
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=True,
        protocol=paho.MQTTv311,
    )
    client.on_socket_open = _nodelay
    if broker.user is not None:
        client.username_pw_set(broker.user, broker.password)
    if broker.tls:
        client.tls_set(ca_certs=ca_file, cert_reqs=ssl.CERT_REQUIRED)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client
