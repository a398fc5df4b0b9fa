"""The ``kezek`` group and what every command shares (``State``: the database URL, language and
clock; ``pass_state``). The ``kezek`` command: the operator's and the registry's way into the same services.

Every message goes through the ru/kk catalogs (``--lang`` or KEZEK_LANG); domain errors are
rendered by ``locales.errors.error_text`` and a bad input changes nothing (exit code 1)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from bot import logsafe
from bot.config import get_settings
from locales import gettext
from locales.errors import error_lines
from locales.formats import format_datetime
from services.clock import Clock, FrozenClock, SandboxClock, SystemClock
from services.errors import KezekError
from services.kezek import Kezek
from storage.db import Database
from storage.private_files import private_sqlite, sqlite_file

T = TypeVar("T")


class State:
    def __init__(self, url: str, lang: str, now: dt.datetime | None, signing_key: bytes | None = None,
                 documents_dir: Path | None = None, previous_signing_keys: tuple[bytes, ...] = (),
                 public_url: str = "") -> None:
        self.url, self.lang = url, lang
        self.now = now  # --now: wins over a sandbox's clock
        self.clock: Clock = FrozenClock(now) if now else SystemClock()
        self.sandbox: SandboxClock | None = None  # the clock of a sandbox's database (use_sandbox_clock)
        self._clock_checked = now is not None
        self.signing_key = signing_key  # KEZEK_SIGNING_KEY; None: the database's key
        self.previous_signing_keys = previous_signing_keys  # KEZEK_SIGNING_KEY_PREVIOUS
        self.documents_dir = documents_dir  # KEZEK_DOCUMENTS_DIR
        self.public_url = public_url  # KEZEK_PUBLIC_URL

    def kezek(self, db: Database, clock: Clock | None = None) -> Kezek:
        from services.doc_storage import FolderDocumentStore

        store = FolderDocumentStore(self.documents_dir) if self.documents_dir is not None else None
        return Kezek(db, clock or self.clock, signing_key=self.signing_key,
                     previous_signing_keys=self.previous_signing_keys, document_store=store,
                     public_url=self.public_url)

    def t(self, msgid: str, **params: Any) -> str:
        return gettext(self.lang, msgid, **params)

    async def use_sandbox_clock(self, db: Database) -> None:
        """On a sandbox's database (``kezek demo``) every command runs on the sandbox's clock, kept
        in the database (bot.sandbox.clock), not on real time; ``--now`` still wins. Said on stderr."""
        if self._clock_checked:
            return
        self._clock_checked = True
        from bot.sandbox.clock import stored_offset

        offset = await stored_offset(db)
        if offset is None:  # a production database: real time
            return
        self.clock = self.sandbox = SandboxClock.at_offset(offset)
        click.echo(self.t("A sandbox database: this command runs on its clock, {moment}.",
                          moment=format_datetime(self.lang, self.clock.now(), zone="local")), err=True)

    def run(self, work: Callable[[Kezek], Awaitable[T]], first_row: int = 1) -> T:
        """Run one service call; a domain error is printed localized and exits with 1.

        ``first_row`` is the number a bulk report shows for row 0 (2 for a CSV with a header)."""

        from bot.cli.operator_errors import check_url

        check_url(self.url, may_create=False)  # (not an empty SQLite file made by reading it)

        async def go() -> T:
            db = Database(self.url)
            try:
                await self.use_sandbox_clock(db)
                return await work(self.kezek(db))
            finally:
                await db.dispose()

        try:
            return asyncio.run(go())
        except KezekError as exc:
            for line in error_lines(self.lang, exc, first_row=first_row):
                click.echo(line, err=True)
            if self.sandbox is not None and exc.code == "outside_claim_window":
                from bot.sandbox.clock import window_hint

                click.echo(window_hint(self.lang, exc, self.sandbox.now()), err=True)
            sys.exit(1)


pass_state = click.make_pass_decorator(State)


class KezekGroup(click.Group):
    """The ``kezek`` group: an operator's mistake (a wrong setting, a database that cannot be used
    as it is, a bot token Telegram refuses) ends in one localized line, never a traceback
    (bot/cli/operator_errors.py); anything else keeps its traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        from bot.cli.operator_errors import OperatorError, database_error, lang_of

        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            state = ctx.obj if isinstance(ctx.obj, State) else None
            line = exc if isinstance(exc, OperatorError) else (database_error(exc, state.url) if state else None)
            if line is None:
                raise
            click.echo(line.text(state.lang if state else lang_of(ctx.params.get("lang"))), err=True)
            ctx.exit(line.code)


def _parse_now(_ctx: click.Context, _param: click.Parameter, value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("ISO 8601, e.g. 2026-09-07T10:00:00+05:00") from None
    if moment.tzinfo is None:
        raise click.BadParameter("needs a UTC offset, e.g. +05:00")
    return moment


@click.group(cls=KezekGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", "url", envvar="KEZEK_DATABASE_URL", default=None,
              help="Database URL (default: KEZEK_DATABASE_URL or sqlite:///data/kezek.sqlite3).")
@click.option("--lang", type=click.Choice(["ru", "kk"]), default=None, help="Language of the output.")
@click.option("--now", callback=_parse_now, default=None,
              help="Pretend the current moment is this (ISO 8601 with offset): for sandboxes and drills.")
@click.pass_context
def cli(ctx: click.Context, url: str | None, lang: str | None, now: dt.datetime | None) -> None:
    """Kezek: the electronic kindergarten queue service."""
    from pydantic import ValidationError

    from bot.cli.operator_errors import check_url, lang_of, settings_errors

    try:
        settings = get_settings()
    except ValidationError as exc:  # one line per wrong setting, not pydantic's report
        for line in settings_errors(exc):
            click.echo(line.text(lang_of(lang)), err=True)
        ctx.exit(2)
    url = url or settings.database_url
    check_url(url, may_create=True)  # a URL Kezek cannot use: one line, no file made
    # Personal data on disk is the owner's only (storage/private_files.py): the SQLite file 0600
    # before Alembic or SQLite opens it, and whatever else this process writes (a referral's PDF,
    # a document, the console demo's files) without group or other permissions.
    umask = os.umask(0o077)
    os.umask(umask | 0o077)
    ctx.call_on_close(lambda: os.umask(umask))  # (the CLI run in-process by tests)
    path = sqlite_file(url)
    if path is not None and path.exists():  # (a new file is made 0600 by `db upgrade`, storage/migrate.py)
        private_sqlite(url)
    logsafe.protect([logging.lastResort] if logging.lastResort else [])  # (what commands log unconfigured)
    ctx.obj = State(url, lang or settings.lang, now, settings.signing_key_bytes(), settings.documents_dir,
                    settings.previous_signing_keys(), settings.public_url)
