"""Layers against the real manager and a real Mosquitto: a change to `global` reaches the
clients whose model takes the key and no other; an instance's override reaches that instance
only, and its removal drops it; what the reports say; the override vectors; LKG files that
keep every layer."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from harness import Dials, TestConfig
from pydantic import BaseModel, Field
from test_live import Recorder, start
from test_vectors import VECTORS, ids, load

from dials_client import Client, Origin, model_schema, wire
from dials_client.lkg import LkgContents, LkgError, LkgFile, LkgLayer, LkgLayers

OVERRIDES = load("overrides.json")


class GlobalConfig(BaseModel):
    """A model that takes its log level from `global`."""

    voice: str = Field("default-voice", description="What it says.")
    log_level: str = Field(
        "info", description="How much it logs.", json_schema_extra={"x-global": "/log/level"}
    )


def put_global(dials: Dials, config: dict[str, Any]) -> int:
    r = dials.http.put(
        "/api/v1/services/global/config", json={"config": config}, headers={"If-None-Match": "*"}
    )
    assert r.is_success, r.text
    version: int = r.json()["version"]
    return version


def override_url(service: str, instance: str) -> str:
    return f"/api/v1/services/{service}/instances/{instance}/config"


def test_x_global_is_put_in_the_registered_schema() -> None:
    schema = model_schema(GlobalConfig)
    assert schema["properties"]["log_level"]["x-global"] == "/log/level"
    assert "x-global" not in schema["properties"]["voice"]


def test_a_change_to_global_reaches_the_client_whose_model_takes_the_key_only(
    dials: Dials, tmp_path: Path
) -> None:
    dials.create("tts", {"voice": "amy"})
    dials.create("stt", {"voice": "bob", "volume": 10})
    taker = Client.start(
        GlobalConfig,
        "tts",
        server=dials.url,
        token=dials.service_token("tts"),
        mqtt=dials.broker.url if dials.broker else None,
        public_keys=[dials.public_key],
        lkg_path=tmp_path / "tts.lkg",
        instance="pi-kitchen",
        env={},
    )
    other = Client.start(
        TestConfig,
        "stt",
        server=dials.url,
        token=dials.service_token("stt"),
        mqtt=dials.broker.url if dials.broker else None,
        public_keys=[dials.public_key],
        lkg_path=tmp_path / "stt.lkg",
        instance="pi-kitchen",
        env={},
    )
    try:
        taking, watching = Recorder(taker), Recorder(other)
        before = dials.wait_instance("tts", "pi-kitchen", version=1, status="applied")
        dials.wait_instance("stt", "pi-kitchen", version=1, status="applied")
        assert taker.get().log_level == "info"

        version = put_global(dials, {"log": {"level": "debug"}, "unrelated": 1})
        new = taking.next()
        assert (new.voice, new.log_level) == ("amy", "debug")
        shown = dials.wait_instance(
            "tts", "pi-kitchen", version=1, status="applied", global_version=version
        )
        assert shown["layers"] == {"/log_level": "global"}
        assert before.get("global_version") != version
        # The service's own document still wins over global.
        dials.put("tts", {"voice": "amy", "log_level": "warn"})
        assert taking.next().log_level == "warn"

        # The other service never hears of it.
        time.sleep(1)
        assert watching.empty()
        assert other.get().volume == 10
        seen = dials.wait_instance("stt", "pi-kitchen", version=1, status="applied")
        assert seen.get("global_version") is None
    finally:
        taker.close()
        other.close()

    # The LKG file keeps global: a start while the manager is away merges it again.
    dials.put("tts", {"voice": "amy"})
    restarted = Client.start(
        GlobalConfig,
        "tts",
        server="http://127.0.0.1:9",
        token=dials.service_token("tts"),
        public_keys=[dials.public_key],
        lkg_path=tmp_path / "tts.lkg",
        instance="pi-kitchen",
        env={},
        start_timeout=1,
    )
    try:
        assert restarted.info.origin is Origin.LKG
        assert restarted.get().log_level == "warn"
    finally:
        restarted.close()


def test_an_override_reaches_only_its_instance_and_its_removal_drops_it(
    dials: Dials, tmp_path: Path
) -> None:
    dials.create("tts", {"voice": "amy", "volume": 10})
    kitchen = start(dials, tmp_path, instance="pi-kitchen", lkg_path=tmp_path / "k.lkg")
    hall = start(dials, tmp_path, instance="pi-hall", lkg_path=tmp_path / "h.lkg")
    try:
        in_kitchen, in_hall = Recorder(kitchen), Recorder(hall)
        dials.wait_instance("tts", "pi-kitchen", version=1, status="applied")
        dials.wait_instance("tts", "pi-hall", version=1, status="applied")

        r = dials.http.put(override_url("tts", "pi-kitchen"), json={"config": {"volume": 120}})
        assert r.is_success, r.text
        new = in_kitchen.next()
        assert (new.voice, new.volume) == ("amy", 120)
        shown = dials.wait_instance("tts", "pi-kitchen", override_version=1)
        assert shown["layers"] == {"/volume": "instance"}
        assert shown["version"] == 1 and shown["status"] == "applied"

        # A change of the service's document keeps the override on top.
        dials.put("tts", {"voice": "bob", "volume": 20})
        new = in_kitchen.next()
        assert (new.voice, new.volume) == ("bob", 120)
        assert in_hall.next().volume == 20
        time.sleep(1)
        assert in_hall.empty()
        assert hall.get().volume == 20

        # Removed: the instance runs with the service's document again.
        r = dials.http.delete(override_url("tts", "pi-kitchen"))
        assert r.is_success, r.text
        assert in_kitchen.next().volume == 20
        shown = dials.wait_instance("tts", "pi-kitchen", override_version=0)
        assert shown["layers"] == {}
        assert in_hall.empty()
    finally:
        kitchen.close()
        hall.close()


def test_an_override_set_before_the_start_is_read_over_rest(dials: Dials, tmp_path: Path) -> None:
    dials.create("tts", {"voice": "amy", "volume": 10})
    r = dials.http.put(override_url("tts", "pi-kitchen"), json={"config": {"voice": "zoe"}})
    assert r.is_success, r.text
    client = start(dials, tmp_path)
    try:
        assert (client.get().voice, client.get().volume) == ("zoe", 10)
        shown = dials.wait_instance("tts", "pi-kitchen", version=1, override_version=1)
        assert shown["layers"] == {"/voice": "instance"}
    finally:
        client.close()


@pytest.mark.parametrize("v", OVERRIDES["vectors"], ids=ids(OVERRIDES["vectors"]))
def test_every_override_envelope_gets_the_verdict_the_rust_receiver_reaches(
    v: dict[str, Any],
) -> None:
    r = OVERRIDES["receiver"]
    trusted = [wire.parse_public_key(k) for k in r["trusted_public_keys_base64"]]
    now = wire.parse_rfc3339(r["now"]) or dt.datetime.min

    def judge(service: str) -> wire.Verdict:
        return wire.judge_update(
            v["payload"].encode(),
            service=service,
            epoch=uuid.UUID(r["epoch"]),
            version=r["version"],
            trusted=trusted,
            now=now,
        )

    verdict = judge(r["service"])
    assert str(verdict) == v["verdict"], verdict.detail
    assert str(judge(r["service"].split("/")[0])) == v["verdict_as_service_envelope"]
    if v["verdict"] == "apply":
        assert verdict.envelope is not None
        assert verdict.envelope.version == v["applies"]["version"]
        assert verdict.envelope.config == v["applies"]["config"]


@pytest.mark.parametrize(
    "t", OVERRIDES["topics"], ids=[t["prefix"] or "none" for t in OVERRIDES["topics"]]
)
def test_override_topics_are_named_as_the_manager_names_them(t: dict[str, Any]) -> None:
    topics = wire.Topics(t["prefix"])
    assert topics.override("tts-worker", "pi-kitchen") == t["instance_override"]
    assert topics.updated("tts-worker") == t["envelope_of_service"]


def test_an_lkg_file_keeps_every_layer_under_its_mac(tmp_path: Path) -> None:
    layers = LkgLayers(
        global_=LkgLayer(4, {"log": {"level": "debug"}}), instance=LkgLayer(2, {"gain": 3})
    )
    f = LkgFile(tmp_path / "svc.lkg", b"k")
    f.store("svc", 3, None, "h", {"a": 1}, layers)
    text = f.path.read_text()
    obj = json.loads(text)
    assert obj["layers"] == {
        "global": {"version": 4, "config": {"log": {"level": "debug"}}},
        "instance": {"version": 2, "config": {"gain": 3}},
    }
    back = f.load("svc")
    assert (back.config, back.layers) == ({"a": 1}, layers)
    # Only one layer: the other is left out, as the Rust client writes it.
    f.store("svc", 3, None, "h", {"a": 1}, LkgLayers(instance=LkgLayer(2, {"gain": 3})))
    assert json.loads(f.path.read_text())["layers"] == {
        "instance": {"version": 2, "config": {"gain": 3}}
    }
    # Altered, or with a member the format does not have: refused.
    f.path.write_text(text.replace('"gain":3', '"gain":4'))
    with pytest.raises(LkgError) as err:
        f.load("svc")
    assert err.value.code == "bad_mac"
    f.path.write_text(text.replace('"instance":{', '"instance":{"extra":1,'))
    with pytest.raises(LkgError) as err:
        f.load("svc")
    assert err.value.code == "malformed"


def test_an_lkg_file_without_layers_still_loads() -> None:
    lkg = load("lkg.json")
    valid = next(v for v in lkg["vectors"] if v["name"] == "valid")
    c = LkgContents.open(valid["file"].encode(), bytes.fromhex(lkg["key"]["key_hex"]), "tts-worker")
    assert c.layers is None and c.version == 7
    assert VECTORS.exists()


class Mqtt(BaseModel):
    host: str = Field("localhost", json_schema_extra={"x-global": True})
    port: int = Field(1883, json_schema_extra={"x-global": "/broker/port"})


class Merged(BaseModel):
    mqtt: Mqtt = Mqtt()
    level: str = Field("info", json_schema_extra={"x-global": "/log/level"})
    gain: float = 1.0


def test_each_layer_wins_over_the_ones_below_and_each_key_names_its_layer() -> None:
    # The same case as dials-schema's layers tests.
    from dials_client.schema import ServiceSchema

    schema = ServiceSchema(Merged)
    global_ = {
        "mqtt": {"host": "broker.lan"},
        "broker": {"port": 8883},
        "log": {"level": "debug"},
        "unrelated": 1,
        "gain": 9.0,
    }
    merged, layers = schema.merge(global_, {"level": "warn", "gain": 2.0}, {"gain": 3.5})
    assert merged == {"mqtt": {"host": "broker.lan", "port": 8883}, "level": "warn", "gain": 3.5}
    assert layers == {"/gain": "instance", "/mqtt/host": "global", "/mqtt/port": "global"}
    # A key not taken from global ignores it; a masked or placeholder value counts as absent.
    merged, layers = schema.merge({"gain": 9.0, "log": {"level": "********"}}, {}, None)
    assert (merged, layers) == ({}, {})
    # An object set by a higher layer replaces the lower layers' keys below it.
    merged, layers = schema.merge(global_, {}, {"mqtt": {"host": "pi"}})
    assert merged["mqtt"] == {"host": "pi", "port": 8883}
    assert layers == {"/mqtt/host": "instance", "/mqtt/port": "global", "/level": "global"}
