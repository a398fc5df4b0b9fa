"""``kezek bench dispatch`` run tiny: the real Dispatcher fed /status in-process, beside a bare
echo Dispatcher measured before and after it. Checks that every parent got its own card (so the
figure is of the real screen), the figures are there, and a ratio is given only when the echo held
between before and after; no timing asserts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bot.bench import ECHO_TOLERANCE, NO_VERDICT_EXIT
from bot.bench.dispatch import run_dispatch_bench
from tests.support.databases import REDIS_URL


def _check_echo(report: dict[str, Any], line: str, tolerance: float = ECHO_TOLERANCE) -> None:
    """The echo's figure is the cheaper of before and after; a ratio only when they agree."""
    before, after = report["echo_before_ms"], report["echo_after_ms"]
    assert before > 0 and after > 0
    assert report["echo_ms"] == min(before, after)
    assert report["echo_change"] == pytest.approx(max(before, after) / min(before, after) - 1, abs=0.01)
    assert report["echo_moved"] is (report["echo_change"] > tolerance)
    if report["echo_moved"]:
        assert report["ratio"] is None
        assert line.endswith("; no ratio") and f"machine busy: echo moved from {before} to {after} ms" in line
        assert "echo / Kezek" not in line
    else:
        assert report["ratio"] == pytest.approx(report["echo_ms"] / report["kezek_ms"], rel=0.01)
        assert f"echo / Kezek {report['ratio']}" in line and "machine busy" not in line


async def test_dispatch_bench_on_sqlite(tmp_path: Path) -> None:
    lines: list[str] = []
    report = await run_dispatch_bench(parents=40, rounds=2, db_path=str(tmp_path / "d.sqlite3"), out=lines.append)
    assert report["answered"] == 40  # each card names the parent's own application
    assert report["kezek_ms"] > 0
    assert report["database"] == "SQLite" and not report["redis"]
    [line] = lines
    assert "40/40 cards named their application" in line and f"/status {report['kezek_ms']} ms" in line
    _check_echo(report, line)


async def test_dispatch_bench_refuses_a_ratio_when_the_echo_moved(tmp_path: Path) -> None:
    """A tolerance of nothing: two measurements of the echo never agree to the nanosecond."""
    lines: list[str] = []
    report = await run_dispatch_bench(parents=10, rounds=1, db_path=str(tmp_path / "d.sqlite3"), tolerance=-1.0,
                                      out=lines.append)
    assert report["echo_moved"] is True and report["ratio"] is None
    _check_echo(report, lines[0], tolerance=-1.0)


async def test_dispatch_bench_with_redis(db_url: str, redis: tuple[Any, str]) -> None:
    """Through bot.telegram.gate.ChatGate (the throttle counted there: 2 rounds + the warm-up stay under it)."""
    lines: list[str] = []
    report = await run_dispatch_bench(parents=30, rounds=2, db_path=db_url.removeprefix("sqlite:///"),
                                      db_url=None if db_url.startswith("sqlite") else db_url,
                                      redis_url=REDIS_URL, out=lines.append)
    assert report["answered"] == 30 and report["redis"]
    assert "+ Redis" in lines[0]
    _check_echo(report, lines[0])


def test_kezek_bench_dispatch_exits_3_when_the_echo_moved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bot.bench.dispatch
    from bot.bench.cli import bench

    seen: dict[str, Any] = {}

    def fake(moved: bool) -> Any:
        async def run_dispatch_bench(**kwargs: Any) -> dict[str, Any]:
            seen.update(kwargs)
            return {"kezek_ms": 1.0, "echo_ms": 0.3, "echo_moved": moved, "ratio": None if moved else 0.3}
        return run_dispatch_bench

    monkeypatch.setattr(bot.bench.dispatch, "run_dispatch_bench", fake(True))
    out = tmp_path / "d.json"
    result = CliRunner().invoke(bench, ["dispatch", "--json", str(out)])
    assert result.exit_code == NO_VERDICT_EXIT, result.output
    assert seen["tolerance"] == ECHO_TOLERANCE and json.loads(out.read_text())["echo_moved"] is True
    monkeypatch.setattr(bot.bench.dispatch, "run_dispatch_bench", fake(False))
    result = CliRunner().invoke(bench, ["dispatch", "--echo-tolerance", "0.3"])
    assert result.exit_code == 0 and seen["tolerance"] == 0.3
