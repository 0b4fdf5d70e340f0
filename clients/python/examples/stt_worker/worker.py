"""stt-worker, in the shape of the py-tars workers: asyncio, one MQTT loop, module-level
settings in `config`. A stand-in for speech-to-text: it reads audio frames already scored by
a voice-activity model (`{"id", "speech_prob"}` on `audio/frame`) and publishes the VAD
decision on `stt/vad`, with the model it transcribes with.

    MQTT_URL=mqtt://127.0.0.1:1883 DIALS_TOKEN=… DIALS_PUBLIC_KEY=… \\
      python clients/python/examples/stt_worker/worker.py

Its code reads `config.X` where it uses a setting; see config.py for where they come from.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys

import aiomqtt
import config

log = logging.getLogger("stt-worker")


class Transcriber:
    """Loads the model once: model, backend and audio format take a restart to change."""

    def __init__(self) -> None:
        self.model = config.WHISPER_MODEL
        self.backend = config.STT_BACKEND
        self.sample_rate = config.SAMPLE_RATE
        log.info("transcriber ready: %s on %s at %d Hz", self.model, self.backend, self.sample_rate)


def is_speech(speech_prob: float) -> bool:
    return speech_prob >= config.VAD_THRESHOLD


async def main() -> None:
    transcriber = Transcriber()
    broker = os.environ.get("MQTT_URL", "mqtt://127.0.0.1:1883").removeprefix("mqtt://")
    host, _, port = broker.partition(":")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with aiomqtt.Client(host, int(port or 1883)) as client:
        await client.subscribe("audio/frame", qos=1)
        await client.publish(
            "system/health/stt",
            json.dumps({"ok": True, "event": "ready", "whisper_model": transcriber.model}),
            qos=1,
            retain=True,
        )
        log.info("listening for audio frames")

        async def frames() -> None:
            async for message in client.messages:
                frame = json.loads(bytes(message.payload))
                decision = {
                    "id": frame.get("id"),
                    "speech": is_speech(float(frame["speech_prob"])),
                    "threshold": config.VAD_THRESHOLD,
                    "model": transcriber.model,
                }
                await client.publish("stt/vad", json.dumps(decision), qos=1)

        task = asyncio.create_task(frames())
        await stop.wait()
        task.cancel()


if __name__ == "__main__":
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(main())
