"""Inside the services, a bulk load checks its rows in turns of the event loop (the bot and the API
answer while a big import is being checked), and a load with many bad rows keeps the first of them
and a count instead of one error object per row (bounded memory, whatever the size of the file).
Both backends: the checks run before anything is written."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import services.parsing as parsing
import services.queue as queue_module
from services import registry
from services.errors import MAX_REPORTED_ERRORS, BulkRejected
from services.kezek import Kezek
from tests.support.world import World

ROWS = 2_000
TURN = 50  # rows checked between two turns of the event loop (services.parsing.IN_TURNS)


async def rows_between_turns(load: Awaitable[Any], parsed: list[int]) -> int:
    """Run ``load`` beside a task that yields to the loop again and again; the largest number of
    rows checked between two of its turns."""
    seen: list[int] = []
    done = False

    async def ticker() -> None:
        while not done:
            seen.append(parsed[0])
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    try:
        with contextlib.suppress(BulkRejected):
            await load
    finally:
        done = True
        await task
    seen.append(parsed[0])
    assert seen[-1] >= ROWS, f"only {seen[-1]} rows were checked"
    return max(b - a for a, b in zip(seen, seen[1:], strict=False))


def counting(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[int]:
    parsed = [0]
    original = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        parsed[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return parsed


async def test_an_application_import_lets_the_loop_turn(world: World, kz: Kezek,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = counting(monkeypatch, queue_module, "parse_application")
    rows = [world.row(f"T{n:05d}") for n in range(ROWS)]
    assert await rows_between_turns(kz.import_applications(rows), parsed) <= 2 * TURN


LOADS: dict[str, Callable[[Kezek, list[dict[str, Any]]], Awaitable[Any]]] = {
    "districts": lambda kz, rows: kz.upsert_districts(rows),
    "kindergartens": lambda kz, rows: kz.upsert_kindergartens(rows),
}


@pytest.mark.parametrize("kind", list(LOADS))
async def test_a_directory_load_lets_the_loop_turn(world: World, kz: Kezek, kind: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = counting(monkeypatch, parsing, "code")  # every row has a code
    rows = [{"code": f"C{n}", "district": "ALM-BOS", "name_ru": "Имя", "name_kk": "Аты"} for n in range(ROWS)]
    # (a code read is one or two per row: the bound is on rows, so halve what was counted)
    assert await rows_between_turns(LOADS[kind](kz, rows), parsed) <= 4 * TURN


async def test_many_bad_rows_keep_the_first_and_a_count(world: World, kz: Kezek) -> None:
    good = world.row("GOOD1")
    bad = [{**world.row(f"B{n:05d}"), "child_iin": "123"} for n in range(5_000)]
    with pytest.raises(BulkRejected) as caught:
        await kz.import_applications([good, *bad])
    exc = caught.value
    assert exc.params["count"] == 5_000
    assert [index for index, _ in exc.errors] == list(range(1, MAX_REPORTED_ERRORS + 1))
    with pytest.raises(BulkRejected) as caught:
        await kz.upsert_districts([{"code": "", "name_ru": "x", "name_kk": "x"}] * 3_000)
    assert caught.value.params["count"] == 3_000 and len(caught.value.errors) == MAX_REPORTED_ERRORS
    with pytest.raises(BulkRejected) as caught:
        async with kz.unit("registry") as ctx:
            days = [{"day": (dt.date(2026, 1, 1) + dt.timedelta(days=n % 300)).isoformat(), "working": "maybe"}
                    for n in range(600)]
            await registry.set_calendar_days(ctx, days)
    assert caught.value.params["count"] == 600 and len(caught.value.errors) == MAX_REPORTED_ERRORS
