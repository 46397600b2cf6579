"""Fixtures for the live providers: a local HTTP server per test, never a real provider."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.live.server import FakeProvider


@pytest.fixture
def server() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake
