"""The stt-worker's settings as they were before dials: module-level names read from the
environment once, at import. Kept to show what `config.py` replaces; nothing imports it."""

from __future__ import annotations

import os

WHISPER_MODEL = os.getenv("WHISPER_MODEL", "base.en")
STT_BACKEND = os.getenv("STT_BACKEND", "whisper")
WS_URL = os.getenv("WS_URL") or None
STREAMING_PARTIALS = os.getenv("STREAMING_PARTIALS", "0").lower() in ("1", "true", "yes")
VAD_THRESHOLD = float(os.getenv("VAD_THRESHOLD", "0.5"))
VAD_SPEECH_PAD_MS = int(os.getenv("VAD_SPEECH_PAD_MS", "300"))
VAD_SILENCE_DURATION_MS = int(os.getenv("VAD_SILENCE_DURATION_MS", "500"))
SAMPLE_RATE = int(os.getenv("SAMPLE_RATE", "16000"))
CHANNELS = int(os.getenv("CHANNELS", "1"))
