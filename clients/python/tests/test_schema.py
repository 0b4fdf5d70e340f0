"""From the pydantic model to the registered schema, and from a document to the typed config:
the same rules as the Rust client's `layers.rs`, without a server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness import TestConfig

from dials_client.schema import HeldSecrets, Rejected, ServiceSchema, parse_env
from dials_client.wire import EnvelopeError, verify_envelope

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_the_schema_carries_the_models_bounds_defaults_and_annotations() -> None:
    schema = ServiceSchema(TestConfig).json
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    voice, volume, key = (schema["properties"][k] for k in ("voice", "volume", "api_key"))
    assert (voice["x-env"], voice["default"]) == ("T_VOICE", "default-voice")
    assert (volume["minimum"], volume["maximum"], volume["default"]) == (0, 200, 100)
    assert key["x-secret"] is True and key["type"] == ["string", "null"]
    assert "format" not in key, "pydantic's format: password is not the manager's business"


def test_the_demo_fleets_schemas_are_what_the_example_models_register() -> None:
    import sys

    sys.path[:0] = [str(EXAMPLES), str(EXAMPLES / "stt_worker")]
    from stt_settings import SttConfig
    from tts_config import TtsConfig

    tars = EXAMPLES.parents[2] / "examples/tars"
    for model, name in ((TtsConfig, "tts-worker"), (SttConfig, "stt-worker")):
        ours = ServiceSchema(model).json
        theirs = json.loads((tars / f"{name}.schema.json").read_text())
        assert ours["properties"].keys() == theirs["properties"].keys()
        for key, want in theirs["properties"].items():
            got = dict(ours["properties"][key])
            if want.get("type") == "string" and got.get("type") == ["string", "null"]:
                # An optional secret: null (its default) until it is set.
                got["type"] = "string"
                assert got.pop("default") is None
            assert got == want, key


def test_the_environment_beats_the_manager_and_is_typed_by_the_schema() -> None:
    s = ServiceSchema(TestConfig)
    r = s.resolve({"voice": "bob", "volume": 10}, {"T_VOICE": "42"}.get)
    assert (r.value.voice, r.value.volume, r.overrides) == ("42", 10, ["/voice"])


def test_a_value_that_does_not_fit_is_rejected_with_its_path() -> None:
    s = ServiceSchema(TestConfig)
    with pytest.raises(Rejected, match=r"^/volume: .*200"):
        s.resolve({"volume": 250}, {}.get)
    with pytest.raises(Rejected, match=r"^/volume: "):
        s.resolve({"volume": "10"}, {}.get)  # strict: a string is not an integer


def test_env_strings_parse_as_the_keys_type_or_stay_strings() -> None:
    assert parse_env("5", "integer", False) == 5
    assert parse_env("5.5", "integer", False) == "5.5"
    assert parse_env("true", "boolean", False) is True
    assert parse_env("true", "string", False) == "true"
    assert parse_env('"q"', "string", False) == "q"
    assert parse_env("[1,2]", "array", False) == [1, 2]
    assert parse_env("null", "string", True) is None
    assert parse_env("null", "string", False) == "null"
    assert parse_env("plain", "any", False) == "plain"


def test_held_secrets_fill_the_placeholders_they_know_and_only_those() -> None:
    held = HeldSecrets.from_response(
        {"api_key": "k-5", "mqtt": {"password": "********"}, "voice": "a"},
        {"/api_key": 4, "/mqtt/password": 2},
    )
    assert repr(held) == "['/api_key@4']", "a masked value is not held"
    assert held.fill({"api_key": {"$secret": 4}, "voice": "b"}) == {"api_key": "k-5", "voice": "b"}
    assert held.fill({"api_key": {"$secret": 6}}) is None, "a newer secret"
    assert held.fill({"mqtt": {"password": {"$secret": 2}}}) is None
    assert held.fill({"x": {"$secret": 4, "y": 1}}) is None, "not a placeholder"
    assert held.fill({"voice": "c"}) == {"voice": "c"}


def test_secrets_and_placeholders_stay_off_disk() -> None:
    s = ServiceSchema(TestConfig)
    doc = {"voice": "bob", "api_key": "k", "mqtt": {"host": {"$secret": 1}}}
    assert s.without_secrets(doc) == {"voice": "bob", "mqtt": {}}


def test_a_masked_secret_is_noticed() -> None:
    r = ServiceSchema(TestConfig).resolve({"api_key": "********"}, {}.get)
    assert r.masked == ["/api_key"]


def test_json_the_rust_side_refuses_is_refused_here_too() -> None:
    for payload in (b'{"signature":"x","a":NaN}', b'{"signature":"x","signature":"y"}'):
        with pytest.raises(EnvelopeError) as err:
            verify_envelope(payload, [])
        assert err.value.code == "malformed"
