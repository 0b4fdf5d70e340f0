"""The typed config of the demo fleet's `tts-worker` (examples/tars/tts-worker.schema.json) as
a pydantic model: the schema the client derives from it has the same keys, types, defaults,
ranges, enums and `x-` annotations. `Field(title=…, description=…)` give a key its title and
description, `ge`/`le`/`min_length`/`pattern` the bounds, `Literal` an enum, and
`json_schema_extra` the dials annotations. `log_level` says `x-global`: unless the service's own
document sets it, it takes the value of `/log_level` in the `global` document."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


def dials(
    complexity: Literal["simple", "advanced"],
    env: str,
    help: str,
    *,
    restart: bool = False,
    secret: bool = False,
    global_: str | None = None,
) -> dict[str, object]:
    """The dials annotations of one key."""
    extra: dict[str, object] = {"x-complexity": complexity}
    if restart:
        extra["x-restart-required"] = True
    if secret:
        extra["x-secret"] = True
    extra["x-env"] = env
    if global_ is not None:
        extra["x-global"] = global_
    extra["x-help"] = help
    return extra


class TtsConfig(BaseModel):
    model_config = ConfigDict(
        title="TARS tts-worker settings",
        json_schema_extra={
            "description": "Text-to-speech worker: voice and provider, playback pipeline, "
            "message merging and the phrase cache."
        },
        extra="forbid",
    )

    piper_voice: str = Field(
        "en_US-lessac-medium",
        title="Piper voice",
        description="Stock Piper voice name, or the full path of your own .onnx voice file.",
        min_length=1,
        max_length=200,
        json_schema_extra=dials(
            "simple",
            "PIPER_VOICE",
            restart=True,
            help="A name such as en_US-amy-medium picks a stock voice; a path such as "
            "/voices/TARS.onnx loads your own model.",
        ),
    )
    tts_provider: Literal["piper", "elevenlabs"] = Field(
        "piper",
        title="Speech provider",
        description="Engine that renders replies as audio.",
        json_schema_extra=dials(
            "simple",
            "TTS_PROVIDER",
            restart=True,
            help="piper synthesizes locally, offline and free; elevenlabs uses the hosted "
            "ElevenLabs service and needs an API key plus a voice ID.",
        ),
    )
    tts_streaming: bool = Field(
        False,
        title="Streaming playback",
        description="Start playing audio while it is still being synthesized.",
        json_schema_extra=dials(
            "advanced",
            "TTS_STREAMING",
            help="Shortens the wait before speech but may add audible glitches, so it ships "
            "switched off.",
        ),
    )
    tts_pipeline: bool = Field(
        True,
        title="Sentence pipeline",
        description="Synthesize and play a reply one sentence at a time.",
        json_schema_extra=dials(
            "advanced",
            "TTS_PIPELINE",
            help="The first sentence plays while later ones are still rendering, so speech "
            "begins earlier.",
        ),
    )
    tts_simpleaudio: bool = Field(
        False,
        title="Use simpleaudio",
        description="Play audio in-process with simpleaudio rather than paplay or aplay.",
        json_schema_extra=dials(
            "advanced",
            "TTS_SIMPLEAUDIO",
            help="Can help on hosts where the external players misbehave; the simpleaudio "
            "package is not in the image by default.",
        ),
    )
    tts_concurrency: int = Field(
        1,
        title="Synthesis workers",
        description="Number of sentences that may be synthesized at once (1 to 10).",
        ge=1,
        le=10,
        json_schema_extra=dials(
            "advanced",
            "TTS_CONCURRENCY",
            help="Matters only with the sentence pipeline on. Extra workers finish long "
            "replies sooner at the cost of more processor load.",
        ),
    )
    tts_aggregate_by_utt: bool = Field(
        True,
        title="Group by utterance",
        description="Collect messages sharing an utterance ID before speaking them.",
        json_schema_extra=dials(
            "advanced",
            "TTS_AGGREGATE_BY_UTT",
            help="Keeps the sentences of one reply together and trims the pauses between them.",
        ),
    )
    tts_aggregate_timeout_sec: float = Field(
        2.0,
        title="Grouping timeout",
        description="Seconds to wait for further parts of the same utterance (0.1 to 10).",
        ge=0.1,
        le=10.0,
        json_schema_extra=dials(
            "advanced",
            "TTS_AGGREGATE_TIMEOUT_SEC",
            help="A longer wait gathers more text per synthesis call but delays the start of "
            "speech.",
        ),
    )
    tts_aggregate: bool = Field(
        True,
        title="Merge consecutive messages",
        description="Join back-to-back messages belonging to one utterance into a single text.",
        json_schema_extra=dials(
            "advanced",
            "TTS_AGGREGATE",
            help="The joined text is spoken as one clip, which removes the gaps between sentences.",
        ),
    )
    tts_aggregate_debounce_ms: int = Field(
        150,
        title="Merge debounce",
        description="Milliseconds to hold a message in case more of it arrives.",
        ge=0,
        le=5000,
        json_schema_extra=dials(
            "advanced",
            "TTS_AGGREGATE_DEBOUNCE_MS",
            help="Gives follow-on text a moment to join the same clip. Range 0 to 5000 ms.",
        ),
    )
    tts_aggregate_single_wav: bool = Field(
        True,
        title="One clip for merged text",
        description="Render merged text with a single synthesis call.",
        json_schema_extra=dials(
            "advanced",
            "TTS_AGGREGATE_SINGLE_WAV",
            help="Yields one continuous WAV file instead of several, so nothing is heard "
            "between sentences.",
        ),
    )
    tts_wake_cache_enable: bool = Field(
        True,
        title="Phrase cache",
        description="Keep pre-rendered audio for wake replies and other frequent phrases.",
        json_schema_extra=dials(
            "advanced",
            "TTS_WAKE_CACHE_ENABLE",
            help="Cached clips play instantly and spare repeat calls to a paid provider.",
        ),
    )
    tts_wake_cache_dir: str = Field(
        "data/tts-cache",
        title="Phrase cache directory",
        description="Folder that holds the cached audio clips.",
        min_length=1,
        max_length=500,
        json_schema_extra=dials(
            "advanced",
            "TTS_WAKE_CACHE_DIR",
            restart=True,
            help="Either relative to the worker's working directory or absolute.",
        ),
    )
    tts_wake_cache_max: int = Field(
        16,
        title="Phrase cache size",
        description="Most audio clips the phrase cache keeps (0 to 1000).",
        ge=0,
        le=1000,
        json_schema_extra=dials(
            "advanced",
            "TTS_WAKE_CACHE_MAX",
            help="When full, the least recently used clip goes first; a bigger cache takes "
            "more disk.",
        ),
    )
    volume_percent: int = Field(
        100,
        title="Volume",
        description="Playback volume in percent (0 to 200).",
        ge=0,
        le=200,
        json_schema_extra=dials(
            "simple",
            "VOLUME_PERCENT",
            help="100 plays audio unchanged; above 100 amplifies it and may distort, below 100 "
            "makes it quieter.",
        ),
    )
    eleven_api_base: str = Field(
        "https://api.elevenlabs.io/v1",
        title="ElevenLabs API base URL",
        description="Root URL for requests to ElevenLabs.",
        min_length=1,
        max_length=500,
        pattern=r"^https?://",
        json_schema_extra={
            "format": "uri",
            **dials(
                "advanced",
                "ELEVEN_API_BASE",
                help="Change it only to go through a proxy or a compatible service. The "
                "scheme has to be http or https.",
            ),
        },
    )
    eleven_api_key: SecretStr | None = Field(
        None,
        title="ElevenLabs API key",
        description="Credential for your ElevenLabs account.",
        max_length=500,
        json_schema_extra=dials(
            "simple",
            "ELEVEN_API_KEY",
            secret=True,
            help="Needed only with the elevenlabs provider. Stored encrypted and masked in "
            "every listing.",
        ),
    )
    eleven_voice_id: str = Field(
        "",
        title="ElevenLabs voice ID",
        description="Which ElevenLabs voice speaks the replies, given by its ID.",
        max_length=200,
        json_schema_extra=dials(
            "advanced",
            "ELEVEN_VOICE_ID",
            help="Copy it from your ElevenLabs voice library; the elevenlabs provider cannot "
            "speak without it.",
        ),
    )
    eleven_model_id: str = Field(
        "eleven_multilingual_v2",
        title="ElevenLabs model",
        description="ElevenLabs synthesis model to request.",
        min_length=1,
        max_length=100,
        json_schema_extra=dials(
            "advanced",
            "ELEVEN_MODEL_ID",
            help="eleven_multilingual_v2 handles many languages; eleven_monolingual_v1 "
            "(English only) and eleven_turbo_v2 are alternatives.",
        ),
    )
    eleven_optimize_streaming: int = Field(
        0,
        title="ElevenLabs latency optimization",
        description="How hard ElevenLabs trades quality for speed, from 0 (not at all) to 3 "
        "(most).",
        ge=0,
        le=3,
        json_schema_extra=dials(
            "advanced",
            "ELEVEN_OPTIMIZE_STREAMING",
            help="Higher levels get audio out sooner but can cost some quality.",
        ),
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO",
        title="Log level",
        description="Lowest severity the worker writes to its log.",
        json_schema_extra=dials(
            "advanced",
            "LOG_LEVEL",
            global_="/log_level",
            help="Taken from the fleet's global log level unless set here, so one change in "
            "global reaches every worker; set it here to make this worker chattier or quieter "
            "than the rest.",
        ),
    )
