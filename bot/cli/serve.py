"""`kezek demo` and `kezek run`: the composition root. ``serve`` builds the Kezek facade and runs
the parts asked for (the bot, the registry API, the scheduler, the senders) until a signal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bot import logsafe
from bot.cli.base import State, cli, pass_state
from bot.config import Settings, get_settings
from locales.errors import error_text
from services.clock import Clock
from services.kezek import Kezek
from storage.db import Database

if TYPE_CHECKING:
    from aiogram import Bot

    from bot.telegram.runner import BackgroundJob

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
    serve(state, settings, Parts(bot=bot_on, api=True, scheduler=True, senders=True, page=True),
          sandbox_clock=clock)


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

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(go())


# --- the Telegram bot ----------------------------------------------------------------------------

@dataclass
class Parts:
    """What a `kezek run` process serves."""

    bot: bool = True
    api: bool = False
    scheduler: bool = True
    senders: bool = True
    page: bool = False  # the public referral page (bot/web/page.py)


def serve(state: State, settings: Settings, parts: Parts, *, sandbox_clock: Any = None,
          starting: str | None = None, stopped: str | None = None) -> None:
    """Serve ``parts`` until SIGINT/SIGTERM (exit 0): the bot (polling or webhook), the registry
    API, the scheduler and the outbox senders, in one process, sharing one clock (the sandbox's
    test clock in sandbox mode)."""
    from bot.telegram.runner import MissingTokenError, WebhookConfigError, run, run_headless
    from storage.migrate import upgrade

    _refuse_unservable(state, settings, parts)
    logsafe.install(settings.log_level)  # KEZEK_LOG_LEVEL; no personal data at any level
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # not a line per job and run
    # Not a line per update ("Update id=... is handled. Duration ..."): /metrics counts and times
    # them, and at a city's rate the line was a log file's bulk and a write per update.
    logging.getLogger("aiogram.event").setLevel(logging.WARNING)
    upgrade(state.url)
    clock = sandbox_clock or state.clock
    click.echo(starting or state.t("The bot is starting; stop it with Ctrl+C."))

    async def go() -> None:
        db = Database(state.url)
        kz = state.kezek(db, clock)
        jobs, sender_bot = _background_jobs(kz, db, settings, parts, clock, sandbox_clock)
        try:
            if parts.bot:
                await run(settings, kz, background=jobs, extra=_sandbox_middlewares(sandbox_clock))
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


def _sandbox_middlewares(sandbox_clock: Any) -> list[Any]:
    """In the sandbox, a claim refused outside the window is followed in the chat by the command
    that moves the sandbox clock there (bot.sandbox.hint)."""
    if sandbox_clock is None:
        return []
    from bot.sandbox.hint import WindowHintMiddleware

    return [WindowHintMiddleware(sandbox_clock)]


def _refuse_unservable(state: State, settings: Settings, parts: Parts) -> None:
    """``serve``'s checks of the settings before anything starts: a line and exit 2."""
    from bot.api.base import MIN_TOKEN_LENGTH

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


def _background_jobs(kz: Kezek, db: Database, settings: Settings, parts: Parts, clock: Clock,
                     sandbox_clock: Any) -> tuple[list[BackgroundJob], Bot | None]:
    """What ``serve`` runs beside the bot (or alone): the API, the scheduler, the sandbox clock's
    follower and the senders, each as ``parts`` says; and the bot the senders use when the process
    serves no updates (closed by ``serve``), or None."""
    from bot.delivery.mail import make_mailer
    from bot.delivery.sender import SendPolicy, outbox_loop
    from bot.jobs import run_scheduler
    from bot.telegram.runner import make_bot

    jobs: list[BackgroundJob] = []
    if parts.page and settings.public_url:
        from bot.web.page import serve_page

        async def page(_bot: Bot | None) -> None:
            await serve_page(kz, settings)

        jobs.append(page)
    if parts.api:
        from bot.api.server import serve_api

        async def api(_bot: Bot | None) -> None:
            await serve_api(kz, settings, sandbox_clock=sandbox_clock)

        jobs.append(api)
    if parts.scheduler:
        async def scheduler(_bot: Bot | None) -> None:
            await run_scheduler(kz, every_seconds=settings.sweep_seconds,
                                snapshot_hour=settings.snapshot_hour, digest_hour=settings.digest_hour)

        jobs.append(scheduler)
    if sandbox_clock is not None:  # moved by another process on the same sandbox: followed
        from bot.sandbox.clock import follow_stored_clock

        async def follow(_bot: Bot | None) -> None:
            await follow_stored_clock(db, sandbox_clock)

        jobs.append(follow)
    sender_bot = None
    if parts.senders:
        mailer = make_mailer(settings, clock)
        if not parts.bot and settings.bot_token.strip():
            sender_bot = make_bot(settings)  # Telegram notices without serving updates

        async def senders(bot: Bot | None) -> None:
            await outbox_loop(kz, bot or sender_bot, mailer, idle=settings.outbox_idle_seconds,
                              policy=SendPolicy.from_settings(settings))

        jobs.append(senders)
    return jobs, sender_bot


@cli.command("run")
@click.option("--bot/--no-bot", "bot_on", default=True, show_default=True,
              help="Serve the Telegram bot (needs KEZEK_BOT_TOKEN).")
@click.option("--api/--no-api", "api_on", default=None,
              help="Serve the registry HTTP API (default: on when KEZEK_API_TOKEN is set or in the sandbox).")
@click.option("--scheduler/--no-scheduler", "scheduler_on", default=True, show_default=True,
              help="Run the scheduled sweeps, snapshot and digest.")
@click.option("--senders/--no-senders", "senders_on", default=True, show_default=True,
              help="Send the outbox (Telegram with a token, e-mail always).")
@click.option("--page/--no-page", "page_on", default=True, show_default=True,
              help="Serve the public referral page that the QR codes open (only with KEZEK_PUBLIC_URL set).")
@pass_state
def run_bot(state: State, bot_on: bool, api_on: bool | None, scheduler_on: bool, senders_on: bool,
            page_on: bool) -> None:
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
    serve(state, settings, Parts(bot=bot_on, api=api_on, scheduler=scheduler_on, senders=senders_on,
                                 page=page_on), sandbox_clock=sandbox_clock)
