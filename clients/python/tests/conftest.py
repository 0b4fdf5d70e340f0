"""Fixtures: a fresh Mosquitto and a fresh `dials serve` for each test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Dials, Mosquitto


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    if shutil.which("mosquitto") is None:
        pytest.fail("mosquitto is not installed (scripts/test installs it)")
    folder = tmp_path / "mosquitto"
    folder.mkdir()
    m = Mosquitto(folder)
    yield m
    m.stop()


@pytest.fixture
def dials(tmp_path: Path, broker: Mosquitto) -> Iterator[Dials]:
    folder = tmp_path / "dials"
    folder.mkdir()
    d = Dials(folder, broker)
    yield d
    d.stop()
