"""The examples as users run them: the Python echo service (and the layers it prints), the
last-known-good file shared with the Rust client in both directions, and the stt-worker moved
over to dials."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from harness import Dials, Mosquitto, Subscriber, binary

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SERVICE = "tts-worker"


class Process:
    """A running example: its stdout lines as they come, stderr kept in a file."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            argv,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=open(log, "wb"),  # noqa: SIM115 - the child holds it
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.last_line = ""
        assert self.proc.stdout is not None
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()

    def _read(self, out: IO[bytes]) -> None:
        for line in out:
            self.lines.put(line.decode())

    def next_json(self, timeout: float = 15) -> Any:
        try:
            self.last_line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output; stderr:\n{self.log.read_text()}") from None
        return json.loads(self.last_line)

    def stop(self) -> str:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.log.read_text()


def echo_env(
    dials: Dials,
    lkg: Path,
    mqtt: bool = False,
    service: str = SERVICE,
    instance: str = "pi-kitchen",
) -> dict[str, str]:
    env = {
        "DIALS_SERVER": dials.url,
        "DIALS_TOKEN": dials.service_token(service),
        "DIALS_PUBLIC_KEY": dials.public_key,
        "DIALS_LKG_PATH": str(lkg),
        "DIALS_SERVICE": service,
        "DIALS_INSTANCE": instance,
        "DIALS_MQTT_URL": dials.broker.url if mqtt and dials.broker else "",
    }
    return env


def python_echo(env: dict[str, str], log: Path) -> Process:
    return Process([sys.executable, str(EXAMPLES / "echo_service.py")], env, log)


def rust_echo(env: dict[str, str], log: Path) -> Process:
    echo = binary("ECHO_BIN", "target/release/examples/echo-service")
    return Process([str(echo)], env, log)


@pytest.fixture
def tts(dials: Dials) -> Iterator[Dials]:
    dials.create(SERVICE, {"piper_voice": "en_US-amy-medium", "volume_percent": 80})
    yield dials


def test_the_python_echo_service_prints_each_applied_config_with_secrets_masked(
    tts: Dials, tmp_path: Path
) -> None:
    echo = python_echo(echo_env(tts, tmp_path / "py.lkg", mqtt=True), tmp_path / "echo.log")
    first = echo.next_json()
    assert first["version"] == 1
    assert first["config"]["volume_percent"] == 80
    assert first["config"]["tts_provider"] == "piper"
    tts.wait_instance(SERVICE, "pi-kitchen", version=1, status="applied")
    r = tts.http.put(f"/api/v1/services/{SERVICE}/secrets/eleven_api_key", json={"value": "k-1"})
    assert r.is_success, r.text
    second = echo.next_json()
    assert second["version"] == 2
    assert second["config"]["eleven_api_key"] == "********"
    log = echo.stop()
    assert "k-1" not in log
    assert "k-1" not in (tmp_path / "py.lkg").read_text()


def test_a_change_to_global_reaches_the_echo_service_that_takes_it_and_no_other(
    tts: Dials, tmp_path: Path
) -> None:
    tts.create("global", {"log_level": "WARNING"})
    tts.create("stt-worker", {"vad_threshold": 0.5})
    taker = python_echo(echo_env(tts, tmp_path / "tts.lkg", mqtt=True), tmp_path / "tts.log")
    # Untyped, the other echo service's schema takes nothing from global.
    untyped = {
        **echo_env(tts, tmp_path / "stt.lkg", mqtt=True, service="stt-worker", instance="pi-hall"),
        "DIALS_UNTYPED": "1",
    }
    other = python_echo(untyped, tmp_path / "stt.log")
    try:
        first = taker.next_json()
        assert (first["version"], first["config"]["log_level"]) == (1, "WARNING")
        assert other.next_json() == {"version": 1, "config": {"vad_threshold": 0.5}}
        row = tts.wait_instance(SERVICE, "pi-kitchen", global_version=1, status="applied")
        assert row["layers"] == {"/log_level": "global"}
        tts.wait_instance("stt-worker", "pi-hall", version=1, status="applied")

        assert tts.put("global", {"log_level": "ERROR"}) == 2
        line = taker.next_json()
        assert (line["version"], line["config"]["log_level"]) == (1, "ERROR")
        assert line["config"]["volume_percent"] == 80
        row = tts.wait_instance(SERVICE, "pi-kitchen", global_version=2, status="applied")
        assert row["layers"] == {"/log_level": "global"}

        # Nothing printed for global: the other's next line is its own next version, which
        # the manager published after global's.
        tts.put("stt-worker", {"vad_threshold": 0.6})
        assert other.next_json() == {"version": 2, "config": {"vad_threshold": 0.6}}
        row = tts.wait_instance("stt-worker", "pi-hall", version=2)
        assert row.get("global_version") is None
    finally:
        taker.stop()
        other.stop()


def test_an_override_reaches_the_echo_service_of_its_instance_only(
    tts: Dials, tmp_path: Path
) -> None:
    kitchen = python_echo(echo_env(tts, tmp_path / "k.lkg", mqtt=True), tmp_path / "k.log")
    hall = python_echo(
        echo_env(tts, tmp_path / "h.lkg", mqtt=True, instance="pi-hall"), tmp_path / "h.log"
    )
    try:
        assert kitchen.next_json()["config"]["volume_percent"] == 80
        assert hall.next_json()["config"]["volume_percent"] == 80
        tts.wait_instance(SERVICE, "pi-kitchen", version=1, status="applied")
        tts.wait_instance(SERVICE, "pi-hall", version=1, status="applied")

        r = tts.http.put(
            f"/api/v1/services/{SERVICE}/instances/pi-kitchen/config",
            json={"config": {"volume_percent": 120}},
        )
        assert r.is_success, r.text
        line = kitchen.next_json()
        assert (line["version"], line["config"]["volume_percent"]) == (1, 120)
        row = tts.wait_instance(SERVICE, "pi-kitchen", override_version=1)
        assert row["layers"] == {"/volume_percent": "instance"}

        # Nothing printed in the hall: its next line is the service's next version, under
        # which the kitchen keeps its override.
        tts.put(SERVICE, {"piper_voice": "en_US-amy-medium", "volume_percent": 50})
        line = hall.next_json()
        assert (line["version"], line["config"]["volume_percent"]) == (2, 50)
        line = kitchen.next_json()
        assert (line["version"], line["config"]["volume_percent"]) == (2, 120)
        r = tts.http.get(f"/api/v1/services/{SERVICE}/instances/pi-kitchen/effective")
        assert r.is_success, r.text
        assert r.json()["layers"]["/volume_percent"] == "instance"
        assert r.json()["layers"]["/piper_voice"] == "service"
    finally:
        kitchen.stop()
        hall.stop()


def test_the_twins_print_an_untyped_service_the_same_way(dials: Dials, tmp_path: Path) -> None:
    dials.create("router", {"router_llm_tts_stream": True, "wake": {"window": 5, "phrase": None}})
    printed = []
    for run in (python_echo, rust_echo):
        env = {**echo_env(dials, tmp_path / "r.lkg", service="router"), "DIALS_UNTYPED": "1"}
        p = run(env, tmp_path / "router.log")
        line = p.next_json()
        assert line == {
            "version": 1,
            "config": {"router_llm_tts_stream": True, "wake": {"window": 5, "phrase": None}},
        }
        printed.append(p.last_line)
        p.stop()
    assert printed[0] == printed[1]


def test_each_client_starts_from_the_lkg_file_the_other_wrote(tts: Dials, tmp_path: Path) -> None:
    rust_lkg, py_lkg = tmp_path / "rust.lkg", tmp_path / "py.lkg"
    # An override of this instance: each file keeps it as a layer of its own.
    r = tts.http.put(
        f"/api/v1/services/{SERVICE}/instances/pi-kitchen/config",
        json={"config": {"volume_percent": 120}},
    )
    assert r.is_success, r.text
    for run, lkg in ((rust_echo, rust_lkg), (python_echo, py_lkg)):
        p = run(echo_env(tts, lkg), tmp_path / f"{lkg.stem}-write.log")
        assert p.next_json()["config"]["volume_percent"] == 120
        p.stop()
        assert lkg.exists()
        written = json.loads(lkg.read_text())
        assert written["config"]["volume_percent"] == 80
        assert written["layers"] == {"instance": {"version": 1, "config": {"volume_percent": 120}}}
    tts.stop()

    # Python reads Rust's file, Rust reads Python's; the manager is down.
    printed = []
    for run, lkg in ((python_echo, rust_lkg), (rust_echo, py_lkg)):
        p = run(echo_env(tts, lkg), tmp_path / f"{lkg.stem}-read.log")
        line = p.next_json()
        assert line["version"] == 1
        assert line["config"]["volume_percent"] == 120
        assert line["config"]["piper_voice"] == "en_US-amy-medium"
        printed.append(p.last_line)
        log = p.stop()
        assert "last-known-good" in log, log
    # The twins print the same config the same way, byte for byte.
    assert printed[0] == printed[1]

    # And a file altered by hand is refused by both.
    for lkg in (rust_lkg, py_lkg):
        lkg.write_text(lkg.read_text().replace('"volume_percent":80', '"volume_percent":81'))
    for run, lkg in ((python_echo, rust_lkg), (rust_echo, py_lkg)):
        p = run(echo_env(tts, lkg), tmp_path / f"{lkg.stem}-tampered.log")
        assert p.proc.wait(20) != 0
        assert "HMAC does not match" in p.stop()


def test_the_stt_worker_follows_vad_threshold_live_and_reports_restart_required(
    dials: Dials, broker: Mosquitto, tmp_path: Path
) -> None:
    dials.create("stt-worker", {"vad_threshold": 0.5})
    spy = Subscriber(broker, "stt/vad", "system/health/stt")
    env = {
        "MQTT_URL": broker.url,
        "DIALS_SERVER": dials.url,
        "DIALS_TOKEN": dials.service_token("stt-worker"),
        "DIALS_MQTT_URL": broker.url,
        "DIALS_PUBLIC_KEY": dials.public_key,
        "DIALS_LKG_PATH": str(tmp_path / "stt.lkg"),
        "DIALS_INSTANCE": "pi-hall",
        "PYTHONPATH": str(EXAMPLES / "stt_worker"),
    }
    worker = Process(
        [sys.executable, str(EXAMPLES / "stt_worker" / "worker.py")], env, tmp_path / "stt.log"
    )

    def next_on(topic: str) -> Any:
        while True:
            t, payload, _ = spy.next(15)
            if t == topic:
                return json.loads(payload)

    assert next_on("system/health/stt")["event"] == "ready"
    dials.wait_instance("stt-worker", "pi-hall", version=1, status="applied")

    def decide(frame: int) -> Any:
        spy.publish("audio/frame", json.dumps({"id": frame, "speech_prob": 0.6}).encode())
        decision = next_on("stt/vad")
        assert decision["id"] == frame
        return decision

    assert decide(1)["speech"] is True
    v2 = dials.put("stt-worker", {"vad_threshold": 0.7})
    dials.wait_instance("stt-worker", "pi-hall", version=v2, status="applied")
    second = decide(2)
    assert (second["speech"], second["threshold"]) == (False, 0.7)

    v3 = dials.put("stt-worker", {"vad_threshold": 0.7, "whisper_model": "small.en"})
    notice = next_on("system/health/stt")
    assert notice["restart_required"] == ["/whisper_model"]
    dials.wait_instance("stt-worker", "pi-hall", version=v3, status="applied")
    assert decide(3)["model"] == "base.en", "the model changes only at a restart"
    assert "restart required" in worker.stop()
    spy.close()
