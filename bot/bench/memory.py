"""Memory benchmark: the peak resident memory of a Kezek process over a city-sized
database, operation by operation, to show that it does not grow with the number of applications.

    kezek bench memory --applications 100000 --applications 1000000 [--postgres URL] [--json FILE]

For each size N a fresh database is built: N applications over 20 districts x 7 birth years and
100 kindergartens, drawn by the queue benchmark's generator (``bot.bench._World``: privileges,
preferred kindergartens, submission moments), with their arrival queue events; every tenth
application linked to a Telegram chat (every hundredth asked for "your number moved" notices).
The rows are written in bulk (``executemany`` on SQLite, ``COPY`` on PostgreSQL), not through
``import_applications`` (whose per-row cost ``kezek bench queue`` measures) — the seeding is timed
apart and is not what is measured. Then, through the real services and a frozen clock:

* two weeks before, 5 seats per district were published and claimed (100 referrals whose show-up
  deadline has passed); 100 waiting applications have a stop-list that ended;
* on the benchmark's Monday at 10:00, 10 seats per district were published in the youngest birth
  year (200 "your turn" offers that expire at 20:00 — the evening's fan-out).

Each operation then runs in a **fresh child process** (``python -m bot.bench.memory child ...``),
one after the other on the same database, which first loads what the production process that runs
the operation loads, and only then runs it:

* every operation but ``import`` runs, in production, inside a ``kezek run`` process (the bot, the
  scheduler, the senders, the registry API): the child builds one (``RunProcess``: the ``kezek``
  command, the Bot with Kezek's HTTP session, the FSM storage and throttle, the Dispatcher with every
  router, the webhook and registry API applications, the scheduler's jobs, the mailer and the
  senders' port), connecting to nothing (no Telegram, no listening socket), and runs the operation
  on the ``Kezek`` its Dispatcher uses. aiogram's import is most of what this costs;
* ``import`` is ``kezek import applications``, a process of its own: the child loads the ``kezek``
  command (which does not import aiogram) and runs it.

The child's resident memory then (``VmRSS`` after a garbage collection) is the operation's
**baseline**; its **peak** is the kernel's high-water mark of the child's address space (``VmHWM``
in ``/proc/self/status``, read as the operation ends; the parent checks the exit status with
``wait4``), and the **growth** (peak − baseline) is what the operation itself added. The child also
samples ``/proc/self/status`` every few milliseconds to split the peak into anonymous memory (the
process's own heap: Python objects, SQLite's page cache) and file-backed pages (SQLite reads its
file through ``mmap``: those pages are the OS page cache, shared and reclaimable, and they grow with
the file by design), and reports which of aiogram, aiohttp, APScheduler, Alembic, SQLAlchemy and
pydantic it had loaded at the baseline. The operations:

``startup``  migrate check (Alembic at head) and the first reads a ``kezek run`` makes (the rule
             profiles' windows, whether notices are due), after the process is built;
``status``   a parent's ``/status`` card (and its history chart) for the last application of the
             largest queue, with a move since the chat's last look;
``snapshot`` the nightly queue-number snapshot (N rows written, one window pass per queue);
``sweep``    the sweep at 20:00:05: the evening's offers expire and their seats open to the whole
             birth year (one "seats open" notice per waiting child of those queues), the overdue
             referrals are annulled, ended stop-lists are cleared, freed seats are offered again;
``route``    routing the whole outbox that left (the fan-out) into deliveries, 500 rows a unit;
``digest``   the daily "your number moved" notices for the chats that asked for them;
``import``   ``kezek import applications`` of a CSV of 10,000 further applications (the real CLI).

The figures print as a markdown table (one column per size: peak = baseline + growth) and, with
``--json``, to a file (``baseline_rss_mb``, ``peak_rss_mb``, ``growth_mb``, ``process``, ``loaded``...).
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import json
import logging
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.bench import CHECKOUT
from bot.bench.queue import BENCH_NOW, _remove_db, _World
from services.queue import ARRIVAL
from storage.queue_versions import FOLD_PG_SQL, FOLD_SQLITE_SQL
from storage.vocab import AppStatus, DocsState, Privilege

if TYPE_CHECKING:  # (imported when a child runs its operation: what it loads is measured)
    from services.kezek import Kezek

DISTRICTS = 20
BIRTH_YEARS = 7
IMPORT_ROWS = 10_000
CHAT_EVERY = 10  # every 10th application is linked to a chat
MOVES_EVERY = 100  # every 100th asked for "your number moved" notices
FIRST_CHAT = 7_000_000_000
DEEP_CHAT = 6_999_999_999
LOAD_AT = BENCH_NOW - dt.timedelta(days=400)  # the registry's first bulk load into Kezek
PAST = BENCH_NOW - dt.timedelta(days=14)  # Monday 24 August 2026, 10:00: the referrals' day
REFERRAL_SEATS = 5  # per district, two weeks before (claimed: overdue referrals)
EVENING_SEATS = 10  # per district, on the day (offers expiring at 20:00)
STOPLISTS_ENDED = 100
SWEEP_AT = BENCH_NOW.replace(hour=20, minute=0, second=5)
BATCH = 20_000
OPS = ("startup", "status", "snapshot", "sweep", "route", "digest", "import")
OP_WHAT = {
    "startup": "start-up: migrate check, first reads",
    "status": "/status card + history, last of the largest queue",
    "snapshot": "nightly queue snapshot (N rows)",
    "sweep": "sweep at 20:00: offers expire, seats open to the birth year, deadlines",
    "route": "route the outbox fan-out into deliveries",
    "digest": "daily 'your number moved' notices",
    "import": "kezek import applications: CSV of 10,000 rows",
}

APP_COLS = ("id", "number", "child_iin", "child_name", "birth_date", "birth_year", "district_id", "language",
            "privilege", "priv_rank", "docs_state", "submitted_at", "phone", "email", "status",
            "missed_referrals", "stoplist_until", "any_kindergarten", "twin_group", "created_at", "updated_at")
EVENT_COLS = ("id", "district_id", "birth_year", "at", "priv_rank", "submitted_at", "number", "delta", "cause",
              "application_id")
PREF_COLS = ("application_id", "kindergarten_id", "rank")
CHAT_COLS = ("id", "language", "created_at", "updated_at", "notify_moves", "notify_reminders",
             "notify_open_seats", "email_code_attempts")
LINK_COLS = ("chat_id", "application_id", "linked_at", "method")


# --- measuring a child --------------------------------------------------------------------------------

def _status_kib() -> dict[str, int]:
    """The memory lines of /proc/self/status, in KiB."""
    out: dict[str, int] = {}
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
            out[key] = int(value.split()[0])
    return out


class _Sampler(threading.Thread):
    """Peaks of RssAnon / RssFile, sampled (the kernel keeps only the total's high-water mark)."""

    def __init__(self, every: float = 0.003) -> None:
        super().__init__(daemon=True)
        self.every = every
        self.peak: dict[str, int] = {}
        self.stop = threading.Event()

    def sample(self) -> None:
        for key, value in _status_kib().items():
            if value > self.peak.get(key, 0):
                self.peak[key] = value

    def run(self) -> None:
        while not self.stop.wait(self.every):
            self.sample()


def _sqlite_heap_peak_kib() -> int | None:
    """SQLite's own high-water mark of allocated memory (its page caches included), from the
    library the ``sqlite3`` module uses; None when it cannot be read."""
    try:
        import _sqlite3
        import ctypes

        lib = ctypes.CDLL(_sqlite3.__file__)  # resolves through to libsqlite3, the same instance
        lib.sqlite3_memory_highwater.restype = ctypes.c_int64
        lib.sqlite3_memory_highwater.argtypes = [ctypes.c_int]
        return int(lib.sqlite3_memory_highwater(0)) // 1024
    except (ImportError, OSError, AttributeError):
        return None


def _mib(kib: float) -> float:
    return round(kib / 1024, 1)


# --- seeding -----------------------------------------------------------------------------------------

def _utc_naive(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


class _Rows:
    """The seeded rows of one batch, as tuples in the column orders above (naive UTC datetimes)."""

    def __init__(self) -> None:
        self.apps: list[tuple[Any, ...]] = []
        self.events: list[tuple[Any, ...]] = []
        self.prefs: list[tuple[Any, ...]] = []
        self.chats: list[tuple[Any, ...]] = []
        self.links: list[tuple[Any, ...]] = []


def _generate(world: _World, total: int, district_ids: dict[str, int],
              kg_ids: dict[str, int]) -> Iterator[_Rows]:
    from bot.bench.outbox import chat_language

    load_at = _utc_naive(LOAD_AT)
    n = 0
    while n < total:
        rows = _Rows()
        for _ in range(min(BATCH, total - n)):
            n += 1
            a = world.application(n)
            submitted = _utc_naive(dt.datetime.fromisoformat(a["submitted_at"]))
            created = max(submitted, load_at)  # Kezek got it with the first load, or as it came
            district = district_ids[a["district"]]
            birth = dt.date.fromisoformat(a["birth_date"])
            rank = Privilege.RANK[a["privilege"]]
            preferred = a["preferred_kindergartens"]
            rows.apps.append((n, a["number"], a["child_iin"], a["child_name"], birth, birth.year, district,
                              a["language"], a["privilege"], rank, DocsState.NOT_REQUIRED, submitted, a["phone"],
                              a["email"], AppStatus.QUEUED, 0, None, not preferred, None, created, created))
            rows.events.append((n, district, birth.year, created, rank, submitted, a["number"], 1, ARRIVAL, n))
            rows.prefs.extend((n, kg_ids[code], r) for r, code in enumerate(preferred))
            if n % CHAT_EVERY == 0:
                chat = FIRST_CHAT + n
                rows.chats.append((chat, chat_language(n), created, created, n % MOVES_EVERY == 0, True, True, 0))
                rows.links.append((chat, n, created, "contact"))
        yield rows


def _sqlite_bulk(path: str, batches: Iterator[_Rows], out: Callable[[str], Any], total: int) -> None:
    from sqlalchemy import Date, DateTime
    from sqlalchemy.dialects import sqlite as sqlite_dialect

    dialect = sqlite_dialect.dialect()
    # (the SQLite dialect's own DATETIME and DATE: what SQLAlchemy binds a DateTime and a Date as)
    as_dt = DateTime().dialect_impl(dialect).bind_processor(dialect)
    as_date = Date().dialect_impl(dialect).bind_processor(dialect)
    assert as_dt is not None and as_date is not None

    def conv(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(as_dt(v) if isinstance(v, dt.datetime) else as_date(v) if isinstance(v, dt.date)
                     else int(v) if isinstance(v, bool) else v for v in row)

    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA synchronous=OFF")
        con.execute("PRAGMA cache_size=-262144")
        done = 0
        last = time.perf_counter()
        for rows in batches:
            con.execute("BEGIN")
            for table, cols, data in (("applications", APP_COLS, rows.apps), ("queue_events", EVENT_COLS, rows.events),
                                      ("application_preferences", PREF_COLS, rows.prefs),
                                      ("chats", CHAT_COLS, rows.chats), ("chat_links", LINK_COLS, rows.links)):
                if data:
                    con.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                                    [conv(r) for r in data])
            con.execute("COMMIT")
            done += len(rows.apps)
            if time.perf_counter() - last > 15:
                out(f"  {done:>10,} / {total:,} rows")
                last = time.perf_counter()
        # As an import does after its load: the queues' counted changes into their versions.
        last = con.execute("SELECT max(id) FROM queue_changes").fetchone()[0]
        if last is not None:
            con.execute("BEGIN")
            for statement in FOLD_SQLITE_SQL:
                con.execute(statement, {"last": last})
            con.execute("COMMIT")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()


def _pg_dsn(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1]


async def _pg_bulk(url: str, batches: Iterator[_Rows], out: Callable[[str], Any], total: int) -> None:
    import asyncpg

    con = await asyncpg.connect(_pg_dsn(url))
    try:
        done = 0
        last = time.perf_counter()
        for rows in batches:
            async with con.transaction():
                for table, cols, data in (("applications", APP_COLS, rows.apps),
                                          ("queue_events", EVENT_COLS, rows.events),
                                          ("application_preferences", PREF_COLS, rows.prefs),
                                          ("chats", CHAT_COLS, rows.chats), ("chat_links", LINK_COLS, rows.links)):
                    if data:
                        await con.copy_records_to_table(table, records=data, columns=list(cols))
            done += len(rows.apps)
            if time.perf_counter() - last > 15:
                out(f"  {done:>10,} / {total:,} rows")
                last = time.perf_counter()
        for table in ("applications", "queue_events"):
            await con.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                              f"(SELECT coalesce(max(id), 1) FROM {table}))")
        await con.fetchval(FOLD_PG_SQL)  # as an import does after its load
        # What autovacuum does within a minute of a bulk load in production: the planner's statistics.
        await con.execute("ANALYZE")
    finally:
        await con.close()


async def _pg_fresh(url: str) -> None:
    """Create the benchmark database if it is missing; the caller empties its tables."""
    import asyncpg

    dsn = _pg_dsn(url)
    base, _, name = dsn.rpartition("/")
    name = name.split("?", 1)[0]
    try:
        con = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        admin = await asyncpg.connect(base + "/postgres")
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
    else:
        await con.close()


async def db_size_bytes(url: str) -> int:
    """The database's size on disk (SQLite: the file and its WAL; PostgreSQL: pg_database_size)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1]
        return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
    import asyncpg

    con = await asyncpg.connect(_pg_dsn(url))
    try:
        return int(await con.fetchval("SELECT pg_database_size(current_database())"))
    finally:
        await con.close()


async def seed(url: str, applications: int, *, seed_value: int = 1, csv_path: str | None = None,
               out: Callable[[str], Any] = print) -> dict[str, Any]:
    """Build the database at ``url`` (emptied first) with ``applications`` applications and the
    state described in the module's docstring; write the CSV of the further applications to
    ``csv_path``. Returns what the children need and the seeding's timings."""
    from sqlalchemy import func, select, update

    from services.chats import chat_viewer
    from services.clock import FrozenClock
    from services.kezek import Kezek
    from storage.db import Database
    from storage.migrate import upgrade_async
    from storage.models import Application, Chat, ChatLink, District, Kindergarten, QueueLook

    figures: dict[str, Any] = {}
    started = time.perf_counter()
    is_sqlite = url.startswith("sqlite")
    if is_sqlite:
        _remove_db(Path(url.split("///", 1)[1]))
    else:
        await _pg_fresh(url)
    await upgrade_async(url)
    if not is_sqlite:
        from bot.bench.outbox import _truncate

        await _truncate(url)
    world = _World(random.Random(seed_value), DISTRICTS, BIRTH_YEARS, BENCH_NOW)
    db = Database(url)
    try:
        kz = Kezek(db, FrozenClock(PAST))
        await kz.upsert_districts(world.district_rows())
        await kz.upsert_kindergartens(world.kindergarten_rows())
        async with db.read() as s:
            district_ids = {c: i for c, i in (await s.execute(select(District.code, District.id))).all()}
            kg_ids = {c: i for c, i in (await s.execute(select(Kindergarten.code, Kindergarten.id))).all()}
    finally:
        await db.dispose()

    out(f"  bulk insert of {applications:,} applications ({'executemany' if is_sqlite else 'COPY'}, "
        f"{BATCH:,} a transaction)…")
    t0 = time.perf_counter()
    batches = _generate(world, applications, district_ids, kg_ids)
    if is_sqlite:
        await asyncio.to_thread(_sqlite_bulk, url.split("///", 1)[1], batches, out, applications)
    else:
        await _pg_bulk(url, batches, out, applications)
    figures["bulk_s"] = round(time.perf_counter() - t0, 1)

    t0 = time.perf_counter()
    db = Database(url)
    try:
        # Two weeks ago: seats published and claimed; their show-up deadline has passed.
        kz = Kezek(db, FrozenClock(PAST))
        referrals = 0
        for d, dc in enumerate(world.district_codes):
            kg = world.kg_codes[dc][1]
            result = await kz.publish_seats({"kindergarten": kg, "birth_year": world.years[1],
                                             "language": "ru", "count": REFERRAL_SEATS})
            for _offer_id, seat_id, number in result.offers:
                referrals += len(await kz.claim(number, seat_id, confirmed_by=f"bench:{d}"))
        # Stop-lists that ended an hour before the benchmark's moment.
        step = max(1, applications // STOPLISTS_ENDED)
        async with kz.unit("bench") as ctx:
            ids = list(range(3, applications + 1, step))[:STOPLISTS_ENDED]
            await ctx.session.execute(update(Application).where(
                Application.id.in_(ids), Application.status == AppStatus.QUEUED)
                .values(stoplist_until=BENCH_NOW - dt.timedelta(hours=1)))
        # The day's seats: offers that expire at 20:00, "your turn" alerts in the outbox.
        kz = Kezek(db, FrozenClock(BENCH_NOW))
        offers = 0
        for dc in world.district_codes:
            result = await kz.publish_seats({"kindergarten": world.kg_codes[dc][0], "birth_year": world.years[0],
                                             "language": "kk", "count": EVENING_SEATS})
            offers += len(result.offers)
        # The parent who looks at /status: the last application of the largest queue.
        A = Application
        async with db.read() as s:
            district_id, birth_year, queue_size = (await s.execute(
                select(A.district_id, A.birth_year, func.count()).where(A.status == AppStatus.QUEUED)
                .group_by(A.district_id, A.birth_year).order_by(func.count().desc()).limit(1))).one()
            deep_id, deep_number = (await s.execute(
                select(A.id, A.number).where(A.district_id == district_id, A.birth_year == birth_year,
                                             A.status == AppStatus.QUEUED)
                .order_by(A.priv_rank.desc(), A.submitted_at.desc(), A.number.desc()).limit(1))).one()
        view = await kz.queue_view(deep_number)
        async with kz.unit("bench", with_calendar=False) as ctx:
            ctx.session.add(Chat(id=DEEP_CHAT, language="kk", created_at=ctx.now, updated_at=ctx.now))
            await ctx.session.flush()
            ctx.session.add(ChatLink(chat_id=DEEP_CHAT, application_id=deep_id, linked_at=ctx.now, method="contact"))
            ctx.session.add(QueueLook(application_id=deep_id, viewer=chat_viewer(DEEP_CHAT),
                                      number=(view.number or 0) + 25, at=ctx.now - dt.timedelta(days=30)))
    finally:
        await db.dispose()
    figures["state_s"] = round(time.perf_counter() - t0, 1)

    if csv_path:
        fields = ["number", "child_iin", "child_name", "birth_date", "district", "language",
                  "preferred_kindergartens", "privilege", "submitted_at", "phone", "email", "twin_group"]
        with open(csv_path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            for n in range(applications + 1, applications + IMPORT_ROWS + 1):
                row = world.application(n)
                row["preferred_kindergartens"] = ";".join(row["preferred_kindergartens"])
                row["twin_group"] = ""
                writer.writerow(row)
    figures.update({
        "seed_s": round(time.perf_counter() - started, 1),
        "referrals_overdue": referrals, "offers_expiring": offers,
        "deep_application": deep_number, "deep_application_id": deep_id, "deep_queue_number": view.number,
        "largest_queue": int(queue_size),
    })
    return figures


# --- the operations, each in its own child -------------------------------------------------------------

BOT_TOKEN = "123456:" + "A" * 35  # well-formed; no request is ever made with it
# What a `kezek run` process has loaded before its first update; the child reports which it holds.
PACKAGES = ("aiogram", "aiohttp", "apscheduler", "alembic", "sqlalchemy", "pydantic")


class RunProcess:
    """What a ``kezek run`` process (the bot in webhook mode, the registry API, the scheduler and the
    senders: ``bot.cli.serve.serve`` and ``bot.telegram.runner.run``) imports and builds before it
    serves, without a network call: the settings, the Bot and its HTTP session, the FSM storage and
    the throttle, the Dispatcher with every router, the webhook application, the registry API's
    application, the scheduler with its jobs (not started), the mailer, the senders' policy and
    Telegram port. The operation then runs on the same ``Kezek`` the Dispatcher's handlers use."""

    def __init__(self, kz: Kezek, workdir: str) -> None:
        import bot.cli.main  # noqa: F401 - the `kezek` command, the process's entry point
        import storage.migrate  # noqa: F401 - the migrate check `kezek run` does first
        from bot import logsafe
        from bot.api.server import make_api_app
        from bot.config import Settings
        from bot.delivery.mail import make_mailer
        from bot.delivery.sender import SendPolicy, telegram_port
        from bot.jobs import make_scheduler
        from bot.telegram.app import build_dispatcher, make_storage
        from bot.telegram.runner import make_bot
        from bot.telegram.throttling import make_throttle
        from bot.telegram.webhook import build_webhook_app
        from services.doc_check import DocumentChecker

        self.settings = Settings(
            _env_file=None, bot_token=BOT_TOKEN, bot_api_url="http://127.0.0.1:9", api_token="b" * 40,
            webhook_url="https://kezek-bench.invalid", webhook_secret="bench-memory_Secret-1",
            mail_dir=Path(workdir) / "mail")
        logsafe.install(self.settings.log_level)  # and the loggers bot.cli.serve.serve quiets
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        logging.getLogger("aiogram.event").setLevel(logging.WARNING)
        self.kz = kz
        kz.document_checker = DocumentChecker(self.settings.document_check_seconds,
                                              self.settings.document_check_workers)
        self.bot = make_bot(self.settings)
        fsm, isolation = make_storage(self.settings)
        throttle = make_throttle(self.settings, redis=getattr(fsm, "redis", None))
        self.dp = build_dispatcher(kz, storage=fsm, events_isolation=isolation, throttle=throttle)
        self.webhook_app = build_webhook_app(self.dp, self.bot, self.settings)
        self.api_app = make_api_app(kz, self.settings)
        self.scheduler = make_scheduler(kz, every_seconds=self.settings.sweep_seconds,
                                        snapshot_hour=self.settings.snapshot_hour,
                                        digest_hour=self.settings.digest_hour)
        self.mailer = make_mailer(self.settings, kz.clock)
        self.policy = SendPolicy.from_settings(self.settings)
        self.telegram_send = telegram_port(self.bot)

    async def close(self) -> None:
        await self.bot.session.close()


OP_MOMENTS = {"startup": BENCH_NOW, "status": BENCH_NOW + dt.timedelta(minutes=1),
              "snapshot": BENCH_NOW + dt.timedelta(minutes=2), "sweep": SWEEP_AT,
              "route": SWEEP_AT + dt.timedelta(seconds=5), "digest": SWEEP_AT + dt.timedelta(seconds=30)}


async def _op_async(op: str, url: str, params: dict[str, Any], process: RunProcess) -> dict[str, Any]:
    kz = process.kz
    try:
        if op == "startup":
            from bot.jobs import profile_windows
            from storage.migrate import upgrade_async

            t0 = time.perf_counter()
            await upgrade_async(url)  # at head: the migrate check `kezek run` does first
            migrate_s = round(time.perf_counter() - t0, 2)
            windows = await profile_windows(kz)
            due = await kz.notices_due()
            return {"migrate_check_s": migrate_s, "routers": len(process.dp.sub_routers), "windows": len(windows),
                    "notices_due": due}
        if op == "status":
            cards = await kz.status_cards(DEEP_CHAT)
            history = await kz.status_history(DEEP_CHAT, int(params["deep_application_id"]))
            card = cards[0]
            return {"queue_number": card.queue_number, "previous": card.previous_number,
                    "causes": card.causes, "forecast": card.forecast.kind if card.forecast else None,
                    "history_points": len(history.points)}
        if op == "snapshot":
            return {"rows": await kz.snapshot_queue()}
        if op == "sweep":
            return await kz.run_sweeps()
        if op == "route":
            routed = calls = 0
            while n := await kz.route_notices(limit=500):
                routed += n
                calls += 1
            report = await kz.outbox_report(0)
            return {"routed": routed, "units": calls,
                    "deliveries": {ch: d.get("pending", 0) for ch, d in report["deliveries"].items()}}
        if op == "digest":
            return {"notices": await kz.announce_moves()}
        raise ValueError(op)
    finally:
        await process.close()
        await kz.db.dispose()


def child_main(op: str, url: str, params_json: str, result_path: str) -> None:
    """Run one operation in this (fresh) process and write what it saw to ``result_path``: first
    what the production process of the operation loads (``kezek import``: the ``kezek`` command;
    every other operation: a whole ``kezek run`` process, ``RunProcess``), its resident memory then
    (the baseline), then the operation and the high-water mark."""
    import gc

    params = json.loads(params_json)
    sampler = _Sampler()
    sampler.sample()
    sampler.start()
    start = _status_kib()
    process: RunProcess | None = None
    if op == "import":
        import bot.cli.main  # noqa: F401 - the `kezek` command: every topic's commands registered on cli
        from bot.cli.base import cli
        kind = "kezek import"
    else:
        from services.clock import FrozenClock
        from services.kezek import Kezek
        from storage.db import Database

        process = RunProcess(Kezek(Database(url), FrozenClock(OP_MOMENTS[op])), os.path.dirname(result_path))
        kind = "kezek run"
    gc.collect()
    baseline = _status_kib()
    loaded = {name: name in sys.modules for name in PACKAGES}
    t0 = time.perf_counter()
    if op == "import":
        iso = (SWEEP_AT + dt.timedelta(minutes=1)).isoformat()
        cli.main(["--db", url, "--lang", "ru", "--now", iso, "import", "applications", params["csv"]],
                 standalone_mode=False)
        result: dict[str, Any] = {"rows": IMPORT_ROWS}
    else:
        assert process is not None
        result = asyncio.run(_op_async(op, url, params, process))
    seconds = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    sampler.sample()
    end = _status_kib()
    Path(result_path).write_text(json.dumps({
        "seconds": round(seconds, 2), "result": result, "process": kind, "loaded": loaded,
        "modules": len(sys.modules), "code": str(Path(sys.modules["bot"].__file__ or "").parent.parent),
        "rss_start_kib": start.get("VmRSS", 0),
        "baseline_rss_kib": baseline.get("VmRSS", 0), "baseline_anon_kib": baseline.get("RssAnon", 0),
        "hwm_kib": end.get("VmHWM", 0),
        "peak_anon_kib": sampler.peak.get("RssAnon", 0), "peak_file_kib": sampler.peak.get("RssFile", 0),
        "peak_shmem_kib": sampler.peak.get("RssShmem", 0),
        "sqlite_heap_peak_kib": _sqlite_heap_peak_kib() if url.startswith("sqlite") else None,
    }, default=str))


def run_child(op: str, url: str, params: dict[str, Any], workdir: str) -> dict[str, Any]:
    """Start ``op`` in a fresh interpreter, wait for it (exit status, CPU time) and read what it
    measured of itself (its high-water mark of resident memory)."""
    result_path = os.path.join(workdir, f"{op}.json")
    if os.path.exists(result_path):
        os.unlink(result_path)
    env = dict(os.environ)
    env.pop("KEZEK_DATABASE_URL", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CHECKOUT), env.get("PYTHONPATH", "")]))
    with open(os.path.join(workdir, f"{op}.log"), "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bot.bench.memory", "child", op, url,
                                 json.dumps(params), result_path],
                                stdout=log, stderr=subprocess.STDOUT, env=env,
                                cwd=str(CHECKOUT))
        wall0 = time.perf_counter()
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - wall0
        proc.returncode = os.waitstatus_to_exitcode(status)
    # (wait4's ru_maxrss is not used: Linux carries the forking parent's high-water mark over
    # exec into it; VmHWM belongs to the child's own address space, fresh at exec.)
    figures: dict[str, Any] = {"op": op, "exit_code": proc.returncode, "wall_s": round(wall, 2),
                               "cpu_s": round(usage.ru_utime + usage.ru_stime, 2)}
    if proc.returncode == 0 and os.path.exists(result_path):
        child = json.loads(Path(result_path).read_text())
        figures.update({
            "seconds": child["seconds"], "result": child["result"],
            "process": child["process"], "loaded": child["loaded"], "modules": child["modules"], "code": child["code"],
            "rss_start_mb": _mib(child["rss_start_kib"]),
            "baseline_rss_mb": _mib(child["baseline_rss_kib"]), "baseline_anon_mb": _mib(child["baseline_anon_kib"]),
            "peak_rss_mb": _mib(child["hwm_kib"]),
            "growth_mb": _mib(child["hwm_kib"] - child["baseline_rss_kib"]),
            "peak_anon_mb": _mib(child["peak_anon_kib"]),
            "growth_anon_mb": _mib(child["peak_anon_kib"] - child["baseline_anon_kib"]),
            "peak_file_mb": _mib(child["peak_file_kib"] + child["peak_shmem_kib"]),
        })
        if child.get("sqlite_heap_peak_kib") is not None:
            figures["sqlite_heap_peak_mb"] = _mib(child["sqlite_heap_peak_kib"])
    else:
        figures["log_tail"] = Path(os.path.join(workdir, f"{op}.log")).read_text(errors="replace")[-2000:]
    return figures


# --- the benchmark ---------------------------------------------------------------------------------------

async def run_size(applications: int, *, db_path: str, pg_url: str | None, workdir: str,
                   out: Callable[[str], Any] = print, ops: Sequence[str] = OPS) -> dict[str, Any]:
    url = pg_url or f"sqlite:///{db_path}"
    backend = "PostgreSQL" if pg_url else "SQLite"
    out(f"{applications:,} applications, {backend}: seeding…")
    csv_path = os.path.join(workdir, "import.csv")
    figures: dict[str, Any] = {"applications": applications, "backend": backend}
    figures["seed"] = await seed(url, applications, csv_path=csv_path, out=out)
    figures["db_size_seeded_mb"] = round(await db_size_bytes(url) / 2**20, 1)
    s = figures["seed"]
    out(f"  seeded in {s['seed_s']} s (bulk insert {s['bulk_s']} s, state through the services {s['state_s']} s); "
        f"{figures['db_size_seeded_mb']:,} MB on disk; largest queue {s['largest_queue']:,}, "
        f"its last application {s['deep_application']} is number {s['deep_queue_number']:,}")
    params = {"deep_application_id": s["deep_application_id"], "csv": csv_path}
    figures["ops"] = {}
    for op in ops:
        r = await asyncio.to_thread(run_child, op, url, params, workdir)
        figures["ops"][op] = r
        if r["exit_code"] != 0:
            out(f"  {op}: FAILED (exit {r['exit_code']})\n{r.get('log_tail', '')}")
            continue
        sqlite_heap = f", SQLite's heap {r['sqlite_heap_peak_mb']:5.1f}" if "sqlite_heap_peak_mb" in r else ""
        out(f"  {op:9} peak RSS {r['peak_rss_mb']:7.1f} MiB = {r['baseline_rss_mb']:6.1f} {r['process']} "
            f"+ {r['growth_mb']:6.1f} the op (anon {r['peak_anon_mb']:6.1f}{sqlite_heap}, "
            f"file-backed {r['peak_file_mb']:6.1f}) in {r['seconds']:6.2f} s: {json.dumps(r['result'], default=str)}")
    figures["db_size_end_mb"] = round(await db_size_bytes(url) / 2**20, 1)
    figures["all_exited_cleanly"] = all(r["exit_code"] == 0 for r in figures["ops"].values())
    return figures


def format_table(runs: list[dict[str, Any]]) -> list[str]:
    """One row per operation, one column per run: peak RSS MiB = the baseline (the production process
    loaded, before the operation) + the operation's growth (the peak's anonymous part, of which
    SQLite's own heap, / file-backed), seconds."""
    if not runs:
        return []
    head = [f"{r['applications']:,} ({r['backend']})" for r in runs]
    lines = ["| operation | " + " | ".join(f"{h}: peak RSS MiB = baseline + the op (anon [SQLite heap] / file), s"
                                          for h in head)
             + " |", "| --- |" + " --- |" * len(runs)]
    for op in OPS:
        cells = []
        for r in runs:
            f = r["ops"].get(op)
            if f is None:
                cells.append("—")
            elif f["exit_code"] != 0:
                cells.append(f"FAILED ({f['exit_code']})")
            else:
                heap = f" [{f['sqlite_heap_peak_mb']:,.1f}]" if "sqlite_heap_peak_mb" in f else ""
                cells.append(f"**{f['peak_rss_mb']:,.1f}** = {f['baseline_rss_mb']:,.1f} + **{f['growth_mb']:,.1f}** "
                             f"({f['peak_anon_mb']:,.1f}{heap} / {f['peak_file_mb']:,.1f}), {f['seconds']:,.1f} s")
        lines.append(f"| {op}: {OP_WHAT[op]} | " + " | ".join(cells) + " |")
    lines.append("| seeding (bulk insert + state) | " + " | ".join(
        f"{r['seed']['seed_s']:,.0f} s ({r['seed']['bulk_s']:,.0f} s + {r['seed']['state_s']:,.0f} s)"
        for r in runs) + " |")
    lines.append("| database on disk, seeded → after the operations | " + " | ".join(
        f"{r['db_size_seeded_mb']:,.0f} → {r['db_size_end_mb']:,.0f} MB" for r in runs) + " |")
    return lines


async def run_memory_bench(sizes: Sequence[int] = (1_000_000,), *, db_path: str = "/tmp/kezek-bench-memory.sqlite3",
                           pg_url: str | None = None, workdir: str | None = None,
                           ops: Sequence[str] = OPS, out: Callable[[str], Any] = print) -> dict[str, Any]:
    """Run the benchmark at each size (a fresh database each); return the figures."""
    if not sizes or any(n < 1 for n in sizes):
        raise ValueError("sizes must be positive")
    workdir = workdir or tempfile.mkdtemp(prefix="kezek-bench-memory-")
    Path(workdir).mkdir(parents=True, exist_ok=True)
    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    runs = []
    for n in sizes:
        runs.append(await run_size(n, db_path=db_path, pg_url=pg_url, workdir=workdir, out=out, ops=ops))
    report: dict[str, Any] = {"runs": runs, "workdir": workdir,
                              "all_exited_cleanly": all(r["all_exited_cleanly"] for r in runs)}
    if len(runs) > 1:
        first, last = runs[0], runs[-1]
        def grew(op: str, key: str) -> float | None:
            a, b = first["ops"].get(op, {}).get(key), last["ops"].get(op, {}).get(key)
            return None if a is None or b is None else round(b - a, 1)

        report["growth"] = {op: {"peak_rss_mb": grew(op, "peak_rss_mb"), "peak_anon_mb": grew(op, "peak_anon_mb"),
                                 "growth_mb": grew(op, "growth_mb")} for op in ops}
    out("")
    for line in format_table(runs):
        out(line)
    return report


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "child":
        child_main(*args[1:5])
        return
    raise SystemExit("usage: kezek bench memory [--applications N ...] [--postgres URL] [--db PATH] [--json FILE]")


if __name__ == "__main__":
    main()
