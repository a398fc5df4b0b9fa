"""What a move of the sandbox clock did, in the operator's words: the console's ``!advance`` and
``!sweep`` and the command ``kezek sandbox clock`` say it the same way."""

from __future__ import annotations

import datetime as dt
from typing import Any

from locales import N_, gettext
from locales.formats import format_datetime, format_number, parse_moment

# What the sweeps and the sandbox clock report (bot.sandbox.clock.move_clock, Kezek.run_sweeps).
DONE_LABELS: dict[str, str] = {
    "offers_expired": N_("offers expired"),
    "offers_made": N_("offers made"),
    "no_show": N_("referrals annulled: not taken to the kindergarten in time"),
    "docs_missed": N_("referrals annulled: privilege documents not brought in time"),
    "stoplists_ended": N_("stop-lists ended"),
    "reminders": N_("reminders sent"),
    "moves_announced": N_("queue moves announced"),
    "staff_digests": N_("morning digests for kindergarten staff"),
}


def done_text(lang: str, done: dict[str, Any]) -> str:
    """One sweep's results: ``offers made: 2; reminders sent: 5`` (empty when nothing happened)."""
    parts = []
    for key, value in done.items():
        if key in ("at", "snapshot_rows") or not value:  # the nightly snapshot is bookkeeping
            continue
        label = DONE_LABELS.get(key)
        parts.append(f"{gettext(lang, label) if label else key}: {format_number(lang, value)}")
    return "; ".join(parts)


def moved_lines(lang: str, now: dt.datetime, moved: dict[str, Any]) -> list[str]:
    """The clock's new moment, then each moment where something fell due and what did."""
    lines = [gettext(lang, "The sandbox clock is now at {moment}.", moment=format_datetime(lang, now))]
    for step in moved.get("sweeps", []):
        at = parse_moment(step.get("at"))
        what = done_text(lang, step)
        if what:
            lines.append(f"  {format_datetime(lang, at, 'short') if at else step.get('at')}: {what}")
    if len(lines) == 1:
        lines.append(gettext(lang, "Nothing fell due."))
    return lines
