"""echo_service: a stand-in for the demo fleet's `tts-worker` that prints its config; the
Python twin of the Rust example `echo-service`.

It starts a dials client for its typed `TtsConfig` and prints one JSON line
`{"version": N, "config": {...}}` to stdout each time a config is applied, the first one
included; secrets print as "********". `version` is the service document's; the config is
every layer merged, so a change to `global`'s `log_level` (the one key the model takes from
`global`) or to this instance's override prints a new line with the same version and the new
value. Logs go to stderr (DIALS_LOG=debug for more).

With DIALS_UNTYPED=1 it echoes any service (DIALS_SERVICE) without a model: the document as
the manager's layers merge it, keys in the manager's order. It registers no schema and takes
nothing from `global`. It cannot know which keys are secret, so a service's own token prints
them in clear: point it at a service without secrets, or give it a viewer's token, which reads
them masked.

    DIALS_SERVER=http://127.0.0.1:8081 DIALS_TOKEN=$(cat dials-data/admin.token) \\
    DIALS_MQTT_URL=mqtt://127.0.0.1:1883 \\
    DIALS_PUBLIC_KEY=$(curl -s http://127.0.0.1:8081/api/v1/keys | jq -r .public_key) \\
    DIALS_LKG_PATH=/tmp/tts-worker.lkg DIALS_INSTANCE=pi-kitchen \\
      python clients/python/examples/echo_service.py

| variable | what | default |
|---|---|---|
| DIALS_SERVER | the manager's URL | http://127.0.0.1:8081 |
| DIALS_TOKEN | the service's token | required |
| DIALS_MQTT_URL | the broker (mqtt://host:port) | none: REST only |
| DIALS_MQTT_PREFIX | the manager's topic prefix | empty |
| DIALS_PUBLIC_KEY | the manager's public key (two, comma-separated, in a rotation) | with MQTT |
| DIALS_LKG_PATH | the last-known-good file | none |
| DIALS_SERVICE | the service name | tts-worker |
| DIALS_INSTANCE | the instance name | the host name |
| DIALS_ALLOW_DEFAULTS | 1: may start from the schema defaults | off |
| DIALS_UNTYPED | 1: echo the service's document without the tts-worker model | off |
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pydantic import BaseModel, ConfigDict, SecretStr
from tts_config import TtsConfig

from dials_client import SECRET_MASK, Client, DialsError


def var(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


class AnyDocument(BaseModel):
    """Any object, as DIALS_UNTYPED=1 echoes it: every key is an extra, kept in its order."""

    model_config = ConfigDict(extra="allow")


def emit(version: int, config: BaseModel) -> None:
    if isinstance(config, AnyDocument):
        shown = config.model_dump(mode="json")
    else:
        shown = config.model_dump(mode="json", exclude_none=True)
        for key, value in config:
            if isinstance(value, SecretStr):
                shown[key] = SECRET_MASK
    # Compact and UTF-8, as the Rust echo-service prints it: the twins' lines are identical.
    line = json.dumps(
        {"version": version, "config": shown}, separators=(",", ":"), ensure_ascii=False
    )
    print(line, flush=True)


def main() -> int:
    logging.basicConfig(
        stream=sys.stderr,
        level=(var("DIALS_LOG") or "info").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    untyped = var("DIALS_UNTYPED") == "1"
    model: type[BaseModel] = AnyDocument if untyped else TtsConfig
    try:
        dials = Client.start(
            model,
            var("DIALS_SERVICE") or "tts-worker",
            server=var("DIALS_SERVER") or "http://127.0.0.1:8081",
            token=var("DIALS_TOKEN") or "",
            mqtt=var("DIALS_MQTT_URL"),
            mqtt_prefix=var("DIALS_MQTT_PREFIX") or "",
            public_keys=var("DIALS_PUBLIC_KEY") or "",
            lkg_path=var("DIALS_LKG_PATH"),
            instance=var("DIALS_INSTANCE"),
            allow_defaults=var("DIALS_ALLOW_DEFAULTS") == "1",
            # Any object: a schema of its own would replace the service's, so none is registered.
            register_schema=not untyped,
        )
    except DialsError as e:
        print(f"echo_service: {e}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    updates = dials.subscribe()
    emit(dials.info.version, dials.get())
    while not stop.is_set():
        try:
            update = updates.get(timeout=0.2)
        except TimeoutError:
            continue
        emit(update.version, update.config)
    dials.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
