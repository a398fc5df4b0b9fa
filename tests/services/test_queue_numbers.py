"""Queue numbers kept per version of a queue (services.queue_numbers, storage.queue_versions).

What a parent would notice if this went wrong is a wrong number on their /status card. So every
test compares the cards' numbers, read through two instances (two Kezek objects on one database,
each with its rankings), with the number counted live, after changes made every way a queue can
change: the services, the registry import, and an operator's SQL straight on the table. Both
backends; on PostgreSQL also many writers and folds at once."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func, select, text

from services.kezek import Kezek
from services.queue_numbers import QueueNumbers
from storage.db import Database
from storage.models import Application, Chat, ChatLink, QueueChange
from tests.support.databases import sql
from tests.support.world import World, almaty

FIRST_CHAT = 810_000


async def link_all(kz: Kezek, numbers: list[str]) -> dict[str, int]:
    """Each application linked to a chat of its own (rows written directly: linking is tested
    elsewhere); application number -> chat id."""
    chats = {}
    async with kz.unit() as ctx:
        ids = dict((await ctx.session.execute(select(Application.number, Application.id)
                                              .where(Application.number.in_(numbers)))).all())
        for number in numbers:
            chat = FIRST_CHAT + len(chats) + int(number[1:]) * 10
            chats[number] = chat
            ctx.session.add(Chat(id=chat, language="ru", created_at=ctx.now, updated_at=ctx.now))
            ctx.session.add(ChatLink(chat_id=chat, application_id=ids[number], linked_at=ctx.now, method="contact"))
    return chats


async def card_numbers(kz: Kezek, chats: dict[str, int]) -> dict[str, int | None]:
    out = {}
    for number, chat in chats.items():
        (card,) = await kz.status_cards(chat)
        out[number] = card.queue_number
    return out


async def live_numbers(kz: Kezek, chats: dict[str, int]) -> dict[str, int | None]:
    return {number: (await kz.queue_view(number)).number for number in chats}


@pytest.fixture
async def two(db: Database, kz: Kezek, world: World) -> tuple[Kezek, Kezek]:
    await world.setup()
    other = Kezek(db, kz.clock)
    for instance in (kz, other):  # a queue read again at every change (spaced out by a second otherwise)
        instance._numbers = QueueNumbers(reload_seconds=0)
    return kz, other


async def test_both_instances_show_the_live_number_after_every_kind_of_change(
        db: Database, two: tuple[Kezek, Kezek], world: World) -> None:
    one, other = two
    rows = [world.row() for _ in range(6)]
    numbers = await world.apps(*rows)
    spare = await world.apps(world.row(submitted=almaty(2023, 11, 1, 9, 0)))  # first; an operator deletes it
    chats = await link_all(one, numbers)
    district = (await one.queue_view(numbers[0])).application.district_id
    steps: list[tuple[str, Any]] = [
        ("an application submitted earlier joins ahead of all",
         lambda: world.apps(world.row(submitted=almaty(2023, 12, 1, 9, 0)))),
        ("a privilege moves the fifth ahead", lambda: world.apps({**rows[4], "privilege": "first"})),
        ("the registry withdraws the second", lambda: one.withdraw_application(numbers[1])),
        ("an operator corrects the sixth's submission moment to the earliest",
         lambda: sql(db, "UPDATE applications SET submitted_at = :at WHERE number = :n",
                     at=stored_moment(db, almaty(2023, 1, 1, 9, 0)), n=numbers[5])),
        ("an operator deletes one", lambda: delete_application(db, spare[0])),
        ("the fourth moves to another district", lambda: sql(
            db, "UPDATE applications SET district_id = (SELECT min(id) FROM districts WHERE id <> :d) "
                "WHERE number = :n", d=district, n=numbers[3])),
        ("a fold, then the second comes back to the queue", lambda: fold_then(
            one, lambda: sql(db, "UPDATE applications SET status = 'queued' WHERE number = :n", n=numbers[1]))),
    ]
    seen = [await card_numbers(one, chats), await card_numbers(other, chats)]
    assert seen[0] == seen[1] == await live_numbers(one, chats) == {n: i + 2 for i, n in enumerate(numbers)}
    for what, change in steps:
        await change()
        live = await live_numbers(one, chats)
        assert await card_numbers(one, chats) == live, what
        assert await card_numbers(other, chats) == live, what
        assert live != seen[-1], f"{what}: the step was meant to move a number"
        seen.append(live)


async def test_a_queue_read_again_only_when_it_changed_and_not_for_other_columns(
        db: Database, two: tuple[Kezek, Kezek], world: World) -> None:
    one, other = two
    numbers = await world.apps(*(world.row() for _ in range(4)))
    chats = await link_all(one, numbers)
    await card_numbers(other, chats)
    loads = other.queue_numbers.loads
    assert loads == 1  # four cards of one queue: one ranking
    await one.fold_queue_changes()  # the version stays what it was
    await sql(db, "UPDATE applications SET phone = '+77019999999', stoplist_until = NULL, updated_at = updated_at")
    assert await card_numbers(other, chats) == await live_numbers(one, chats)
    assert other.queue_numbers.loads == loads
    await world.apps(world.row(submitted=almaty(2023, 12, 1, 9, 0)))
    assert await card_numbers(other, chats) == {n: i + 2 for i, n in enumerate(numbers)}
    assert other.queue_numbers.loads == loads + 1


async def test_a_queue_that_keeps_changing_is_counted_live_between_its_reloads(
        db: Database, kz: Kezek, world: World) -> None:
    await world.setup()
    numbers = await world.apps(*(world.row() for _ in range(3)))
    chats = await link_all(kz, numbers)
    now = [100.0]
    kz._numbers = QueueNumbers(reload_seconds=1.0, monotonic=lambda: now[0])
    await card_numbers(kz, chats)
    for i in range(3):  # three changes inside a second: one ranking, the numbers still right
        await world.apps(world.row(submitted=almaty(2023, 12, 1, 9, i)))
        assert await card_numbers(kz, chats) == await live_numbers(kz, chats) == {
            n: j + 2 + i for j, n in enumerate(numbers)}
    assert kz.queue_numbers.loads == 1
    now[0] += 1.5
    assert await card_numbers(kz, chats) == await live_numbers(kz, chats)
    assert kz.queue_numbers.loads == 2


async def test_rankings_beyond_the_limit_are_dropped_oldest_first(db: Database, kz: Kezek, world: World) -> None:
    await world.setup()
    bos = await world.apps(*(world.row() for _ in range(3)))
    med = await world.apps(*(world.row(district="ALM-MED") for _ in range(2)))
    chats = await link_all(kz, bos + med)
    kz._numbers = QueueNumbers(max_entries=4)
    assert await card_numbers(kz, chats) == {bos[0]: 1, bos[1]: 2, bos[2]: 3, med[0]: 1, med[1]: 2}
    assert kz.queue_numbers.entries == 2  # the district's three were dropped for Medeu's two
    assert await card_numbers(kz, {bos[2]: chats[bos[2]]}) == {bos[2]: 3}
    assert kz.queue_numbers.entries == 3


@pytest.mark.parametrize("db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
async def test_concurrent_writers_and_folds_lose_no_change_and_leave_the_right_numbers(
        db: Database, two: tuple[Kezek, Kezek], world: World) -> None:
    """Sixty transactions, each adding one waiting application, race two instances' folds
    and /status reads: every change is counted once (a version that went back could pass a
    changed queue for an unchanged one), and at the end the cards show the live numbers."""
    one, other = two
    numbers = await world.apps(*(world.row() for _ in range(5)))
    chats = await link_all(one, numbers)
    await one.fold_queue_changes()
    before = await version_of(db, numbers[0])
    new_rows = [world.row(submitted=almaty(2023, 6, 1, 9, 0) + dt.timedelta(seconds=i)) for i in range(60)]
    stop = asyncio.Event()

    async def fold(kz: Kezek) -> None:
        while not stop.is_set():
            await kz.fold_queue_changes()
            await asyncio.sleep(0)

    async def read(kz: Kezek) -> None:
        while not stop.is_set():
            await card_numbers(kz, chats)

    background = [asyncio.create_task(f) for f in (fold(one), fold(other), read(one), read(other))]
    await asyncio.gather(*(world.apps(r) for r in new_rows))
    stop.set()
    await asyncio.gather(*background)
    assert await version_of(db, numbers[0]) == before + len(new_rows)
    live = await live_numbers(one, chats)
    assert live == {n: 61 + i for i, n in enumerate(numbers)}
    assert await card_numbers(one, chats) == live
    assert await card_numbers(other, chats) == live


async def version_of(db: Database, number: str) -> int:
    from storage.queue_versions import queue_version

    async with db.read() as session:
        app = (await session.execute(select(Application).where(Application.number == number))).scalar_one()
        return int((await session.execute(select(queue_version(app.district_id, app.birth_year)))).scalar_one())


def stored_moment(db: Database, moment: dt.datetime) -> Any:
    """A moment as the UTCDateTime column stores it on this backend."""
    from storage.models import UTCDateTime

    return UTCDateTime().process_bind_param(moment, db.engine.dialect)


async def delete_application(db: Database, number: str) -> None:
    async with db.write() as session:
        app_id = (await session.execute(select(Application.id).where(Application.number == number))).scalar_one()
        await session.execute(text("DELETE FROM application_preferences WHERE application_id = :id"), {"id": app_id})
        await session.execute(text("DELETE FROM applications WHERE id = :id"), {"id": app_id})


async def fold_then(kz: Kezek, change: Any) -> None:
    assert await kz.fold_queue_changes() > 0
    async with kz.db.read() as session:
        assert (await session.execute(select(func.count()).select_from(QueueChange))).scalar_one() == 0
    await change()


async def test_the_sweep_job_folds_the_changes_and_keeps_the_numbers(db: Database, kz: Kezek, world: World) -> None:
    from bot.jobs import sweep_job

    await world.setup()
    numbers = await world.apps(*(world.row() for _ in range(3)))
    chats = await link_all(kz, numbers)
    await sql(db, "UPDATE applications SET priv_rank = 0 WHERE number = :n", n=numbers[2])
    before = await version_of(db, numbers[0])
    assert await card_numbers(kz, chats) == {numbers[2]: 1, numbers[0]: 2, numbers[1]: 3}
    await sweep_job(kz)
    async with db.read() as session:
        assert (await session.execute(select(func.count()).select_from(QueueChange))).scalar_one() == 0
    assert await version_of(db, numbers[0]) == before
    assert await card_numbers(kz, chats) == {numbers[2]: 1, numbers[0]: 2, numbers[1]: 3}


async def test_a_failed_or_cancelled_ranking_read_fails_only_its_own_update() -> None:
    """Others waiting for that read count live (None) instead of failing with it."""
    started, release = asyncio.Event(), asyncio.Event()

    class Failing:
        async def all(self, hot: Any, params: Any = None) -> list[Any]:
            started.set()
            await release.wait()
            raise ConnectionResetError("gone")

    numbers = QueueNumbers(reload_seconds=0)
    first = asyncio.create_task(numbers.number(Failing(), (1, 2023), 5, 42))  # type: ignore[arg-type]
    await started.wait()
    waiter = asyncio.create_task(numbers.number(Failing(), (1, 2023), 5, 42))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    release.set()
    with pytest.raises(ConnectionResetError):
        await first
    assert await waiter is None

    started.clear()
    release.clear()
    first = asyncio.create_task(numbers.number(Failing(), (1, 2023), 5, 42))  # type: ignore[arg-type]
    await started.wait()
    waiter = asyncio.create_task(numbers.number(Failing(), (1, 2023), 5, 42))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    first.cancel()
    assert await waiter is None
    assert first.cancelled()
