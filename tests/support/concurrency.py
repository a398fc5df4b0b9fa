"""Requests of one chat arriving at once, spread over several facades (bot instances on databases of
their own: separate connections, no shared Python lock). The ``facades`` fixture is in
tests/services/conftest.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from services.kezek import Kezek

INSTANCES = 3


async def burst(facades: list[Kezek], calls: list[Callable[[Kezek], Awaitable[Any]]]) -> list[Any]:
    """All the calls at once, round-robin over the facades; their results or exceptions, in order."""
    return await asyncio.gather(*(call(facades[i % len(facades)]) for i, call in enumerate(calls)),
                                return_exceptions=True)


def kinds(results: list[Any]) -> dict[str, int]:
    """How many results of each type (an answer's class, or an exception's)."""
    out: dict[str, int] = {}
    for r in results:
        name = type(r).__name__
        out[name] = out.get(name, 0) + 1
    return out
