"""Bad input at volume: random updates fed to the real Dispatcher, in every state of every dialogue.

Hypothesis draws short sessions (1-4 updates) of random texts, commands with junk arguments, menu
labels, forged data of every CallbackData factory of handlers/, raw junk button data, contacts
(own and foreign, junk phones), media, edited messages and updates from unknown chats and users
with random ``language_code``; before each update the chat may be put in any FSM state with forged
dialogue data. Each session starts from a fresh copy of a prepared world (two applications, a seat
offered to the first, the first linked to ``CHAT_ID``, the second to ``VICTIM``), so a failing
example is replayed exactly. Both backends of ``conftest.BACKENDS``: on SQLite the copy is a copy of
the database file; on PostgreSQL (``KEZEK_TEST_POSTGRES_URL``; skipped without it) every table is
emptied and refilled from a copy of the world kept in its own schema, and the sequences are set
back, in one transaction and one round trip, before each session. PostgreSQL runs fewer examples
(``CASES``) to keep the file near a minute and a half: every statement of a session is a round trip
to the server there, and the world is put back by the server instead of a file copy.

Checked after every update:

* nothing escapes: ``dp.feed_update`` returns, no handler failure reaches the error boundary (its
  log record) and the crash apology is never sent;
* no change without authorisation: a chat that has linked nothing never changes referrals, offers,
  seats, application statuses or links; no chat ever changes the victim's application, its links or
  its chat settings; the bot never writes to another chat than the one the update came from;
* every update is answered: a private message gets a reply, a button press its callback answer;
* every reply is localized: no English msgid and no sentence of the other language (ru/kk) in any
  text or button label the chat gets.

Sync tests with their own event loop per example (``asyncio.run``): hypothesis's ``@given`` and
pytest-asyncio's function loop do not mix. The ``@given`` function is built inside each test, so
that the example count can follow the backend; a failure prints the plan that broke and a
``@reproduce_failure`` blob for that inner function."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import shutil
import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.state import State
from aiogram.methods import AnswerCallbackQuery, SendMessage, TelegramMethod
from aiogram.types import (
    CallbackQuery,
    Chat,
    Contact,
    Document,
    InlineKeyboardMarkup,
    Location,
    Message,
    PhotoSize,
    ReplyKeyboardMarkup,
    Sticker,
    Update,
    User,
)
from babel.messages.pofile import read_po
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy import text as sql_text

from bot.telegram.app import build_dispatcher
from handlers.callbacks import (
    ClaimCallback,
    DocsCallback,
    HistoryCallback,
    LangCallback,
    LinkCallback,
    NoticeCallback,
    ReferralPdfCallback,
    SeatsCallback,
    SettingsCallback,
    UnlinkCallback,
)
from handlers.menu import MENU
from handlers.settings import NOTICE_NAMES
from locales import gettext, normalize_language, po_path
from services.clock import FrozenClock
from services.kezek import Kezek
from storage.db import Database
from storage.models import Application, Base, ChatLink, Offer, Referral, Seat
from storage.models import Chat as ChatRow
from tests.support.databases import BACKENDS, truncate_pg
from tests.support.telegram import BOT_USER, CHAT_ID, SORRY, STATES, Harness  # STATES: every dialogue state
from tests.support.world import World, almaty

VICTIM = 4004       # linked to the other application; never sends anything here
STRANGER = 7007     # a chat that has linked nothing
NOW = almaty(2026, 9, 7, 10, 0)  # a working Monday inside the claim window (conftest's clock)
LANGS = ("ru", "kk")

# Examples per property and backend.
CASES = {"sqlite": 220, "postgresql": 60}


# --- the world, prepared once ---------------------------------------------------------------------

SNAPSHOT_SCHEMA = "fuzz_world"


@dataclass
class PgWorld:
    """The prepared world on PostgreSQL: a copy of every table in its own schema, and the script that
    puts it back (one round trip, one transaction): empty the tables (children first), refill them
    from the copy (parents first), set the sequences back so that the next ids are the same. Each
    session is a new Kezek: no queue ranking of a session outlives it."""

    script: str

    @classmethod
    async def take(cls, db: Database) -> PgWorld:
        tables = [t.name for t in Base.metadata.sorted_tables]
        async with db.engine.begin() as conn:
            await conn.execute(sql_text(f"DROP SCHEMA IF EXISTS {SNAPSHOT_SCHEMA} CASCADE"))
            await conn.execute(sql_text(f"CREATE SCHEMA {SNAPSHOT_SCHEMA}"))
            for name in tables:
                await conn.execute(sql_text(f'CREATE TABLE {SNAPSHOT_SCHEMA}."{name}" AS TABLE public."{name}"'))
            sequences = []
            for seq in (await conn.execute(sql_text(
                    "SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename) FROM pg_sequences "
                    "WHERE schemaname = 'public'"))).scalars():
                last, called = (await conn.execute(sql_text(f"SELECT last_value, is_called FROM {seq}"))).one()
                sequences.append(f"SELECT setval('{seq}', {int(last)}, {'true' if called else 'false'});")
        # (replica: the tables' triggers stay quiet, so that the queue changes copied are the only
        # ones, as pg_restore does for data)
        script = ["BEGIN;", "SET LOCAL session_replication_role = replica;"]
        script += [f'DELETE FROM public."{name}";' for name in reversed(tables)]
        script += [f'INSERT INTO public."{name}" SELECT * FROM {SNAPSHOT_SCHEMA}."{name}";' for name in tables]
        script += [*sequences, "COMMIT;"]
        return cls("\n".join(script))

    async def put_back(self, db: Database) -> None:
        """Make the database the prepared world again: the same rows, and the same ids next."""
        async with db.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            await raw.driver_connection.execute(self.script)  # asyncpg: a multi-statement script

    @staticmethod
    async def drop(db: Database) -> None:
        async with db.engine.begin() as conn:
            await conn.execute(sql_text(f"DROP SCHEMA IF EXISTS {SNAPSHOT_SCHEMA} CASCADE"))


@dataclass
class Prepared:
    backend: str                   # 'sqlite' | 'postgresql'
    url: str                       # where a session runs
    mine: dict[str, Any]
    other: dict[str, Any]
    mine_id: int
    other_id: int
    seat_ids: list[int]
    template: Path | None = None   # SQLite: the world's file, copied to ``url``'s before a session
    pg_world: PgWorld | None = None

    async def fresh(self) -> Database:
        """The database of a new session, holding exactly the prepared world."""
        if self.template is not None:
            shutil.copy(self.template, self.url.removeprefix("sqlite:///"))
            return Database(self.url)
        assert self.pg_world is not None
        db = Database(self.url)
        try:
            await self.pg_world.put_back(db)
        except BaseException:
            await db.dispose()
            raise
        return db


async def _build_world(db: Database) -> tuple[dict[str, Any], dict[str, Any], int, int, list[int]]:
    kz = Kezek(db, FrozenClock(NOW))
    world = await World(kz, FrozenClock(NOW)).setup()
    mine, other = world.row(), world.row()
    await world.apps(mine, other)
    await world.publish(1, "KG1")  # offered to `mine`
    await world.publish(2, "KG2")
    a = await kz.link_by_contact(CHAT_ID, mine["number"], mine["child_iin"], mine["phone"], CHAT_ID, CHAT_ID)
    b = await kz.link_by_contact(VICTIM, other["number"], other["child_iin"], other["phone"], VICTIM, VICTIM)
    await kz.set_chat_language(CHAT_ID, "kk")
    await kz.set_chat_language(VICTIM, "ru")
    async with kz.reading() as ctx:
        seats = list((await ctx.session.execute(select(Seat.id))).scalars())
    return mine, other, a.application_id, b.application_id, seats


@pytest.fixture(scope="module", params=BACKENDS)
def prepared(request: pytest.FixtureRequest, sqlite_template: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prepared]:
    if request.param == "sqlite":
        folder = tmp_path_factory.mktemp("fuzz")
        path = folder / "world.sqlite3"
        shutil.copy(sqlite_template, path)
        url = f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("pg_database")
        if url is None:
            pytest.skip("PostgreSQL not configured: set KEZEK_TEST_POSTGRES_URL (.ci/run does)")
        path = None

    async def build() -> Prepared:
        db = Database(url)
        try:
            if db.is_postgres:
                await truncate_pg(db)  # the session's database: other tests' rows go
            mine, other, mine_id, other_id, seats = await _build_world(db)
            if path is not None:
                return Prepared("sqlite", f"sqlite:///{path.parent / 'case.sqlite3'}", mine, other, mine_id,
                                other_id, seats, template=path)
            return Prepared("postgresql", url, mine, other, mine_id, other_id, seats,
                            pg_world=await PgWorld.take(db))
        finally:
            await db.dispose()

    world = asyncio.run(build())
    yield world
    if world.pg_world is not None:
        async def clean() -> None:
            db = Database(world.url)
            try:
                await PgWorld.drop(db)
            finally:
                await db.dispose()

        asyncio.run(clean())


# --- what the bot says: the catalogs --------------------------------------------------------------

def _segments(text: str) -> list[str]:
    """The literal parts of a message template (between its {placeholders})."""
    try:
        parts = [literal for literal, *_ in string.Formatter().parse(text)]
    except ValueError:
        parts = [text]
    return [p.strip() for part in parts for p in part.split("\n") if p.strip()]


def _catalog(lang: str) -> dict[str, str]:
    with po_path(lang).open("rb") as fh:
        catalog = read_po(fh, locale=lang)
    out: dict[str, str] = {}
    for m in catalog:
        if not m.id:
            continue
        ids = m.id if isinstance(m.id, (tuple, list)) else (m.id,)
        strs = m.string if isinstance(m.string, (tuple, list)) else (m.string,)
        for i, msgid in enumerate(ids):
            out[msgid] = strs[min(i, len(strs) - 1)] or ""
    return out


CATALOGS = {lang: _catalog(lang) for lang in LANGS}


def _fragments() -> tuple[set[str], dict[str, set[str]]]:
    english: set[str] = set()
    for msgid in CATALOGS["ru"]:
        if all(CATALOGS[lang].get(msgid) and CATALOGS[lang][msgid] != msgid for lang in LANGS):
            english |= {s for s in _segments(msgid) if len(s) >= 16 and re.search("[A-Za-z]{4}", s)}
    own = {lang: {s for t in CATALOGS[lang].values() for s in _segments(t)} for lang in LANGS}
    foreign = {}
    for lang in LANGS:
        other = "kk" if lang == "ru" else "ru"
        foreign[lang] = {s for s in own[other] if len(s) >= 20 and not any(s in mine or mine in s
                                                                              for mine in own[lang] if len(mine) >= 20)}
    return english, foreign


ENGLISH, FOREIGN = _fragments()
APOLOGIES = {gettext(lang, SORRY) for lang in LANGS} | {SORRY}
# The language picker asks in both languages on purpose.
PICKER = {gettext(lang, "Please choose a language:") for lang in LANGS}


def shown_texts(method: TelegramMethod[Any]) -> list[str]:
    """Every text the chat sees from one Bot API call: message text or caption, alert, button labels."""
    texts = [v for v in (getattr(method, "text", None), getattr(method, "caption", None)) if isinstance(v, str)]
    markup = getattr(method, "reply_markup", None)
    if isinstance(markup, InlineKeyboardMarkup):
        texts += [b.text for row in markup.inline_keyboard for b in row]
    elif isinstance(markup, ReplyKeyboardMarkup):
        texts += [b.text for row in markup.keyboard for b in row]
    return texts


def localization_problems(text: str, lang: str, echoed: str) -> list[str]:
    problems = [f"English msgid part {frag!r}" for frag in ENGLISH if frag in text and frag not in echoed]
    if not any(p in text for p in PICKER):
        problems += [f"{'kk' if lang == 'ru' else 'ru'} text {frag!r} in a {lang} chat"
                     for frag in FOREIGN[lang] if frag in text and frag not in echoed]
    return problems


# --- generators -----------------------------------------------------------------------------------

LANGUAGE_CODES = st.one_of(st.sampled_from([None, "ru", "kk", "en", "kz", "kk-KZ", "ru_RU", "uk", "", "zz-ZZ"]),
                           st.text(max_size=12))
ODD_TEXTS = ["' OR 1=1 --", "'; DROP TABLE applications; --", "\u202e\u0000<b>x</b>{number}%s{0}",
             "{", "}", "%(x)s", "\\", "0" * 12, "-1", "9" * 30, "A00001", "A00002", "+77010000001",
             "a@b.kz", "x@", "123456", " 1 2 3 4 5 6 ", "null", "None", "NaN", "𝕂𝕖𝕫𝕖𝕜 🤖", "\n\n\n", "  "]
COMMANDS = ["/start", "/help", "/link", "/status", "/seats", "/settings", "/unlink", "/cancel", "/frobnicate",
            "/start@kezek_bot", "/link@other_bot", "/"]


def _menu_labels() -> list[str]:
    return [gettext(lang, label) for lang in LANGS for label in MENU.values()]


TEXTS = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=30).map(lambda s: s * (4096 // len(s))),
    st.sampled_from(ODD_TEXTS),
    st.tuples(st.sampled_from(COMMANDS), st.one_of(st.sampled_from(["", " ' OR 1=1", " A00002 000000000000"]),
                                                  st.text(max_size=60).map(lambda s: " " + s))).map("".join),
    st.sampled_from(_menu_labels()),
    st.integers(min_value=-10**20, max_value=10**20).map(str),
)

INTS = st.one_of(st.integers(min_value=-3, max_value=12), st.sampled_from([2**31, 2**63 - 1, 2**63, 2**70, -2**70]),
                 st.integers())
WORDS = st.one_of(st.sampled_from(["ask", "yes", "no", "email", "lang", "rmemail", "cancel", "p", "c", "ru", "kk",
                                   *NOTICE_NAMES, "", "x" * 40]), st.text(max_size=20))


def _packs(factory: type[CallbackData], **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[str]:
    def pack(values: dict[str, Any]) -> str:
        try:
            return factory(**values).pack()
        except (ValueError, TypeError):  # a ':' in a field, or more than 64 bytes
            return f"{factory.__prefix__}:" + ":".join(str(v) for v in values.values())  # type: ignore[attr-defined]
    return st.fixed_dictionaries(fields).map(pack)


def callback_data(ids: st.SearchStrategy[int]) -> st.SearchStrategy[str]:
    return st.one_of(
        _packs(LangCallback, code=WORDS),
        _packs(LinkCallback, action=WORDS),
        _packs(NoticeCallback, key=WORDS, on=st.booleans()),
        _packs(SettingsCallback, action=WORDS),
        _packs(SeatsCallback, app=ids),
        _packs(ClaimCallback, app=ids, seat=ids, step=WORDS),
        _packs(HistoryCallback, app=ids),
        _packs(ReferralPdfCallback, app=ids),
        _packs(DocsCallback, action=WORDS, app=ids),
        _packs(UnlinkCallback, action=WORDS, app_id=ids),
        st.text(max_size=64),
        st.sampled_from(["", ":", "claim:::", "unl:yes:", "seats:", "ntc:moves:maybe", "lang:kk:extra"]),
    )


STICKER = Sticker(file_id="s", file_unique_id="su", type="regular", width=512, height=512,
                  is_animated=False, is_video=False)
MEDIA = st.sampled_from([
    {"sticker": STICKER},
    {"photo": [PhotoSize(file_id="p", file_unique_id="pu", width=90, height=90)]},
    {"document": Document(file_id="d", file_unique_id="du", file_name="iin.pdf")},
    {"location": Location(latitude=43.238, longitude=76.945)},
])


@dataclass
class Step:
    kind: str                      # 'message' | 'edited' | 'callback'
    sender: int                    # user id; the private chat has the same id
    language_code: str | None
    state: State | None | str      # 'keep' leaves the FSM as the previous step left it
    fsm_number: str = ""
    fsm_iin: str = ""
    content: dict[str, Any] = field(default_factory=dict)
    data: str = ""
    with_message: bool = True
    group: bool = False


def steps(p: Prepared, senders: st.SearchStrategy[int]) -> st.SearchStrategy[list[Step]]:
    ids = st.one_of(st.sampled_from([p.mine_id, p.other_id, *p.seat_ids]), INTS)
    # Forged dialogue data may name either application, but never holds a real IIN: whoever
    # fuzzes here does not know the child's IIN (the phone and the number, yes).
    numbers = st.sampled_from([p.mine["number"], p.other["number"], "", "A99999", "' OR 1=1"])
    iins = st.sampled_from(["", "000000000000", "230315500017", "12345678901", "x" * 20])
    phones = st.sampled_from([p.mine["phone"], p.other["phone"], "", "+", "0", "+7" + "9" * 30, "' OR 1=1",
                              "+77010000000", "８７０１"])

    @st.composite
    def step(draw: st.DrawFn) -> Step:
        sender = draw(senders)
        kind = draw(st.sampled_from(["message", "message", "message", "edited", "callback", "callback"]))
        state = draw(st.one_of(st.just("keep"), st.sampled_from(list(STATES.values()))))
        base = dict(kind=kind, sender=sender, language_code=draw(LANGUAGE_CODES), state=state,
                    fsm_number=draw(numbers), fsm_iin=draw(iins))
        if kind == "callback":
            return Step(**base, data=draw(callback_data(ids)), with_message=draw(st.booleans()))
        content = draw(st.one_of(
            st.fixed_dictionaries({"text": TEXTS}),
            st.fixed_dictionaries({"text": TEXTS}),
            MEDIA,
            st.builds(lambda phone, uid, name: {"contact": Contact(phone_number=phone, first_name=name, user_id=uid)},
                      phones, st.one_of(st.just(sender), st.none(), ids, st.just(VICTIM)),
                      st.text(min_size=1, max_size=10)),
        ))
        return Step(**base, content=content, group=draw(st.integers(0, 19)) == 0)

    return st.lists(step(), min_size=1, max_size=4)


# --- running a session ----------------------------------------------------------------------------

class Failures(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())


async def _rows(kz: Kezek, p: Prepared) -> dict[str, Any]:
    async with kz.reading(with_calendar=False) as ctx:
        s = ctx.session

        async def rows(stmt: Any) -> list[tuple[Any, ...]]:
            return sorted(tuple(r) for r in (await s.execute(stmt)).all())

        victim_chat = await s.get(ChatRow, VICTIM)
        return {
            "links": await rows(select(ChatLink.chat_id, ChatLink.application_id)),
            "offers": await rows(select(Offer.id, Offer.application_id, Offer.status)),
            "referrals": await rows(select(Referral.id, Referral.application_id, Referral.status)),
            "applications": await rows(select(Application.id, Application.status)),
            "seats": await rows(select(Seat.id, Seat.status)),
            "victim chat": None if victim_chat is None else (
                victim_chat.language, victim_chat.notify_moves, victim_chat.notify_reminders,
                victim_chat.notify_open_seats, victim_chat.email, victim_chat.email_pending),
        }


def _victims_part(rows: dict[str, Any], p: Prepared) -> dict[str, Any]:
    mine = {"links": lambda r: r[1] == p.other_id or r[0] == VICTIM,
            "offers": lambda r: r[1] == p.other_id,
            "referrals": lambda r: r[1] == p.other_id,
            "applications": lambda r: r[0] == p.other_id}
    out = {k: [r for r in rows[k] if keep(r)] for k, keep in mine.items()}
    out["victim chat"] = rows["victim chat"]
    return out


class Session:
    def __init__(self, p: Prepared, kz: Kezek) -> None:
        self.p = p
        self.kz = kz
        self.tg = Harness(build_dispatcher(kz))
        self.ids = count(1)

    def _user(self, step: Step) -> User:
        return User(id=step.sender, is_bot=False, first_name="Айгерим", language_code=step.language_code)

    def update(self, step: Step) -> Update:
        now = dt.datetime.now(dt.UTC)
        chat = Chat(id=step.sender, type="group" if step.group else "private")
        if step.kind == "callback":
            picker = Message(message_id=next(self.ids), date=now, chat=chat, from_user=BOT_USER, text="…") \
                if step.with_message else None
            callback = CallbackQuery(id=f"cb{next(self.ids)}", from_user=self._user(step), chat_instance="ci",
                                     message=picker, data=step.data)
            return Update(update_id=next(self.ids), callback_query=callback)
        message = Message(message_id=next(self.ids), date=now, chat=chat, from_user=self._user(step),
                          edit_date=int(now.timestamp()) if step.kind == "edited" else None, **step.content)
        if step.kind == "edited":
            return Update(update_id=next(self.ids), edited_message=message)
        return Update(update_id=next(self.ids), message=message)

    async def run(self, step: Step) -> None:
        tg, p = self.tg, self.p
        if step.state != "keep":
            ctx = tg.dp.fsm.get_context(bot=tg.bot, chat_id=step.sender, user_id=step.sender)
            await ctx.set_state(step.state)  # type: ignore[arg-type]
            await ctx.set_data({"number": step.fsm_number, "iin": step.fsm_iin})
        update = self.update(step)
        before = await _rows(self.kz, p)
        start = len(tg.session.requests)
        await tg.dp.feed_update(tg.bot, update)  # must not raise
        calls = tg.session.requests[start:]
        after = await _rows(self.kz, p)

        where = f"step {step!r}"
        # --- no change without authorisation
        if step.sender != CHAT_ID:
            assert after == before, f"a chat that linked nothing changed the data: {before} -> {after}; {where}"
        assert _victims_part(after, p) == _victims_part(before, p), f"the victim's data changed; {where}"
        for c in calls:
            target = getattr(c, "chat_id", None)
            assert target in (None, step.sender), f"the bot wrote to chat {target}; {where}"
        # --- answered: a private message gets a reply, a button press its answer (no endless spinner)
        if step.kind == "message" and not step.group:
            assert any(isinstance(c, SendMessage) and c.chat_id == step.sender for c in calls), f"no reply; {where}"
        if step.kind == "callback":
            assert any(isinstance(c, AnswerCallbackQuery) for c in calls), f"the press was not answered; {where}"
        # --- localized, never the apology
        lang = await self.kz.chat_language(step.sender) or normalize_language(step.language_code)
        echoed = " ".join(str(v) for v in (step.content.get("text"), step.data, step.fsm_number) if v)
        for c in calls:
            for text in shown_texts(c):
                assert text not in APOLOGIES and not any(a in text for a in APOLOGIES), \
                    f"crash apology {text!r}; {where}"
                problems = localization_problems(text, lang, echoed)
                assert not problems, f"unlocalized reply {text!r}: {problems}; {where}"


async def _session(p: Prepared, plan: Sequence[Step]) -> None:
    db = await p.fresh()
    failures = Failures()
    log = logging.getLogger("kezek.bot")
    log.addHandler(failures)
    try:
        session = Session(p, Kezek(db, FrozenClock(NOW)))
        for step in plan:
            await session.run(step)
            assert not failures.records, f"a handler failed: {failures.records}; step {step!r}"
    finally:
        log.removeHandler(failures)
        await db.dispose()


def run(p: Prepared, plan: Sequence[Step]) -> None:
    asyncio.run(_session(p, plan))


# --- the properties -------------------------------------------------------------------------------

def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


def _strangers() -> st.SearchStrategy[int]:
    return st.one_of(st.just(STRANGER), st.integers(min_value=1, max_value=2**52).filter(
        lambda i: i not in (CHAT_ID, VICTIM)))


def fuzz_sessions(p: Prepared, senders: st.SearchStrategy[int]) -> None:
    """Run ``CASES[backend]`` random sessions of ``senders``' updates against the prepared world."""

    @fuzz(CASES[p.backend])
    @given(plan=steps(p, senders))
    def session(plan: list[Step]) -> None:
        run(p, plan)

    session()


def test_each_session_starts_from_the_prepared_world(prepared: Prepared) -> None:
    """What one session changes is gone when the next starts: the same rows and the same next ids
    (a failing example replays exactly)."""

    async def session() -> tuple[dict[str, Any], dict[str, Any], int]:
        db = await prepared.fresh()
        try:
            kz = Kezek(db, FrozenClock(NOW))
            start = await _rows(kz, prepared)
            seat = (await World(kz, FrozenClock(NOW)).publish(1, "KG2", language="kk")).seat_ids[0]
            await kz.withdraw_application(prepared.other["number"])
            await kz.set_chat_language(VICTIM, "kk")
            changed = await _rows(kz, prepared)
            assert changed != start and seat not in prepared.seat_ids
            return start, changed, seat
        finally:
            await db.dispose()

    first = asyncio.run(session())
    assert asyncio.run(session()) == first


def test_random_updates_from_chats_without_links(prepared: Prepared) -> None:
    """Unknown chats and users, in any dialogue state, change nothing and get localized answers."""
    fuzz_sessions(prepared, _strangers())


def test_random_updates_from_a_linked_chat(prepared: Prepared) -> None:
    """A linked (Kazakh) chat may act on its own application, never on the victim's."""
    fuzz_sessions(prepared, st.sampled_from([CHAT_ID, CHAT_ID, CHAT_ID, STRANGER]))
