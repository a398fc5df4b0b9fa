"""A dialogue survives a restart in the default setup (no Redis): the dialogues are kept in the
bot's own database (``bot.telegram.fsm_storage.DatabaseStorage``, table ``fsm_states``).

The end-to-end test is a real restart: ``kezek run`` (long polling, against the Bot API stand-in)
is stopped in the middle of /link, after the application number, and a new process on the same
database takes the IIN and goes on with the dialogue, on SQLite and on PostgreSQL."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram.fsm.storage.base import StorageKey
from aiogram.types import Contact, ReplyKeyboardMarkup
from sqlalchemy import func, select, text

from bot.telegram.app import build_dispatcher
from bot.telegram.fsm_storage import DatabaseStorage
from locales import gettext
from services.kezek import Kezek
from storage.db import Database
from storage.models import FsmState
from tests.support.standin import START_UP, TOKEN, BotApiStandIn, BotProcess, until
from tests.support.telegram import CHAT_ID, HINT, Harness, sent
from tests.support.world import World, almaty

NOW = almaty(2026, 9, 7, 10, 0)  # the clock of the kz fixture
CHAT = 7201
ASK_NUMBER = "Enter the application number as it is written in the application. To stop, send /cancel."
ASK_IIN = "Enter the child's IIN (12 digits)."


@pytest.fixture
async def api() -> AsyncIterator[BotApiStandIn]:
    async with BotApiStandIn() as stand_in:
        yield stand_in


async def rows(db: Database) -> int:
    async with db.read() as session:
        return int((await session.execute(select(func.count()).select_from(FsmState))).scalar_one())


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_a_link_dialogue_goes_on_after_the_bot_restarts(api: BotApiStandIn, tmp_path: Path, db_url: str,
                                                              db: Database, kz: Kezek, world: World) -> None:
    row = world.row()
    await world.apps(row)
    env = {"KEZEK_BOT_TOKEN": TOKEN, "KEZEK_BOT_API_URL": api.base_url}
    args = ["--now", NOW.isoformat()]
    first = await BotProcess(tmp_path / "first.log", db_url, env, args=args).start()
    try:
        api.send_text(CHAT, "/link")
        await api.wait_for("sendMessage", lambda c: c.text == gettext("ru", ASK_NUMBER),
                           alive=first.alive, timeout=START_UP)
        number_update = api.send_text(CHAT, row["number"])
        await api.wait_for("sendMessage", lambda c: c.text == gettext("ru", ASK_IIN), alive=first.alive)
        # (the poller has confirmed the number's update: Telegram would not send it again)
        await until(lambda: all(u["update_id"] > number_update["update_id"] for u in api.updates),
                    "the number's update confirmed", 20, first)
    finally:
        code = await first.stop()
    assert code == 0, first.log()

    second = await BotProcess(tmp_path / "second.log", db_url, env, args=args).start()
    try:
        api.send_text(CHAT, row["child_iin"])
        reply = await api.wait_for("sendMessage", alive=second.alive, timeout=START_UP)
        assert reply.text != gettext("ru", HINT)
        # The dialogue goes on: the bot asks for the parent's phone (a contact button).
        assert any(b.get("request_contact") for b in reply.buttons()), reply.text
        api.send_contact(CHAT, row["phone"], CHAT)
        await api.wait_for("sendMessage", lambda c: c.text is not None and row["number"] in c.text,
                           alive=second.alive)
        assert [t.number for t in await kz.linked_applications(CHAT)] == [row["number"]]
        # The dialogue is over: nothing of it (the number, the IIN) is left in the database.
        await until(lambda: _none_left(db), "the dialogue's row deleted", 20, second)
    finally:
        code = await second.stop()
    output = first.log(200_000) + second.log(200_000)
    assert code == 0, output[-4000:]
    assert "Traceback" not in output, output[-4000:]
    assert row["child_iin"] not in output  # never in the logs


async def _none_left(db: Database) -> bool:
    return await rows(db) == 0


# --- in process: a fresh Dispatcher on the same database ------------------------------------------

async def test_a_fresh_dispatcher_on_the_same_database_goes_on_with_the_dialogue(kz: Kezek, world: World) -> None:
    row = world.row()
    await world.apps(row)
    first = Harness(build_dispatcher(kz))
    await first.press("lang:kk")
    await first.send("ru", text="/link")
    [ask_iin] = sent(await first.send("ru", text=row["number"]))
    assert ask_iin.text == gettext("kk", ASK_IIN)
    await first.dp.fsm.close()

    second = Harness(build_dispatcher(kz))
    proof, email = sent(await second.send("ru", text=row["child_iin"]))
    assert isinstance(proof.reply_markup, ReplyKeyboardMarkup)
    assert "p•••@example.kz" in email.text
    [done] = sent(await second.send("ru", contact=Contact(phone_number=row["phone"], first_name="Айгерим",
                                                          user_id=CHAT_ID)))
    assert row["number"] in done.text
    assert await rows(kz.db) == 0
    await second.dp.fsm.close()


KEY = StorageKey(bot_id=42, chat_id=CHAT_ID, user_id=CHAT_ID)


async def test_the_storage_keeps_state_and_data_per_key_and_forgets_an_ended_dialogue(db: Database) -> None:
    storage = DatabaseStorage(db)
    other = StorageKey(bot_id=42, chat_id=CHAT_ID, user_id=CHAT_ID, thread_id=5, business_connection_id="bc",
                       destiny="docs")
    await storage.set_state(KEY, "LinkFlow:iin")
    await storage.set_data(KEY, {"number": "A00001", "waiting": [{"file_id": "f"}]})
    await storage.set_data(other, {"chosen": 7})
    await storage.close()

    again = DatabaseStorage(db)
    assert await again.get_state(KEY) == "LinkFlow:iin"
    assert await again.get_data(KEY) == {"number": "A00001", "waiting": [{"file_id": "f"}]}
    assert await again.get_state(other) is None and await again.get_data(other) == {"chosen": 7}
    got = await again.get_data(KEY)
    got["number"] = "changed"  # a copy: the storage is not changed behind its back
    assert (await again.get_data(KEY))["number"] == "A00001"
    assert await rows(db) == 2
    # The end of a dialogue (aiogram's state.clear(): no state, no data) deletes its row.
    await again.set_state(KEY, None)
    await again.set_data(KEY, {})
    assert await rows(db) == 1
    await again.close()
    third = DatabaseStorage(db)
    assert await third.get_state(KEY) is None and await third.get_data(KEY) == {}
    await third.close()


async def test_a_dialogue_left_for_more_than_a_day_is_forgotten_and_deleted(db: Database) -> None:
    now = [NOW.timestamp()]
    storage = DatabaseStorage(db, clock=lambda: now[0])
    await storage.set_state(KEY, "LinkFlow:iin")
    await storage.set_data(KEY, {"number": "A00001", "iin": "230315500001"})
    now[0] += DatabaseStorage.TTL_SECONDS - 60
    assert await storage.get_state(KEY) == "LinkFlow:iin"  # still within the day
    now[0] += 120
    assert await storage.get_state(KEY) is None and await storage.get_data(KEY) == {}
    assert await rows(db) == 0
    await storage.close()
    # ... and a process started after that day does not bring it back (its row is deleted).
    old = DatabaseStorage(db, clock=lambda: NOW.timestamp())
    await old.set_data(KEY, {"number": "A00002"})
    await old.close()
    later = DatabaseStorage(db, clock=lambda: NOW.timestamp() + DatabaseStorage.TTL_SECONDS + 1)
    assert await later.get_data(KEY) == {}
    assert await rows(db) == 0
    await later.close()


async def test_the_storage_never_logs_what_a_dialogue_holds(db: Database, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)  # (what `kezek run` logs; aiosqlite's DEBUG lines show every parameter)
    caplog.set_level(logging.DEBUG, logger="kezek")
    caplog.set_level(logging.DEBUG, logger="aiogram")
    storage = DatabaseStorage(db)
    await storage.set_data(KEY, {"iin": "230315500001"})
    with pytest.raises(TypeError):
        await storage.set_data(KEY, {"iin": "230315500001", "bad": object()})  # not JSON
    assert await storage.get_data(KEY) == {"iin": "230315500001"}  # unchanged
    await storage.close()
    assert "230315500001" not in caplog.text
    # (the data column is JSON text in the same database as the applications)
    async with db.read() as session:
        [raw] = (await session.execute(text("SELECT data FROM fsm_states"))).scalars().all()
    assert "230315500001" in str(raw)
