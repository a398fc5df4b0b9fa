"""``kezek bench``: the benchmarks (figures, not tests). This package is not in the wheel: the
command exists in a checkout only (``bot.cli.main`` registers it when ``bot.bench`` imports). Method
and figures: BENCHMARKS.md."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click

from bot.bench import ECHO_TOLERANCE, NO_VERDICT_EXIT


@click.group()
def bench() -> None:
    """Benchmarks (figures, not tests)."""


@bench.command("queue")
@click.option("--applications", type=int, default=1_000_000, show_default=True, help="Waiting applications loaded.")
@click.option("--seats", "seat_count", type=int, default=10_000, show_default=True, help="Seats published.")
@click.option("--reads", type=int, default=2_000, show_default=True, help="Queue-number reads timed.")
@click.option("--seats-per-publication", type=int, default=10, show_default=True,
              help="Seats per publish call (a kindergarten group is 20-25).")
@click.option("--db-path", default="/tmp/kezek-bench.sqlite3", show_default=True,
              help="The benchmark's own SQLite file (emptied first).")
def bench_queue(applications: int, seat_count: int, reads: int, seats_per_publication: int, db_path: str) -> None:
    """Load N waiting applications, time queue-number reads and publishing seats (SQLite)."""
    from bot.bench.queue import run_queue_bench

    asyncio.run(run_queue_bench(db_path, applications=applications, seats=seat_count, reads=reads,
                                seats_per_publication=seats_per_publication, out=click.echo))


@bench.command("outbox")
@click.option("--alerts", type=int, default=10_000, show_default=True,
              help="Alerts paced to Telegram's limits (30/s: 10,000 take about 6 minutes; 0 skips).")
@click.option("--raw-alerts", type=int, default=10_000, show_default=True, help="Alerts with the limits lifted.")
@click.option("--concurrency", type=int, default=8, show_default=True, help="Sends in flight, paced.")
@click.option("--raw-concurrency", type=int, default=32, show_default=True, help="Sends in flight, unlimited.")
@click.option("--db-path", default="/tmp/kezek-bench-outbox.sqlite3", show_default=True,
              help="The benchmark's own SQLite file (emptied first).")
@click.option("--postgres", "pg_url", default=None, metavar="URL",
              help="Use this PostgreSQL database instead (its tables are emptied).")
def bench_outbox(alerts: int, raw_alerts: int, concurrency: int, raw_concurrency: int, db_path: str,
                 pg_url: str | None) -> None:
    """Fan out "your turn" alerts to a Bot API stand-in that enforces 30 messages/s (the sustained
    rate and the 429s), then with the limits lifted (Kezek's own throughput)."""
    from bot.bench.outbox import run_outbox_bench

    asyncio.run(run_outbox_bench(db_path, alerts=alerts, raw_alerts=raw_alerts, concurrency=concurrency,
                                 raw_concurrency=raw_concurrency, db_url=pg_url, out=click.echo))


@bench.command("load")
@click.option("--parents", type=int, default=2_000, show_default=True,
              help="Simulated parents, each linked to its own application.")
@click.option("--instances", type=int, default=2, show_default=True, help="`kezek run` processes in webhook mode.")
@click.option("--concurrency", type=int, default=64, show_default=True,
              help="Parents in flight at once (1: unloaded latency).")
@click.option("--menu-rounds", type=int, default=1, show_default=True,
              help="Rounds of the four menu presses per parent (0 skips).")
@click.option("--db-path", default="/tmp/kezek-bench-load.sqlite3", show_default=True,
              help="The benchmark's own SQLite file (emptied first).")
@click.option("--postgres", "pg_url", default=None, metavar="URL",
              help="Use this PostgreSQL database instead (its tables are emptied).")
@click.option("--redis", "redis_url", default=None, metavar="URL",
              help="Redis for the instances (FSM, event isolation, throttle).")
@click.option("--echo/--no-echo", default=True, show_default=True,
              help="Also measure a bare aiogram echo bot (the framework's ceiling).")
@click.option("--timeout", type=float, default=15.0, show_default=True, help="Seconds to wait for one reply.")
@click.option("--log-dir", default=None, help="Where the processes' logs go (default: a new temporary folder).")
@click.option("--profile", is_flag=True,
              help="Run the Kezek instances under cProfile (kezek-N.prof in the log folder).")
@click.option("--echo-tolerance", type=float, default=ECHO_TOLERANCE, show_default=True,
              help="How far the echo measured before and after Kezek may differ (rate or CPU per update) "
                   "for a verdict; more: 'machine busy', no verdict, exit status 3.")
@click.option("--json", "json_path", default=None, metavar="FILE", help="Also write the figures here.")
def bench_load(parents: int, instances: int, concurrency: int, menu_rounds: int, db_path: str, pg_url: str | None,
               redis_url: str | None, echo: bool, timeout: float, log_dir: str | None, profile: bool,
               echo_tolerance: float, json_path: str | None) -> None:
    """N parents sending /status and menu presses as webhook updates to K `kezek run` instances
    (Bot API stand-in on loopback): the bot's CPU per update, updates per second and p50/p95/p99
    from update to reply; the same against a bare aiogram echo bot (Kezek's HTTP session) before and
    after Kezek's phases. When the echo moved between the two, the machine was busy: no verdict,
    exit status 3."""
    from bot.bench.load import run_load_bench

    report = asyncio.run(run_load_bench(parents=parents, instances=instances, concurrency=concurrency,
                                        menu_rounds=menu_rounds, db_path=db_path, db_url=pg_url,
                                        redis_url=redis_url, echo=echo, timeout=timeout, log_dir=log_dir,
                                        profile=profile, echo_tolerance=echo_tolerance, out=click.echo))
    if json_path:
        Path(json_path).write_text(json.dumps(report, indent=2))
    if report.get("verdict") == "no verdict":
        sys.exit(NO_VERDICT_EXIT)


@bench.command("dispatch")
@click.option("--parents", type=int, default=2_000, show_default=True,
              help="Linked parents, one /status each per round.")
@click.option("--rounds", type=int, default=5, show_default=True, help="Rounds over all parents; the best counts.")
@click.option("--db-path", default="/tmp/kezek-bench-dispatch.sqlite3", show_default=True,
              help="The benchmark's own SQLite file (emptied first).")
@click.option("--postgres", "pg_url", default=None, metavar="URL",
              help="Use this PostgreSQL database instead (its tables are emptied).")
@click.option("--redis", "redis_url", default=None, metavar="URL",
              help="Redis for the FSM, the chat locks and the throttle.")
@click.option("--echo-tolerance", type=float, default=ECHO_TOLERANCE, show_default=True,
              help="How far the echo measured before and after Kezek may differ for a ratio; more: "
                   "'machine busy', no ratio, exit status 3.")
@click.option("--json", "json_path", default=None, metavar="FILE", help="Also write the figures here.")
def bench_dispatch(parents: int, rounds: int, db_path: str, pg_url: str | None, redis_url: str | None,
                   echo_tolerance: float, json_path: str | None) -> None:
    """The CPU one /status costs inside the bot: the real Dispatcher fed in-process with a Bot
    session that answers at once (no HTTP), against a bare aiogram echo Dispatcher measured before
    and after it."""
    from bot.bench.dispatch import run_dispatch_bench

    report = asyncio.run(run_dispatch_bench(parents=parents, rounds=rounds, db_path=db_path, db_url=pg_url,
                                            redis_url=redis_url, tolerance=echo_tolerance, out=click.echo))
    if json_path:
        Path(json_path).write_text(json.dumps(report, indent=2))
    if report["echo_moved"]:
        sys.exit(NO_VERDICT_EXIT)


@bench.command("memory")
@click.option("--applications", "sizes", type=int, multiple=True, default=(1_000_000,), show_default=True,
              help="Applications in the database; repeat to compare sizes (--applications 100000 "
                   "--applications 1000000).")
@click.option("--db", "--db-path", "db_path", default="/tmp/kezek-bench-memory.sqlite3", show_default=True,
              help="SQLite file (recreated).")
@click.option("--postgres", "pg_url", default=None, metavar="URL",
              help="Use this PostgreSQL database instead (created if missing; its tables are emptied).")
@click.option("--json", "json_path", default=None, metavar="FILE", help="Also write the figures here.")
def bench_memory(sizes: tuple[int, ...], db_path: str, pg_url: str | None, json_path: str | None) -> None:
    """Peak resident memory of a fresh process per operation (start-up, /status deep in a big queue,
    nightly snapshot, sweep, outbox routing of a fan-out, digest, CSV import) over a database of N
    applications, and the database's size: to show memory does not grow with N. Each process first
    loads what production runs the operation in (a whole `kezek run`; `kezek import` for the
    import): the baseline, then the operation's growth above it."""
    from bot.bench.memory import run_memory_bench

    report = asyncio.run(run_memory_bench(sizes, db_path=db_path, pg_url=pg_url, out=click.echo))
    if json_path:
        Path(json_path).write_text(json.dumps(report, indent=2, default=str))
    if not report["all_exited_cleanly"]:
        sys.exit(1)


MODERATE = 8  # parents in flight in bench scale's moderate-load runs


@bench.command("scale")
@click.option("--parents", type=int, default=2_000, show_default=True, help="Simulated parents of the load runs.")
@click.option("--instances", type=int, default=2, show_default=True, help="`kezek run` processes in webhook mode.")
@click.option("--applications", type=int, default=1_000_000, show_default=True,
              help="Applications of the memory run (0 skips it).")
@click.option("--postgres", "pg_url", default=None, metavar="URL",
              help="Also run on this PostgreSQL database (its tables are emptied).")
@click.option("--redis", "redis_url", default=None, metavar="URL", help="Redis for the PostgreSQL runs' instances.")
@click.option("--json", "json_path", default=None, metavar="FILE", help="Also write every figure here.")
def bench_scale(parents: int, instances: int, applications: int, pg_url: str | None, redis_url: str | None,
                json_path: str | None) -> None:
    """The scale figures of BENCHMARKS.md in one run: the load (/status, menu, claims and the echo ceiling; 64
    parents in flight), a moderate load (8 in flight: the latency a parent sees while the instances
    keep up) and the unloaded service time (one in flight) on SQLite and, with
    --postgres, on PostgreSQL (+ Redis), then the peak memory per operation over --applications
    applications. Ends with the summary table of BENCHMARKS.md."""
    from bot.bench.load import run_load_bench
    from bot.bench.memory import run_memory_bench

    async def all_runs() -> dict[str, Any]:
        runs: dict[str, Any] = {}
        backends = [("sqlite", None, None)] + ([("postgresql", pg_url, redis_url)] if pg_url else [])
        for name, url, redis in backends:
            click.echo(f"== load on {name} ==")
            runs[f"load_{name}"] = await run_load_bench(parents=parents, instances=instances, db_url=url,
                                                        redis_url=redis, out=click.echo)
            click.echo(f"== moderate load ({MODERATE} in flight) on {name} ==")
            runs[f"moderate_{name}"] = await run_load_bench(parents=parents, instances=instances,
                                                            concurrency=MODERATE, menu_rounds=0, claim_share=0,
                                                            db_url=url, redis_url=redis, out=click.echo)
            click.echo(f"== unloaded (one in flight) on {name} ==")
            runs[f"unloaded_{name}"] = await run_load_bench(parents=min(parents, 500), instances=1, concurrency=1,
                                                            menu_rounds=0, claim_share=0, echo=True,
                                                            db_url=url, redis_url=redis, out=click.echo)
        if applications:
            click.echo(f"== memory, {applications:,} applications ==")
            runs["memory"] = await run_memory_bench((applications,), pg_url=pg_url, out=click.echo)
        return runs

    runs = asyncio.run(all_runs())
    click.echo("== summary ==")
    for line in scale_summary(runs):
        click.echo(line)
    if json_path:
        Path(json_path).write_text(json.dumps(runs, indent=2, default=str))
    ok = all(r.get("all_answered", True) for k, r in runs.items() if k != "memory")
    if "memory" in runs:
        ok = ok and runs["memory"]["all_exited_cleanly"]
    if not ok:
        sys.exit(1)
    if any(r.get("verdict") == "no verdict" for k, r in runs.items() if k != "memory"):
        sys.exit(NO_VERDICT_EXIT)


def scale_summary(runs: dict[str, Any]) -> list[str]:
    """The summary table of ``kezek bench scale``: one row per load run, the bot's CPU per /status
    first; a run whose echo moved between before and after says "machine busy" and has no ratio."""
    lines = [("| run | bot CPU ms per /status (echo) | /status updates/s | p50 / p95 / p99 ms | "
              "echo updates/s, before → after | ratio | verdict |"),
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for key, report in runs.items():
        if not key.startswith(("load_", "moderate_", "unloaded_")):
            continue
        st = report["phases"]["status"]
        echo, ceiling = report.get("echo", {}), report.get("echo_ceiling", {})
        verdict = report.get("verdict", "—")
        busy = verdict == "no verdict"
        lines.append(f"| {key} | {st['bot_cpu_ms_per_update']} ({ceiling.get('bot_cpu_ms_per_update')}) | "
                     f"{st['updates_per_second']} | {st['p50_ms']} / {st['p95_ms']} / {st['p99_ms']} | "
                     f"{echo.get('rate_before')} → {echo.get('rate_after')} | "
                     f"{'—' if busy else report.get('status_vs_echo')} | "
                     f"{'machine busy: no verdict' if busy else verdict} |")
    return lines
