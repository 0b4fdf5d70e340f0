"""The Python client agrees with the Rust side on every shared test vector
(crates/dials-wire/tests/vectors): canonical forms, envelopes, LKG files, applied reports and
topics."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from dials_client import wire
from dials_client.jcs import canonical, checksum
from dials_client.lkg import LkgContents, LkgError, key_from_token

VECTORS = Path(__file__).resolve().parents[3] / "crates/dials-wire/tests/vectors"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text())
    return data


def ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [v["name"] for v in vectors]


JCS = load("jcs.json")["vectors"]
ENVELOPES = load("envelopes.json")
LKG = load("lkg.json")
REPORTS = load("applied_reports.json")
TOPICS = load("topics.json")


@pytest.mark.parametrize("v", JCS, ids=ids(JCS))
def test_canonical_forms_match_byte_for_byte(v: dict[str, Any]) -> None:
    value = json.loads(v["input"])
    assert canonical(value) == v["canonical"].encode()
    assert checksum(value) == v["sha256"]
    assert hashlib.sha256(canonical(value)).hexdigest() == v["sha256"]


@pytest.mark.parametrize("v", ENVELOPES["vectors"], ids=ids(ENVELOPES["vectors"]))
def test_every_envelope_gets_the_verdict_the_rust_receiver_reaches(v: dict[str, Any]) -> None:
    r = ENVELOPES["receiver"]
    verdict = wire.judge_update(
        v["payload"].encode(),
        service=r["service"],
        epoch=uuid.UUID(r["epoch"]),
        version=r["version"],
        trusted=[wire.parse_public_key(k) for k in r["trusted_public_keys_base64"]],
        now=wire.parse_rfc3339(r["now"]) or dt.datetime.min,
    )
    assert str(verdict) == v["verdict"], verdict.detail
    if v["verdict"] == "apply":
        assert verdict.envelope is not None
        assert verdict.envelope.version == v["applies"]["version"]
        assert verdict.envelope.config == v["applies"]["config"]


def test_key_ids_are_derived_as_the_manager_derives_them() -> None:
    for key in ENVELOPES["keys"].values():
        if isinstance(key, dict) and "public_key_base64" in key:
            assert wire.key_id(wire.parse_public_key(key["public_key_base64"])) == key["key_id"]


def test_without_an_epoch_a_valid_envelope_is_read_over_rest() -> None:
    r = ENVELOPES["receiver"]
    valid = next(v for v in ENVELOPES["vectors"] if v["name"] == "valid")
    verdict = wire.judge_update(
        valid["payload"].encode(),
        service=r["service"],
        epoch=None,
        version=0,
        trusted=[wire.parse_public_key(k) for k in r["trusted_public_keys_base64"]],
        now=wire.parse_rfc3339(r["now"]) or dt.datetime.min,
    )
    assert str(verdict) == "reread:no_epoch_yet"


@pytest.mark.parametrize("v", LKG["vectors"], ids=ids(LKG["vectors"]))
def test_every_lkg_file_is_read_as_the_rust_client_reads_it(v: dict[str, Any]) -> None:
    key = bytes.fromhex(LKG["key"]["key_hex"])
    expect = v["expect"]
    if expect["valid"]:
        c = LkgContents.open(v["file"].encode(), key, LKG["service"])
        assert c.version == expect["version"]
        assert (None if c.epoch is None else str(c.epoch)) == expect["epoch"]
        assert c.config == expect["config"]
    else:
        with pytest.raises(LkgError) as err:
            LkgContents.open(v["file"].encode(), key, LKG["service"])
        assert err.value.code == expect["reason"]


def test_an_lkg_file_sealed_here_is_the_rust_clients_file_byte_for_byte() -> None:
    valid = next(v for v in LKG["vectors"] if v["name"] == "valid")
    obj = json.loads(valid["file"])
    contents = LkgContents(
        service=obj["service"],
        version=obj["version"],
        epoch=uuid.UUID(obj["epoch"]),
        schema_hash=obj["schema_hash"],
        written_at=obj["written_at"],
        config=obj["config"],
    )
    assert contents.seal(bytes.fromhex(LKG["key"]["key_hex"])) == valid["file"].encode()


def test_the_lkg_key_is_derived_from_the_token_as_in_rust() -> None:
    k = LKG["key_from_token"]
    assert key_from_token(k["token"]).hex() == k["key_hex"]


VALID_REPORTS = [v for v in REPORTS["vectors"] if v["expect"]["valid"]]


@pytest.mark.parametrize("v", VALID_REPORTS, ids=ids(VALID_REPORTS))
def test_reports_this_client_sends_read_back_as_the_vectors_record_them(
    v: dict[str, Any],
) -> None:
    rep = v["expect"]["report"]
    payload = wire.applied_report(
        service=rep["service"],
        instance=rep["instance"],
        version=rep["version"],
        status=rep["status"],
        error=rep.get("error"),
        at=rep.get("at"),
        schema_hash=rep.get("schema_hash"),
        overrides=rep.get("overrides"),
    )
    assert json.loads(payload) == rep
    assert len(payload) <= REPORTS["max_payload_bytes"]
    if v["name"] == "full":
        # Field for field the bytes the Rust client sends.
        assert payload == v["payload"].encode()
    prefix_topics = wire.Topics(REPORTS["prefix"])
    assert v["topic"] == prefix_topics.applied(rep["service"], rep["instance"])


def test_instance_names_follow_the_reports_rules() -> None:
    for v in REPORTS["vectors"]:
        instance = v["topic"].split("/")[-1]
        if v["expect"].get("reason") == "bad_instance":
            with pytest.raises(ValueError):
                wire.check_instance(instance)
        elif v["expect"]["valid"]:
            assert wire.check_instance(instance) == instance
        if v["expect"].get("reason") == "bad_service":
            with pytest.raises(ValueError):
                wire.check_service(v["topic"].split("/")[-2])


@pytest.mark.parametrize("b", TOPICS["build"], ids=[b["prefix"] or "none" for b in TOPICS["build"]])
def test_topics_are_named_as_the_manager_names_them(b: dict[str, Any]) -> None:
    t = wire.Topics(b["prefix"])
    assert t.updated("tts-worker") == b["updated"]
    assert t.applied("tts-worker", "pi-kitchen") == b["applied"]
    assert t.health() == b["health"]
