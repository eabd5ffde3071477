"""Shared fixtures: every test's actors are stopped afterwards (pykka leaves threads otherwise)."""
from __future__ import annotations

import pykka
import pytest


@pytest.fixture(autouse=True)
def stop_all_actors():
    yield
    pykka.ActorRegistry.stop_all(block=True, timeout=10)
