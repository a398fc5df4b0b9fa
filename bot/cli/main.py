"""The ``kezek`` command: the operator's and the registry's way into the same services.

Every message goes through the ru/kk catalogs (``--lang`` or KEZEK_LANG); domain errors are
rendered by ``locales.errors.error_text`` and a bad input changes nothing (exit code 1)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from bot import logsafe
from bot.config import Settings, get_settings
from locales import gettext, ngettext
from locales.errors import error_lines, error_text
from locales.formats import format_date, format_datetime, format_deadline, format_size
from locales.names import cause_text, document_status_text, document_type_text, privilege_text, status_text
from services.clock import Clock, FrozenClock, SandboxClock, SystemClock
from services.documents import REJECTION_REASONS
from services.errors import KezekError
from services.kezek import Kezek
from storage.db import Database
from storage.private_files import private_sqlite, sqlite_file
from storage.vocab import DocumentStatus

T = TypeVar("T")


class State:
    def __init__(self, url: str, lang: str, now: dt.datetime | None, signing_key: bytes | None = None,
                 documents_dir: Path | None = None, previous_signing_keys: tuple[bytes, ...] = ()) -> None:
        self.url, self.lang = url, lang
        self.now = now  # --now: wins over a sandbox's clock
        self.clock: Clock = FrozenClock(now) if now else SystemClock()
        self.sandbox: SandboxClock | None = None  # the clock of a sandbox's database (use_sandbox_clock)
        self._clock_checked = now is not None
        self.signing_key = signing_key  # KEZEK_SIGNING_KEY; None: the database's key
        self.previous_signing_keys = previous_signing_keys  # KEZEK_SIGNING_KEY_PREVIOUS
        self.documents_dir = documents_dir  # KEZEK_DOCUMENTS_DIR

    def kezek(self, db: Database, clock: Clock | None = None) -> Kezek:
        from services.doc_storage import FolderDocumentStore

        store = FolderDocumentStore(self.documents_dir) if self.documents_dir is not None else None
        return Kezek(db, clock or self.clock, signing_key=self.signing_key,
                     previous_signing_keys=self.previous_signing_keys, document_store=store)

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
                    settings.previous_signing_keys())


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
            result = state.run(lambda kz: kz.import_applications(rows, progress=bar.update), first_row=first_row)
        else:
            call = {"profiles": Kezek.upsert_profiles, "districts": Kezek.upsert_districts,
                    "kindergartens": Kezek.upsert_kindergartens}[kind]
            result = state.run(lambda kz: call(kz, Reporting(rows, bar)), first_row=first_row)
    finally:
        bar.finish()
    if kind == "applications":
        click.echo(state.t("Applications: {created} new, {updated} updated, {unchanged} unchanged.",
                           created=result.created, updated=result.updated, unchanged=result.unchanged))
    else:
        click.echo(state.t("Saved: {count}.", count=result))


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


# --- seats, claims, referrals --------------------------------------------------------------------

@cli.group()
def seats() -> None:
    """Free seats."""


@seats.command("publish")
@click.option("--kindergarten", required=True, help="Kindergarten code.")
@click.option("--birth-year", required=True, type=int,
              help="Birth year of the group's children (e.g. 2022): the seats go to applications of that year.")
@click.option("--language", required=True, type=click.Choice(["ru", "kk"]), help="Group language.")
@click.option("--count", required=True, type=int, help="How many seats (1-500).")
@pass_state
def seats_publish(state: State, kindergarten: str, birth_year: int, language: str, count: int) -> None:
    """Publish free seats; each is offered at once to the first in the queue."""
    result = state.run(lambda kz: kz.publish_seats(
        {"kindergarten": kindergarten, "birth_year": birth_year, "language": language, "count": count},
        actor="cli"))
    click.echo(state.t("Published seats: {ids}.", ids=", ".join(map(str, result.seat_ids))))
    if result.private:
        click.echo(state.t("A private kindergarten under the state order: the seats are open to every "
                           "waiting child aged 3 or older in the district."))
    for offer_id, seat_id, number in result.offers:
        click.echo(state.t("Seat {seat} offered to application {number} (offer {offer}).",
                           seat=seat_id, number=number, offer=offer_id))
    if not result.private and len(result.offers) < len(result.seat_ids):
        click.echo(state.t("Seats without an eligible application now: {count}.",
                           count=len(result.seat_ids) - len(result.offers)))


@seats.command("list")
@click.argument("application")
@pass_state
def seats_list(state: State, application: str) -> None:
    """Seats the APPLICATION may claim: offered to it, open to its birth year, state-order."""
    found = state.run(lambda kz: kz.available_seats(application))
    if not found:
        click.echo(state.t("No seats are open to this application now."))
    for item in found:
        name = item.kindergarten.name_kk if state.lang == "kk" else item.kindergarten.name_ru
        line = state.t("Seat {seat}: {kindergarten}, group {year}/{language}.", seat=item.seat.id,
                       kindergarten=name, year=item.seat.birth_year, language=item.seat.language)
        if item.expires_at:
            line += " " + state.t("Offered to you until {until}.",
                                  until=format_datetime(state.lang, item.expires_at, zone="local"))
        click.echo(line)


@cli.command("claim")
@click.argument("application")
@click.argument("seat", type=int)
@click.option("--confirm", "confirmed_by", default=None, metavar="WHO",
              help="Confirm the claim on behalf of the verified parent WHO (logged). Without it: a preview.")
@pass_state
def claim_cmd(state: State, application: str, seat: int, confirmed_by: str | None) -> None:
    """Preview, or with --confirm take, SEAT for APPLICATION: issues the referral."""
    if not confirmed_by:
        plan = state.run(lambda kz: kz.preview_claim(application, seat))
        name = plan.kindergarten.name_kk if state.lang == "kk" else plan.kindergarten.name_ru
        click.echo(state.t("Seat {seat}: {kindergarten}, {address}.", seat=seat, kindergarten=name,
                           address=plan.kindergarten.address or "—"))
        click.echo(state.t("The child must be admitted by {due}.",
                           due=format_deadline(state.lang, plan.showup_due_at, zone="local")))
        if plan.docs_due_at:
            click.echo(state.t("Documents confirming the privilege are due by {due}.",
                               due=format_deadline(state.lang, plan.docs_due_at)))
        click.echo(state.t("Nothing has changed yet: repeat with --confirm WHO to take the seat."))
        return
    refs = state.run(lambda kz: kz.claim(application, seat, confirmed_by=f"cli:{confirmed_by}"))
    for ref in refs:
        click.echo(state.t("Referral {id} issued; the child must be admitted by {due}.", id=ref.id,
                           due=format_deadline(state.lang, ref.showup_due_at, zone="local")))


@cli.group()
def referrals() -> None:
    """Referrals."""


@referrals.command("admit")
@click.argument("referral", type=int)
@pass_state
def referrals_admit(state: State, referral: int) -> None:
    """The kindergarten confirms the child was admitted."""
    ref = state.run(lambda kz: kz.admit(referral, actor="cli"))
    click.echo(state.t("Referral {id}: the child is admitted; the application is closed.", id=ref.id))


# Exit codes of `kezek referrals verify`, by verdict (services/referral_check.py).
VERIFY_EXIT = {"valid": 0, "refused": 1, "admitted": 3, "annulled": 4, "expired": 5}


@referrals.command("verify")
@click.argument("token")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON (the API's answer).")
@pass_state
def referrals_verify(state: State, token: str, as_json: bool) -> None:
    """Check the code of a referral's QR code (TOKEN, as scanned or typed): is it a genuine
    Kezek referral, and may the child be admitted on it now?

    Prints the verdict and, for a genuine referral, what to check at the door (the child's
    masked IIN, the kindergarten, the group, the dates). Exit code: 0 genuine and valid; 1 not
    genuine (forged, altered, incomplete or unknown); 3 genuine but used (the child was
    admitted); 4 genuine but annulled; 5 genuine but its deadline passed; 2 a usage error."""
    from handlers.views.referral_pdf import page_lines, verdict_text
    from services.referral_check import verdict_as_dict

    verdict = state.run(lambda kz: kz.verify_referral(token))
    if as_json:
        body = verdict_as_dict(verdict) | {"message": verdict_text(state.lang, verdict)}
        click.echo(json.dumps(body, ensure_ascii=False, indent=2))
    else:
        click.echo(verdict_text(state.lang, verdict))
        if verdict.facts is not None:
            for label, value in page_lines(state.lang, verdict.facts):
                click.echo(f"  {label}: {value}")
    sys.exit(VERIFY_EXIT[verdict.state])


@referrals.command("pdf")
@click.argument("referral", type=int)
@click.option("--out", "out", type=click.Path(dir_okay=False, writable=True, path_type=Path), default=None,
              help="Where to write it (default: kezek-referral-ID.pdf in the current folder).")
@click.option("--lang", "langs", type=click.Choice(["kk", "ru"]), multiple=True,
              help="A page in this language; repeat for both (default: Kazakh and Russian).")
@pass_state
def referrals_pdf(state: State, referral: int, out: Path | None, langs: tuple[str, ...]) -> None:
    """Write the PDF of REFERRAL with its QR code, as the parent got it (to print it again)."""
    from handlers.views.referral_pdf import file_name, referral_pdf

    pages = list(langs) or ["kk", "ru"]
    document = state.run(lambda kz: kz.referral_document(referral))
    target = out or Path(file_name(referral, pages))
    try:
        target.write_bytes(referral_pdf(document, pages))
    except OSError as exc:
        raise click.ClickException(state.t("Cannot write the file: {error}", error=type(exc).__name__)) from None
    click.echo(state.t("Referral {id}: the PDF is in {file}.", id=referral, file=str(target)))


@cli.group()
def documents() -> None:
    """Privilege documents of a referral."""


@documents.command("accept")
@click.argument("referral", type=int)
@pass_state
def documents_accept(state: State, referral: int) -> None:
    """Confirm the privilege documents."""
    state.run(lambda kz: kz.decide_documents(referral, True, actor="cli"))
    click.echo(state.t("Referral {id}: the privilege documents are accepted.", id=referral))


@documents.command("reject")
@click.argument("referral", type=int)
@click.option("--reason", "reason", type=click.Choice(list(REJECTION_REASONS)), default=None,
              help="Why, for the parent (told in their language): " + ", ".join(REJECTION_REASONS) + ".")
@click.option("--note", default=None, help="The operator's own words for the parent, quoted as they are "
              "(at most 500 characters; needed with --reason other).")
@pass_state
def documents_reject(state: State, referral: int, reason: str | None, note: str | None) -> None:
    """Reject the documents: the referral is annulled, the child moves to the general queue."""
    state.run(lambda kz: kz.decide_documents(referral, False, actor="cli", reason=reason, note=note))
    click.echo(state.t("Referral {id}: the documents are rejected; the referral is annulled and the "
                       "child moved to the general queue.", id=referral))


@documents.command("list")
@click.option("--status", "status", type=click.Choice([*DocumentStatus.ALL, "all"]), default=DocumentStatus.PENDING.value,
              show_default=True, help="Which documents: waiting for a decision, decided, or all.")
@click.option("--referral", type=int, default=None, help="Only the documents of this referral.")
@click.option("--json", "as_json", is_flag=True, help="JSON, for a script.")
@pass_state
def documents_list(state: State, status: str, referral: int | None, as_json: bool) -> None:
    """The review queue: privilege documents parents sent in the chat, oldest first."""
    found = state.run(lambda kz: kz.review_documents(status, referral))
    if as_json:
        click.echo(json.dumps([d.as_dict() for d in found], ensure_ascii=False, indent=2, default=_json_moment))
        return
    if not found:
        click.echo(state.t("No documents."))
        return
    lang = state.lang
    for d in found:
        click.echo(state.t("Document {id}: referral {referral}, application {application}, {status}; {type}, {size}, "
                           "{pages}; received {received}, due {due}.", id=d.id, referral=d.referral_id,
                           application=d.application, status=document_status_text(lang, d.status),
                           type=document_type_text(lang, d.mime), size=format_size(lang, d.size),
                           pages=ngettext(lang, "{count} page", "{count} pages", d.pages, count=d.pages),
                           received=format_datetime(lang, d.received_at),
                           due=format_deadline(lang, d.docs_due_at) if d.docs_due_at else "—"))


def _json_moment(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        from services.calendar import ALMATY

        return value.astimezone(ALMATY).isoformat()
    raise TypeError(type(value).__name__)


@documents.command("download")
@click.argument("document", type=int)
@click.option("--out", "out", type=click.Path(dir_okay=True, path_type=Path), default=None,
              help="The file or folder to write (default: kezek-document-ID.EXT here).")
@pass_state
def documents_download(state: State, document: int, out: Path | None) -> None:
    """Write a document's file as it was received."""
    from services.doc_storage import DocumentStoreError

    async def fetch(kz: Kezek) -> Any:
        try:
            return await kz.document_file(document)
        except DocumentStoreError:
            return None

    found = state.run(fetch)
    if found is None:
        click.echo(state.t("The file of document {id} is missing from the document store.", id=document), err=True)
        sys.exit(1)
    info, data = found
    target = out if out is not None else Path(info.filename)
    if target.is_dir():
        target = target / info.filename
    try:
        target.write_bytes(data)
    except OSError as exc:
        raise click.ClickException(state.t("Cannot write the file: {error}", error=type(exc).__name__)) from None
    click.echo(state.t("Document {id} ({type}, {size}) written to {file}.", id=info.id,
                       type=document_type_text(state.lang, info.mime),
                       size=format_size(state.lang, info.size), file=str(target)))


# --- reading -------------------------------------------------------------------------------------

@cli.group()
def queue() -> None:
    """The queue."""


@queue.command("show")
@click.argument("application")
@click.option("--viewer", default=None, help="Remember this look under a viewer name, to show the change next time.")
@pass_state
def queue_show(state: State, application: str, viewer: str | None) -> None:
    """An application's queue number, its change since the last look and why, and its state."""
    view = state.run(lambda kz: kz.queue_view(application, viewer=f"cli:{viewer}" if viewer else None))
    app, lang = view.application, state.lang
    district = view.district.name_kk if lang == "kk" else view.district.name_ru
    click.echo(state.t("Application {number}: {state}.", number=app.number, state=status_text(lang, view.state)))
    click.echo(state.t("Queue: {district}, children born in {year}.", district=district, year=app.birth_year))
    click.echo(state.t("Privilege: {privilege}.", privilege=privilege_text(lang, app.privilege)))
    if view.number is not None:
        click.echo(state.t("Queue number: {number}.", number=view.number))
    if view.delta is not None:
        click.echo(state.t("Change since the last look: {delta:+d}.", delta=view.delta))
        for cause, count in sorted(view.causes.items()):
            click.echo("  " + cause_text(lang, cause, count))
    if view.state == "stop_listed" and app.stoplist_until:
        click.echo(state.t("On the stop-list until {until}.",
                           until=format_deadline(lang, app.stoplist_until, zone="local")))
    for offer in view.open_offers:
        click.echo(state.t("Seat {seat} is offered until {until}.", seat=offer.seat_id,
                           until=format_datetime(lang, offer.expires_at, zone="local")))
    if view.referral is not None:
        click.echo(state.t("Referral {id}, the child must be admitted by {due}.", id=view.referral.id,
                           due=format_deadline(lang, view.referral.showup_due_at, zone="local")))
    if view.preferred:
        click.echo(state.t("Preferred kindergartens: {codes}.", codes=", ".join(view.preferred)))


@cli.command("sweep")
@pass_state
def sweep(state: State) -> None:
    """Run every deadline that fell due: close passed offers, annul referrals, end stop-lists."""
    done = state.run(lambda kz: kz.run_sweeps())
    click.echo(state.t("Offers closed: {offers}; annulled for no-show: {no_show}; for documents: {docs}; "
                       "stop-lists ended: {stop}; new offers: {made}.", offers=done["offers_expired"],
                       no_show=done["no_show"], docs=done["docs_missed"], stop=done["stoplists_ended"],
                       made=done["offers_made"]))


@cli.command("stats")
@pass_state
def stats(state: State) -> None:
    """Queue sizes, seats, offers, referrals, annulments and the outbox backlog (JSON)."""
    click.echo(json.dumps(state.run(lambda kz: kz.stats()), ensure_ascii=False, indent=2, sort_keys=True))


# --- the outbox ----------------------------------------------------------------------------------

@cli.group()
def outbox() -> None:
    """The notices on their way: an operator's view and the senders."""


@outbox.command("stats")
@click.option("--failed", "failed_limit", type=click.IntRange(0, 1000), default=20, show_default=True,
              help="How many of the latest failed deliveries to list.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_state
def outbox_stats(state: State, failed_limit: int, as_json: bool) -> None:
    """Notices by status, deliveries per channel (due now, waiting to retry, how late), chats that
    blocked the bot, and the latest failures with their reasons (recipients masked)."""
    report = state.run(lambda kz: kz.outbox_report(failed_limit))
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2, sort_keys=True))
        return
    outbox_counts = report["outbox"]
    click.echo(state.t("Notices: {pending} waiting to be routed, {routed} routed, {done} done.",
                       pending=outbox_counts.get("pending", 0), routed=outbox_counts.get("routed", 0),
                       done=outbox_counts.get("done", 0)))
    for channel, counts in sorted(report["deliveries"].items()):
        click.echo(state.t("{channel}: {sent} sent, {pending} pending ({due} due now, {retry} waiting to retry, "
                           "the oldest due for {late} s), {failed} failed.",
                           channel=channel, sent=counts.get("sent", 0), pending=counts.get("pending", 0),
                           due=counts["due_now"], retry=counts["waiting_to_retry"],
                           late=counts["oldest_due_seconds"], failed=counts.get("failed", 0)))
    click.echo(state.t("Chats that blocked the bot: {count}.", count=report["blocked_chats"]))
    if report["failed_reasons"]:
        click.echo(state.t("Failed, by reason:"))
        for reason, count in sorted(report["failed_reasons"].items(), key=lambda kv: -kv[1]):
            click.echo(f"  {count:>6}  {reason}")
    if report["waiting_reasons"]:
        click.echo(state.t("Waiting to retry, by reason:"))
        for reason, count in sorted(report["waiting_reasons"].items(), key=lambda kv: -kv[1]):
            click.echo(f"  {count:>6}  {reason}")
    if report["failed_latest"]:
        click.echo(state.t("Latest failures:"))
        for row in report["failed_latest"]:
            click.echo(f"  #{row['delivery']} {row['kind']} {row['channel']} {row['to']} "
                       f"×{row['tries']}: {row['reason']}")


@outbox.command("send")
@pass_state
def outbox_send(state: State) -> None:
    """Run only the senders (Telegram with KEZEK_BOT_TOKEN, e-mail always) until stopped: more
    sender processes may run beside the bots against one PostgreSQL database; none sends what
    another took. The same as `kezek run --no-bot --no-api --no-scheduler`."""
    serve(state, get_settings(), Parts(bot=False, api=False, scheduler=False, senders=True),
          starting=state.t("The senders are running; stop them with Ctrl+C."),
          stopped=state.t("The senders have stopped."))


# --- calendar ------------------------------------------------------------------------------------

@cli.group()
def calendar() -> None:
    """Working days: holidays of Kazakhstan and operator decrees."""


@calendar.command("set")
@click.argument("day", type=click.DateTime(formats=["%Y-%m-%d"]))
@click.option("--day-off/--working", "day_off", required=True, help="A decreed day off, or a working weekend day.")
@click.option("--name", default="", help="What the decree calls the day.")
@pass_state
def calendar_set(state: State, day: dt.datetime, day_off: bool, name: str) -> None:
    """Record a decree for DAY (it wins over the built-in calendar)."""
    state.run(lambda kz: kz.set_calendar_day(day.date(), working=not day_off, name=name, actor="cli"))
    click.echo(state.t("{day}: saved.", day=format_date(state.lang, day.date())))


@calendar.command("show")
@click.option("--from", "start", type=click.DateTime(formats=["%Y-%m-%d"]), required=True,
              help="First day shown (YYYY-MM-DD).")
@click.option("--days", type=click.IntRange(1, 366), default=14, show_default=True, help="Days shown (1-366).")
@pass_state
def calendar_show(state: State, start: dt.datetime, days: int) -> None:
    """List days from --from, marking days off with their names."""

    async def work(kz: Kezek) -> list[str]:
        async with kz.reading() as ctx:
            out = []
            for i in range(days):
                d = start.date() + dt.timedelta(days=i)
                if ctx.calendar.is_working_day(d):
                    label = state.t("working day")
                else:
                    label = ctx.calendar.holiday_name(d, state.lang) or state.t("day off")
                out.append(f"{format_date(state.lang, d)}: {label}")
            return out

    for line in state.run(work):
        click.echo(line)


# --- demo ----------------------------------------------------------------------------------------

@cli.command("demo")
@click.option("--applications", type=int, default=3000, show_default=True,
              help="Applications in the sandbox city (built once, when the database has none).")
@click.option("--phone", default=None, help="Your phone: put on the example application, to link it in the bot "
                                            "with the contact button.")
@click.option("--console", is_flag=True, help="The bot in this terminal: no Telegram needed.")
@click.option("--seed-only", is_flag=True, help="Build the sandbox city, print how to try it, and stop.")
@pass_state
def demo(state: State, applications: int, phone: str | None, console: bool, seed_only: bool) -> None:
    """A sandbox on this machine: builds a realistic city (districts, state and private
    kindergartens, applications with valid IINs, some privileged, some twins) in the database,
    then runs everything in sandbox mode — the bot (with KEZEK_BOT_TOKEN; or in this terminal with
    --console), the registry API with its test clock, the scheduler and the senders; e-mails go to
    the mail folder unless SMTP is configured."""
    from bot.sandbox.demo import pick_example, seed, write_sandbox_token
    from services.errors import KezekError
    from services.validation import normalise_phone
    from storage.migrate import upgrade

    if phone:
        try:
            phone = normalise_phone(phone)
        except KezekError as exc:
            raise click.BadParameter(error_text(state.lang, exc), param_hint="--phone") from None
    if console and not phone:
        from bot.sandbox.console import DEMO_PHONE

        phone = DEMO_PHONE  # the console parent's phone on the example: its contact button links it
    upgrade(state.url)
    settings = get_settings()

    async def build(kz: Kezek) -> dict[str, Any]:
        summary = (await kz.stats())["applications"]
        built = None
        if not sum(summary.values()):
            built = await seed(kz, applications=applications)
        return {"built": built, "count": sum((await kz.stats())["applications"].values()),
                **await pick_example(kz, phone)}

    city = state.run(build)
    if city["built"]:
        click.echo(state.t("Sandbox city ready: {districts} districts, {kindergartens} kindergartens, "
                           "{applications} applications.", **city["built"]))
    else:
        click.echo(state.t("The sandbox city is there already: {count} applications.", count=city["count"]))
    click.echo(state.t("Try: kezek queue show {number} --viewer me", number=city["example"]))
    click.echo(state.t("In the bot: /link, application {number}, child's IIN {iin}; then share your "
                       "contact (with --phone) or ask for an e-mail code: it arrives as a file in {folder}.",
                       number=city["example"], iin=city["example_iin"], folder=str(settings.mail_dir)))
    click.echo(state.t("To make it this child's turn, publish a seat: kezek seats publish --kindergarten {kg} "
                       "--birth-year {year} --language {language} --count 1",
                       kg=city["kindergarten"], year=city["birth_year"], language=city["language"]))
    if seed_only:
        return
    token = settings.api_token
    if not token:
        token, token_file = write_sandbox_token(Path(settings.mail_dir).parent)
        click.echo(state.t("The sandbox API's token is in {file}.", file=str(token_file)))
    settings = settings.model_copy(update={"sandbox": True, "api_token": token})
    click.echo(state.t("Sandbox API: http://{host}:{port}/api/v1 (the test clock: /api/v1/sandbox/clock).",
                       host=settings.api_host, port=settings.api_port))
    from bot.sandbox.clock import open_sandbox_clock

    clock = state.run(lambda kz: open_sandbox_clock(kz.db, state.now))  # the database's, shared
    if console:
        run_console_demo(state, settings, clock, phone or "", city)
        return
    bot_on = bool(settings.bot_token.strip())
    if not bot_on:
        click.echo(state.t("No bot token is configured: the Telegram bot is off. Try it in this terminal: "
                           "kezek demo --console"))
    serve(state, settings, Parts(bot=bot_on, api=True, scheduler=True, senders=True), sandbox_clock=clock)


def run_console_demo(state: State, settings: Settings, clock: Any, phone: str, city: dict[str, Any]) -> None:
    """The console bot with the sandbox's scheduler and registry API beside it."""
    from bot.api.server import serve_api
    from bot.jobs import run_scheduler
    from bot.sandbox.clock import follow_stored_clock
    from bot.sandbox.console import run_console

    async def go() -> None:
        db = Database(state.url)
        kz = state.kezek(db, clock)
        beside = [asyncio.ensure_future(run_scheduler(kz, every_seconds=settings.sweep_seconds,
                                                      snapshot_hour=settings.snapshot_hour,
                                                      digest_hour=settings.digest_hour)),
                  asyncio.ensure_future(serve_api(kz, settings, sandbox_clock=clock)),
                  asyncio.ensure_future(follow_stored_clock(db, clock))]
        try:
            await run_console(kz, settings, clock, phone=phone, example=city)
        finally:
            for task in beside:
                task.cancel()
            await asyncio.gather(*beside, return_exceptions=True)
            await db.dispose()

    try:
        asyncio.run(go())
    except KeyboardInterrupt:
        pass


# --- the Telegram bot ----------------------------------------------------------------------------

@dataclass
class Parts:
    """What a `kezek run` process serves."""

    bot: bool = True
    api: bool = False
    scheduler: bool = True
    senders: bool = True


def serve(state: State, settings: Settings, parts: Parts, *, sandbox_clock: Any = None,
          starting: str | None = None, stopped: str | None = None) -> None:
    """Serve ``parts`` until SIGINT/SIGTERM (exit 0): the bot (polling or webhook), the registry
    API, the scheduler and the outbox senders, in one process, sharing one clock (the sandbox's
    test clock in sandbox mode)."""
    from bot.api.server import MIN_TOKEN_LENGTH
    from bot.telegram.runner import MissingTokenError, WebhookConfigError, run, run_headless
    from storage.migrate import upgrade

    if parts.bot and not settings.bot_token.strip():
        click.echo(state.t("No bot token is configured: set KEZEK_BOT_TOKEN (from @BotFather)."), err=True)
        sys.exit(2)
    if parts.api and settings.api_token and len(settings.api_token) < MIN_TOKEN_LENGTH:
        click.echo(state.t("KEZEK_API_TOKEN is too short: use at least {count} characters "
                           "(e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))').",
                           count=MIN_TOKEN_LENGTH), err=True)
        sys.exit(2)
    problem = settings.webhook_problem() if parts.bot else None
    if problem:
        click.echo(state.t("The webhook settings are not valid: {problem}.", problem=problem), err=True)
        sys.exit(2)
    logsafe.install(settings.log_level)  # KEZEK_LOG_LEVEL; no personal data at any level
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # not a line per job and run
    # Not a line per update ("Update id=... is handled. Duration ..."): /metrics counts and times
    # them, and at a city's rate the line was a log file's bulk and a write per update.
    logging.getLogger("aiogram.event").setLevel(logging.WARNING)
    upgrade(state.url)
    clock = sandbox_clock or state.clock
    click.echo(starting or state.t("The bot is starting; stop it with Ctrl+C."))

    async def go() -> None:
        from bot.delivery.mail import make_mailer
        from bot.delivery.sender import SendPolicy, outbox_loop
        from bot.jobs import run_scheduler
        from bot.telegram.runner import make_bot

        db = Database(state.url)
        kz = state.kezek(db, clock)
        jobs: list[Any] = []
        if parts.api:
            from bot.api.server import serve_api

            async def api(_bot: Any) -> None:
                await serve_api(kz, settings, sandbox_clock=sandbox_clock)

            jobs.append(api)
        if parts.scheduler:
            async def scheduler(_bot: Any) -> None:
                await run_scheduler(kz, every_seconds=settings.sweep_seconds,
                                    snapshot_hour=settings.snapshot_hour, digest_hour=settings.digest_hour)

            jobs.append(scheduler)
        if sandbox_clock is not None:  # moved by another process on the same sandbox: followed
            from bot.sandbox.clock import follow_stored_clock

            async def follow(_bot: Any) -> None:
                await follow_stored_clock(db, sandbox_clock)

            jobs.append(follow)
        sender_bot = None
        if parts.senders:
            mailer = make_mailer(settings, clock)
            if not parts.bot and settings.bot_token.strip():
                sender_bot = make_bot(settings)  # Telegram notices without serving updates

            async def senders(bot: Any) -> None:
                await outbox_loop(kz, bot or sender_bot, mailer, idle=settings.outbox_idle_seconds,
                                  policy=SendPolicy.from_settings(settings))

            jobs.append(senders)
        try:
            if parts.bot:
                await run(settings, kz, background=jobs)
            else:
                await run_headless(jobs)
        finally:
            if sender_bot is not None:
                await sender_bot.session.close()
            await db.dispose()

    try:
        asyncio.run(go())
    except MissingTokenError:
        click.echo(state.t("No bot token is configured: set KEZEK_BOT_TOKEN (from @BotFather)."), err=True)
        sys.exit(2)
    except WebhookConfigError as exc:
        click.echo(state.t("The webhook settings are not valid: {problem}.", problem=str(exc)), err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # a token Telegram refuses, a malformed one, no network: one line
        from bot.cli.operator_errors import bot_error

        line = bot_error(exc, settings.bot_api_url)
        if line is None:
            raise
        click.echo(line.text(state.lang), err=True)
        sys.exit(line.code)
    click.echo(stopped or state.t("The bot has stopped."))


@cli.command("run")
@click.option("--bot/--no-bot", "bot_on", default=True, show_default=True,
              help="Serve the Telegram bot (needs KEZEK_BOT_TOKEN).")
@click.option("--api/--no-api", "api_on", default=None,
              help="Serve the registry HTTP API (default: on when KEZEK_API_TOKEN is set or in the sandbox).")
@click.option("--scheduler/--no-scheduler", "scheduler_on", default=True, show_default=True,
              help="Run the scheduled sweeps, snapshot and digest.")
@click.option("--senders/--no-senders", "senders_on", default=True, show_default=True,
              help="Send the outbox (Telegram with a token, e-mail always).")
@pass_state
def run_bot(state: State, bot_on: bool, api_on: bool | None, scheduler_on: bool, senders_on: bool) -> None:
    """Run the bot, the registry API, the scheduler and the senders until SIGINT/SIGTERM, each
    switchable: long polling, or a webhook server when KEZEK_WEBHOOK_URL is set (with
    KEZEK_WEBHOOK_SECRET). KEZEK_BOT_API_URL points at another Bot API server; KEZEK_REDIS_URL
    shares the dialogues and the throttle between instances; KEZEK_SANDBOX=1 runs the sandbox's test
    clock (from --now, if given). Migrates the database first."""
    settings = get_settings()
    if api_on is None:
        api_on = bool(settings.api_token) or settings.sandbox
    sandbox_clock = None
    if settings.sandbox:  # the database's clock, shared with every kezek command on it
        from bot.sandbox.clock import open_sandbox_clock
        from storage.migrate import upgrade

        upgrade(state.url)
        sandbox_clock = state.run(lambda kz: open_sandbox_clock(kz.db, state.now))
    serve(state, settings, Parts(bot=bot_on, api=api_on, scheduler=scheduler_on, senders=senders_on),
          sandbox_clock=sandbox_clock)


def _add_bench() -> None:
    """``kezek bench`` from a checkout: the benchmarks are not in the wheel (pyproject.toml)."""
    import importlib.util

    if importlib.util.find_spec("bot.bench") is None:
        return
    from bot.bench.cli import bench

    cli.add_command(bench)


_add_bench()


def main() -> None:
    from bot.cli.operator_errors import quiet_closed_loop_deliveries

    quiet_closed_loop_deliveries()
    cli(prog_name="kezek")


if __name__ == "__main__":
    main()
