"""The stt-worker's settings: the same module-level names as before (`config.VAD_THRESHOLD`,
`config.WHISPER_MODEL`, …), now from dials instead of the environment. This file is the
whole migration; the worker's code is unchanged.

- Every name is the upper-case name of a field of `SttConfig` and reads the config in force,
  so `config.VAD_THRESHOLD` follows a change made in the manager within milliseconds.
- Keys marked `x-restart-required` keep the value the process started with: a change to them
  is reported (a warning in the log and `restart_required` on the worker's health topic,
  retained) and takes effect at the next start.
- The environment variables the worker used before still win over the manager (`x-env`).

The dials client is set up from DIALS_SERVER, DIALS_TOKEN, DIALS_MQTT_URL, DIALS_PUBLIC_KEY,
DIALS_LKG_PATH, DIALS_INSTANCE and DIALS_ALLOW_DEFAULTS (as the echo service's).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
from typing import Any

import paho.mqtt.publish
from stt_settings import SttConfig

from dials_client import Client

log = logging.getLogger("stt-worker.config")


def _var(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None


dials = Client.start(
    SttConfig,
    _var("DIALS_SERVICE") or "stt-worker",
    server=_var("DIALS_SERVER") or "http://127.0.0.1:8081",
    token=_var("DIALS_TOKEN") or "",
    mqtt=_var("DIALS_MQTT_URL"),
    public_keys=_var("DIALS_PUBLIC_KEY") or "",
    lkg_path=_var("DIALS_LKG_PATH"),
    instance=_var("DIALS_INSTANCE"),
    allow_defaults=_var("DIALS_ALLOW_DEFAULTS") == "1",
)

_AT_START = dials.get()
_RESTART = {
    name
    for name, field in SttConfig.model_fields.items()
    if isinstance(field.json_schema_extra, dict)
    and field.json_schema_extra.get("x-restart-required") is True
}
HEALTH_TOPIC = "system/health/stt"


def __getattr__(name: str) -> Any:
    field = name.lower()
    if name.isupper() and field in SttConfig.model_fields:
        source = _AT_START if field in _RESTART else dials.get()
        return getattr(source, field)
    raise AttributeError(f"module 'config' has no attribute {name!r}")


def _report_restart(old: SttConfig, new: SttConfig) -> None:
    keys = sorted(f"/{f}" for f in _RESTART if getattr(new, f) != getattr(_AT_START, f))
    if not keys:
        return
    log.warning("restart required for %s: the worker keeps its start values until then", keys)
    broker = os.environ.get("MQTT_URL", "mqtt://127.0.0.1:1883").removeprefix("mqtt://")
    host, _, port = broker.partition(":")
    body = {"ok": True, "event": "restart_required", "restart_required": keys}
    try:
        paho.mqtt.publish.single(
            HEALTH_TOPIC,
            json.dumps(body),
            qos=1,
            retain=True,
            hostname=host,
            port=int(port or 1883),
        )
    except OSError as e:  # the report is best effort; the config itself is applied
        log.warning("cannot publish the restart notice: %s", e)


dials.on_change(_report_restart)
atexit.register(dials.close)
