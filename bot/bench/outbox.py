"""Outbox benchmark: a fan-out of "your turn" alerts through the real sender to a Bot API stand-in
on loopback (``python -m bot.bench.standin``, its own process).

Two figures (``kezek bench outbox``):

* **paced** — the stand-in enforces Telegram's 30 messages a second (and one a second per chat)
  and answers 429 beyond; the sender paces itself with the production settings. Reported: the
  sustained rate the stand-in saw and how many 429s it had to send (target: at least 29 a second,
  no 429).
* **raw** — the limits lifted on both sides: how fast Kezek itself can route, send and record
  (target: at least 1,000 messages a second), so that Telegram, not Kezek, is the bottleneck.

Each phase builds a fresh database: one district, one kindergarten, N waiting applications
each linked to its own chat, and N seats published (N offers, N alerts in the outbox). The clock
is frozen on a working day inside the claim window. E-mail copies are not sent here (the
Telegram fan-out is what must be fast); the SMTP path has its own tests.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

from aiogram import Bot
from sqlalchemy import select

from bot.bench.queue import BENCH_NOW, _remove_db
from bot.bench.standin import TOKEN
from bot.delivery.sender import SendPolicy, drain_once
from bot.telegram.runner import KezekSession, make_session
from services.clock import FrozenClock
from services.kezek import Kezek
from services.pacing import Pacer
from services.validation import make_iin
from storage.db import Database
from storage.migrate import upgrade_async
from storage.models import Application, Chat, ChatLink

FIRST_CHAT = 5_000_000
PUBLICATION = 500  # seats per publication (the registry's limit)


def chat_language(i: int) -> str:
    """The language of the i-th seeded parent's chat: Russian and Kazakh alternating."""
    return "kk" if i % 2 else "ru"


async def seed_linked_parents(kz: Kezek, parents: int, *, first_chat: int = FIRST_CHAT, prefix: str = "B",
                             preferred: list[str] | None = None) -> None:
    """One district and kindergarten, ``parents`` waiting applications (born 2023), each linked to
    its own chat (ids from ``first_chat``; Russian and Kazakh alternating)."""
    await kz.upsert_districts([{"code": "BENCH", "name_ru": "Район", "name_kk": "Аудан"}])
    await kz.upsert_kindergartens([{"code": "BENCH-KG", "district": "BENCH", "name_ru": "Ясли-сад №1",
                                    "name_kk": "№1 бөбекжай-бақша", "address": "ул. Абая, 1",
                                    "languages": "ru,kk"}])
    serials: dict[dt.date, int] = {}
    rows = []
    for n in range(parents):
        born = dt.date(2023, 1, 1) + dt.timedelta(days=n % 365)
        iin = make_iin(born, serials.get(born, 0))
        serials[born] = int(iin[7:11]) + 1
        rows.append({"number": f"{prefix}{n:07d}", "child_iin": iin, "child_name": f"Ребёнок {n}",
                     "birth_date": born.isoformat(), "district": "BENCH", "language": "ru",
                     "preferred_kindergartens": list(preferred or []), "privilege": "none",
                     "submitted_at": (BENCH_NOW - dt.timedelta(days=400, minutes=-n)).isoformat(),
                     "phone": f"+7701{n:07d}", "email": f"parent{n}@example.kz", "twin_group": None})
    for start in range(0, parents, 5000):
        await kz.import_applications(rows[start:start + 5000])
    # The benchmarks measure the alerts and their copies; the registration e-mails the import wrote
    # (one-tap links, sent once per application) would double the e-mail side of every fan-out.
    await kz.withhold_pending("registration")
    async with kz.unit() as ctx:
        ids = (await ctx.session.execute(select(Application.id).order_by(Application.id))).scalars().all()
        ctx.session.add_all([Chat(id=first_chat + i, language=chat_language(i), created_at=ctx.now,
                                  updated_at=ctx.now) for i in range(len(ids))])
        ctx.session.add_all([ChatLink(chat_id=first_chat + i, application_id=app_id, linked_at=ctx.now,
                                      method="contact") for i, app_id in enumerate(ids)])


async def seed_fan_out(kz: Kezek, alerts: int) -> None:
    """N waiting applications, each linked to its own chat, and N seats published."""
    await seed_linked_parents(kz, alerts)
    left = alerts
    while left:
        count = min(PUBLICATION, left)
        await kz.publish_seats({"kindergarten": "BENCH-KG", "birth_year": 2023, "language": "ru", "count": count})
        left -= count


class StandInProcess:
    """``python -m bot.bench.standin`` in its own process, so that it does not share a CPU with the sender."""

    def __init__(self, rate: float, chat_rate: float) -> None:
        self.args = ["--rate", str(rate), "--chat-rate", str(chat_rate)]
        self.proc: asyncio.subprocess.Process | None = None
        self.base_url = ""

    async def __aenter__(self) -> Self:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.bench.standin", *self.args, stdout=asyncio.subprocess.PIPE)
        assert self.proc.stdout is not None
        self.base_url = (await asyncio.wait_for(self.proc.stdout.readline(), 30)).decode().strip()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()

    async def stats(self, session: KezekSession) -> dict[str, Any]:
        """What the stand-in accepted and refused, asked through the bot's own HTTP session."""
        http = await session.create_session()
        async with http.get(f"{self.base_url}/_stats") as response:
            return dict(json.loads(await response.text()))


async def run_phase(db_url: str, alerts: int, *, rate: float, chat_rate: float, concurrency: int,
                    out: Callable[[str], None]) -> dict[str, Any]:
    db = Database(db_url)
    kz = Kezek(db, FrozenClock(BENCH_NOW))
    try:
        started = time.perf_counter()
        await seed_fan_out(kz, alerts)
        out(f"  seeded {alerts} applications, chats and alerts in {time.perf_counter() - started:.1f} s")
        async with StandInProcess(rate, chat_rate) as api:
            session = make_session(api.base_url)  # the bot's own session (bot.telegram.runner.KezekSession)
            bot = Bot(TOKEN, session=session)
            policy = SendPolicy(batch=max(100, concurrency * 8), concurrency=concurrency,
                                pacer=Pacer(rate, chat_rate))
            try:
                started = time.perf_counter()
                await kz.route_notices(limit=alerts)
                routed = time.perf_counter() - started
                while await drain_once(kz, bot, None, policy):
                    pass
                elapsed = time.perf_counter() - started
                seen = await api.stats(session)
            finally:
                await session.close()
        report = await kz.outbox_report(0)
    finally:
        await db.dispose()
    telegram = report["deliveries"].get("telegram", {})
    return {"alerts": alerts, "sent": telegram.get("sent", 0), "failed": telegram.get("failed", 0),
            "routing_seconds": round(routed, 2), "seconds": round(elapsed, 2),
            "kezek_rate": round(alerts / elapsed, 1), "standin_rate": seen["rate"],
            "too_many_requests": seen["refused"].get("429", 0), "received_twice": seen["twice"],
            "received": seen["accepted"], "concurrency": concurrency, "limits": [rate, chat_rate]}


async def run_outbox_bench(db_path: str, *, alerts: int, raw_alerts: int, concurrency: int, raw_concurrency: int,
                           db_url: str | None = None, out: Callable[[str], None] = print) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, count, rate, chat_rate, conc in (("paced", alerts, 30.0, 1.0, concurrency),
                                               ("raw", raw_alerts, 0.0, 0.0, raw_concurrency)):
        if not count:
            continue
        url = db_url
        if url is None:
            path = Path(db_path)
            _remove_db(path)
            url = f"sqlite:///{path}"
        await upgrade_async(url)
        if db_url is not None:
            await _truncate(url)
        out(f"{name}: {count} alerts, limits {rate:g}/s overall and {chat_rate:g}/s per chat "
            f"({'none' if not rate else 'enforced by the stand-in'}), {conc} sends in flight")
        results[name] = r = await run_phase(url, count, rate=rate, chat_rate=chat_rate, concurrency=conc, out=out)
        out(f"  routed in {r['routing_seconds']} s; all sent in {r['seconds']} s: {r['kezek_rate']} alerts/s; "
            f"the stand-in saw {r['standin_rate']} messages/s, {r['too_many_requests']} × 429, "
            f"{r['received_twice']} received twice, {r['failed']} failed")
    out(json.dumps(results, indent=2))
    return results


async def _truncate(url: str) -> None:
    """A PostgreSQL benchmark database starts empty (the tables stay)."""
    from sqlalchemy import text

    from storage.models import Base

    db = Database(url)
    try:
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables if t.name != "rule_profiles")
        async with db.engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        await db.dispose()
