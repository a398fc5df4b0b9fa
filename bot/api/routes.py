"""The API's routes: each parses its request, makes one call to the Kezek facade and renders JSON."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from aiohttp import web

from bot import metrics as metrics_module
from bot.api import answers
from bot.api import schemas as shapes
from bot.api.base import KZ, SANDBOX_CLOCK, SANDBOX_LOCK, SETTINGS, log
from bot.api.bodies import json_response, read_object, read_rows
from bot.api.errors import request_language
from bot.sandbox.clock import MAX_MOVE, ClockMoveError, move_clock
from bot.sandbox.clock import parse_iso_duration as parse_duration
from services import queue as queue_service
from services import registry
from services.clock import SandboxClock
from services.deep_link import deep_link, valid_username
from services.errors import (
    ApplicationNotFound,
    InvalidField,
    MissingField,
    ReferralNotFound,
)
from services.facade import is_row_id
from services.kezek import Kezek
from services.staff import INVITE_DAYS

# --- handlers ------------------------------------------------------------------------------------

ACTOR = "api"


async def health(request: web.Request) -> web.Response:
    """200 when the database answers and the senders are not stuck (``bot.metrics``), else 503."""
    state = await metrics_module.check_health(request.app[KZ])
    if not state.database:
        log.warning("API health: the database is unavailable")
        return json_response(answers.Health(status="unavailable", database="unavailable"), 503)
    if not state.ok:
        return json_response(answers.Health(status="unavailable", database="ok", senders="stuck",
                                            problems=state.problems), 503)
    return json_response(answers.Health(status="ok", database="ok"))


async def metrics(request: web.Request) -> web.Response:
    """The Prometheus exposition of this process (the outbox backlog read now)."""
    body, content_type = await metrics_module.exposition(request.app[KZ], accept=request.headers.get("Accept"))
    return web.Response(body=body, headers={"Content-Type": content_type})


async def openapi_document(request: web.Request) -> web.Response:
    from bot.api.openapi import openapi
    from services.offers import seat_birth_years

    settings, now = request.app[SETTINGS], request.app[KZ].clock.now()
    return json_response(openapi(max_rows=settings.api_max_rows, birth_years=seat_birth_years(now)))


async def post_districts(request: web.Request) -> web.Response:
    rows = await read_rows(request, shapes.District)
    return json_response(answers.Upserted(upserted=await request.app[KZ].upsert_districts(rows, actor=ACTOR)))


async def post_kindergartens(request: web.Request) -> web.Response:
    rows = await read_rows(request, shapes.Kindergarten)
    return json_response(answers.Upserted(upserted=await request.app[KZ].upsert_kindergartens(rows, actor=ACTOR)))


async def post_applications(request: web.Request) -> web.Response:
    now = request.app[KZ].clock.now()
    rows = await read_rows(request, shapes.Application, lambda row: queue_service.parse_application(row, now))
    report = await request.app[KZ].import_applications(rows, actor=ACTOR)
    return json_response(answers.ImportReport.model_validate(report))


_NUMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-/]{0,39}")  # services.parsing.code


async def get_application(request: web.Request) -> web.Response:
    number = request.match_info["number"]
    if not _NUMBER.fullmatch(number):  # no such number can exist (and NUL never reaches the database)
        raise ApplicationNotFound()
    status = await request.app[KZ].application_status(number)
    return json_response(answers.ApplicationStatus.model_validate(status))


async def post_seats(request: web.Request) -> web.Response:
    body = await read_object(request)
    shapes.check_object(shapes.SeatsRequest, body)
    kz = request.app[KZ]
    result = await kz.publish_seats(body, actor=ACTOR)
    offers = await kz.offers_info([offer_id for offer_id, _, _ in result.offers])
    return json_response(answers.SeatsResult(seats=result.seat_ids, private=result.private,
                                             offers=[answers.Offer.model_validate(o) for o in offers]))


def _row_id(raw: str) -> int | None:
    """A database row id written in a URL (decimal digits only), or None."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or not is_row_id(int(raw)):
        return None
    return int(raw)


def _referral_id(request: web.Request) -> int:
    referral_id = _row_id(request.match_info["id"])
    if referral_id is None:
        raise ReferralNotFound()
    return referral_id


async def _referral_answer(kz: Kezek, referral_id: int) -> web.Response:
    info = await kz.referral_info(referral_id)
    return json_response(answers.ReferralAnswer(referral=answers.Referral.model_validate(info)))


async def post_admission(request: web.Request) -> web.Response:
    referral_id = _referral_id(request)
    kz = request.app[KZ]
    await kz.admit(referral_id, actor=ACTOR)
    return await _referral_answer(kz, referral_id)


async def post_documents(request: web.Request) -> web.Response:
    referral_id = _referral_id(request)
    body = await read_object(request)
    shapes.check_object(shapes.DocumentsDecision, body)
    decision = body["decision"]
    kz = request.app[KZ]
    # A rejection may say why: "reason" (a code the parent reads in their language) and "note"
    # (the operator's words, quoted as they are); both optional, checked before anything changes.
    await kz.decide_documents(referral_id, decision == "accepted", actor=ACTOR, reason=body.get("reason"),
                              note=body.get("note"))
    return await _referral_answer(kz, referral_id)


_DOCUMENT_LIST_MAX = 500


async def get_documents(request: web.Request) -> web.Response:
    """The review queue: ``?status=pending`` (default; accepted | rejected | closed | all) and
    ``?referral=ID``, oldest first, at most 500."""
    referral: int | None = None
    raw = request.query.get("referral")
    if raw is not None and raw != "":
        referral = _row_id(raw)
        if referral is None:
            raise InvalidField(field="referral", reason="integer")
    found = await request.app[KZ].review_documents(request.query.get("status", "pending"), referral,
                                                   _DOCUMENT_LIST_MAX)
    return json_response(answers.DocumentList(documents=[answers.Document.model_validate(d.as_dict()) for d in found]),
                         headers={"Cache-Control": "no-store"})


async def get_document_file(request: web.Request) -> web.Response:
    """A document's bytes as received, with its type (checked on arrival, never the sender's word)."""
    from services.doc_storage import DocumentStoreError
    from services.documents import DocumentNotFound

    document_id = _row_id(request.match_info["id"])
    if document_id is None:
        raise DocumentNotFound()
    try:
        info, data = await request.app[KZ].document_file(document_id)
    except DocumentStoreError:
        log.error("API: the file of document %s is missing from the document store", document_id)
        raise
    return web.Response(body=data, headers={
        "Content-Type": info.mime, "Content-Disposition": f'attachment; filename="{info.filename}"',
        "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})


async def get_referral_verify(request: web.Request) -> web.Response:
    """A kindergarten checks the code of a referral's QR code: 200 with the verdict (``state``:
    valid | admitted | annulled | expired | refused) and, when genuine, what to check at the door.
    Every kind of refusal (forged, altered, cut, another key or purpose, no such referral) gets
    the same answer; the reason is logged with a fingerprint of the token, never its text."""
    from handlers.views.referral_pdf import verdict_text
    from services.referral_check import verdict_as_dict

    token = request.query.get("token")
    if token is None or not token.strip():
        raise MissingField(field="token")
    verdict = await request.app[KZ].verify_referral(token)
    answer = answers.ReferralVerdict.model_validate(
        verdict_as_dict(verdict) | {"message": verdict_text(request_language(request), verdict)})
    return json_response(answer, headers={"Cache-Control": "no-store"})


async def post_calendar_days(request: web.Request) -> web.Response:
    rows = await read_rows(request, shapes.CalendarDay, registry.calendar_day)
    count = await request.app[KZ].set_calendar_days(rows, actor=ACTOR)
    return json_response(answers.CalendarResult(days=count))


async def get_stats(request: web.Request) -> web.Response:
    kz = request.app[KZ]
    stats = await kz.stats()
    report = await kz.outbox_report(failed_limit=0)
    backlog = answers.Backlog(
        outbox_pending=int(report["outbox"].get("pending", 0)),
        deliveries={channel: answers.ChannelBacklog(pending=int(counts.get("pending", 0)), due_now=counts["due_now"],
                                                    oldest_due_seconds=counts["oldest_due_seconds"],
                                                    failed=int(counts.get("failed", 0)))
                    for channel, counts in report["deliveries"].items()})
    return json_response(answers.Stats.model_validate(stats | {"backlog": backlog}))


async def get_outbox(request: web.Request) -> web.Response:
    return json_response(answers.OutboxReport.model_validate(await request.app[KZ].outbox_report()))


# --- kindergarten staff --------------------------------------------------------------------------------

async def post_staff_invite(request: web.Request) -> web.Response:
    body = await read_object(request)
    shapes.check_object(shapes.StaffInviteRequest, body)
    invitation = await request.app[KZ].invite_staff(
        body["kindergarten"], actor=ACTOR, days=body.get("days", INVITE_DAYS), email=body.get("email"))
    name = valid_username(request.app[SETTINGS].bot_username)
    return json_response(answers.StaffInvitation(
        id=invitation.id, kindergarten=invitation.kindergarten.code, token=invitation.token,
        link=deep_link(name, invitation.token) if name else None, expires_at=invitation.expires_at,
        emailed=body.get("email") is not None))


async def get_staff(request: web.Request) -> web.Response:
    kindergarten = request.query.get("kindergarten")  # (given empty: refused, as the document says)
    if kindergarten is not None and not (len(kindergarten) <= 40 and re.fullmatch(shapes.CODE_PATTERN, kindergarten)):
        raise InvalidField(field="kindergarten", reason="type")
    rows = await request.app[KZ].staff_list(kindergarten)
    return json_response(answers.StaffList(staff=[answers.StaffEntry.model_validate(r) for r in rows]))


async def post_staff_revoke(request: web.Request) -> web.Response:
    body = await read_object(request)
    shapes.check_object(shapes.StaffRevokeRequest, body)
    ended = await request.app[KZ].revoke_staff(body["kindergarten"], user_id=body["user_id"], actor=ACTOR)
    return json_response(answers.Ended(ended=ended))


async def post_invite_revoke(request: web.Request) -> web.Response:
    body = await read_object(request)
    shapes.check_object(shapes.InviteRevokeRequest, body)
    ended = await request.app[KZ].revoke_staff(body["kindergarten"], invite_id=body["invite_id"], actor=ACTOR)
    return json_response(answers.Ended(ended=ended))


# --- sandbox -------------------------------------------------------------------------------------

def _sandbox_clock(request: web.Request) -> SandboxClock:
    return request.app[SANDBOX_CLOCK]


async def get_sandbox_clock(request: web.Request) -> web.Response:
    return json_response(answers.Clock(now=_sandbox_clock(request).now()))


_DURATION = re.compile(shapes.DURATION_PATTERN.removeprefix("^").removesuffix("$"))


def parse_clock_move(body: dict[str, Any], now: dt.datetime) -> tuple[dt.timedelta | None, dt.datetime | None]:
    """``{"advance": "PT3H"}`` or ``{"set": "2026-09-01T19:59:00+05:00"}`` (exactly one):
    forward only, at most ``MAX_MOVE`` ahead."""
    has_advance, has_set = body.get("advance") is not None, body.get("set") is not None
    if not has_advance and not has_set:
        raise MissingField(field="advance")
    if has_advance and has_set:
        raise InvalidField(field="set", reason="exclusive")
    if has_advance:
        return _advance(body["advance"]), None
    return None, _set_to(body["set"], now)


def _advance(raw: Any) -> dt.timedelta:
    """``parse_clock_move``'s ``advance``: an ISO 8601 duration, forward, at most ``MAX_MOVE``."""
    if not isinstance(raw, str):
        raise InvalidField(field="advance", reason="type")
    if raw.strip().startswith("-"):
        raise InvalidField(field="advance", reason="negative")
    if not _DURATION.fullmatch(raw):  # what the OpenAPI document says: no "P", "PT", weeks, spaces
        raise InvalidField(field="advance", reason="duration")
    try:
        delta = parse_duration(raw)
    except ValueError:
        raise InvalidField(field="advance", reason="duration") from None
    if delta > MAX_MOVE:
        raise InvalidField(field="advance", reason="range", min="PT0S", max="P366D")
    return delta


def _set_to(raw: Any, now: dt.datetime) -> dt.datetime:
    """``parse_clock_move``'s ``set``: a moment with its offset, not before ``now``, at most ``MAX_MOVE`` ahead."""
    if not isinstance(raw, str):
        raise InvalidField(field="set", reason="type")
    try:
        at = dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidField(field="set", reason="datetime") from None
    if at.tzinfo is None:
        raise InvalidField(field="set", reason="timezone")
    if at < now:
        raise InvalidField(field="set", reason="past")
    if at - now > MAX_MOVE:
        raise InvalidField(field="set", reason="range")
    return at


async def post_sandbox_clock(request: web.Request) -> web.Response:
    body = await read_object(request)
    clock = _sandbox_clock(request)
    async with request.app[SANDBOX_LOCK]:  # one move at a time
        advance, to = parse_clock_move(body, clock.now())
        settings = request.app[SETTINGS]
        try:
            result = await move_clock(request.app[KZ], clock, advance=advance, to=to,
                                              snapshot_hour=settings.snapshot_hour,
                                              digest_hour=settings.digest_hour)
        except ClockMoveError as exc:
            raise InvalidField(field="advance" if advance is not None else "set", reason="range") from exc
    # Moments in Almaty time, like every other answer of the API.
    result = dict(result)
    result["now"] = clock.now()
    result["sweeps"] = [{**step, "at": _moment(step["at"])} if isinstance(step, dict) and "at" in step else step
                        for step in result.get("sweeps", [])]
    return json_response(answers.ClockMoved.model_validate(result))


def _moment(value: Any) -> Any:
    """A datetime, or an ISO 8601 string of one, as a datetime (rendered in Almaty time)."""
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    return value
