"""The memory benchmark (``bot.bench.memory``), run tiny: 2,000 applications on SQLite. Checks every
operation ran in its own child that exited cleanly, loaded what production runs it in (a whole
``kezek run`` process, aiogram included; ``kezek import`` for the import) before its baseline, did
its work, and reported its baseline, peak and time (no size or timing thresholds: those are the
benchmark's figures, not a test's)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bot.bench import CHECKOUT
from bot.bench.memory import OPS, format_table, run_memory_bench

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")


async def test_memory_bench_tiny(tmp_path: Path) -> None:
    lines: list[str] = []
    report = await run_memory_bench([2_000], db_path=str(tmp_path / "memory.sqlite3"),
                                    workdir=str(tmp_path / "work"), out=lines.append)

    assert report["all_exited_cleanly"] is True
    (run,) = report["runs"]
    assert run["applications"] == 2_000 and run["backend"] == "SQLite"
    seed = run["seed"]
    for key in ("seed_s", "bulk_s", "state_s"):
        assert seed[key] > 0, key
    assert seed["referrals_overdue"] > 0 and seed["offers_expiring"] > 0
    assert seed["deep_queue_number"] == seed["largest_queue"]  # the last of the largest queue
    assert run["db_size_seeded_mb"] > 0 and run["db_size_end_mb"] >= run["db_size_seeded_mb"]

    assert list(run["ops"]) == list(OPS)
    for op, figures in run["ops"].items():
        assert figures["exit_code"] == 0, (op, figures.get("log_tail"))
        for key in ("peak_rss_mb", "peak_anon_mb", "peak_file_mb", "baseline_rss_mb", "baseline_anon_mb",
                    "seconds", "wall_s"):
            assert figures[key] > 0, (op, key, figures)
        # peak = baseline + the operation's growth; the baseline is after the process was loaded
        assert figures["peak_rss_mb"] >= figures["baseline_rss_mb"] > figures["rss_start_mb"], (op, figures)
        assert figures["growth_mb"] == pytest.approx(figures["peak_rss_mb"] - figures["baseline_rss_mb"], abs=0.11)
        assert Path(figures["code"]) == CHECKOUT, op  # this checkout's code, not an installed kezek's

    # What each child had loaded at its baseline: the operations of `kezek run` a whole bot process
    # (aiogram, the webhook and API servers, the scheduler); the import the `kezek` command alone.
    for op in OPS:
        figures = run["ops"][op]
        if op == "import":
            assert figures["process"] == "kezek import"
            assert figures["loaded"]["aiogram"] is False and figures["loaded"]["sqlalchemy"] is True
        else:
            assert figures["process"] == "kezek run", op
            assert all(figures["loaded"].values()), (op, figures["loaded"])
    # The bot process weighs more than the bare command it was measured without before.
    assert run["ops"]["status"]["baseline_rss_mb"] > run["ops"]["import"]["baseline_rss_mb"]

    # Each operation did its work on the seeded database.
    results = {op: f["result"] for op, f in run["ops"].items()}
    assert results["startup"]["routers"] > 0
    assert results["status"]["queue_number"] == seed["deep_queue_number"]
    assert results["snapshot"]["rows"] > 0
    assert results["sweep"]["offers_expired"] == seed["offers_expiring"]
    # every overdue referral is annulled: privileged ones with documents still due by the same
    # deadline for the documents (RULES.md, "Privilege documents"), the others as no-shows
    assert results["sweep"]["no_show"] + results["sweep"]["docs_missed"] == seed["referrals_overdue"]
    assert results["route"]["routed"] > 0
    assert results["import"]["rows"] == 10_000

    table = format_table(report["runs"])
    assert table[0].startswith("| operation |") and "baseline" in table[0]
    assert len(table) == 2 + len(OPS) + 2
    status = run["ops"]["status"]
    peak = f"**{status['peak_rss_mb']:,.1f}** = {status['baseline_rss_mb']:,.1f} + "
    assert any(line.startswith("| status:") and peak in line for line in table)
    assert any(line.startswith("  sweep") and "kezek run +" in line for line in lines)
