"""`kezek staff`: the people who act for a kindergarten in the bot (services/staff.py): invite one
(a one-time Telegram start link), list them, end a binding or an invitation."""

from __future__ import annotations

import asyncio
import json
import sys

import click

from bot.cli.base import State, cli, pass_state
from bot.config import Settings, get_settings
from locales.formats import format_datetime
from services.deep_link import deep_link, valid_username
from services.staff import INVITE_DAYS


@cli.group()
def staff() -> None:
    """Kindergarten staff in the bot: they open a referral from its QR code and record the child's arrival."""


def bot_username(settings: Settings) -> str | None:
    """KEZEK_BOT_USERNAME, else the bot's own (getMe with KEZEK_BOT_TOKEN); None when neither works."""
    name = valid_username(settings.bot_username)
    if name is not None or not settings.bot_token.strip():
        return name
    from bot.telegram.runner import make_bot

    async def ask() -> str | None:
        bot = make_bot(settings)
        try:
            return valid_username((await asyncio.wait_for(bot.get_me(), 15)).username)
        except Exception:  # noqa: BLE001 - no network, a refused token: the token is printed instead
            return None
        finally:
            await bot.session.close()

    return asyncio.run(ask())


@staff.command("invite")
@click.option("--kindergarten", required=True, metavar="CODE", help="The kindergarten's code, as the registry gave it.")
@click.option("--days", type=click.IntRange(1, 30), default=INVITE_DAYS, show_default=True,
              help="How long the link works (it works once).")
@click.option("--email", default=None, metavar="ADDRESS",
              help="Also e-mail the link to this address (the person's own), in Kazakh and Russian.")
@pass_state
def staff_invite(state: State, kindergarten: str, days: int, email: str | None) -> None:
    """A one-time link that makes the Telegram account opening it staff of the kindergarten. Give
    it to that person only: whoever opens it first becomes staff."""
    invitation = state.run(lambda kz: kz.invite_staff(kindergarten, actor="cli", days=days, email=email))
    name = bot_username(get_settings())
    until = format_datetime(state.lang, invitation.expires_at, zone="local")
    click.echo(state.t("Invitation {id} to {kindergarten}, valid once until {until}:",
                       id=invitation.id, kindergarten=invitation.kindergarten.name(state.lang), until=until))
    if name is not None:
        click.echo(deep_link(name, invitation.token))
    if email is not None:
        click.echo(state.t("The link is also on its way to the address given."))
    else:
        click.echo(state.t("The bot's username is not known (set KEZEK_BOT_USERNAME): in the bot, the staff "
                           "member sends /start {token}", token=invitation.token))


@staff.command("list")
@click.option("--kindergarten", default=None, metavar="CODE", help="Only this kindergarten.")
@click.option("--json", "as_json", is_flag=True, help="JSON, for a script.")
@pass_state
def staff_list(state: State, kindergarten: str | None, as_json: bool) -> None:
    """The staff bound to each kindergarten and the invitations not used yet."""
    rows = state.run(lambda kz: kz.staff_list(kindergarten))
    if as_json:
        click.echo(json.dumps([{"kindergarten": r.kindergarten, "kind": r.kind, "id": r.id, "user_id": r.user_id,
                                "since": r.since.isoformat(),
                                "expires_at": r.expires_at.isoformat() if r.expires_at else None}
                               for r in rows], ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo(state.t("No staff and no open invitations."))
        return
    for r in rows:
        since = format_datetime(state.lang, r.since, "short")
        if r.kind == "staff":
            click.echo(state.t("{kindergarten}: Telegram user {user}, staff since {since}",
                               kindergarten=r.kindergarten, user=r.user_id, since=since))
        else:
            assert r.expires_at is not None
            click.echo(state.t("{kindergarten}: invitation {id} of {since}, open until {until}",
                               kindergarten=r.kindergarten, id=r.id, since=since,
                               until=format_datetime(state.lang, r.expires_at, "short")))


@staff.command("revoke")
@click.option("--kindergarten", required=True, metavar="CODE", help="The kindergarten's code.")
@click.option("--user", "user_id", type=int, default=None,
              help="The staff member's Telegram user id (kezek staff list).")
@click.option("--invite", "invite_id", type=int, default=None, help="An invitation not used yet (kezek staff list).")
@pass_state
def staff_revoke(state: State, kindergarten: str, user_id: int | None, invite_id: int | None) -> None:
    """End a staff member's binding or an unused invitation: it opens nothing from then on."""
    if (user_id is None) == (invite_id is None):
        raise click.UsageError(state.t("Give either --user or --invite."))
    ended = state.run(lambda kz: kz.revoke_staff(kindergarten, user_id=user_id, invite_id=invite_id, actor="cli"))
    if not ended:
        click.echo(state.t("Nothing active matched: the binding or the invitation had already ended."), err=True)
        sys.exit(1)
    click.echo(state.t("Ended."))
