"""Typed, live, signed configuration for a Python service, from a dials config manager.

Describe the config as a pydantic v2 model (the dials annotations in each field's
`json_schema_extra`), start a `Client`, and read it::

    from pydantic import BaseModel, Field
    from dials_client import Client

    class TtsConfig(BaseModel):
        volume_percent: int = Field(100, ge=0, le=200,
                                    json_schema_extra={"x-env": "VOLUME_PERCENT"})

    dials = Client.start(TtsConfig, "tts-worker", server="http://127.0.0.1:8081",
                         token=token, mqtt="mqtt://127.0.0.1:1883", public_keys=key,
                         lkg_path="/var/lib/tts/dials.lkg")
    volume = dials.get().volume_percent

See the README for the guarantees (the same as the Rust client's) and a migration guide.
"""

from .client import (
    DEFAULT_START_TIMEOUT,
    Client,
    ConfigInfo,
    Origin,
    Subscription,
    Update,
)
from .errors import ClosedError, DialsError, NoConfigError, SettingError
from .rest import ManagerError
from .schema import model_schema
from .wire import SECRET_MASK

__all__ = [
    "DEFAULT_START_TIMEOUT",
    "SECRET_MASK",
    "Client",
    "ClosedError",
    "ConfigInfo",
    "DialsError",
    "ManagerError",
    "NoConfigError",
    "Origin",
    "SettingError",
    "Subscription",
    "Update",
    "model_schema",
]
