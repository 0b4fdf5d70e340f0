"""The client against the real manager and a real Mosquitto: live updates, refused envelopes,
start-up from the last-known-good file, environment overrides, failing callbacks and the
applied status the manager shows."""

from __future__ import annotations

import asyncio
import logging
import queue
import statistics
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from harness import Dials, Mosquitto, Subscriber, TestConfig

from dials_client import Client, ClosedError, NoConfigError, Origin

SERVICE = "tts"


def start(dials: Dials, tmp_path: Path, **kwargs: Any) -> Client[TestConfig]:
    options: dict[str, Any] = {
        "server": dials.url,
        "token": dials.service_token(SERVICE),
        "mqtt": dials.broker.url if dials.broker else None,
        "public_keys": [dials.public_key],
        "lkg_path": tmp_path / "tts.lkg",
        "instance": "pi-kitchen",
        "env": {},
        **kwargs,
    }
    return Client.start(TestConfig, SERVICE, **options)


class Recorder:
    """Every config a callback saw, in order."""

    def __init__(self, client: Client[TestConfig]) -> None:
        self.seen: queue.Queue[TestConfig] = queue.Queue()
        self.updates = client.subscribe()
        client.on_change(lambda old, new: self.seen.put(new))

    def next(self) -> TestConfig:
        """The next config a callback saw, once it is the config in force."""
        new = self.seen.get(timeout=10)
        while self.updates.get(timeout=10).config != new:
            pass
        return new

    def empty(self) -> bool:
        return self.seen.empty()


@pytest.fixture
def running(dials: Dials, tmp_path: Path) -> Iterator[tuple[Client[TestConfig], Recorder]]:
    dials.create(SERVICE, {"voice": "amy", "volume": 10})
    client = start(dials, tmp_path)
    recorder = Recorder(client)
    # Connected once the first report is recorded by the manager.
    dials.wait_instance(SERVICE, "pi-kitchen", version=1, status="applied")
    yield client, recorder
    client.close()


def test_a_put_reaches_the_callback_and_the_manager_shows_it_applied(
    dials: Dials, running: tuple[Client[TestConfig], Recorder]
) -> None:
    client, recorder = running
    assert client.get().voice == "amy"
    assert client.info.origin is Origin.MANAGER
    updates = client.subscribe()
    version = dials.put(SERVICE, {"voice": "bob", "volume": 20})
    new = recorder.next()
    assert (new.voice, new.volume) == ("bob", 20)
    update = next(iter(updates))
    assert (update.version, update.config) == (version, new)
    assert client.get() == new
    assert client.info.version == version
    shown = dials.wait_instance(SERVICE, "pi-kitchen", version=version)
    assert shown["status"] == "applied"


def test_forged_tampered_replayed_and_foreign_epoch_envelopes_are_ignored(
    dials: Dials, broker: Mosquitto, running: tuple[Client[TestConfig], Recorder]
) -> None:
    client, recorder = running
    topic = f"config/updated/{SERVICE}"
    spy = Subscriber(broker, topic)
    v2 = dials.put(SERVICE, {"voice": "v2", "volume": 2})
    assert recorder.next().voice == "v2"
    _, genuine_v2, _ = next(m for m in iter(spy.next, None) if b'"v2"' in m[1])
    v3 = dials.put(SERVICE, {"voice": "v3", "volume": 3})
    assert recorder.next().voice == "v3"
    epoch = client.info.epoch
    assert epoch is not None

    forger = Ed25519PrivateKey.generate()
    bad = [
        # Signed by a key that is not pinned.
        dials.envelope(SERVICE, v3 + 1, epoch, {"voice": "forged"}, key=forger),
        # The manager's own envelope with its config changed.
        genuine_v2.replace(b'"v2"', b'"tampered"').replace(
            b'"version":%d' % v2, b'"version":%d' % (v3 + 1)
        ),
        genuine_v2.replace(b'"v2"', b'"tampered"'),
        # A genuine envelope replayed after a newer one.
        genuine_v2,
        # Correctly signed, but for another database (epoch).
        dials.envelope(SERVICE, v3 + 1, uuid.uuid4(), {"voice": "other-epoch"}),
        # Correctly signed, but issued 10 minutes ago: re-read over REST, not applied.
        dials.envelope(SERVICE, v3 + 1, epoch, {"voice": "stale"}, age=600),
        b"not json",
    ]
    for payload in bad:
        spy.publish(topic, payload)
    # A genuine update after them all: the callback sees it next, and nothing before it.
    v4 = dials.put(SERVICE, {"voice": "v4", "volume": 4})
    assert recorder.next().voice == "v4"
    assert recorder.empty()
    assert client.info.version == v4
    spy.close()


def test_an_envelope_signed_by_the_pinned_key_applies_without_rest(
    dials: Dials, broker: Mosquitto, running: tuple[Client[TestConfig], Recorder]
) -> None:
    client, recorder = running
    spy = Subscriber(broker)
    epoch = client.info.epoch
    assert epoch is not None
    spy.publish(f"config/updated/{SERVICE}", dials.envelope(SERVICE, 9, epoch, {"voice": "x"}))
    assert recorder.next().voice == "x"
    assert client.info.version == 9
    spy.close()


def test_with_the_manager_down_the_client_starts_from_the_lkg_file(
    dials: Dials, tmp_path: Path
) -> None:
    dials.create(SERVICE, {"voice": "kept", "volume": 42})
    first = start(dials, tmp_path)
    first.close()
    dials.stop()
    again = start(dials, tmp_path, start_timeout=0.5)
    assert again.info.origin is Origin.LKG
    assert (again.get().voice, again.get().volume) == ("kept", 42)
    assert again.info.version == 1
    again.close()


def test_a_tampered_lkg_file_is_refused_loudly(
    dials: Dials, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dials.create(SERVICE, {"voice": "kept", "volume": 42})
    start(dials, tmp_path).close()
    dials.stop()
    lkg = tmp_path / "tts.lkg"
    lkg.write_text(lkg.read_text().replace('"volume":42', '"volume":43'))
    with pytest.raises(NoConfigError) as err:
        start(dials, tmp_path, start_timeout=0.5)
    assert "HMAC does not match" in str(err.value)
    with caplog.at_level(logging.ERROR, logger="dials_client"):
        fallback = start(dials, tmp_path, start_timeout=0.5, allow_defaults=True)
    assert fallback.info.origin is Origin.DEFAULTS
    assert fallback.get().volume == 100
    assert any("HMAC does not match" in r.getMessage() for r in caplog.records)
    fallback.close()


def test_an_environment_override_wins_and_survives_updates(dials: Dials, tmp_path: Path) -> None:
    dials.create(SERVICE, {"voice": "manager", "volume": 10})
    client = start(dials, tmp_path, env={"T_VOICE": "from-env"})
    recorder = Recorder(client)
    assert client.get().voice == "from-env"
    assert client.info.overrides == ("/voice",)
    version = dials.put(SERVICE, {"voice": "manager-2", "volume": 11})
    new = recorder.next()
    assert (new.voice, new.volume) == ("from-env", 11)
    shown = dials.wait_instance(SERVICE, "pi-kitchen", version=version)
    assert shown["overrides"] == ["/voice"]
    client.close()


def test_a_raising_callback_keeps_the_old_config_and_reports_failed(
    dials: Dials, running: tuple[Client[TestConfig], Recorder]
) -> None:
    client, _ = running

    def refuse(old: TestConfig, new: TestConfig) -> None:
        if new.volume == 7:
            raise ValueError("volume 7 is cursed")

    client.on_change(refuse)
    version = dials.put(SERVICE, {"voice": "cursed", "volume": 7})
    shown = dials.wait_instance(SERVICE, "pi-kitchen", version=version)
    assert shown["status"] == "failed"
    assert "volume 7 is cursed" in shown["error"]
    assert client.get().voice == "amy"


def test_a_value_the_model_refuses_is_rejected_with_the_reason(
    dials: Dials, running: tuple[Client[TestConfig], Recorder]
) -> None:
    client, _ = running
    # An admin loosens the schema behind the service's back.
    loose = {"type": "object", "properties": {"volume": {"type": "integer"}}}
    r = dials.http.put(f"/api/v1/services/{SERVICE}/schema", json=loose)
    assert r.is_success, r.text
    version = dials.put(SERVICE, {"voice": "loud", "volume": 500})
    shown = dials.wait_instance(SERVICE, "pi-kitchen", version=version)
    assert shown["status"] == "rejected"
    assert shown["error"].startswith("/volume:")
    assert client.get().volume == 10


def test_secrets_come_over_rest_and_never_reach_the_lkg_file(dials: Dials, tmp_path: Path) -> None:
    dials.create(SERVICE, {"voice": "amy"})
    client = start(dials, tmp_path)
    recorder = Recorder(client)
    r = dials.http.put(f"/api/v1/services/{SERVICE}/secrets/api_key", json={"value": "s3cr3t"})
    assert r.is_success, r.text
    new = recorder.next()
    assert new.api_key is not None and new.api_key.get_secret_value() == "s3cr3t"
    assert "s3cr3t" not in repr(new)
    # A later update names the same secret version: filled from what the client holds.
    dials.put(SERVICE, {"voice": "bob", "api_key": "********"})
    again = recorder.next()
    assert again.voice == "bob"
    assert again.api_key is not None and again.api_key.get_secret_value() == "s3cr3t"
    assert "s3cr3t" not in (tmp_path / "tts.lkg").read_text()
    client.close()


def test_asyncio_services_get_async_callbacks_and_an_async_subscription(
    dials: Dials, tmp_path: Path
) -> None:
    dials.create(SERVICE, {"voice": "amy"})

    async def main() -> list[str]:
        client = await Client.astart(
            TestConfig,
            SERVICE,
            server=dials.url,
            token=dials.service_token(SERVICE),
            mqtt=dials.broker.url if dials.broker else None,
            public_keys=dials.public_key,
            instance="async-1",
            env={},
        )
        seen: list[str] = []

        async def on_change(old: TestConfig, new: TestConfig) -> None:
            await asyncio.sleep(0)
            if new.voice == "refused":
                raise RuntimeError("not this one")
            seen.append(f"callback:{new.voice}")

        client.on_change(on_change)
        updates = client.subscribe()
        await asyncio.to_thread(dials.wait_instance, SERVICE, "async-1", version=1)
        await asyncio.to_thread(dials.put, SERVICE, {"voice": "refused"})
        await asyncio.to_thread(dials.put, SERVICE, {"voice": "bob"})
        async for update in updates:
            seen.append(f"update:{update.version}:{update.config.voice}")
            break
        await client.aclose()
        return seen

    assert asyncio.run(main()) == ["callback:bob", "update:3:bob"]


def test_the_client_reconnects_after_a_broker_restart(
    dials: Dials, broker: Mosquitto, running: tuple[Client[TestConfig], Recorder]
) -> None:
    _, recorder = running
    broker.stop()
    version = dials.put(SERVICE, {"voice": "while-down", "volume": 5})
    broker.start()
    # Re-read over REST after reconnecting, or delivered by the manager's republish.
    assert recorder.next().voice == "while-down"
    dials.wait_instance(SERVICE, "pi-kitchen", version=version, status="applied")


def test_back_to_back_updates_are_not_held_up_by_a_stock_broker(tmp_path: Path) -> None:
    # Mosquitto as distributions ship it sends with Nagle's algorithm; an update that waits
    # for a delayed TCP ACK takes 40 ms or more (the stall the Rust client ran into, which both
    # clients avoid by the order of their acknowledgements).
    (tmp_path / "m").mkdir()
    (tmp_path / "d").mkdir()
    broker = Mosquitto(tmp_path / "m", stock=True)
    dials = Dials(tmp_path / "d", broker)
    try:
        dials.create(SERVICE, {"volume": 0})
        client = start(dials, tmp_path)
        arrived: queue.Queue[float] = queue.Queue()
        client.on_change(lambda old, new: arrived.put(time.perf_counter()))
        dials.wait_instance(SERVICE, "pi-kitchen", version=1)
        took = []
        for i in range(1, 26):
            t0 = time.perf_counter()
            dials.put(SERVICE, {"volume": i})
            took.append(arrived.get(timeout=10) - t0)
        client.close()
    finally:
        dials.stop()
        broker.stop()
    assert statistics.median(took) < 0.020, sorted(took)


def test_close_ends_subscriptions_and_refuses_refreshes(
    running: tuple[Client[TestConfig], Recorder],
) -> None:
    client, _ = running
    updates = client.subscribe()
    client.close()
    assert list(updates) == []
    with pytest.raises(ClosedError):
        client.refresh()
    client.close()  # idempotent
