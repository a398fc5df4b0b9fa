"""Dialogues in Redis (bot.telegram.app.make_storage): a /link dialogue begun on one instance goes on on
another (a second bot process behind the load balancer, or the same one after a restart).
Each test uses its own key prefix and removes its keys; skipped when Redis is not reachable."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.fsm.storage.redis import RedisEventIsolation, RedisStorage
from aiogram.types import Contact, ReplyKeyboardMarkup

from bot.config import Settings
from bot.telegram.app import FSM_TTL_SECONDS, build_dispatcher, make_storage
from bot.telegram.degraded import FallbackIsolation, FallbackStorage
from bot.telegram.fsm_storage import DatabaseStorage
from locales import gettext
from services.kezek import Kezek
from tests.support.databases import REDIS_URL
from tests.support.telegram import CHAT_ID, Harness, sent
from tests.support.world import World


def instance(kz: Kezek, prefix: str) -> Harness:
    storage, isolation = make_storage(Settings(_env_file=None, redis_url=REDIS_URL), prefix=prefix)  # type: ignore[call-arg]
    return Harness(build_dispatcher(kz, storage=storage, events_isolation=isolation))


async def shut(harness: Harness) -> None:
    await harness.dp.fsm.close()  # what the Dispatcher's shutdown does
    await harness.bot.session.close()


async def test_make_storage_follows_the_settings(kz: Kezek) -> None:
    storage, isolation = make_storage(Settings(_env_file=None))  # type: ignore[call-arg]
    assert storage is None and isolation is None
    # ... which build_dispatcher reads as the default: the dialogues in the bot's own database
    # (tests/bot/telegram/test_fsm_restart.py: they survive a restart).
    dp = build_dispatcher(kz, storage=storage, events_isolation=isolation)
    assert isinstance(dp.fsm.storage, DatabaseStorage) and dp.fsm.storage.db is kz.db
    storage, isolation = make_storage(Settings(_env_file=None, redis_url=REDIS_URL))  # type: ignore[call-arg]
    assert isinstance(storage, FallbackStorage) and isinstance(isolation, FallbackIsolation)
    assert isinstance(storage.primary, RedisStorage) and isinstance(isolation.primary, RedisEventIsolation)
    assert isolation.redis is storage.redis  # one connection pool
    storage = storage.primary
    assert storage.state_ttl == storage.data_ttl == FSM_TTL_SECONDS
    await storage.close()


async def test_link_dialogue_survives_a_switch_of_instance(kz: Kezek, world: World,
                                                           redis: tuple[Any, str]) -> None:
    client, prefix = redis
    row = world.row()
    await world.apps(row)
    first = instance(kz, prefix)
    await first.press("lang:kk")
    [ask_number] = sent(await first.send("ru", text="/link"))
    assert ask_number.text == gettext(
        "kk", "Enter the application number as it is written in the application. To stop, send /cancel.")
    [ask_iin] = sent(await first.send("ru", text=row["number"]))
    assert ask_iin.text == gettext("kk", "Enter the child's IIN (12 digits).")
    # The state and the data are in Redis under our prefix, with a time to live.
    keys = sorted(k.decode() for k in [k async for k in client.scan_iter(match=f"{prefix}:*")])
    assert keys == [f"{prefix}:42:{CHAT_ID}:{CHAT_ID}:data", f"{prefix}:42:{CHAT_ID}:{CHAT_ID}:state"]
    assert 0 < await client.ttl(keys[0]) <= FSM_TTL_SECONDS
    await shut(first)  # the first instance goes away

    second = instance(kz, prefix)
    try:
        # The second instance knows the number typed on the first one.
        proof, email = sent(await second.send("ru", text=row["child_iin"]))
        assert isinstance(proof.reply_markup, ReplyKeyboardMarkup)
        assert "p•••@example.kz" in email.text
        contact = Contact(phone_number=row["phone"], first_name="Айгерим", user_id=CHAT_ID)
        [done] = sent(await second.send("ru", contact=contact))
        assert done.text == gettext(
            "kk", "Done! Application {number} (child's IIN {iin}) is now linked to this chat.",
            number=row["number"], iin=row["child_iin"][:2] + "•" * 8 + row["child_iin"][-2:])
        assert [t.number for t in await kz.linked_applications(CHAT_ID)] == [row["number"]]
        # The dialogue is over: nothing of it is left in Redis.
        assert [k async for k in client.scan_iter(match=f"{prefix}:*:state")] == []
        assert [k async for k in client.scan_iter(match=f"{prefix}:*:data")] == []
    finally:
        await shut(second)


async def test_a_dialogue_on_memory_storage_does_not_survive(kz: Kezek, world: World) -> None:
    """The contrast: in aiogram's MemoryStorage a new instance starts from scratch (so the test
    above shows something Redis gives; without Redis the default keeps the dialogues in the
    database, tests/bot/telegram/test_fsm_restart.py)."""
    row = world.row()
    await world.apps(row)
    first = Harness(build_dispatcher(kz, storage=MemoryStorage()))
    await first.send("ru", text="/link")
    await first.send("ru", text=row["number"])
    second = Harness(build_dispatcher(kz, storage=MemoryStorage()))
    [reply] = sent(await second.send("ru", text=row["child_iin"]))
    assert reply.text == gettext(
        "ru", "I did not understand this message. Please use the menu buttons below or send /help.")
    for h in (first, second):
        await h.bot.session.close()


async def test_redis_down_is_a_degraded_mode_not_an_outage(kz: Kezek, world: World,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """With Redis unreachable the bot still answers and a dialogue still goes step by step (kept
    in this process's memory); the operators get one error line, not one per update."""
    row = world.row()
    await world.apps(row)
    dead = "redis://127.0.0.1:1/0"  # nothing listens there
    storage, isolation = make_storage(Settings(_env_file=None, redis_url=dead))  # type: ignore[call-arg]
    harness = Harness(build_dispatcher(kz, storage=storage, events_isolation=isolation))
    try:
        await harness.press("lang:kk")
        [ask_number] = sent(await harness.send("ru", text="/link"))
        assert ask_number.text == gettext(
            "kk", "Enter the application number as it is written in the application. To stop, send /cancel.")
        [ask_iin] = sent(await harness.send("ru", text=row["number"]))
        assert ask_iin.text == gettext("kk", "Enter the child's IIN (12 digits).")
        proof, _email = sent(await harness.send("ru", text=row["child_iin"]))
        assert isinstance(proof.reply_markup, ReplyKeyboardMarkup)
    finally:
        await shut(harness)
    outage_lines = [r for r in caplog.records if r.name == "kezek.redis" and r.levelname == "ERROR"]
    assert len(outage_lines) == 1

