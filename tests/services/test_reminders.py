"""Reminders before deadlines and the opt-in "queue number moved" notice: written once by the
sweeps, routed to the right chats, worded in the chat's language."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select, update

from bot.delivery.notices import render
from services.clock import FrozenClock
from services.kezek import Kezek
from services.notices import NoticeKind
from services.notifications import TELEGRAM
from storage.models import Chat, OutboxMessage
from tests.support.delivery import Port
from tests.support.world import World, almaty, link

CHAT, OTHER = 1001, 2002


async def notices(kz: Kezek, kind: str) -> list[dict[str, Any]]:
    async with kz.reading() as ctx:
        # (NoticeKind: a misspelt kind fails, it does not read as none)
        rows = (await ctx.session.execute(select(OutboxMessage).where(OutboxMessage.kind == NoticeKind(kind))
                                          .order_by(OutboxMessage.id))).scalars().all()
        return [dict(r.payload, application_id=r.application_id) for r in rows]


async def test_offer_reminder_two_hours_before_the_window_closes(kz: Kezek, world: World,
                                                                clock: FrozenClock) -> None:
    row = world.row()
    await world.apps(row)
    await world.publish(1, "KG1")  # Monday 10:00: the offer lives until 20:00
    clock.set(almaty(2026, 9, 7, 17, 0))
    await kz.run_sweeps()
    assert await notices(kz, "reminder_offer") == []
    clock.set(almaty(2026, 9, 7, 18, 30))
    assert (await kz.run_sweeps())["reminders"] == 1
    await kz.run_sweeps()  # a second run (or a second instance) writes nothing new
    [reminder] = await notices(kz, "reminder_offer")
    assert dt.datetime.fromisoformat(reminder["expires_at"]) == almaty(2026, 9, 7, 20, 0)


async def claim_first(kz: Kezek, world: World, row: dict[str, Any]) -> Any:
    await world.publish(1, "KG1")
    seat = (await kz.available_seats(row["number"]))[0].seat.id
    [ref] = await kz.claim(row["number"], seat, "parent")
    return ref


async def test_showup_and_documents_reminders_one_working_day_before(kz: Kezek, world: World,
                                                                     clock: FrozenClock) -> None:
    row = world.row(privilege="first")
    await world.apps(row)
    ref = await claim_first(kz, world, row)  # Monday 7 Sep: both due by the end of Monday 14 Sep
    assert ref.showup_due_at == ref.docs_due_at == almaty(2026, 9, 15)
    await kz.run_sweeps()
    assert await notices(kz, "reminder_showup") == [] and await notices(kz, "reminder_docs") == []
    # the working day before Monday is Friday: from the window's start (09:00), not earlier
    clock.set(almaty(2026, 9, 11, 8, 59))
    await kz.run_sweeps()
    assert await notices(kz, "reminder_showup") == [] and await notices(kz, "reminder_docs") == []
    clock.set(almaty(2026, 9, 11, 9, 0))
    assert (await kz.run_sweeps())["reminders"] == 2
    for moment in (almaty(2026, 9, 11, 9, 1), almaty(2026, 9, 12, 12, 0), almaty(2026, 9, 14, 23, 0)):
        clock.set(moment)  # the weekend and the last day: told once
        assert (await kz.run_sweeps())["reminders"] == 0
    [showup] = await notices(kz, "reminder_showup")
    [docs] = await notices(kz, "reminder_docs")
    assert showup["due_at"] == docs["due_at"] == almaty(2026, 9, 15).astimezone(dt.UTC).isoformat()
    assert showup["referral_id"] == docs["referral_id"] == ref.id


async def test_calendar_day_documents_deadline_on_a_weekend_is_reminded_on_the_last_working_day(
        kz: Kezek, world: World, clock: FrozenClock) -> None:
    clock.set(almaty(2026, 3, 19, 11, 0))  # Thursday before Nauryz (21-25 March off)
    row = world.row(privilege="out_of_turn")
    await world.apps(row)
    ref = await claim_first(kz, world, row)
    # documents: the 10th calendar day, Sunday 29 March; show-up: the 5th working day, Tuesday 31
    assert (ref.docs_due_at, ref.showup_due_at) == (almaty(2026, 3, 30), almaty(2026, 4, 1))
    for moment in (almaty(2026, 3, 20, 12, 0), almaty(2026, 3, 25, 12, 0), almaty(2026, 3, 27, 8, 59)):
        clock.set(moment)  # through the holidays: nothing yet
        await kz.run_sweeps()
    assert await notices(kz, "reminder_docs") == [] and await notices(kz, "reminder_showup") == []
    clock.set(almaty(2026, 3, 27, 9, 0))  # Friday, the last working day before Sunday's deadline
    await kz.run_sweeps()
    assert len(await notices(kz, "reminder_docs")) == 1 and await notices(kz, "reminder_showup") == []
    clock.set(almaty(2026, 3, 27, 15, 0))
    await kz.decide_documents(ref.id, accepted=True)  # the reminder worked
    clock.set(almaty(2026, 3, 29, 12, 0))  # the weekend
    await kz.run_sweeps()
    assert await notices(kz, "reminder_showup") == []
    clock.set(almaty(2026, 3, 30, 9, 0))  # Monday: the working day before Tuesday's show-up deadline
    await kz.run_sweeps()
    assert len(await notices(kz, "reminder_showup")) == 1
    assert len(await notices(kz, "reminder_docs")) == 1


async def test_referral_reminders_start_at_the_profiles_window_opening(kz: Kezek, clock: FrozenClock) -> None:
    world = await World(kz, clock).setup(profile={"window_open": "06:50"})
    row = world.row()
    await world.apps(row)
    await claim_first(kz, world, row)  # general: no documents; due by the end of Monday 14 Sep
    clock.set(almaty(2026, 9, 11, 6, 49))
    await kz.run_sweeps()
    assert await notices(kz, "reminder_showup") == []
    clock.set(almaty(2026, 9, 11, 6, 50))
    await kz.run_sweeps()
    assert len(await notices(kz, "reminder_showup")) == 1
    assert await notices(kz, "reminder_docs") == []


async def test_referral_issued_on_the_reminder_day_gets_no_reminder_that_day(kz: Kezek, clock: FrozenClock) -> None:
    world = await World(kz, clock).setup(profile={"showup_working_days": 1})
    row = world.row()
    await world.apps(row)
    clock.set(almaty(2026, 9, 11, 10, 0))  # Friday: due by the end of Monday 14 Sep
    ref = await claim_first(kz, world, row)
    assert ref.showup_due_at == almaty(2026, 9, 15)
    for moment in (almaty(2026, 9, 11, 19, 0), almaty(2026, 9, 14, 12, 0)):
        clock.set(moment)  # the referral notice itself carries the deadline
        await kz.run_sweeps()
    assert await notices(kz, "reminder_showup") == []


async def test_move_notices_only_for_chats_that_asked(kz: Kezek, world: World, clock: FrozenClock) -> None:
    ahead1, ahead2, mine = world.row(), world.row(), world.row()
    await world.apps(ahead1, ahead2, mine)
    await link(kz, mine, CHAT)
    await link(kz, mine, OTHER)
    await kz.set_chat_language(CHAT, "kk")
    async with kz.unit() as ctx:
        await ctx.session.execute(update(Chat).where(Chat.id == CHAT).values(notify_moves=True))
    assert await kz.announce_moves() == 0  # the first run remembers number 3
    await kz.withdraw_application(ahead1["number"])
    await kz.withdraw_application(ahead2["number"])
    clock.advance(hours=1)
    assert await kz.announce_moves() == 1
    assert await kz.announce_moves() == 0  # told once
    [moved] = await notices(kz, "queue_moved")
    assert (moved["previous"], moved["number"], moved["chat_id"]) == (3, 1, CHAT)
    await kz.route_notices()
    port = Port()
    await kz.deliver_due(TELEGRAM, port)
    [notice] = [n for n in port.sent if n.kind == NoticeKind.QUEUE_MOVED]
    assert notice.target == str(CHAT)  # not the other parent, who did not ask
    text = render("kk", notice).text
    assert "1" in text and mine["number"] in text


async def test_move_notices_carry_each_queue_own_numbers(kz: Kezek, world: World, clock: FrozenClock) -> None:
    """The digest ranks whole queues at once: every told number is the application's live number
    in its own queue (two birth years, privilege ahead of submission order), chats that did not
    ask get nothing."""
    rows = [world.row(birth_date=dt.date(2023 - i % 2, 3, 15),
                      privilege="first" if i == 5 else "none") for i in range(8)]
    numbers = await world.apps(*rows)
    watched = {1100 + i: rows[i] for i in (2, 3, 5, 6, 7)}
    for chat, row in watched.items():
        await link(kz, row, chat)
    await link(kz, rows[4], OTHER)  # did not ask
    async with kz.unit() as ctx:
        await ctx.session.execute(update(Chat).where(Chat.id.in_(watched)).values(notify_moves=True))
    assert await kz.announce_moves() == 0  # remembered
    await kz.withdraw_application(numbers[0])  # born 2023 (0, 2, 4, 6): 2 and 6 move up
    await kz.withdraw_application(numbers[1])  # born 2022 (5 privileged first, 1, 3, 7): 3 and 7 move up
    clock.advance(hours=1)
    assert await kz.announce_moves() == 4
    told = {m["chat_id"]: m["number"] for m in await notices(kz, "queue_moved")}
    assert set(told) == {1102, 1103, 1106, 1107}  # 5 stays first: nothing to tell
    assert (await kz.queue_view(rows[5]["number"])).number == 1
    for chat, row in watched.items():
        if chat not in told:
            continue
        assert told[chat] == (await kz.queue_view(row["number"])).number
