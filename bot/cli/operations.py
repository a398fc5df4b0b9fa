"""`kezek queue`, `sweep`, `stats`, `outbox`, `calendar`: reading and running the service."""

from __future__ import annotations

import datetime as dt
import json

import click

from bot.cli.base import State, cli, pass_state
from bot.cli.serve import Parts, serve
from bot.config import get_settings
from locales.formats import format_date, format_datetime, format_deadline
from locales.names import cause_text, privilege_text, status_text

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

    shown = state.run(lambda kz: kz.calendar_days(start.date(), days, state.lang))
    for d in shown:
        label = state.t("working day") if d.working else d.name or state.t("day off")
        click.echo(f"{format_date(state.lang, d.day)}: {label}")
