"""Benchmarks of the Python client against the real `dials` binary and a real Mosquitto on
loopback:

- PUT → callback: from sending `PUT …/config` to the service's change callback running with
  the new config (signed envelope over MQTT, checked, validated into the model), p50/p95/p99;
- start-up from the last-known-good file with the manager down, and from the manager;
- memory: resident set size a client adds to a process (measured in fresh interpreters).

    python clients/python/bench/bench_client.py [--updates 300] [--starts 30] [--stock-broker]

Uses DIALS_BIN (default target/release/dials) like the tests.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from harness import Dials, Mosquitto, TestConfig  # noqa: E402

from dials_client import Client  # noqa: E402

SERVICE = "tts"


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def ms(xs: list[float]) -> str:
    return (
        f"p50 {pct(xs, 50) * 1e3:.2f} ms, p95 {pct(xs, 95) * 1e3:.2f} ms, "
        f"p99 {pct(xs, 99) * 1e3:.2f} ms (n={len(xs)})"
    )


RSS_PROBE = r"""
import sys, pathlib
def rss():
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0
from pydantic import BaseModel, Field
class TestConfig(BaseModel):
    voice: str = Field("default-voice", json_schema_extra={"x-env": "T_VOICE"})
    volume: int = Field(100, ge=0, le=200)
TestConfig.model_validate({})
import time
base = rss()
from dials_client import Client
imported = rss()
t0 = time.perf_counter()
c = Client.start(TestConfig, "tts", server=sys.argv[2], token=sys.argv[3],
                 mqtt=sys.argv[4] or None, public_keys=sys.argv[5], instance="rss", env={},
                 lkg_path=sys.argv[6])
took = time.perf_counter() - t0
if sys.argv[4]:
    c.refresh()
after = rss()
c.close()
print(base, imported, after, took, c.info.origin.value)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--updates", type=int, default=300)
    ap.add_argument("--starts", type=int, default=30)
    ap.add_argument("--stock-broker", action="store_true", help="Mosquitto without set_tcp_nodelay")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "m").mkdir()
        (root / "d").mkdir()
        broker = Mosquitto(root / "m", stock=args.stock_broker)
        dials = Dials(root / "d", broker)
        try:
            run(dials, broker, root, args.updates, args.starts)
        finally:
            dials.stop()
            broker.stop()


def run(dials: Dials, broker: Mosquitto, root: Path, updates: int, starts: int) -> None:
    dials.create(SERVICE, {"voice": "v0", "volume": 0})
    token = dials.service_token(SERVICE)
    options = {
        "server": dials.url,
        "token": token,
        "mqtt": broker.url,
        "public_keys": dials.public_key,
        "lkg_path": root / "tts.lkg",
        "instance": "bench",
        "env": {},
    }
    client = Client.start(TestConfig, SERVICE, **options)  # type: ignore[arg-type]
    arrived: dict[int, float] = {}
    cond = threading.Condition()

    def on_change(old: TestConfig, new: TestConfig) -> None:
        with cond:
            arrived[new.volume] = time.perf_counter()
            cond.notify_all()

    client.on_change(on_change)
    dials.wait_instance(SERVICE, "bench", version=1)
    put_to_callback: list[float] = []
    put_answered: list[float] = []
    for i in range(1, updates + 1):
        volume = i % 199 + 1
        with cond:
            arrived.pop(volume, None)
        t0 = time.perf_counter()
        dials.put(SERVICE, {"voice": f"v{i}", "volume": volume})
        t1 = time.perf_counter()
        with cond:
            while volume not in arrived:
                if not cond.wait(10):
                    raise RuntimeError(f"update {i} did not arrive")
            t2 = arrived[volume]
        put_answered.append(t1 - t0)
        put_to_callback.append(t2 - t0)
    client.close()
    print(f"PUT answered:            {ms(put_answered)}")
    print(f"PUT -> Python callback:  {ms(put_to_callback)}")

    from_manager = []
    for _ in range(starts):
        t0 = time.perf_counter()
        c = Client.start(TestConfig, SERVICE, **options)  # type: ignore[arg-type]
        from_manager.append(time.perf_counter() - t0)
        c.close()
    print(f"start from the manager:  {ms(from_manager)}")

    def probe(mqtt: str) -> list[str]:
        argv = [
            sys.executable,
            "-c",
            RSS_PROBE,
            "",
            dials.url,
            token,
            mqtt,
            dials.public_key,
            str(root / "tts.lkg"),
        ]
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        return out.split()

    base, imported, after, _, _ = probe(broker.url)
    b, i, a = int(base) / 1024, int(imported) / 1024, int(after) / 1024
    print(
        f"memory: {b:.1f} MiB RSS with pydantic and a model; +{i - b:.1f} MiB importing "
        f"dials_client; +{a - i:.1f} MiB more with a client running (total +{a - b:.1f} MiB)"
    )

    dials.stop()
    from_lkg = []
    for _ in range(starts):
        t0 = time.perf_counter()
        c = Client.start(TestConfig, SERVICE, **options)  # type: ignore[arg-type]
        from_lkg.append(time.perf_counter() - t0)
        assert c.info.origin.value == "lkg"
        c.close()
    print(f"start from the LKG file (manager down): {ms(from_lkg)}")
    fresh = []
    for _ in range(max(3, starts // 3)):
        *_, took, origin = probe("")
        assert origin == "lkg", origin
        fresh.append(float(took))
    print(f"first start in a fresh process, from the LKG file: {ms(fresh)}")


if __name__ == "__main__":
    main()
