"""The load benchmark (``bot.bench.load``), run tiny: 30 parents, one ``kezek run`` instance in webhook
mode on SQLite, the echo bot beside it; 7 of the parents (a quarter) claim the seat offered to them.
Checks the figures are there, every update was answered, and the claims left one referral each in
the database (no timing asserts: the machine's load decides those)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bot.bench.load import format_table, run_load_bench

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


async def test_load_bench_tiny(tmp_path: Path) -> None:
    lines: list[str] = []
    report = await run_load_bench(parents=30, instances=1, concurrency=8, db_path=str(tmp_path / "load.sqlite3"),
                                  log_dir=str(tmp_path / "logs"), timeout=20.0, out=lines.append)

    phases = report["phases"]
    assert set(phases) == {"status", "menu", "claim", "echo"}
    assert report["claimers"] == 7
    expected = {"status": 30, "menu": 30 * 4, "claim": 7 * 3, "echo": 30}
    for name, figures in phases.items():
        assert figures["updates"] == expected[name], name
        assert figures["answered"] == figures["updates"], (name, figures)
        assert figures["unanswered"] == 0 and figures["non_200"] == 0 and figures["errors"] == 0
        assert figures["skipped"] == 0, (name, figures)
        assert figures["updates_per_second"] > 0
        assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"] <= figures["max_ms"]
    assert set(phases["menu"]["by_kind"]) == {"status", "seats", "settings", "help"}
    # The claim flow: three presses per claiming parent, each step timed; every confirm answered
    # "Referral issued", and the database agrees: one referral per claiming parent, no seat twice.
    claim = phases["claim"]
    assert {kind: k["n"] for kind, k in claim["by_kind"].items()} == {"seats": 7, "preview": 7, "confirm": 7}
    for k in claim["by_kind"].values():
        assert 0 < k["p50_ms"] <= k["p95_ms"] <= k["p99_ms"] <= k["max_ms"]
    assert claim["issued_replies"] == 7
    check = report["claim_check"]
    assert check == {"claimers": 7, "linked_applications": 7, "with_one_referral": 7, "without_referral": 0,
                     "with_several_referrals": 0, "referred": 7, "referrals": 7, "seats_taken": 7,
                     "seats_with_two_referrals": 0, "ok": True}
    assert report["all_answered"] is True
    assert report["extra_replies"] == 0
    assert report["status_vs_echo"] > 0 and isinstance(report["goal_met"], bool)
    # The table was printed, and every process it started has stopped (the logs end with the stop).
    assert any(line.startswith("| status |") for line in lines)
    assert any(line.startswith("| claim: confirm | 7 |") for line in lines)
    assert any(line.startswith("claim check (database): 7/7") and line.endswith(": ok") for line in lines)
    assert format_table(report)[0].startswith("| phase |")
    log = (tmp_path / "logs" / "kezek-1.log").read_text()
    assert "the bot has stopped" in log
