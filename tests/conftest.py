"""Shared fixtures. Real model outputs live in ``shared/data`` beside the repository
(override with ``CALIBKIT_SHARED_DATA``); tests that need them skip when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _shared_data_dir() -> Path:
    env = os.environ.get("CALIBKIT_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = _shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real model outputs not found at {path} (set CALIBKIT_SHARED_DATA)")
    return path
