"""`kezek sandbox clock`: the test clock of a `kezek demo` database, read or moved forward from a
second terminal (the bot, the API and every other command on that database follow it)."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

import click

from bot.cli.base import State, cli, pass_state
from bot.config import get_settings
from bot.sandbox.report import moved_lines
from bot.sandbox.terminal import parse_duration
from locales.formats import format_datetime
from services.kezek import Kezek


@cli.group()
def sandbox() -> None:
    """The sandbox that `kezek demo` makes: its test clock."""


@sandbox.command("clock")
@click.option("--advance", default=None, metavar="DURATION",
              help="Move the clock forward by this much: 3h, 1d, 2h30m or PT3H (at most 366 days). Every "
                   "sweep, reminder and digest that falls due in between runs at its own moment.")
@pass_state
def sandbox_clock(state: State, advance: str | None) -> None:
    """Where the sandbox clock stands, or (with --advance) move it forward."""
    from bot.sandbox.clock import MAX_MOVE, move_clock, stored_offset
    from services.clock import SandboxClock

    delta = None
    if advance is not None:
        delta = parse_duration(advance)
        if delta is None:
            raise click.BadParameter(state.t("Not a duration: {value}. For example: PT3H, 1d, 2h30m.",
                                             value=advance[:40]), param_hint="--advance")
        if delta > MAX_MOVE:
            raise click.BadParameter(state.t("The sandbox clock moves at most {days} days at once.",
                                             days=MAX_MOVE.days), param_hint="--advance")
    settings = get_settings()

    async def work(kz: Kezek) -> tuple[dt.datetime, dict[str, Any]] | None:
        offset = await stored_offset(kz.db)
        if offset is None:
            return None
        clock = SandboxClock.at_offset(offset)  # (the database's clock, whatever --now says)
        if delta is None:
            return clock.now(), {}
        moved = await move_clock(state.kezek(kz.db, clock), clock, advance=delta,
                                 snapshot_hour=settings.snapshot_hour, digest_hour=settings.digest_hour)
        return clock.now(), moved

    found = state.run(work)
    if found is None:
        click.echo(state.t("This database is not a sandbox (kezek demo makes one): it runs on real time."),
                   err=True)
        sys.exit(2)
    now, moved = found
    if delta is None:
        click.echo(state.t("Sandbox time: {moment}.", moment=format_datetime(state.lang, now, zone="local")))
        return
    for line in moved_lines(state.lang, now, moved):
        click.echo(line)
