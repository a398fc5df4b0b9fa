"""`kezek seats`, `kezek claim`, `kezek referrals`: seats published, claimed and referred."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from bot.cli.base import State, cli, pass_state
from locales.formats import format_datetime, format_deadline

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
