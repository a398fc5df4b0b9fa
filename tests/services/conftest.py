"""The services' own fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.clock import FrozenClock
from services.kezek import Kezek
from storage.db import Database
from tests.support.concurrency import INSTANCES


@pytest.fixture
async def facades(kz: Kezek, db_url: str, clock: FrozenClock) -> AsyncIterator[list[Kezek]]:
    """``kz`` and two more facades, each on a Database (an engine, a pool) of its own: three bot
    instances."""
    others = [Database(db_url) for _ in range(INSTANCES - 1)]
    try:
        yield [kz, *(Kezek(d, clock) for d in others)]
    finally:
        for d in others:
            await d.dispose()
