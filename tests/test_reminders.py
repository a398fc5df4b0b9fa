"""Reminders before deadlines and the opt-in "queue number moved" notice: written once by the
sweeps, routed to the right chats, worded in the chat's language."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select, update

from bot.notices import render
from services.clock import FrozenClock
from services.kezek import Kezek
from services.notifications import TELEGRAM
from storage.models import Chat, OutboxMessage
from tests.conftest import World, almaty
from tests.test_bot_start import link
from tests.test_notices import Port

CHAT, OTHER = 1001, 2002


async def notices(kz: Kezek, kind: str) -> list[dict[str, Any]]:
    async with kz.reading() as ctx:
        rows = (await ctx.session.execute(select(OutboxMessage).where(OutboxMessage.kind == kind)
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


async def test_showup_and_documents_reminders_the_day_before(kz: Kezek, world: World, clock: FrozenClock) -> None:
    row = world.row(privilege="first")
    await world.apps(row)
    await world.publish(1, "KG1")
    view = await kz.queue_view(row["number"])
    seat = (await kz.available_seats(row["number"]))[0].seat.id
    [ref] = await kz.claim(row["number"], seat, "parent")
    assert view.application.id == ref.application_id
    assert ref.docs_due_at is not None
    await kz.run_sweeps()
    assert await notices(kz, "reminder_showup") == [] and await notices(kz, "reminder_docs") == []
    # The day before each deadline: one reminder each (documents are due first or together).
    clock.set(ref.docs_due_at - dt.timedelta(hours=20))
    await kz.run_sweeps()
    await kz.run_sweeps()
    assert len(await notices(kz, "reminder_docs")) == 1
    clock.set(ref.showup_due_at - dt.timedelta(hours=20))
    await kz.run_sweeps()
    assert len(await notices(kz, "reminder_showup")) == 1


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
    [notice] = [n for n in port.sent if n.kind == "queue_moved"]
    assert notice.target == str(CHAT)  # not the other parent, who did not ask
    text = render("kk", notice).text
    assert "1" in text and mine["number"] in text
