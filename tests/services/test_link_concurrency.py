"""The limits of linking hold when one chat's requests arrive at once.

Each burst goes through the facade calls the handlers make, spread over three facades on
databases of their own (three bot instances: separate connections, no shared Python lock), with
``asyncio.gather``. What is asserted is what the people would notice: how many guesses got an
answer of their own before the lock-out, whether the chat got linked, how many codes were
e-mailed, and that every request got one of the answers the bot can word (never an error that
becomes the generic apology). SQLite and PostgreSQL (without Redis: nothing here uses it)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from services import linking
from services.clock import FrozenClock
from services.errors import LinkFailed, LinkLocked
from services.kezek import Kezek
from services.linking import CodeRateLimited, LinkTarget
from services.notices import CODE_KINDS
from services.validation import make_iin
from storage.models import ChatLink, LinkAttempt, OutboxMessage
from tests.support.concurrency import burst, kinds
from tests.support.telegram import CHAT_ID
from tests.support.world import World, links, outbox_codes


async def failures_recorded(kz: Kezek) -> int:
    async with kz.reading(with_calendar=False) as ctx:
        return (await ctx.session.execute(select(func.count()).select_from(LinkAttempt).where(
            LinkAttempt.chat_id == CHAT_ID, LinkAttempt.ok.is_(False)))).scalar_one()


def wrong_iins(count: int) -> list[str]:
    iins: list[str] = []
    serial = 900
    while len(iins) < count:
        iin = make_iin(dt.date(2023, 3, 15), serial)
        serial += 1
        if iin not in iins:
            iins.append(iin)
    return iins


async def test_a_burst_of_iins_gets_at_most_the_allowance_evaluated(kz: Kezek, world: World,
                                                                     facades: list[Kezek]) -> None:
    """18 IINs at once (17 wrong, the right one last): four are told "do not match", the fifth
    wrong one locks the chat, every other one is told it is locked; the right one is confirmed
    only when it came before the lock."""
    row = world.row()
    await world.apps(row)
    guesses = [*wrong_iins(17), row["child_iin"]]
    results = await burst(facades, [
        (lambda k, iin=iin: k.check_link_application(CHAT_ID, row["number"], iin)) for iin in guesses])
    counted = kinds(results)
    assert set(counted) <= {"LinkFailed", "LinkLocked", "LinkTarget"}, results
    assert counted["LinkFailed"] == linking.MAX_FAILURES - 1, counted
    assert counted["LinkLocked"] == len(guesses) - (linking.MAX_FAILURES - 1) - counted.get("LinkTarget", 0)
    assert all(not isinstance(r, LinkTarget) for r in results[:-1])  # only the right IIN is ever confirmed
    assert await failures_recorded(kz) == linking.MAX_FAILURES
    assert await kz.link_locked_until(CHAT_ID) is not None
    with pytest.raises(LinkLocked):
        await kz.check_link_application(CHAT_ID, row["number"], row["child_iin"])


async def test_a_burst_of_code_guesses_cannot_link(kz: Kezek, world: World, facades: list[Kezek],
                                                   clock: FrozenClock) -> None:
    """20 wrong codes at once against one e-mailed code: at most 5 are tried (four "do not match",
    the fifth locks the chat), the other 15 are told the chat is locked; the chat is not linked
    and the right code does not link it afterwards either."""
    row = world.row()
    await world.apps(row)
    await kz.check_link_application(CHAT_ID, row["number"], row["child_iin"])
    await kz.send_link_code(CHAT_ID, row["number"], row["child_iin"])
    [notice] = await outbox_codes(kz)
    code = notice.payload["code"]
    wrong = [f"{n:06d}" for n in range(100_000, 100_000 + 21) if f"{n:06d}" != code][:20]
    results = await burst(facades, [(lambda k, c=c: k.link_by_code(CHAT_ID, c)) for c in wrong])
    counted = kinds(results)
    assert counted == {"LinkFailed": linking.CODE_MAX_TRIES - 1,
                       "LinkLocked": len(wrong) - (linking.CODE_MAX_TRIES - 1)}, results
    assert await links(kz) == []
    assert await failures_recorded(kz) == linking.MAX_FAILURES
    with pytest.raises(LinkLocked):
        await kz.link_by_code(CHAT_ID, code)
    clock.advance(dt.timedelta(hours=1))  # the lock has passed; the code was used up by its tries
    with pytest.raises(LinkFailed):
        await kz.link_by_code(CHAT_ID, code)
    assert await links(kz) == []


async def test_a_burst_of_code_requests_mails_at_most_the_limit(kz: Kezek, world: World,
                                                                facades: list[Kezek]) -> None:
    """8 "send me a code" presses at once (link codes, and the settings' e-mail codes that share
    the limit): 3 codes are e-mailed, every other press is told when it may ask again; the newest
    link code links the chat."""
    row = world.row()
    await world.apps(row)
    calls: list[Callable[[Kezek], Awaitable[Any]]] = [
        (lambda k: k.send_link_code(CHAT_ID, row["number"], row["child_iin"])) for _ in range(6)]
    calls += [(lambda k, n=n: k.request_email(CHAT_ID, f"parent.{n}@example.kz")) for n in range(2)]
    results = await burst(facades, calls)
    counted = kinds(results)
    assert set(counted) <= {"LinkTarget", "str", "CodeRateLimited"}, results
    assert counted["CodeRateLimited"] == len(calls) - linking.CODE_MAIL_LIMIT, results
    until = {r.until for r in results if isinstance(r, CodeRateLimited)}
    assert len(until) == 1 and until.pop() > kz.clock.now()
    async with kz.reading(with_calendar=False) as ctx:
        mailed = (await ctx.session.execute(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.kind.in_(CODE_KINDS)))).scalar_one()
    assert mailed == linking.CODE_MAIL_LIMIT
    link_codes = await outbox_codes(kz)
    if link_codes:
        await kz.link_by_code(CHAT_ID, link_codes[-1].payload["code"])
        assert await links(kz) == [row["number"]]


async def test_a_burst_of_contacts_links_once(kz: Kezek, world: World, facades: list[Kezek]) -> None:
    """The contact shared four times at once (a double tap, a retry): one link, the other three
    are told the application is linked already; nothing counted as a failure."""
    row = world.row()
    await world.apps(row)
    results = await burst(facades, [
        (lambda k: k.link_by_contact(CHAT_ID, row["number"], row["child_iin"], row["phone"], CHAT_ID, CHAT_ID))
        for _ in range(4)])
    assert all(isinstance(r, LinkTarget) for r in results), results
    assert sorted(r.already for r in results) == [False, True, True, True]
    async with kz.reading(with_calendar=False) as ctx:
        assert (await ctx.session.execute(select(func.count()).select_from(ChatLink))).scalar_one() == 1
    assert await failures_recorded(kz) == 0


@pytest.mark.parametrize("chat_id", [-1001234567890123, 2**62 + 7, 7_000_000_001])
async def test_any_chat_id_takes_its_lock(kz: Kezek, world: World, chat_id: int) -> None:
    """Group chats (negative ids) and ids beyond 32 bits: the chat's lock (on PostgreSQL an
    advisory lock keyed by the id folded to 32 bits) is taken and the chat links."""
    assert -2**31 <= linking._chat_lock_key(chat_id) < 2**31
    row = world.row()
    await world.apps(row)
    target = await kz.link_by_contact(chat_id, row["number"], row["child_iin"], row["phone"], 5, 5)
    assert not target.already and await links(kz, chat_id) == [row["number"]]
