"""``kezek bench dispatch``: the CPU one ``/status`` costs inside the bot, without the network.

The real Dispatcher (``bot.telegram.app.build_dispatcher``, with the throttle of the settings and, with
Redis, ``bot.telegram.gate.ChatGate``) is fed one ``/status`` of each of N linked parents, in-process, with a
Bot session that answers every call at once (no HTTP); ``time.process_time`` over the best of R
rounds. The same updates go to a bare aiogram Dispatcher that answers every message with its text
(the framework's own cost), before Kezek's rounds and again after them: when the two differ by more
than ``tolerance`` (15 %, the larger over the smaller) the machine's other load changed in between
and no ratio is given ("machine busy"; ``kezek bench dispatch`` exits with status 3); otherwise
the echo's figure is the cheaper of the two (the one least flattering to Kezek). The HTTP server
and client are not in it (``kezek bench load`` measures the whole path): this is the steadier
figure for comparing two versions of the handlers and the reads, and what BENCHMARKS.md calls
"in-process".
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncGenerator, Callable
from itertools import count
from pathlib import Path
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.session.base import BaseSession
from aiogram.methods import GetMe, SendMessage, TelegramMethod
from aiogram.types import Chat, Message, Update, User

from bot.bench import ECHO_TOLERANCE

FIRST_CHAT = 3 * 10**10
WARMUP = 50  # updates before the measured rounds (statement plans, caches)
_BOT_USER = User(id=42, is_bot=True, first_name="Kezek", username="kezek_bench_bot")


class InstantSession(BaseSession):
    """Answers every Bot API call at once and keeps the texts it was asked to send."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self._ids = count(1)

    async def close(self) -> None:
        pass

    async def make_request(self, bot: Bot, method: TelegramMethod[Any], timeout: int | None = None) -> Any:
        if isinstance(method, GetMe):
            return _BOT_USER
        if isinstance(method, SendMessage):
            self.texts.append(method.text)
            return Message(message_id=next(self._ids), date=dt.datetime.now(dt.UTC),
                           chat=Chat(id=int(method.chat_id), type="private"), from_user=_BOT_USER, text=method.text)
        return True

    async def stream_content(self, url: str, headers: dict[str, Any] | None = None, timeout: int = 30,
                             chunk_size: int = 65536, raise_for_status: bool = True) -> AsyncGenerator[bytes, None]:
        yield b""


def status_updates(bot: Bot, chats: range) -> list[Update]:
    """One ``/status`` per chat, bound to ``bot`` as a webhook update is (no re-validation)."""
    return [Update.model_validate({
        "update_id": i + 1,
        "message": {"message_id": i + 1, "date": 1767225600, "chat": {"id": chat, "type": "private"},
                    "from": {"id": chat, "is_bot": False, "first_name": "P", "language_code": "ru"},
                    "text": "/status", "entities": [{"type": "bot_command", "offset": 0, "length": 7}]},
    }, context={"bot": bot}) for i, chat in enumerate(chats)]


async def _best_round(dp: Dispatcher, bot: Bot, updates: list[Update], rounds: int) -> float:
    """CPU seconds per update, the best of ``rounds`` passes over ``updates`` (after a warm-up)."""
    for update in updates[:WARMUP]:
        await dp.feed_update(bot, update)
    best = None
    for _ in range(rounds):
        started = time.process_time()
        for update in updates:
            await dp.feed_update(bot, update)
        took = time.process_time() - started
        best = took if best is None else min(best, took)
    return (best or 0.0) / len(updates)


def _echo_dispatcher() -> Dispatcher:
    dp = Dispatcher()

    @dp.message()
    async def echo(message: Message) -> None:
        await message.answer(message.text or "")

    return dp


async def run_dispatch_bench(*, parents: int = 2000, rounds: int = 5,
                             db_path: str = "/tmp/kezek-bench-dispatch.sqlite3", db_url: str | None = None,
                             redis_url: str | None = None,
                             tolerance: float = ECHO_TOLERANCE, out: Callable[[str], None] = print) -> dict[str, Any]:
    """Returns ``kezek_ms`` and ``echo_ms`` (CPU per update; the echo's the cheaper of
    ``echo_before_ms`` and ``echo_after_ms``), ``echo_moved`` (they differ by more than
    ``tolerance``), ``ratio`` (echo / Kezek; None when the echo moved), and ``answered`` (the
    /status replies of the last round that name the parent's application)."""
    from bot.bench.load import prepare_database
    from bot.bench.queue import BENCH_NOW, _remove_db
    from bot.config import Settings
    from bot.telegram.app import build_dispatcher, make_storage
    from bot.telegram.throttling import make_throttle
    from services.clock import FrozenClock
    from services.kezek import Kezek
    from storage.db import Database

    if parents < 1 or rounds < 1:
        raise ValueError("parents and rounds must be at least 1")
    if db_url is None:
        path = Path(db_path).resolve()
        _remove_db(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{path}"
    else:
        url = db_url
    first_chat = FIRST_CHAT + (time.time_ns() // 1000 % 10**6) * 10**6  # fresh throttle keys in Redis
    await prepare_database(url, parents, first_chat)
    db = Database(url)
    settings = Settings(_env_file=None, bot_token="42:BENCH", redis_url=redis_url or "")
    storage, isolation = make_storage(settings, prefix=f"kezek-bench-{first_chat}")
    # The throttle as in production, its limit raised above the rounds (one window holds them all).
    throttle = make_throttle(settings.model_copy(update={"throttle_rate": rounds + 2}),
                             redis=getattr(storage, "redis", None))
    kz = Kezek(db, FrozenClock(BENCH_NOW))
    kz.buffer_looks(0.5)
    dp = build_dispatcher(kz, storage=storage, events_isolation=isolation, throttle=throttle)
    session = InstantSession()
    bot = Bot("42:BENCH", session=session)
    echo_bot = Bot("42:BENCH", session=InstantSession())
    echo_dp = _echo_dispatcher()
    echo_updates = status_updates(echo_bot, range(first_chat, first_chat + parents))
    try:
        echo_before = await _best_round(echo_dp, echo_bot, echo_updates, rounds)
        updates = status_updates(bot, range(first_chat, first_chat + parents))
        kezek_cpu = await _best_round(dp, bot, updates, rounds)
        last = session.texts[-parents:]
        answered = sum(f"L{i:07d}" in text for i, text in enumerate(last))
        echo_after = await _best_round(echo_dp, echo_bot, echo_updates, rounds)
    finally:
        await kz.flush_looks()
        await dp.fsm.close()
        if throttle is not None:
            await throttle.close()
        await db.dispose()
    echo_cpu = min(echo_before, echo_after)
    change = max(echo_before, echo_after) / echo_cpu - 1 if echo_cpu else None
    moved = change is None or change > tolerance
    report = {"parents": parents, "rounds": rounds, "database": "PostgreSQL" if db_url else "SQLite",
              "redis": bool(redis_url), "kezek_ms": round(kezek_cpu * 1000, 3), "echo_ms": round(echo_cpu * 1000, 3),
              "echo_before_ms": round(echo_before * 1000, 3), "echo_after_ms": round(echo_after * 1000, 3),
              "echo_change": None if change is None else round(change, 3), "echo_tolerance": tolerance,
              "echo_moved": moved, "ratio": round(echo_cpu / kezek_cpu, 3) if kezek_cpu and not moved else None,
              "answered": answered}
    head = (f"in-process, {report['database']}{' + Redis' if redis_url else ''}, {parents} parents, best of "
            f"{rounds} rounds: /status {report['kezek_ms']} ms CPU per update, ")
    if moved:
        out(head + f"{answered}/{parents} cards named their application; machine busy: echo moved from "
            f"{report['echo_before_ms']} to {report['echo_after_ms']} ms CPU per update (tolerance "
            f"{tolerance * 100:g} %); no ratio")
    else:
        out(head + f"echo {report['echo_ms']} ms ({report['echo_before_ms']} before, {report['echo_after_ms']} "
            f"after; echo / Kezek {report['ratio']}); {answered}/{parents} cards named their application")
    return report
