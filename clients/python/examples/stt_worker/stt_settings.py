"""The stt-worker's settings as a pydantic model, key for key the demo fleet's
examples/tars/stt-worker.schema.json: what the manager validates and shows."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


def _x(complexity: str, env: str, help: str, restart: bool = False) -> dict[str, object]:
    extra: dict[str, object] = {"x-complexity": complexity}
    if restart:
        extra["x-restart-required"] = True
    extra["x-env"] = env
    extra["x-help"] = help
    return extra


class SttConfig(BaseModel):
    model_config = ConfigDict(
        title="TARS stt-worker settings",
        json_schema_extra={
            "description": "Speech-to-text worker: transcription backend, voice activity "
            "detection and audio capture."
        },
        extra="forbid",
    )

    whisper_model: Literal[
        "tiny",
        "tiny.en",
        "base",
        "base.en",
        "small",
        "small.en",
        "medium",
        "medium.en",
        "large",
        "large-v2",
        "large-v3",
    ] = Field(
        "base.en",
        title="Whisper model",
        description="Size of the Whisper model used for local transcription.",
        json_schema_extra=_x(
            "simple",
            "WHISPER_MODEL",
            restart=True,
            help="Bigger models transcribe better but take longer and use more resources. "
            "The .en variants understand English only; the others cover many languages.",
        ),
    )
    stt_backend: Literal["whisper", "ws", "openai"] = Field(
        "whisper",
        title="Transcription backend",
        description="Where speech gets turned into text.",
        json_schema_extra=_x(
            "simple",
            "STT_BACKEND",
            restart=True,
            help="whisper runs Faster-Whisper inside the worker, ws ships audio to a remote "
            "WebSocket server such as a Jetson or NPU box, and openai calls the hosted OpenAI "
            "API.",
        ),
    )
    ws_url: str | None = Field(
        None,
        title="WebSocket server URL",
        description="Address of the remote transcription server (ws:// or wss://).",
        pattern=r"^wss?://[^\s]+$",
        json_schema_extra={
            "format": "uri",
            **_x(
                "advanced",
                "WS_URL",
                restart=True,
                help="Read only when the backend is ws; null means no remote server is set up.",
            ),
        },
    )
    streaming_partials: bool = Field(
        False,
        title="Partial transcripts",
        description="Publish interim transcripts while the speaker is still talking.",
        json_schema_extra=_x(
            "advanced",
            "STREAMING_PARTIALS",
            help="Feeds live captions in the UI. Leaving it off saves work when a remote "
            "backend does the transcribing.",
        ),
    )
    vad_threshold: float = Field(
        0.5,
        title="Voice detection threshold",
        description="Speech probability above which audio counts as voice (0 to 1).",
        ge=0.0,
        le=1.0,
        json_schema_extra=_x(
            "advanced",
            "VAD_THRESHOLD",
            help="Lower values catch softer speech but also more background noise; higher "
            "values are stricter.",
        ),
    )
    vad_speech_pad_ms: int = Field(
        300,
        title="Speech lead-in padding",
        description="Milliseconds of audio kept from just before speech was detected.",
        ge=0,
        le=1000,
        json_schema_extra=_x(
            "advanced",
            "VAD_SPEECH_PAD_MS",
            help="Stops the first syllable of a sentence from being clipped. Range 0 to 1000 ms.",
        ),
    )
    vad_silence_duration_ms: int = Field(
        500,
        title="End-of-speech silence",
        description="Milliseconds of silence that mark the end of an utterance.",
        ge=0,
        le=2000,
        json_schema_extra=_x(
            "advanced",
            "VAD_SILENCE_DURATION_MS",
            help="Raise it if sentences get cut when you pause mid-thought; lower it for "
            "quicker turn-taking. Range 0 to 2000 ms.",
        ),
    )
    sample_rate: int = Field(
        16000,
        title="Sample rate",
        description="Microphone capture rate in hertz.",
        gt=0,
        json_schema_extra=_x(
            "advanced",
            "SAMPLE_RATE",
            restart=True,
            help="Whisper models work on 16000 Hz audio, which is why that is the default; "
            "capture hardware may offer others such as 48000.",
        ),
    )
    channels: int = Field(
        1,
        title="Audio channels",
        description="Capture channel count: 1 for mono, 2 for stereo.",
        ge=1,
        le=2,
        json_schema_extra=_x(
            "advanced",
            "CHANNELS",
            restart=True,
            help="Whisper consumes mono audio, so 1 suits nearly every setup.",
        ),
    )
