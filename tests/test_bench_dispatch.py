"""``kezek bench dispatch`` run tiny: the real Dispatcher fed /status in-process, beside a bare
echo Dispatcher. Checks that every parent got its own card (so the figure is of the real screen)
and the figures are there; no timing asserts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.bench.dispatch import run_dispatch_bench
from tests.conftest import REDIS_URL


async def test_dispatch_bench_on_sqlite(tmp_path: Path) -> None:
    lines: list[str] = []
    report = await run_dispatch_bench(parents=40, rounds=2, db_path=str(tmp_path / "d.sqlite3"), out=lines.append)
    assert report["answered"] == 40  # each card names the parent's own application
    assert report["kezek_ms"] > 0 and report["echo_ms"] > 0 and report["ratio"] > 0
    assert report["database"] == "SQLite" and not report["redis"]
    [line] = lines
    assert "40/40 cards named their application" in line and f"/status {report['kezek_ms']} ms" in line


async def test_dispatch_bench_with_redis(db_url: str, redis: tuple[Any, str]) -> None:
    """Through bot.telegram.gate.ChatGate (the throttle counted there: 2 rounds + the warm-up stay under it)."""
    lines: list[str] = []
    report = await run_dispatch_bench(parents=30, rounds=2, db_path=db_url.removeprefix("sqlite:///"),
                                      db_url=None if db_url.startswith("sqlite") else db_url,
                                      redis_url=REDIS_URL, out=lines.append)
    assert report["answered"] == 30 and report["redis"]
    assert "+ Redis" in lines[0]
