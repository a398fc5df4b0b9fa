"""`kezek db`, `kezek import`, `kezek applications`: the registry's input."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from bot.cli.base import State, cli, pass_state
from services.kezek import Kezek

# --- database ------------------------------------------------------------------------------------

@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@pass_state
def db_upgrade(state: State) -> None:
    """Apply all Alembic migrations."""
    from storage.migrate import upgrade

    upgrade(state.url)
    click.echo(state.t("The database schema is up to date."))


# --- registry input ------------------------------------------------------------------------------

def read_rows(path: Path, state: State, kind: str) -> list[dict[str, Any]]:
    """The rows of a CSV (as Excel makes it) or JSON file (bot/cli/rows.py); a file that cannot be
    imported is answered in one or a few localized lines, exit 1, nothing written."""
    from bot.cli import rows

    try:
        return rows.read_rows(path, kind, state.lang)
    except rows.FileRejected as exc:
        for line in exc.lines:
            click.echo(line, err=True)
        sys.exit(1)


@cli.command("import")
@click.argument("kind", type=click.Choice(["profiles", "districts", "kindergartens", "applications"]))
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_state
def import_(state: State, kind: str, file: Path) -> None:
    """Upsert reference data or applications from a CSV or JSON FILE (all or nothing).

    A CSV's first line names the columns; a JSON file is an array of objects with these keys.
    The columns of each KIND, required ones first, optional ones in brackets:

    \b
    profiles: code [name, window_open, window_close, twins_together,
      offer_windows, showup_working_days, stoplist_working_days,
      removal_on_annulment, docs_working_days, docs_calendar_days,
      private_min_age_years, interleave_general_per_first].
    districts: code, name_ru, name_kk [profile].
    kindergartens: code, district, name_ru, name_kk [address, kind, languages].
    applications: number, child_iin, child_name, birth_date, district,
      submitted_at, phone, email [language, preferred_kindergartens,
      privilege, twin_group].

    Dates as 2023-03-15, moments with their offset (2024-01-01T09:00:00+05:00)."""
    from bot.cli.rows import Progress, Reporting

    rows = read_rows(file, state, kind)
    first_row = 2 if file.suffix.lower() == ".csv" else 1  # CSV: line 1 is the header

    # A progress bar on stderr for a large file on a terminal (bot/cli/rows.py): applications while they
    # are written (checked first: nothing is written unless every row is good), the other kinds
    # while their rows are checked.
    bar = Progress(len(rows), state.t("Importing"), sys.stderr)
    try:
        if kind == "applications":
            report = state.run(lambda kz: kz.import_applications(rows, progress=bar.update), first_row=first_row)
            done = state.t("Applications: {created} new, {updated} updated, {unchanged} unchanged.",
                           created=report.created, updated=report.updated, unchanged=report.unchanged)
        else:
            call = {"profiles": Kezek.upsert_profiles, "districts": Kezek.upsert_districts,
                    "kindergartens": Kezek.upsert_kindergartens}[kind]
            done = state.t("Saved: {count}.", count=state.run(lambda kz: call(kz, Reporting(rows, bar)),
                                                               first_row=first_row))
    finally:
        bar.finish()
    click.echo(done)


@cli.group()
def applications() -> None:
    """Applications."""


@applications.command("withdraw")
@click.argument("application")
@pass_state
def applications_withdraw(state: State, application: str) -> None:
    """The registry withdraws a waiting APPLICATION: it leaves the queue; an offered seat moves on."""
    state.run(lambda kz: kz.withdraw_application(application, actor="cli"))
    click.echo(state.t("Application {number} is withdrawn from the queue.", number=application))
