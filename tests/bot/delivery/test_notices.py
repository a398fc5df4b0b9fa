"""Notices from the outbox to people: routing to the linked chats and e-mail addresses, sending
with retries, the Telegram port (aiogram's errors), the e-mail ports (a real SMTP server on
loopback, a folder of .eml files), and the words of every notice the services write."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import email
import html
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from email import policy
from pathlib import Path
from typing import Any

import pytest
from aiogram.methods import SendMessage
from aiogram.types import InlineKeyboardMarkup
from sqlalchemy import select, update

from bot.delivery import notices as bot_notices
from bot.delivery.notices import (
    ACT_IN_BOT,
    BUTTONS,
    DEADLINE_LABELS,
    RENDERERS,
    SUBJECTS,
    render,
    render_email,
)
from bot.delivery.sender import drain_once, telegram_port
from handlers.callbacks import SeatsCallback
from locales import gettext
from locales.formats import format_deadline, format_number
from services import notices as n
from services.clock import FrozenClock
from services.directory import KindergartenInfo
from services.email import EmailContent, FolderSender, SmtpSender
from services.kezek import Kezek
from services.notices import KINDS, BotAction, Deadline, NoticeAttachment, NoticeKind
from services.notifications import EMAIL, MAX_ATTEMPTS, TELEGRAM, Notice, RetryLater, Undeliverable
from storage.models import Chat, Delivery, OutboxMessage
from tests.support.delivery import Port, SmtpServer
from tests.support.telegram import CHAT_ID, OTHER_CHAT, MockedBot
from tests.support.world import World, almaty, link, registrations_sent


async def deliveries(kz: Kezek, kind: str | None = None) -> list[tuple[str, str, str, str]]:
    async with kz.reading() as ctx:
        q = select(OutboxMessage.kind, Delivery.channel, Delivery.target, Delivery.status).join(
            OutboxMessage, OutboxMessage.id == Delivery.outbox_id).order_by(Delivery.id)
        if kind:  # (NoticeKind: a misspelt kind fails, it does not read as none)
            q = q.where(OutboxMessage.kind == NoticeKind(kind))
        return [tuple(r) for r in (await ctx.session.execute(q)).all()]  # type: ignore[misc]


@pytest.fixture
async def linked(kz: Kezek, world: World) -> dict[str, Any]:
    row = world.row()
    await world.apps(row)
    app_id = await link(kz, row, CHAT_ID)
    await link(kz, row, OTHER_CHAT)
    await kz.set_chat_language(CHAT_ID, "kk")
    await kz.set_chat_language(OTHER_CHAT, "ru")
    await registrations_sent(kz)
    await kz.route_notices()  # nothing yet: linking writes no notice to the chats
    return {"row": row, "app_id": app_id}


async def test_turn_came_reaches_every_linked_chat_and_the_application_email(
        kz: Kezek, world: World, linked: dict[str, Any]) -> None:
    await world.publish(1, "KG1")
    assert await kz.route_notices() == 1
    assert await kz.route_notices() == 0  # routed once
    got = await deliveries(kz, "turn_came")
    assert sorted((c, t) for _, c, t, _ in got) == sorted(
        [(TELEGRAM, str(CHAT_ID)), (TELEGRAM, str(OTHER_CHAT)), (EMAIL, linked["row"]["email"])])
    port = Port()
    counts = await kz.deliver_due(TELEGRAM, port)
    assert counts == {"sent": 2, "pending": 0, "failed": 0}
    by_chat = {n.target: n for n in port.sent}
    assert by_chat[str(CHAT_ID)].lang == "kk" and by_chat[str(OTHER_CHAT)].lang == "ru"
    assert by_chat[str(CHAT_ID)].number == linked["row"]["number"]
    assert by_chat[str(CHAT_ID)].kindergarten is not None
    # Nothing is sent twice.
    assert await kz.deliver_due(TELEGRAM, port) == {"sent": 0, "pending": 0, "failed": 0}
    assert {s for *_, s in await deliveries(kz, "turn_came") if _[1] == TELEGRAM} == {"sent"}


async def test_a_chat_that_never_chose_a_language_still_gets_its_alerts(kz: Kezek, world: World) -> None:
    row = world.row()
    await world.apps(row)
    await link(kz, row, CHAT_ID)  # no /start language choice before
    await world.publish(1, "KG1")
    await kz.route_notices()
    assert (TELEGRAM, str(CHAT_ID)) in {(c, t) for _, c, t, _ in await deliveries(kz, "turn_came")}


async def test_optional_notices_follow_the_chat_settings(kz: Kezek, world: World, clock: FrozenClock,
                                                         linked: dict[str, Any]) -> None:
    async with kz.unit() as ctx:
        await ctx.session.execute(update(Chat).where(Chat.id == OTHER_CHAT).values(notify_open_seats=False))
    ahead = world.row(submitted=dt.datetime(2023, 1, 1, tzinfo=dt.UTC))
    await world.apps(ahead)
    await world.publish(1, "KG1")  # offered to `ahead`, who lets it pass
    clock.advance(hours=11)  # past 20:00: the seat opens to everyone
    await kz.run_sweeps()
    await kz.route_notices()
    targets = {(c, t) for _, c, t, _ in await deliveries(kz, "seats_open")}
    assert (TELEGRAM, str(CHAT_ID)) in targets and (TELEGRAM, str(OTHER_CHAT)) not in targets
    assert (EMAIL, linked["row"]["email"]) in targets  # the official copy always goes


async def test_link_code_goes_by_email_only(kz: Kezek, world: World, linked: dict[str, Any]) -> None:
    third = 3003
    await kz.send_link_code(third, linked["row"]["number"], linked["row"]["child_iin"])
    await kz.route_notices()
    assert [(c, t) for _, c, t, _ in await deliveries(kz, "link_code")] == [(EMAIL, linked["row"]["email"])]
    port = Port()
    await kz.deliver_due(EMAIL, port)
    [notice] = port.sent
    assert re.fullmatch(r"\d{6}", notice.payload["code"])
    async with kz.reading() as ctx:
        kept = (await ctx.session.execute(select(OutboxMessage.payload).where(
            OutboxMessage.kind == "link_code"))).scalar_one()
    assert notice.payload["code"] not in str(kept)  # not kept once sent


async def test_retries_backoff_and_giving_up(kz: Kezek, world: World, clock: FrozenClock,
                                             linked: dict[str, Any]) -> None:
    await world.publish(1, "KG1")
    await kz.route_notices()
    port = Port(RetryLater(30), Undeliverable("blocked"))
    assert await kz.deliver_due(TELEGRAM, port) == {"sent": 0, "pending": 1, "failed": 1}
    assert await kz.deliver_due(TELEGRAM, port) == {"sent": 0, "pending": 0, "failed": 0}  # not due yet
    clock.advance(seconds=31)
    assert await kz.deliver_due(TELEGRAM, port) == {"sent": 1, "pending": 0, "failed": 0}
    # A channel that keeps failing is given up after MAX_ATTEMPTS tries, with backoff between.
    await kz.deliver_due(EMAIL, Port(*[OSError("down")] * MAX_ATTEMPTS), 10)
    for _ in range(MAX_ATTEMPTS):
        clock.advance(hours=2)
        await kz.deliver_due(EMAIL, Port(*[OSError("down")] * MAX_ATTEMPTS))
    assert {s for _, c, _, s in await deliveries(kz, "turn_came") if c == EMAIL} == {"failed"}


async def test_a_sender_that_died_mid_send_leaves_the_delivery_due(kz: Kezek, world: World, clock: FrozenClock,
                                                                   linked: dict[str, Any]) -> None:
    await world.publish(1, "KG1")
    await kz.route_notices()

    async def crash(notice: Notice) -> None:
        raise asyncio.CancelledError  # the process stops between the lease and the result

    with pytest.raises(asyncio.CancelledError):
        await kz.deliver_due(TELEGRAM, crash, 1)
    port = Port()
    await kz.deliver_due(TELEGRAM, port)
    assert len(port.sent) == 1  # the other one; the leased one waits for its lease to pass
    clock.advance(minutes=3)
    await kz.deliver_due(TELEGRAM, port)
    assert len(port.sent) == 2


def a_notice(kind: str = "turn_came", **payload: Any) -> Notice:
    return Notice(delivery_id=1, channel=TELEGRAM, target=str(CHAT_ID), lang="ru", kind=kind,
                  payload=payload or {"expires_at": "2026-09-07T15:00:00"}, application_id=5,
                  number="A00001", child_iin_masked="230315*****1")


async def test_telegram_port_maps_telegram_errors() -> None:
    bot = MockedBot()
    await telegram_port(bot)(a_notice())
    [msg] = [m for m in bot.session.requests if isinstance(m, SendMessage)]
    assert msg.chat_id == CHAT_ID and "A00001" in msg.text
    assert isinstance(msg.reply_markup, InlineKeyboardMarkup)
    assert msg.reply_markup.inline_keyboard[0][0].callback_data == SeatsCallback(app=5).pack()
    bot.session.add_result_for(SendMessage, error_code=429, description="Too Many Requests: retry after 17",
                               retry_after=17)
    with pytest.raises(RetryLater) as info:
        await telegram_port(bot)(a_notice())
    assert info.value.seconds == 17
    bot.session.add_result_for(SendMessage, error_code=403, description="Forbidden: bot was blocked by the user")
    with pytest.raises(Undeliverable):
        await telegram_port(bot)(a_notice())


# --- every kind: its words, its table row, its producer ---------------------------------------------

AT = dt.datetime(2026, 9, 14, 19, 0, tzinfo=dt.UTC)
KG = KindergartenInfo("KG1", "Ясли-сад №1", "№1 бөбекжай-бақша", "ул. Тимирязева, 1")

# A payload of each kind as its producer writes it (the tests below render these through the real
# catalogs): a new NoticeKind fails them until it has one.
SAMPLES: dict[NoticeKind, n.Payload] = {
    NoticeKind.TURN_CAME: n.OfferMade(offer_id=1, seat_id=2, kindergarten_id=3, expires_at=AT, batch=None),
    NoticeKind.OFFER_EXPIRED: n.OfferClosed(offer_id=1, seat_id=2),
    NoticeKind.SEATS_OPEN: n.SeatsOpened(district_id=1, birth_year=2023, seats=3),
    NoticeKind.REFERRAL_ISSUED: n.ReferralIssued(referral_id=7, kindergarten_id=3, group_id=4, showup_due_at=AT,
                                                 docs_due_at=AT + dt.timedelta(days=7)),
    NoticeKind.REFERRAL_ANNULLED: n.ReferralAnnulled(referral_id=7, reason="no_show", effective_at=AT,
                                                     stoplist_until=AT + dt.timedelta(days=14)),
    NoticeKind.ADMITTED: n.Admitted(referral_id=7, kindergarten_id=3),
    NoticeKind.DOCUMENTS_ACCEPTED: n.ReferralNotice(referral_id=7),
    NoticeKind.REMOVED: n.Removed(referral_id=7, reason="no_show", effective_at=AT, missed=2),
    NoticeKind.PRIVILEGE_DROPPED: n.PrivilegeDropped(referral_id=7, reason="docs_rejected", effective_at=AT,
                                                     rejection="unreadable", note="Нет второй страницы"),
    NoticeKind.STOPLIST_ENDED: n.StoplistEnded(until=AT),
    NoticeKind.WITHDRAWN: n.NoDetails(),
    NoticeKind.REMINDER_OFFER: n.OfferReminder(offer_id=1, expires_at=AT),
    NoticeKind.REMINDER_SHOWUP: n.ReferralDeadline(referral_id=7, due_at=AT),
    NoticeKind.NO_SHOW_REPORTED: n.ReferralDeadline(referral_id=7, due_at=AT),
    NoticeKind.STAFF_INVITE: n.StaffInvited(email="kg@example.kz", code="abc", kindergarten_id=1, expires_at=AT),
    NoticeKind.STAFF_DIGEST: n.StaffDigest(chat_id=CHAT_ID, kindergarten_id=1, count=3, until=AT),
    NoticeKind.REMINDER_DOCS: n.ReferralDeadline(referral_id=7, due_at=AT),
    NoticeKind.QUEUE_MOVED: n.QueueMoved(chat_id=CHAT_ID, number=4, previous=9),
    NoticeKind.LINK_CODE: n.LinkCodeIssued(code="123456"),
    NoticeKind.EMAIL_CODE: n.EmailCodeIssued(chat_id=CHAT_ID, email="parent@example.kz", code="123456"),
    NoticeKind.REGISTRATION: n.Registration(link_expires_at=AT),
}


def sample(kind: NoticeKind, channel: str = TELEGRAM) -> Notice:
    return Notice(delivery_id=1, channel=channel, target=str(CHAT_ID), lang="ru", kind=kind,
                  payload=SAMPLES[kind].to_json(), application_id=5, number="A00001",
                  child_iin_masked="230315*****1", kindergarten=KG, group_name="Балапан")


@pytest.fixture
def missing(monkeypatch: pytest.MonkeyPatch) -> str:
    """What a value the words need and the notice lacks reads as (bot.delivery.notices.MISSING, an
    ordinary dash that translations use too), made unmistakable."""
    monkeypatch.setattr(bot_notices, "MISSING", "<missing>")
    return "<missing>"


def fallback(lang: str) -> str:
    """What a kind this version does not know reads as (a row another version wrote)."""
    return render(lang, replace(sample(NoticeKind.WITHDRAWN), kind="something_new")).text


def test_a_kind_another_version_wrote_reads_as_a_generic_notice() -> None:
    # (a rolled-back deployment meets rows of a kind it does not know: they still reach the parent)
    notice = replace(sample(NoticeKind.TURN_CAME), kind="something_new")
    assert render("ru", notice).text == gettext("ru", "There is news about {application}: see /status.",
                                                application=gettext("ru", "application {number} (child's IIN {iin})",
                                                                    number="A00001", iin="230315*****1"))
    assert render("ru", notice).markup is None
    copy = render_email(notice)
    assert copy.subject == "Kezek: " + " / ".join(
        gettext(lang, "Notice about the kindergarten queue") for lang in ("kk", "ru"))
    assert f"{gettext('ru', 'Offer open until')}: " in copy.text  # its deadlines, by their usual keys


def test_the_stored_kinds_never_change() -> None:
    # The outbox stores these strings: renaming a member's value would strand the rows written
    # before (a new kind adds its value here).
    assert {k.value for k in NoticeKind} == {
        "turn_came", "offer_expired", "seats_open", "referral_issued", "referral_annulled", "admitted",
        "documents_accepted", "removed", "privilege_dropped", "stoplist_ended", "withdrawn", "reminder_offer",
        "reminder_showup", "reminder_docs", "queue_moved", "link_code", "email_code", "registration",
        "no_show_reported", "staff_invite", "staff_digest"}
    assert set(KINDS) == set(NoticeKind)


@pytest.mark.parametrize("kind", list(NoticeKind))
def test_every_kind_has_its_words_in_both_languages(kind: NoticeKind, missing: str) -> None:
    assert kind in RENDERERS and kind in SUBJECTS
    texts = {lang: render(lang, sample(kind)).text for lang in ("ru", "kk")}
    for lang, text in texts.items():
        assert text.strip() and text != fallback(lang) and "{" not in text, (lang, text)
        assert missing not in text, (lang, text)  # every value it names is in the payload its producer writes
    assert texts["ru"] != texts["kk"]  # each from its own catalog
    subjects = {lang: gettext(lang, SUBJECTS[kind]) for lang in ("ru", "kk")}
    assert all(s.strip() and s != SUBJECTS[kind] for s in subjects.values()) and subjects["ru"] != subjects["kk"]
    # The e-mail copy has the same words, its deadlines with the UTC offset (it may be read abroad).
    as_email = replace(sample(kind), channel=EMAIL)
    ru, kk = render("ru", as_email).text, render("kk", as_email).text
    copy = render_email(sample(kind))
    assert ru in copy.text and kk in copy.text
    assert copy.subject == f"Kezek: {subjects['kk']} / {subjects['ru']}"
    assert "{" not in copy.subject and "{" not in copy.text and "{" not in copy.html
    # The HTML copy holds the same words (escaped) as the text copy, in both languages.
    for line in (ru + "\n" + kk).splitlines():
        assert html.escape(line, quote=False) in copy.html.replace("&#39;", "'").replace("&#34;", '"')
    assert 'lang="kk"' in copy.html and 'lang="ru"' in copy.html


@pytest.mark.parametrize("kind", list(NoticeKind))
def test_every_kind_shows_its_table_row(kind: NoticeKind) -> None:
    """The button, the e-mail's "do it in the bot" line and the deadlines come from KINDS."""
    spec = KINDS[kind]
    rendered = render("ru", sample(kind))
    if spec.button:
        assert spec.action is not None and isinstance(rendered.markup, InlineKeyboardMarkup)
        [[button]] = rendered.markup.inline_keyboard
        assert button.callback_data == SeatsCallback(app=5).pack()
        assert button.text == gettext("ru", BUTTONS[spec.action])
    else:
        assert rendered.markup is None
    copy = render_email(sample(kind))
    for lang in ("ru", "kk"):
        asked = {action for action in BotAction if gettext(lang, ACT_IN_BOT[action]) in copy.text}
        assert asked == ({spec.action} if spec.action else set()), (lang, asked)
        shown = {d for d in Deadline if f"{gettext(lang, DEADLINE_LABELS[d])}: " in copy.text}
        assert shown == {d for d, _ in spec.deadlines}, (lang, shown)
    if spec.code:
        assert f"{gettext('ru', 'Application')}: " not in copy.text  # a code's e-mail has no details


def test_only_the_referral_pdf_is_attached() -> None:
    # handlers/views/referral_pdf.notice_attachments makes the one file there is: a new
    # NoticeAttachment needs its maker there.
    assert set(NoticeAttachment) == {NoticeAttachment.REFERRAL_PDF}
    assert [k for k, s in KINDS.items() if s.attachment] == [NoticeKind.REFERRAL_ISSUED]


async def test_notify_takes_only_a_kind_with_its_own_payload(kz: Kezek) -> None:
    async with kz.unit() as ctx:
        with pytest.raises(TypeError, match="NoticeKind"):
            ctx.notify("withdrawn", 1, "k1")  # type: ignore[arg-type]  # a plain string is not a kind
        with pytest.raises(TypeError, match="OfferMade"):
            ctx.notify(NoticeKind.TURN_CAME, 1, "k2", n.OfferClosed(offer_id=1, seat_id=2))
        with pytest.raises(TypeError):
            ctx.notify(NoticeKind.TURN_CAME, 1, "k3")  # its payload has fields to fill
        with pytest.raises(TypeError):
            n.OfferClosed(offer_id=1, seat=2)  # type: ignore[call-arg]  # a misspelt field
        with pytest.raises(TypeError):
            n.OfferClosed(offer_id=1)  # type: ignore[call-arg]  # a missing one
        ctx.notify(NoticeKind.WITHDRAWN, 1, "k4")  # a kind that carries nothing
        ctx.notify(NoticeKind.REMINDER_DOCS, 1, "k5", n.ReferralDeadline(referral_id=1, due_at=AT))
    async with kz.reading() as ctx:
        rows = (await ctx.session.execute(select(OutboxMessage.dedupe_key, OutboxMessage.kind, OutboxMessage.payload)
                                          .where(OutboxMessage.dedupe_key.in_(("k1", "k2", "k3", "k4", "k5"))))).all()
    assert sorted(tuple(r) for r in rows) == [("k4", "withdrawn", {}),
                                              ("k5", "reminder_docs", {"referral_id": 1, "due_at": AT.isoformat()})]


def test_payloads_are_stored_as_before() -> None:
    """The JSON an outbox row holds: the fields in order, moments in ISO 8601, null where a
    producer always wrote one, and no key at all for a rejection's missing reason or note."""
    issued = n.ReferralIssued(referral_id=7, kindergarten_id=3, group_id=None, showup_due_at=AT, docs_due_at=None)
    assert list(issued.to_json().items()) == [
        ("referral_id", 7), ("kindergarten_id", 3), ("group_id", None),
        ("showup_due_at", "2026-09-14T19:00:00+00:00"), ("docs_due_at", None)]
    assert list(n.Removed(referral_id=7, reason="no_show", effective_at=AT, missed=2).to_json()) == [
        "referral_id", "reason", "effective_at", "missed"]
    assert n.ReferralAnnulled(referral_id=7, reason="no_show", effective_at=AT, stoplist_until=None).to_json() == {
        "referral_id": 7, "reason": "no_show", "effective_at": AT.isoformat(), "stoplist_until": None}
    assert n.PrivilegeDropped(referral_id=7, reason="docs_missed", effective_at=AT).to_json() == {
        "referral_id": 7, "reason": "docs_missed", "effective_at": AT.isoformat()}
    assert list(n.PrivilegeDropped(referral_id=7, reason="docs_rejected", effective_at=AT, note="x",
                                   rejection="other").to_json()) == [
        "referral_id", "reason", "effective_at", "rejection", "note"]
    assert list(SAMPLES[NoticeKind.TURN_CAME].to_json()) == [
        "offer_id", "seat_id", "kindergarten_id", "expires_at", "batch"]
    assert "123456" not in repr(SAMPLES[NoticeKind.EMAIL_CODE])
    assert "parent@" not in repr(SAMPLES[NoticeKind.EMAIL_CODE])


# Each kind's producer, through the facade as the bot, the API and the scheduler call it
# (the clock starts on Monday 7 September 2026, 10:00 in Almaty: tests/conftest.py).

async def _one(world: World, **row: Any) -> dict[str, Any]:
    app = world.row(**row)
    await world.apps(app)
    return app


async def _take_seat(world: World, row: dict[str, Any]) -> Any:
    pub = await world.publish(1)
    seat = next(s for _, s, number in pub.offers if number == row["number"])
    [ref] = await world.kz.claim(row["number"], seat, confirmed_by="tg:parent")
    return ref


async def _registered(world: World, clock: FrozenClock) -> None:
    await _one(world)


async def _offered(world: World, clock: FrozenClock) -> None:
    await _one(world)
    await world.publish(1)


async def _offer_reminded(world: World, clock: FrozenClock) -> None:
    await _offered(world, clock)
    clock.set(almaty(2026, 9, 7, 18, 30))  # the offer ends with the window, at 20:00
    await world.kz.run_sweeps()


async def _offer_expired(world: World, clock: FrozenClock) -> None:
    await world.apps(world.row(), world.row())
    await world.publish(1)
    clock.set(almaty(2026, 9, 7, 20, 30))
    await world.kz.run_sweeps()


async def _referred(world: World, clock: FrozenClock) -> None:
    await _take_seat(world, await _one(world))


async def _admitted(world: World, clock: FrozenClock) -> None:
    await world.kz.admit((await _take_seat(world, await _one(world))).id)


def _documents(accepted: bool) -> Callable[[World, FrozenClock], Awaitable[None]]:
    async def produce(world: World, clock: FrozenClock) -> None:
        ref = await _take_seat(world, await _one(world, privilege="first"))
        await world.kz.decide_documents(ref.id, accepted, reason=None if accepted else "unreadable")
    return produce


async def _deadlines_reminded(world: World, clock: FrozenClock) -> None:
    await _take_seat(world, await _one(world, privilege="first"))
    clock.set(almaty(2026, 9, 11, 9, 0))  # the working day before the deadlines' day
    await world.kz.run_sweeps()


async def _no_show(world: World, clock: FrozenClock) -> None:
    await _take_seat(world, await _one(world))
    clock.set(almaty(2026, 9, 15, 10, 0))
    await world.kz.run_sweeps()


async def _stoplist_ended(world: World, clock: FrozenClock) -> None:
    await _no_show(world, clock)
    clock.set(almaty(2026, 9, 30, 0, 0))
    await world.kz.run_sweeps()


async def _removed(world: World, clock: FrozenClock) -> None:
    await world.kz.upsert_profiles([{"code": "strict", "removal_on_annulment": 1}])
    await world.kz.upsert_districts([{"code": "ALM-BOS", "name_ru": "Бостандыкский район",
                                      "name_kk": "Бостандық ауданы", "profile": "strict"}])
    await _no_show(world, clock)


async def _withdrawn(world: World, clock: FrozenClock) -> None:
    await world.kz.withdraw_application((await _one(world))["number"])


async def _moved(world: World, clock: FrozenClock) -> None:
    ahead, mine = world.row(), world.row()
    await world.apps(ahead, mine)
    await link(world.kz, mine, CHAT_ID)
    await world.kz.set_notice(CHAT_ID, "moves", True)
    await world.kz.announce_moves()  # the first run only remembers the number
    await _take_seat(world, ahead)
    await world.kz.announce_moves()


async def _link_code(world: World, clock: FrozenClock) -> None:
    app = await _one(world)
    await world.kz.send_link_code(CHAT_ID, app["number"], app["child_iin"])


async def _email_code(world: World, clock: FrozenClock) -> None:
    await world.kz.request_email(CHAT_ID, "parent@example.kz")


async def _no_show_reported(world: World, clock: FrozenClock) -> None:
    ref = await _take_seat(world, await _one(world))
    kindergarten = (await world.kz.referral_document(ref.id)).facts.kindergarten.code
    invitation = await world.kz.invite_staff(kindergarten)
    await world.kz.accept_staff_invite(invitation.token, 555)
    await world.kz.staff_no_show(ref.id, 555)


async def _staff_invited(world: World, clock: FrozenClock) -> None:
    await world.kz.invite_staff("KG1", email="kg1@example.kz")


async def _staff_digested(world: World, clock: FrozenClock) -> None:
    ref = await _take_seat(world, await _one(world))
    kindergarten = (await world.kz.referral_document(ref.id)).facts.kindergarten.code
    await world.kz.accept_staff_invite((await world.kz.invite_staff(kindergarten)).token, 555)
    clock.set(almaty(2026, 9, 11, 8, 0))  # Friday morning: the deadline ends on Monday
    await world.kz.staff_digest()


PRODUCERS: dict[NoticeKind, Callable[[World, FrozenClock], Awaitable[None]]] = {
    NoticeKind.TURN_CAME: _offered,
    NoticeKind.OFFER_EXPIRED: _offer_expired,
    NoticeKind.SEATS_OPEN: _offer_expired,
    NoticeKind.REFERRAL_ISSUED: _referred,
    NoticeKind.REFERRAL_ANNULLED: _no_show,
    NoticeKind.ADMITTED: _admitted,
    NoticeKind.DOCUMENTS_ACCEPTED: _documents(True),
    NoticeKind.REMOVED: _removed,
    NoticeKind.PRIVILEGE_DROPPED: _documents(False),
    NoticeKind.STOPLIST_ENDED: _stoplist_ended,
    NoticeKind.WITHDRAWN: _withdrawn,
    NoticeKind.REMINDER_OFFER: _offer_reminded,
    NoticeKind.REMINDER_SHOWUP: _deadlines_reminded,
    NoticeKind.REMINDER_DOCS: _deadlines_reminded,
    NoticeKind.QUEUE_MOVED: _moved,
    NoticeKind.LINK_CODE: _link_code,
    NoticeKind.EMAIL_CODE: _email_code,
    NoticeKind.REGISTRATION: _registered,
    NoticeKind.NO_SHOW_REPORTED: _no_show_reported,
    NoticeKind.STAFF_INVITE: _staff_invited,
    NoticeKind.STAFF_DIGEST: _staff_digested,
}


@pytest.mark.parametrize("kind", list(NoticeKind))
async def test_every_kind_is_written_by_its_producer_and_worded_from_what_it_stores(
        kind: NoticeKind, kz: Kezek, world: World, clock: FrozenClock, missing: str) -> None:
    await PRODUCERS[kind](world, clock)
    async with kz.reading() as ctx:
        payloads = list((await ctx.session.execute(select(OutboxMessage.payload).where(
            OutboxMessage.kind == kind))).scalars())
    assert payloads, f"no {kind} notice was written"
    names = {f.name for f in dataclasses.fields(KINDS[kind].payload)}
    assert all(set(payload) <= names for payload in payloads), payloads
    # Sent as it is stored (the real router and claim), then worded.
    await kz.route_notices()
    port = Port()
    await kz.deliver_due(TELEGRAM, port, 1000)
    await kz.deliver_due(EMAIL, port, 1000)
    mine = [notice for notice in port.sent if notice.kind == kind]
    assert mine, f"no {kind} notice was delivered"
    for notice in mine:
        for lang in ("ru", "kk"):
            text = render(lang, notice).text
            assert text != fallback(lang) and missing not in text, (lang, text)
        assert render_email(notice).subject == render_email(sample(kind)).subject


# --- e-mail ----------------------------------------------------------------------------------------

def test_a_referral_copy_lists_its_details_and_escapes_registry_data() -> None:
    notice = Notice(
        delivery_id=1, channel=EMAIL, target="parent@example.kz", lang="ru", kind="referral_issued",
        payload={"showup_due_at": "2026-09-14T19:00:00+00:00", "docs_due_at": "2026-09-21T19:00:00+00:00",
                 "language": "kk"},
        application_id=5, number="A00001", child_iin_masked="230315*****1",
        kindergarten=KindergartenInfo("KG", "Сад <b>&</b>", "<b>&</b> бақша", "ул. Абая & Сейфуллина"),
        group_name="Балапан <i>")
    copy = render_email(notice)
    for lang, kg, language in (("kk", "<b>&</b> бақша", "қазақ тілі"), ("ru", "Сад <b>&</b>", "казахский")):
        due = format_deadline(lang, dt.datetime(2026, 9, 14, 19, tzinfo=dt.UTC))
        docs = format_deadline(lang, dt.datetime(2026, 9, 21, 19, tzinfo=dt.UTC))
        for label, value in (("Kindergarten", kg), ("Address", "ул. Абая & Сейфуллина"), ("Group", "Балапан <i>"),
                             ("Language of the group", language), ("Referral valid until", due),
                             ("Privilege documents due by", docs)):
            assert f"{gettext(lang, label)}: {value}" in copy.text, (lang, label)
            assert html.escape(value, quote=False) in copy.html
    assert "&lt;b&gt;&amp;&lt;/b&gt; бақша" in copy.html and "Балапан &lt;i&gt;" in copy.html
    assert "<b>" not in copy.html and "<i>" not in copy.html


def test_a_code_copy_carries_the_code_and_no_application_details() -> None:
    copy = render_email(a_notice("email_code", code="654321"))
    assert "654321" in copy.text and "654321" in copy.html
    assert gettext("ru", "Child's IIN") not in copy.text


async def test_folder_sender_writes_a_readable_eml(tmp_path: Path, clock: FrozenClock) -> None:
    mailer = FolderSender(clock, tmp_path / "mail")
    copy = render_email(a_notice())
    await mailer.send("parent@example.kz", copy, message_key="kezek-1")
    [path] = list((tmp_path / "mail").glob("*.eml"))
    msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert msg["To"] == "parent@example.kz" and msg["Subject"] == copy.subject
    assert msg.get_content_type() == "multipart/alternative" and msg["Message-ID"] and msg["Date"]
    assert "A00001" in msg.get_body(("plain",)).get_content()
    assert "A00001" in msg.get_body(("html",)).get_content()


async def test_smtp_sender_on_a_real_server(kz: Kezek, world: World, clock: FrozenClock,
                                            linked: dict[str, Any], smtp_server: SmtpServer) -> None:
    inbox, port = smtp_server.inbox, smtp_server.port
    await world.publish(1, "KG1")
    mailer = SmtpSender(clock, "127.0.0.1", port, "Kezek <noreply@kezek.kz>", starttls=False)
    await drain_once(kz, None, mailer)
    [msg] = inbox.messages
    assert msg["To"] == linked["row"]["email"]
    body = msg.get_body(("plain",)).get_content()
    assert linked["row"]["number"] in body
    assert gettext("kk", "Your turn has come") in msg["Subject"]
    assert "Ясли-сад №1" in body and "№1 бөбекжай-бақша" in body  # both languages
    inbox.data_answer = "550 no such user"
    with pytest.raises(Undeliverable) as refused:
        await mailer.send("nobody@refused.kz", render_email(a_notice()), message_key="x")
    assert "550" in str(refused.value)  # the reason operators see in deliveries.last_error


async def test_smtp_down_means_retry_later(clock: FrozenClock, unused_tcp_port: int) -> None:
    mailer = SmtpSender(clock, "127.0.0.1", unused_tcp_port, "noreply@kezek.kz", starttls=False, timeout=5)
    with pytest.raises(RetryLater):
        await mailer.send("parent@example.kz", EmailContent("s", "b", "<p>b</p>"), message_key="x")


# --- deadlines with their zone, numbers as in every other message --------------------------------------

def test_deadlines_say_their_zone_once_in_a_chat_and_with_the_offset_in_an_email() -> None:
    notice = a_notice("referral_issued", showup_due_at="2026-09-14T19:00:00+00:00",
                      docs_due_at="2026-09-21T19:00:00+00:00")
    zone = {"ru": "(по времени Астаны)", "kk": "(Астана уақытымен)"}
    for lang in ("ru", "kk"):
        text = render(lang, notice).text
        assert text.count(zone[lang]) == 1 and "UTC" not in text  # one mention per message
    copy = render_email(notice)
    for lang, offset in (("ru", "(по времени Астаны, UTC+5)"), ("kk", "(Астана уақытымен, UTC+5)")):
        due = format_deadline(lang, dt.datetime(2026, 9, 14, 19, tzinfo=dt.UTC))
        assert f"{due} {offset}" in copy.text  # in the sentence and in the table of details
        assert copy.text.count(offset) >= 3


def test_queue_moved_shows_the_number_as_every_other_message() -> None:
    notice = a_notice("queue_moved", number=1234, previous=1255)
    assert format_number("ru", 1234) in render("ru", notice).text
    assert "1234" not in render("ru", notice).text


def test_the_html_copy_fits_a_phone_and_names_its_language() -> None:
    copy = render_email(a_notice("referral_issued", showup_due_at="2026-09-14T19:00:00+00:00",
                                 docs_due_at="2026-09-21T19:00:00+00:00"))
    assert "white-space:nowrap" not in copy.html  # a 47-character label pushed the table wide
    assert re.search(r'<html lang="kk">', copy.html)
