"""A world to play in: districts and kindergartens with sensible defaults, applications, published
seats, chats linked to applications, and the reads tests make of the outbox and the deliveries."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select, update

from services import chats
from services.calendar import ALMATY
from services.clock import FrozenClock
from services.kezek import Kezek
from services.notices import NoticeKind
from services.validation import make_iin
from storage.models import Application, Chat, ChatLink, Delivery, OutboxMessage
from tests.support.telegram import CHAT_ID


def almaty(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=ALMATY)  # type: ignore[misc]


class World:
    """Builds districts, kindergartens and applications with sensible defaults."""

    def __init__(self, kz: Kezek, clock: FrozenClock) -> None:
        self.kz, self.clock = kz, clock
        self.serial = 0
        self._iins: set[str] = set()

    def _iin(self, birth_date: dt.date, n: int) -> str:
        """A valid IIN no earlier row of this world has (``make_iin`` moves a serial whose check
        digit fails to the next one, which the next row would take too)."""
        serial = n
        while (iin := make_iin(birth_date, serial)) in self._iins:
            serial += 5003  # (another stretch of the 4-digit serials)
        self._iins.add(iin)
        return iin

    async def setup(self, profile: dict[str, Any] | None = None) -> World:
        if profile:
            await self.kz.upsert_profiles([{"code": "custom", **profile}])
        await self.kz.upsert_districts([
            {"code": "ALM-BOS", "name_ru": "Бостандыкский район", "name_kk": "Бостандық ауданы",
             "profile": "custom" if profile else ""},
            {"code": "ALM-MED", "name_ru": "Медеуский район", "name_kk": "Медеу ауданы"},
        ])
        await self.kz.upsert_kindergartens([
            {"code": "KG1", "district": "ALM-BOS", "name_ru": "Ясли-сад №1", "name_kk": "№1 бөбекжай-бақша",
             "address": "ул. Тимирязева, 1", "languages": "ru,kk"},
            {"code": "KG2", "district": "ALM-BOS", "name_ru": "Ясли-сад №2", "name_kk": "№2 бөбекжай-бақша",
             "languages": "ru,kk"},
            {"code": "PRIV", "district": "ALM-BOS", "name_ru": "Частный сад «Балапан»",
             "name_kk": "«Балапан» жеке балабақшасы", "kind": "private_state_order", "languages": "ru,kk"},
            {"code": "MED1", "district": "ALM-MED", "name_ru": "Ясли-сад №9", "name_kk": "№9 бөбекжай-бақша"},
        ])
        return self

    def row(self, number: str | None = None, *, birth_date: dt.date = dt.date(2023, 3, 15),
            submitted: dt.datetime | None = None, privilege: str = "none", district: str = "ALM-BOS",
            preferred: list[str] | None = None, twin_group: str | None = None,
            language: str = "ru") -> dict[str, Any]:
        self.serial += 1
        n = self.serial
        return {
            "number": number or f"A{n:05d}",
            "child_iin": self._iin(birth_date, n),
            "child_name": f"Ребёнок {n}",
            "birth_date": birth_date.isoformat(),
            "district": district,
            "language": language,
            "preferred_kindergartens": preferred or [],
            "privilege": privilege,
            "submitted_at": (submitted or almaty(2024, 1, 1, 9, 0) + dt.timedelta(minutes=n)).isoformat(),
            "phone": f"+7701{n:07d}",
            "email": f"parent{n}@example.kz",
            "twin_group": twin_group,
        }

    async def apps(self, *rows: dict[str, Any]) -> list[str]:
        await self.kz.import_applications(list(rows))
        return [r["number"] for r in rows]

    async def publish(self, count: int = 1, kg: str = "KG1", birth_year: int = 2023,
                      language: str = "ru") -> Any:
        return await self.kz.publish_seats(
            {"kindergarten": kg, "birth_year": birth_year, "language": language, "count": count})

    async def number(self, app_number: str) -> int | None:
        return (await self.kz.queue_view(app_number)).number


async def one_app(world: World) -> dict[str, Any]:
    """One waiting application; its row."""
    row = world.row()
    await world.apps(row)
    return row


async def app_id(kz: Kezek, number: str) -> int:
    async with kz.reading(with_calendar=False) as ctx:
        return (await ctx.session.execute(select(Application.id).where(Application.number == number))).scalar_one()


# --- chats linked to applications ---------------------------------------------------------------------

async def link(kz: Kezek, row: dict[str, Any], chat_id: int = CHAT_ID) -> int:
    """Link the application of ``row`` to ``chat_id`` with the parent's own contact."""
    target = await kz.link_by_contact(chat_id, row["number"], row["child_iin"], row["phone"], chat_id, chat_id)
    return target.application_id


async def links(kz: Kezek, chat_id: int = CHAT_ID) -> list[str]:
    """The numbers of the applications ``chat_id`` has linked."""
    return [t.number for t in await kz.linked_applications(chat_id)]


async def stored_language(kz: Kezek, chat_id: int = CHAT_ID) -> str | None:
    """The language ``chat_id`` chose (None: not yet)."""
    async with kz.reading(with_calendar=False) as ctx:
        return await chats.get_language(ctx.session, chat_id)


FIRST_CHAT = 700_000


async def linked_parents(kz: Kezek, world: World, count: int, lang: str = "ru") -> list[int]:
    """``count`` waiting applications, each linked to its own chat (rows written directly: linking
    itself is tested elsewhere); the chat ids, in queue order."""
    rows = [world.row(birth_date=dt.date(2023, 1, 1) + dt.timedelta(days=i % 300)) for i in range(count)]
    await world.apps(*rows)
    chats = [FIRST_CHAT + i for i in range(count)]
    async with kz.unit() as ctx:
        apps = dict((await ctx.session.execute(select(Application.number, Application.id))).all())
        ctx.session.add_all([Chat(id=c, language=lang, created_at=ctx.now, updated_at=ctx.now) for c in chats])
        ctx.session.add_all([ChatLink(chat_id=c, application_id=apps[r["number"]], linked_at=ctx.now,
                                      method="contact") for c, r in zip(chats, rows, strict=True)])
    return chats


# --- the outbox -------------------------------------------------------------------------------------

async def registrations_sent(kz: Kezek) -> None:
    """Mark the registration e-mails of the imported applications as gone out (services/deep_link.py;
    the one-tap linking tests test them), for tests that count the other notices."""
    from services.deep_link import REGISTRATION_KIND

    async with kz.unit("test", with_calendar=False) as ctx:
        await ctx.session.execute(update(OutboxMessage).where(OutboxMessage.kind == REGISTRATION_KIND)
                                  .values(status="done"))


async def outbox(kz: Kezek, kind: str | None = None) -> list[OutboxMessage]:
    """The outbox's notices, of ``kind`` or all, in the order they were written."""
    async with kz.reading() as ctx:
        q = select(OutboxMessage).order_by(OutboxMessage.id)
        if kind:  # (NoticeKind: a misspelt kind fails, it does not read as none)
            q = q.where(OutboxMessage.kind == NoticeKind(kind))
        return list((await ctx.session.execute(q)).scalars())


async def outbox_codes(kz: Kezek) -> list[OutboxMessage]:
    """The link codes e-mailed so far."""
    return await outbox(kz, "link_code")


async def email_codes(kz: Kezek) -> list[OutboxMessage]:
    """The codes that confirm a chat's own e-mail address, e-mailed so far."""
    return await outbox(kz, "email_code")


async def by_status(kz: Kezek, channel: str) -> dict[str, int]:
    """The deliveries of ``channel`` counted by their status."""
    async with kz.reading(with_calendar=False) as ctx:
        return dict((await ctx.session.execute(select(Delivery.status, func.count())
                                               .where(Delivery.channel == channel)
                                               .group_by(Delivery.status))).all())
