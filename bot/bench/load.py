"""Load benchmark (``kezek bench load``): N simulated parents talking to K ``kezek run`` instances
in webhook mode, and the same harness against a bare aiogram echo bot as the framework's ceiling.

Method
------
* **Telegram's side** is ``bot.bench.standin.BotApiStandIn`` on loopback, in this process (``keep_calls=False``),
  subclassed here (``TimingStandIn``) to timestamp (``time.perf_counter``) the first ``sendMessage`` /
  ``editMessageText`` for a chat that a parent is waiting on.
* **The database** is built fresh: an SQLite file (default) or an emptied PostgreSQL database
  (``db_url``), migrated, with N waiting applications each linked to its own chat (``Chat`` +
  ``ChatLink`` rows, the approach of ``bot.bench.outbox.seed_fan_out`` without publishing seats);
  the chats alternate Russian and Kazakh. Chat ids start at a fresh base each run, so that the
  per-chat throttle (20 updates a minute, kept on: it is part of the production path) and the Redis
  keys of an earlier run do not interfere.
* **The clock**: the seeding, the offers and the instances (``kezek --now``: a frozen clock) all
  stand at Monday 7 September 2026, 10:00 Almaty, inside the claim window.
* **The bot**: K processes of ``kezek run --no-api --no-scheduler --no-senders`` (webhook mode:
  ``KEZEK_WEBHOOK_URL`` set, each on its own loopback port, ``KEZEK_REDIS_URL`` when given; production
  logging and throttle), started after the migration, and ready once ``GET /healthz`` answers.
* **The parents**: at most ``concurrency`` parents in flight; each sends its updates one by one,
  POSTing them (with ``X-Telegram-Bot-Api-Secret-Token``) round-robin to the instances, as Telegram
  would through a load balancer, and waits for the bot's reply before its next update. Latency is
  from just before the POST to the stand-in receiving the reply for that chat. An update counts as
  answered when a reply arrived; the webhook's response (sent after the handler finished, since
  ``handle_in_background=False``) must also be 200. A second reply to one update is counted as
  ``extra``.
* **The echo bot** (the framework's ceiling): K processes of ``python -m bot.bench.load --echo-server
  PORT``: a bare aiogram Dispatcher with one handler answering every message with its text, served
  by aiogram's ``SimpleRequestHandler`` with the secret (like ``bot.telegram.webhook``), its Bot on
  the HTTP session Kezek's bot uses (``bot.telegram.runner.make_session``: the same session class
  and JSON bodies, the same connection limits, the same Bot API server URL): what Kezek saves in
  its session is the ceiling's too, and the two differ by what runs between the webhook and the
  reply (middlewares, handlers, the database). Both fleets start together and run to the end (an idle process costs no
  CPU).
* **Phases** (a short warm-up of 10 updates per instance goes first for each fleet, not measured):
  ``echo_before`` — every parent's ``/status`` to the echo bots;
  ``status`` — every parent sends ``/status`` once to Kezek (the figure the goal is about);
  ``menu`` — every parent presses the reply-keyboard buttons "My queue status", "Available seats",
  "Settings" and "Help" (in its chat's language), ``menu_rounds`` times;
  ``claim`` — the first ``claim_share`` of the parents in queue order (default a quarter) each got
  a seat offered when the database was prepared (published through the service layer; the "your
  turn" alerts sent to the stand-in by the real outbox sender before the instances start) and
  play the claim flow (``bot.bench.load_claims``): the alert's "Seats" button, the seat's button in the
  list, "Confirm" — three callback updates, each built from the reply markup the bot sent, so the
  latency is per step (``by_kind``: ``seats``, ``preview``, ``confirm``). Afterwards the database is
  checked (``claim_check``): each claiming parent has exactly one referral, no seat two;
  ``issued_replies`` counts the parents whose last reply was "Referral issued ...";
  ``echo_after`` — the echo bots again, the same updates as ``echo_before``.
* **Figures** per phase: the CPU seconds the bot processes used (from ``/proc``: ms of bot CPU per
  update, the first column: the steadiest figure), updates per second (updates / wall time from the
  first POST to the last reply), p50 / p95 / p99 / max latency, unanswered and non-200 counts, and
  the processes' resident memory at the end. With ``concurrency`` parents in flight the latency
  includes queueing once the CPU is saturated (Little's law: about concurrency / rate);
  ``concurrency=1`` gives the unloaded service time.
* **The verdict** (``judge``; its first line is Kezek's bot CPU per ``/status`` against the echo's,
  and how many times the echo's it is). The two echo phases must agree: when their rates or their
  CPU per update differ by more than ``echo_tolerance`` (15 %, the larger over the smaller), other
  load on the machine changed between the phases, so no ratio of them means anything: the verdict
  is "machine busy: echo moved from X to Y; no verdict" and ``kezek bench load`` exits with status
  3. Otherwise the ceiling is the faster echo rate and the cheaper echo CPU of the two (the ceiling
  least flattering to Kezek), the ratio is Kezek's ``/status`` rate over it, and the goal (the
  ratio at least 0.5, the ``/status`` p95 under 50 ms) is "met" or "not met".

Everything runs on one machine: the load generator and the stand-in (one process), the bot
processes and the database server share its cores, so the figures are the machine's, not Kezek's
alone: the bot's CPU per update is the steadier figure, and the echo measured on both sides of
Kezek's phases tells whether the machine stayed the same. Every process started here is terminated
(killed after a timeout) on the way out, errors included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiogram import Bot
from aiohttp import web

from bot.bench import CHECKOUT, ECHO_TOLERANCE, NO_VERDICT_EXIT
from bot.bench.load_claims import Step, bench_now, check_claims, claim_script, claimer_count, is_issued, send_alerts
from bot.bench.outbox import chat_language
from bot.bench.standin import TOKEN, BotApiStandIn

SECRET = "bench-load_Secret-1"
PUBLIC_URL = "https://kezek-bench.invalid"  # webhook mode needs an https:// base; we POST directly
WEBHOOK_PATH = "/telegram/webhook"
MENU_KEYS = ("status", "seats", "settings", "help")
WARMUP_PER_INSTANCE = 10
REPLY_METHODS = frozenset({"sendmessage", "editmessagetext"})
ECHO_BOT = web.AppKey("echo_bot", Bot)  # the echo application's Bot (for a look at its session)


# --- the stand-in with a reply hook ------------------------------------------------------------------

class TimingStandIn(BotApiStandIn):
    """The Bot API stand-in, resolving a parent's waiter with the time its reply arrived.

    A reply is a ``sendMessage`` / ``editMessageText`` to the chat, or an ``answerCallbackQuery``
    with ``show_alert`` for a press of that chat (how the bot answers a refused claim step; the
    press's id must be in ``callback_chats``). ``replies`` keeps each chat's last reply (the message
    the stand-in answered, reply markup included, or ``{"alert": text}``), so that the next press
    is built from the buttons the bot really sent. Messages sent while ``collecting`` (the outbox's
    alerts) go to ``alerts`` instead and are not replies. ``log``, when a list, gets
    ``(chat, method, text)`` of every reply."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.waiters: dict[int, asyncio.Future[float]] = {}
        self.extra = 0  # replies nobody waited for (a second reply to one update)
        self.replies: dict[int, dict[str, Any]] = {}
        self.alerts: dict[int, dict[str, Any]] = {}
        self.collecting = False
        self.callback_chats: dict[str, int] = {}
        self.log: list[tuple[int, str, str]] | None = None

    async def _answer(self, method: str, params: dict[str, Any]) -> Any:
        now = time.perf_counter()
        result = await super()._answer(method, params)
        if method in REPLY_METHODS and "chat_id" in params:
            chat = int(params["chat_id"])
            if self.collecting and method == "sendmessage":
                if isinstance(result, dict):
                    self.alerts[chat] = result
                return result
            self._replied(chat, method, result if isinstance(result, dict) else {"text": params.get("text")},
                          str(params.get("text", "")), now)
        elif method == "answercallbackquery" and str(params.get("show_alert", "")).lower() == "true":
            chat_id = self.callback_chats.get(str(params.get("callback_query_id", "")))
            if chat_id is not None:
                text = str(params.get("text", ""))
                self._replied(chat_id, method, {"alert": text}, text, now)
        return result

    def _replied(self, chat: int, method: str, message: dict[str, Any], text: str, now: float) -> None:
        self.replies[chat] = message
        if self.log is not None:
            self.log.append((chat, method, text))
        waiter = self.waiters.pop(chat, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(now)
        else:
            self.extra += 1


# --- processes --------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB (Linux ``/proc``; 0 elsewhere)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0.0


@dataclass
class Instance:
    name: str
    port: int
    args: list[str]
    env: dict[str, str]
    log_path: Path
    proc: asyncio.subprocess.Process | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        log = self.log_path.open("wb")
        try:
            # In the log directory: a project's .env must not change the benchmark's settings.
            self.proc = await asyncio.create_subprocess_exec(*self.args, env=self.env, stdout=log,
                                                             stderr=asyncio.subprocess.STDOUT,
                                                             stdin=asyncio.subprocess.DEVNULL,
                                                             cwd=self.log_path.parent)
        finally:
            log.close()

    def cpu(self) -> float:
        return _cpu_seconds(self.proc.pid) if self.proc is not None else 0.0

    def rss_mb(self) -> float:
        return _rss_mb(self.proc.pid) if self.proc is not None else 0.0

    def died(self) -> str | None:
        if self.proc is not None and self.proc.returncode is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            return f"{self.name} exited with {self.proc.returncode}:\n{tail}"
        return None

    async def stop(self, timeout: float = 15.0) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def wait_healthy(http: aiohttp.ClientSession, instances: Sequence[Instance], timeout: float = 180.0) -> None:
    """Wait until each of ``instances`` answers ``GET /healthz`` (RuntimeError with its log's tail
    when it died). ``timeout``: the group's deadline in seconds, far above a start-up's few seconds:
    on a machine that other work slowed, importing aiogram alone has taken a minute."""
    deadline = time.monotonic() + timeout
    for inst in instances:
        while True:
            reason = inst.died()
            if reason:
                raise RuntimeError(reason)
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(f"{inst.base}/healthz", timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    if resp.status == 200:
                        break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{inst.name} did not answer /healthz within {timeout} s")
            await asyncio.sleep(0.1)


class Fleet:
    """Processes started for one run; ``close`` stops every one of them."""

    def __init__(self) -> None:
        self.instances: list[Instance] = []

    async def start(self, instances: Sequence[Instance]) -> None:
        for inst in instances:
            self.instances.append(inst)
            await inst.start()

    async def close(self) -> None:
        await asyncio.gather(*(inst.stop() for inst in self.instances), return_exceptions=True)
        self.instances.clear()


def _base_env() -> dict[str, str]:
    # Our settings only: a KEZEK_* variable of the caller's shell must not change the benchmark.
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEZEK_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CHECKOUT), env.get("PYTHONPATH", "")]))
    return env


def kezek_instances(k: int, *, api_url: str, db_url: str, redis_url: str | None, logs: Path,
                    profile_dir: Path | None = None, now: dt.datetime | None = None) -> list[Instance]:
    """``now``: the instances' clock stands still at this moment (``kezek --now``), e.g. the bench's
    Monday morning, so that the claim window is open whatever the real time is."""
    out = []
    for i in range(k):
        port = free_port()
        env = _base_env() | {
            "KEZEK_BOT_TOKEN": TOKEN, "KEZEK_BOT_API_URL": api_url, "KEZEK_DATABASE_URL": db_url,
            "KEZEK_WEBHOOK_URL": PUBLIC_URL, "KEZEK_WEBHOOK_SECRET": SECRET, "KEZEK_WEBHOOK_PATH": WEBHOOK_PATH,
            "KEZEK_WEBHOOK_HOST": "127.0.0.1", "KEZEK_WEBHOOK_PORT": str(port),
            "KEZEK_MAIL_DIR": str(logs / "mail"),
        }
        if redis_url:
            env["KEZEK_REDIS_URL"] = redis_url
        profile = ["-m", "cProfile", "-o", str(profile_dir / f"kezek-{i + 1}.prof")] if profile_dir else []
        clock = ["--now", now.isoformat()] if now is not None else []
        args = [sys.executable, *profile, "-m", "bot.cli.main", "--db", db_url, *clock, "run", "--no-api",
                "--no-scheduler", "--no-senders"]
        out.append(Instance(f"kezek#{i + 1}", port, args, env, logs / f"kezek-{i + 1}.log"))
    return out


def echo_instances(k: int, *, api_url: str, logs: Path) -> list[Instance]:
    out = []
    for i in range(k):
        port = free_port()
        args = [sys.executable, "-m", "bot.bench.load", "--echo-server", str(port), "--api", api_url,
                "--secret", SECRET]
        out.append(Instance(f"echo#{i + 1}", port, args, _base_env(), logs / f"echo-{i + 1}.log"))
    return out


# --- the echo bot (the framework's ceiling) ---------------------------------------------------------

def build_echo_app(api_url: str, secret: str, token: str = TOKEN) -> web.Application:
    """The echo bot's web application: a bare aiogram Dispatcher with one handler answering every
    message with its text, behind aiogram's ``SimpleRequestHandler`` (secret checked, handled before
    the response) and ``/healthz``. Its Bot talks through the HTTP session Kezek's bot uses
    (``bot.telegram.runner.make_session``: the same session class, JSON bodies, connection limits
    and Bot API server URL): what Kezek saves in its session, the ceiling saves too."""
    from aiogram import Dispatcher
    from aiogram.types import Message
    from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application

    from bot.telegram.runner import make_session

    bot = Bot(token, session=make_session(api_url))
    dp = Dispatcher()

    @dp.message()
    async def echo(message: Message) -> None:
        await message.answer(message.text or "…")

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app[ECHO_BOT] = bot
    app.router.add_get("/healthz", healthz)
    SimpleRequestHandler(dispatcher=dp, bot=bot, secret_token=secret,
                         handle_in_background=False).register(app, path=WEBHOOK_PATH)
    setup_application(app, dp, bot=bot)
    return app


async def serve_echo(port: int, api_url: str, secret: str, token: str = TOKEN) -> None:
    """The echo bot (``build_echo_app``) on loopback ``port`` until SIGTERM/SIGINT."""
    import signal

    runner = web.AppRunner(build_echo_app(api_url, secret, token), handle_signals=False, access_log=None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await stop.wait()
    finally:
        await runner.cleanup()  # the Dispatcher's shutdown closes the bot session


# --- the database -----------------------------------------------------------------------------------

async def prepare_database(db_url: str, parents: int, first_chat: int, claimers: int = 0) -> int:
    """A migrated, empty database with ``parents`` waiting applications, each linked to its own chat
    (ids from ``first_chat``; Russian and Kazakh alternating); with ``claimers``, that many seats
    published on the bench's clock, offered to the first ``claimers`` parents (their "your turn"
    alerts wait in the outbox). Returns the number of offers made."""
    from bot.bench.outbox import _truncate, seed_linked_parents
    from bot.bench.queue import BENCH_NOW
    from services.clock import FrozenClock
    from services.kezek import Kezek
    from storage.db import Database
    from storage.migrate import upgrade_async

    await upgrade_async(db_url)
    if not db_url.startswith("sqlite"):
        await _truncate(db_url)
    from bot.bench.load_claims import publish_offers

    db = Database(db_url)
    try:
        kz = Kezek(db, FrozenClock(BENCH_NOW))
        await seed_linked_parents(kz, parents, first_chat=first_chat, prefix="L", preferred=["BENCH-KG"])
        offers = await publish_offers(kz, claimers) if claimers else 0
    finally:
        await db.dispose()
    if not db_url.startswith("sqlite"):
        await _vacuum(db_url)
    return offers


async def _vacuum(db_url: str) -> None:
    """What autovacuum does within a minute of a bulk load in production: the visibility map
    (without it the queue number's index-only count visits every row ahead of the card in the
    heap, 1.6 ms for 2,900 rows instead of a fraction of that) and the planner's statistics."""
    import asyncpg

    from bot.bench.memory import _pg_dsn

    con = await asyncpg.connect(_pg_dsn(db_url))
    try:
        await con.execute("VACUUM (ANALYZE)")
    finally:
        await con.close()


# --- the parents ------------------------------------------------------------------------------------

@dataclass
class PhaseResult:
    name: str
    updates: int = 0
    answered: int = 0
    unanswered: int = 0
    bad_status: int = 0
    errors: int = 0
    skipped: int = 0  # steps not played: the button to press was not in the bot's last reply
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    by_kind: dict[str, list[float]] = field(default_factory=dict)
    bot_cpu_seconds: float = 0.0
    bot_rss_mb: list[float] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def pct(values: list[float], p: float) -> float | None:
            if not values:
                return None
            rank = max(1, math.ceil(p / 100 * len(values)))  # nearest rank
            return round(values[min(len(values), rank) - 1] * 1000, 2)

        out: dict[str, Any] = {
            "updates": self.updates, "answered": self.answered, "unanswered": self.unanswered,
            "non_200": self.bad_status, "errors": self.errors, "skipped": self.skipped,
            "seconds": round(self.seconds, 3),
            "updates_per_second": round(self.answered / self.seconds, 1) if self.seconds > 0 else None,
            "p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95), "p99_ms": pct(lat, 99),
            "max_ms": round(lat[-1] * 1000, 2) if lat else None,
            "mean_ms": round(statistics.fmean(lat) * 1000, 2) if lat else None,
            "bot_cpu_seconds": round(self.bot_cpu_seconds, 2),
            "bot_cpu_ms_per_update": round(self.bot_cpu_seconds * 1000 / self.updates, 2) if self.updates else None,
            "bot_rss_mb": [round(m, 1) for m in self.bot_rss_mb],
        }
        if len(self.by_kind) > 1:
            out["by_kind"] = {kind: {"n": len(v), "p50_ms": pct(sorted(v), 50), "p95_ms": pct(sorted(v), 95),
                                     "p99_ms": pct(sorted(v), 99), "max_ms": round(max(v) * 1000, 2)}
                              for kind, v in self.by_kind.items()}
        return out


# (kind, text or step) of one parent's updates, in order; a step builds the update from what the
# bot sent before (``bot.bench.load_claims``), or returns None when the button to press is not there.
Script = list[tuple[str, "str | Step"]]


class Load:
    """Plays parents against instances through the stand-in's reply hook."""

    def __init__(self, api: TimingStandIn, http: aiohttp.ClientSession, instances: Sequence[Instance],
                 *, concurrency: int, timeout: float) -> None:
        self.api = api
        self.http = http
        self.urls = [inst.base + WEBHOOK_PATH for inst in instances]
        self.instances = instances
        self.concurrency = concurrency
        self.timeout = timeout
        self._next = 0
        self.headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}

    async def _one(self, result: PhaseResult, chat: int, lang: str, kind: str, text: str | Step) -> bool:
        """One update and its reply; False when the parent cannot go on (no reply, no button)."""
        if callable(text):
            update = text(self.api, chat, lang)
            if update is None:
                result.skipped += 1
                return False
        else:
            update = self.api.send_text(chat, text, language_code=lang, deliver=False)
        body = json.dumps(update, ensure_ascii=False).encode()
        url = self.urls[self._next % len(self.urls)]
        self._next += 1
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[float] = loop.create_future()
        self.api.waiters[chat] = waiter
        result.updates += 1
        started = time.perf_counter()
        try:
            async with self.http.post(url, data=body, headers=self.headers,
                                      timeout=aiohttp.ClientTimeout(total=self.timeout * 2)) as resp:
                await resp.read()
                if resp.status != 200:
                    result.bad_status += 1
            replied = await asyncio.wait_for(asyncio.shield(waiter), self.timeout)
        except TimeoutError:
            result.unanswered += 1
            return False
        except (aiohttp.ClientError, OSError):
            result.errors += 1
            result.unanswered += 1
            return False
        else:
            result.answered += 1
            latency = replied - started
            result.latencies.append(latency)
            result.by_kind.setdefault(kind, []).append(latency)
            return True
        finally:
            if self.api.waiters.get(chat) is waiter:
                del self.api.waiters[chat]

    async def play(self, name: str, parents: Sequence[tuple[int, str, Script]]) -> PhaseResult:
        """Every parent's script, at most ``concurrency`` parents at once."""
        result = PhaseResult(name)
        queue: asyncio.Queue[tuple[int, str, Script]] = asyncio.Queue()
        for parent in parents:
            queue.put_nowait(parent)

        async def worker() -> None:
            while True:
                try:
                    chat, lang, script = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                for kind, text in script:
                    if not await self._one(result, chat, lang, kind, text) and callable(text):
                        break  # a flow stops at a step that got no reply or offered no button

        cpu_before = sum(inst.cpu() for inst in self.instances)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(min(self.concurrency, len(parents)) or 1)))
        result.seconds = time.perf_counter() - started
        result.bot_cpu_seconds = sum(inst.cpu() for inst in self.instances) - cpu_before
        result.bot_rss_mb = [inst.rss_mb() for inst in self.instances]
        return result


def claim_scripts(chats: Sequence[int]) -> list[tuple[int, str, Script]]:
    """The claim flow (``bot.bench.load_claims``) for the claiming parents (the first chats)."""
    return [(chat, chat_language(i), list(claim_script())) for i, chat in enumerate(chats)]


def status_scripts(chats: Sequence[int]) -> list[tuple[int, str, Script]]:
    return [(chat, chat_language(i), [("/status", "/status")]) for i, chat in enumerate(chats)]


def menu_scripts(chats: Sequence[int], rounds: int) -> list[tuple[int, str, Script]]:
    from handlers.menu import MENU
    from locales import gettext

    out: list[tuple[int, str, Script]] = []
    for i, chat in enumerate(chats):
        lang = chat_language(i)
        out.append((chat, lang, [(key, gettext(lang, MENU[key])) for _ in range(rounds) for key in MENU_KEYS]))
    return out


# --- the benchmark ----------------------------------------------------------------------------------

def _fresh_sqlite(db_path: str) -> str:
    """The URL of the SQLite file ``db_path``, removed first with its journals."""
    path = Path(db_path).resolve()  # the instances run in the log directory
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(str(path) + suffix).unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def _phases(chats: list[int], claim_chats: list[int], *, echo: bool,
            menu_rounds: int) -> list[tuple[str, str, list[tuple[int, str, Script]]]]:
    """The phases in their order, each (fleet, phase name, the parents' scripts): with ``echo``, the
    echo bot first and last; Kezek's /status, menu (``menu_rounds``: 0, none) and claim (none
    without ``claim_chats``)."""
    plan: list[tuple[str, str, list[tuple[int, str, Script]]]] = []
    if echo:
        plan.append(("echo", "echo_before", status_scripts(chats)))
    plan.append(("kezek", "status", status_scripts(chats)))
    if menu_rounds:
        plan.append(("kezek", "menu", menu_scripts(chats, menu_rounds)))
    if claim_chats:
        plan.append(("kezek", "claim", claim_scripts(claim_chats)))
    if echo:
        plan.append(("echo", "echo_after", status_scripts(chats)))
    return plan


async def run_load_bench(*, parents: int = 2000, instances: int = 2, concurrency: int = 64,
                         menu_rounds: int = 1, db_path: str = "/tmp/kezek-bench-load.sqlite3",
                         db_url: str | None = None, redis_url: str | None = None, echo: bool = True,
                         timeout: float = 15.0, log_dir: str | None = None, profile: bool = False,
                         claim_share: float = 0.25, echo_tolerance: float = ECHO_TOLERANCE,
                         out: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the load benchmark; returns its figures (``phases``: with ``echo``, ``echo_before`` first,
    then ``status``, ``menu``, ``claim``, with ``echo``, ``echo_after`` last; and the verdict of
    ``judge``: ``verdict``, ``goal_met``, ``cpu_times_echo``, ``status_vs_echo``, ``echo``...) and
    prints a short table and the verdict through ``out``.

    ``db_url``: a PostgreSQL URL (its tables are emptied) instead of the SQLite file ``db_path``
    (recreated); ``redis_url``: shared FSM, event isolation and throttle for the instances;
    ``menu_rounds``: 0 skips the menu phase; ``claim_share``: the share of the parents that claim
    the seat offered to them (phase ``claim``; 0 skips it; the figures of its database check are
    ``claim_check``); ``timeout``: seconds to wait for one reply;
    ``log_dir``: where the processes' logs go (default: a new temporary directory); ``profile``: run
    the Kezek instances under cProfile (``kezek-N.prof`` in the log directory; slows them down);
    ``echo_tolerance``: how far the two echo phases may differ for a verdict (``judge``)."""
    from services.clock import FrozenClock
    from services.kezek import Kezek
    from storage.db import Database

    if parents < 1 or instances < 1 or concurrency < 1:
        raise ValueError("parents, instances and concurrency must be at least 1")
    logs = (Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="kezek-bench-load-"))).resolve()
    logs.mkdir(parents=True, exist_ok=True)
    url = db_url if db_url is not None else _fresh_sqlite(db_path)
    # A fresh range of chat ids every run: no throttle window or Redis key of an earlier run applies.
    first_chat = 10**10 + (time.time_ns() // 1000 % 10**6) * 10**6
    warm_chats = max(1, min(parents, WARMUP_PER_INSTANCE * instances))
    chats = [first_chat + i for i in range(parents)]
    claimers = claimer_count(parents, claim_share)
    claim_chats = chats[:claimers]  # the first in queue order get the offers

    started = time.perf_counter()
    offers = await prepare_database(url, parents, first_chat, claimers)
    out(f"database {'PostgreSQL' if db_url else 'SQLite'}: {parents} linked parents, {offers} offers in "
        f"{time.perf_counter() - started:.1f} s; {instances} instance(s), {concurrency} parents in flight, "
        f"Redis {'on' if redis_url else 'off'}; logs in {logs}")

    phases: dict[str, dict[str, Any]] = {}
    claim_check: dict[str, Any] | None = None
    extra = 0
    fleet = Fleet()
    connector = aiohttp.TCPConnector(limit=concurrency * 2 + 8, force_close=False)
    async with TimingStandIn(keep_calls=False) as api, aiohttp.ClientSession(connector=connector) as http:
        try:  # the processes stop before the stand-in does, errors included
            if claimers:
                db = Database(url)
                try:
                    alerts = await send_alerts(Kezek(db, FrozenClock(bench_now())), api)
                finally:
                    await db.dispose()
                out(f"  {alerts} \"your turn\" alerts sent by the outbox sender to the stand-in")
            kezek_group = kezek_instances(instances, api_url=api.base_url, db_url=url, redis_url=redis_url, logs=logs,
                                          profile_dir=logs if profile else None, now=bench_now())
            echo_group = echo_instances(instances, api_url=api.base_url, logs=logs) if echo else []
            # Both fleets run the whole time (an idle process costs no CPU): the echo is measured
            # before Kezek's phases and again after them, with the same warm processes, so that a
            # change of the machine's other load in between shows (``judge``). They start one
            # after the other, each with its own time to get ready.
            for group in (kezek_group, echo_group):
                await fleet.start(group)
                await wait_healthy(http, group)
            loads = {"kezek": Load(api, http, kezek_group, concurrency=concurrency, timeout=timeout)}
            if echo_group:
                loads["echo"] = Load(api, http, echo_group, concurrency=concurrency, timeout=timeout)
            warmed: set[str] = set()
            for target, name, scripts in _phases(chats, claim_chats, echo=echo, menu_rounds=menu_rounds):
                load = loads[target]
                if target not in warmed:  # (not measured): the first requests build models, pools, caches
                    await load.play("warm-up", status_scripts(chats[:warm_chats]))
                    warmed.add(target)
                result = await load.play(name, scripts)
                phases[name] = result.figures()
                out(f"  {name}: {result.answered}/{result.updates} answered in {result.seconds:.2f} s")
                if name == "claim":
                    phases[name]["issued_replies"] = sum(
                        1 for i, chat in enumerate(claim_chats)
                        if is_issued(chat_language(i), api.replies.get(chat, {}).get("text")))
                    claim_check = await check_claims(url, claim_chats)
            await fleet.close()
            extra = api.extra
        finally:
            await fleet.close()

    report: dict[str, Any] = {
        "parents": parents, "instances": instances, "concurrency": concurrency, "menu_rounds": menu_rounds,
        "database": "postgresql" if db_url else "sqlite", "redis": bool(redis_url), "cpu_count": os.cpu_count(),
        "phases": phases, "extra_replies": extra, "logs": str(logs), "claimers": claimers,
    }
    if claim_check is not None:
        report["claim_check"] = claim_check
    judge(report, echo_tolerance)
    report["all_answered"] = all(p["unanswered"] == 0 and p["non_200"] == 0 and p["skipped"] == 0
                                 for p in phases.values())
    for line in format_table(report):
        out(line)
    return report


def _change(before: float | None, after: float | None) -> float | None:
    """How far two figures differ: the larger over the smaller, less one (0.15: 15 %, either way)."""
    if not before or not after:
        return None
    return max(before, after) / min(before, after) - 1


def judge(report: dict[str, Any], tolerance: float = ECHO_TOLERANCE) -> None:
    """The verdict on the goal, into ``report`` (its ``phases``: ``status``, ``echo_before`` and
    ``echo_after``); nothing without both echo phases.

    * ``echo`` — the two echo phases (rate and bot CPU per update, before and after) and how far
      they moved (``rate_change``, ``cpu_change``: the larger over the smaller, less one);
    * ``echo_ceiling`` — the faster rate and the cheaper CPU of the two: the ceiling least
      flattering to Kezek;
    * ``status_cpu_ms_per_update`` (the primary figure) and ``cpu_times_echo`` (it over the
      ceiling's), ``status_vs_echo`` (Kezek's /status rate over the ceiling's rate): the two ratios
      None when the echo moved;
    * ``verdict`` — "no verdict" when the echo moved by more than ``tolerance`` in rate or in CPU per
      update (other load on the machine changed between the phases: no ratio of them means
      anything) or an echo phase answered nothing; else "goal met" / "goal not met" (the goal:
      ``status_vs_echo`` at least 0.5 and the /status p95 under 50 ms); ``goal_met`` is None, True
      or False accordingly."""
    phases = report["phases"]
    status, before, after = phases.get("status"), phases.get("echo_before"), phases.get("echo_after")
    if not (status and before and after):
        return
    rates = (before["updates_per_second"], after["updates_per_second"])
    cpus = (before["bot_cpu_ms_per_update"], after["bot_cpu_ms_per_update"])
    rate_change, cpu_change = _change(*rates), _change(*cpus)
    moved = rate_change is None or rate_change > tolerance or (cpu_change is not None and cpu_change > tolerance)
    report["echo_tolerance"] = tolerance
    report["echo"] = {"rate_before": rates[0], "rate_after": rates[1],
                      "rate_change": None if rate_change is None else round(rate_change, 3),
                      "cpu_ms_before": cpus[0], "cpu_ms_after": cpus[1],
                      "cpu_change": None if cpu_change is None else round(cpu_change, 3), "moved": moved}
    ceiling_rate = max((r for r in rates if r), default=None)
    ceiling_cpu = min((c for c in cpus if c), default=None)
    report["echo_ceiling"] = {"updates_per_second": ceiling_rate, "bot_cpu_ms_per_update": ceiling_cpu}
    status_cpu = status["bot_cpu_ms_per_update"]
    report["status_cpu_ms_per_update"] = status_cpu
    report["cpu_times_echo"] = round(status_cpu / ceiling_cpu, 2) if status_cpu and ceiling_cpu else None
    report["status_vs_echo"] = (round(status["updates_per_second"] / ceiling_rate, 3)
                                if ceiling_rate and status["updates_per_second"] else None)
    if moved:  # no ratio to a ceiling that moved: the phases keep the figures
        report["status_vs_echo"] = report["cpu_times_echo"] = None
        report["verdict"], report["goal_met"] = "no verdict", None
        return
    met = bool(report["status_vs_echo"] is not None and report["status_vs_echo"] >= 0.5
               and status["p95_ms"] is not None and status["p95_ms"] < 50)
    report["verdict"], report["goal_met"] = ("goal met" if met else "goal not met"), met


def verdict_lines(report: dict[str, Any]) -> list[str]:
    """The verdict (``judge``), its first line the bot's CPU per /status against the echo's."""
    if "verdict" not in report:
        return []
    echo, ceiling = report["echo"], report["echo_ceiling"]
    tolerance = f"{report['echo_tolerance'] * 100:g} %"
    rates = f"{echo['rate_before']} → {echo['rate_after']} updates/s"
    cpus = f"{echo['cpu_ms_before']} → {echo['cpu_ms_after']} ms CPU per update"
    if report["verdict"] == "no verdict":
        lines = [(f"bot CPU per /status: {report['status_cpu_ms_per_update']} ms (the echo {echo['cpu_ms_before']} "
                  f"before, {echo['cpu_ms_after']} after)")]
        if echo["cpu_change"] is not None and (echo["rate_change"] is None or echo["cpu_change"] > echo["rate_change"]):
            moved, also = f"from {echo['cpu_ms_before']} to {echo['cpu_ms_after']} ms CPU per update", rates
        else:
            moved, also = f"from {echo['rate_before']} to {echo['rate_after']} updates/s", cpus
        lines.append(f"machine busy: echo moved {moved} ({also}; tolerance {tolerance}); no verdict")
        return lines
    lines = [(f"bot CPU per /status: {report['status_cpu_ms_per_update']} ms, the echo "
              f"{ceiling['bot_cpu_ms_per_update']} ms ({report['cpu_times_echo']} times the echo's)")]
    lines.append(f"/status vs echo ceiling: {report['status_vs_echo']} of its rate, p95 "
                 f"{report['phases']['status']['p95_ms']} ms (goal >= 0.5, p95 < 50 ms: "
                 f"{'met' if report['goal_met'] else 'not met'})")
    lines.append(f"echo before and after Kezek: {rates}, {cpus} (within {tolerance})")
    return lines


def format_table(report: dict[str, Any]) -> list[str]:
    lines = ["| phase | bot CPU ms/update | updates | answered | updates/s | p50 ms | p95 ms | p99 ms | max ms |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, p in report["phases"].items():
        lines.append(f"| {name} | {p['bot_cpu_ms_per_update']} | {p['updates']} | {p['answered']} | "
                     f"{p['updates_per_second']} | {p['p50_ms']} | {p['p95_ms']} | {p['p99_ms']} | {p['max_ms']} |")
        if name == "claim":  # one row per step of the flow
            for kind, k in p.get("by_kind", {}).items():
                lines.append(f"| claim: {kind} | | {k['n']} | {k['n']} | | {k['p50_ms']} | {k['p95_ms']} | "
                             f"{k['p99_ms']} | {k['max_ms']} |")
    check = report.get("claim_check")
    if check is not None:
        lines.append(f"claim check (database): {check['with_one_referral']}/{check['claimers']} claiming parents "
                     f"with exactly one referral, {check['with_several_referrals']} with several, "
                     f"{check['seats_with_two_referrals']} seats with two referrals, {check['seats_taken']} seats "
                     f"taken for {check['referrals']} referrals: {'ok' if check['ok'] else 'NOT OK'}")
    return lines + verdict_lines(report)


# --- command line (the echo server; a stand-alone run) ----------------------------------------------

def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Kezek's load benchmark, or (--echo-server) its echo bot.")
    parser.add_argument("--echo-server", type=int, metavar="PORT", help="serve the echo bot on this port")
    parser.add_argument("--api", default="", help="the Bot API base URL (echo server)")
    parser.add_argument("--secret", default=SECRET, help="the webhook secret (echo server)")
    parser.add_argument("--parents", type=int, default=2000)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--menu-rounds", type=int, default=1)
    parser.add_argument("--claim-share", type=float, default=0.25,
                        help="share of the parents that claim their offered seat (0: no claim phase)")
    parser.add_argument("--db-path", default="/tmp/kezek-bench-load.sqlite3")
    parser.add_argument("--postgres", default=None, metavar="URL")
    parser.add_argument("--redis", default=None, metavar="URL")
    parser.add_argument("--no-echo", action="store_true")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for one reply")
    parser.add_argument("--log-dir", default=None)
    parser.add_argument("--profile", action="store_true", help="cProfile the Kezek instances")
    parser.add_argument("--echo-tolerance", type=float, default=ECHO_TOLERANCE,
                        help="how far the echo before and after may differ for a verdict (0.15: 15 %%)")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the figures here")
    args = parser.parse_args(argv)
    if args.echo_server is not None:
        asyncio.run(serve_echo(args.echo_server, args.api, args.secret))
        return
    report = asyncio.run(run_load_bench(parents=args.parents, instances=args.instances,
                                        concurrency=args.concurrency, menu_rounds=args.menu_rounds,
                                        db_path=args.db_path, db_url=args.postgres, redis_url=args.redis,
                                        echo=not args.no_echo, timeout=args.timeout, log_dir=args.log_dir,
                                        profile=args.profile, claim_share=args.claim_share,
                                        echo_tolerance=args.echo_tolerance))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    if report.get("verdict") == "no verdict":
        sys.exit(NO_VERDICT_EXIT)


if __name__ == "__main__":
    main()
