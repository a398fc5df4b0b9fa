"""A first run as a new user makes it, from the README, in a fresh folder: a refused,
malformed or unreachable bot token, a database URL Kezek cannot use, a PostgreSQL that is not
there, a database never migrated, a wrong setting. Each ends in one localized line saying what
to check, a non-zero exit code, no traceback, and no file left behind.

``kezek`` runs as a separate process with a clean environment (no KEZEK_* of the caller's, no
.env) in an empty temporary folder."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web

from tests.support import ROOT
from tests.support.databases import PG_URL

# The shape of a token @BotFather gives (not a real one).
WELL_FORMED_TOKEN = "123456789:AAHfiqksKZ8WmR2zSjiQ7_v4TMAKdiHm9T0"


def environment(folder: Path, **settings: str) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(folder), "PYTHONPATH": str(ROOT),
           "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "KEZEK_LANG": "ru"}
    env.update(settings)
    return env


def kezek(folder: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], cwd=folder,
                          env=environment(folder, **settings), capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL)


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def says_one_line(result: subprocess.CompletedProcess[str], line: str, code: int) -> None:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == code, output
    assert result.stderr.strip().splitlines()[-1] == line, output
    assert output.count(line) == 1, output


@pytest.fixture
def pg_base() -> str:
    if not PG_URL:
        pytest.skip("PostgreSQL not configured: set KEZEK_TEST_POSTGRES_URL (.ci/run does)")
    return PG_URL


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the database --------------------------------------------------------------------------------

URL_HELP = ("KEZEK_DATABASE_URL (--db) — не адрес базы данных, с которой работает Kezek: укажите "
            "sqlite:///путь/к/kezek.sqlite3 или postgresql://пользователь@сервер/база.")


@pytest.mark.parametrize("url", ["/some/path/kezek.sqlite3", "mysql://kezek@localhost/kezek", "kezek.sqlite3",
                                 "sqlite:///:memory:", "sqlite://"])
def test_a_url_kezek_cannot_use_is_one_line(tmp_path: Path, url: str) -> None:
    says_one_line(kezek(tmp_path, "--db", url, "stats"), URL_HELP, 2)
    assert files(tmp_path) == []


def test_a_url_kezek_cannot_use_in_kazakh(tmp_path: Path) -> None:
    result = kezek(tmp_path, "--lang", "kk", "--db", "mysql://x", "db", "upgrade")
    says_one_line(result, "KEZEK_DATABASE_URL (--db) Kezek жұмыс істей алатын дерекқор мекенжайы емес: "
                          "sqlite:///жол/kezek.sqlite3 немесе postgresql://пайдаланушы@сервер/дерекқор "
                          "түрінде көрсетіңіз.", 2)
    assert files(tmp_path) == []


def test_a_path_under_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("a file, not a folder\n")
    path = tmp_path / "notes.txt" / "data" / "kezek.sqlite3"
    result = kezek(tmp_path, "--db", f"sqlite:///{path}", "db", "upgrade")
    says_one_line(result, f"Файл базы данных {path} нельзя создать: {tmp_path / 'notes.txt'} — файл, а не папка. "
                          "Проверьте --db (KEZEK_DATABASE_URL).", 2)
    assert files(tmp_path) == ["notes.txt"]


def test_a_folder_as_the_database(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    for command in (("db", "upgrade"), ("stats",)):
        says_one_line(kezek(tmp_path, "--db", "sqlite:///data", *command),
                      "Файл базы данных data не открывается: проверьте путь и права доступа (--db, "
                      "KEZEK_DATABASE_URL).", 2)
    assert files(tmp_path) == ["data"]


@pytest.mark.parametrize("command", [("stats",), ("queue", "show", "A1")])
def test_a_database_never_made_is_not_made_by_a_reading_command(tmp_path: Path, command: tuple[str, ...]) -> None:
    result = kezek(tmp_path, *command)  # the default: sqlite:///data/kezek.sqlite3
    says_one_line(result, "Базы данных data/kezek.sqlite3 нет: создайте её командой kezek db upgrade "
                          "(или проверьте --db, KEZEK_DATABASE_URL).", 2)
    assert files(tmp_path) == []


def test_a_database_never_migrated(tmp_path: Path) -> None:
    (tmp_path / "empty.sqlite3").touch()  # e.g. made by an older kezek that failed
    result = kezek(tmp_path, "--lang", "kk", "--db", "sqlite:///empty.sqlite3", "stats")
    says_one_line(result, "Дерекқорда Kezek кестелері әлі жоқ: алдымен kezek db upgrade орындаңыз.", 2)
    assert files(tmp_path) == ["empty.sqlite3"]
    assert (tmp_path / "empty.sqlite3").stat().st_size == 0


NOT_MIGRATED = "В базе данных ещё нет таблиц Kezek: сначала выполните kezek db upgrade."


def test_a_sqlite_database_of_something_else(tmp_path: Path) -> None:
    import sqlite3

    with sqlite3.connect(tmp_path / "other.sqlite3") as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    conn.close()
    for command in (("stats",), ("queue", "show", "A1")):
        says_one_line(kezek(tmp_path, "--db", "sqlite:///other.sqlite3", *command), NOT_MIGRATED, 2)
    assert files(tmp_path) == ["other.sqlite3"]


@pytest.mark.postgres
def test_a_postgresql_database_never_migrated(tmp_path: Path, pg_base: str) -> None:
    import uuid

    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from storage.db import normalise_url

    name = f"kezek_empty_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        engine = create_async_engine(normalise_url(pg_base), isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(sql))
        await engine.dispose()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        result = kezek(tmp_path, "--db", f"{pg_base.rsplit('/', 1)[0]}/{name}", "stats")
        says_one_line(result, NOT_MIGRATED, 2)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    assert files(tmp_path) == []


def test_postgresql_not_listening(tmp_path: Path) -> None:
    port = closed_port()
    for command in (("db", "upgrade"), ("stats",)):
        result = kezek(tmp_path, "--db", f"postgresql://kezek:s3cret-pass@127.0.0.1:{port}/kezek", *command)
        says_one_line(result, f"Не удаётся подключиться к PostgreSQL на 127.0.0.1:{port}: запущен ли сервер и "
                              "слушает ли он этот адрес? Проверьте --db (KEZEK_DATABASE_URL).", 2)
        assert "s3cret-pass" not in result.stdout + result.stderr
    assert files(tmp_path) == []


@pytest.mark.postgres
def test_a_postgresql_login_refused(tmp_path: Path, pg_base: str) -> None:
    server = pg_base.rsplit("/", 1)[0]
    host_port = server.rsplit("@", 1)[1]
    result = kezek(tmp_path, "--lang", "kk", "--db", f"postgresql://kezek_no_such_role:pw-9f2c@{host_port}/postgres",
                   "stats")
    says_one_line(result, f"{host_port} мекенжайындағы PostgreSQL кіруге рұқсат бермеді: --db (KEZEK_DATABASE_URL) "
                          "ішіндегі пайдаланушы мен құпиясөзді тексеріңіз.", 2)
    assert "pw-9f2c" not in result.stdout + result.stderr
    assert files(tmp_path) == []


@pytest.mark.postgres
def test_a_missing_postgresql_database(tmp_path: Path, pg_base: str) -> None:
    server = pg_base.rsplit("/", 1)[0]
    for command in (("db", "upgrade"), ("stats",)):
        result = kezek(tmp_path, "--db", f"{server}/kezek_no_such_database", *command)
        host_port = server.rsplit("@", 1)[1]
        says_one_line(result, f"На сервере PostgreSQL {host_port} нет базы данных kezek_no_such_database: создайте "
                              "её (createdb kezek_no_such_database) или проверьте --db (KEZEK_DATABASE_URL).", 2)
    assert files(tmp_path) == []


# --- settings ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("setting", "value", "lang", "line"), [
    ("KEZEK_DIGEST_HOUR", "25", "ru", "Настройка KEZEK_DIGEST_HOUR задана неверно: нужно целое число от 0 до 23."),
    ("KEZEK_DIGEST_HOUR", "ten", "kk", "KEZEK_DIGEST_HOUR баптауы қате берілген: 0–23 аралығындағы бүтін сан "
                                       "болуы керек."),
    ("KEZEK_LOG_LEVEL", "LOUD", "ru", "Настройка KEZEK_LOG_LEVEL задана неверно: нужно одно из значений: "
                                      "DEBUG, INFO, WARNING, ERROR, CRITICAL."),
    ("KEZEK_SIGNING_KEY", "short-secret-value", "ru", "Настройка KEZEK_SIGNING_KEY задана неверно: нужно пустое "
                                                      "значение или от 32 до 512 байт."),
    ("KEZEK_SMTP_TLS", "maybe", "kk", "KEZEK_SMTP_TLS баптауы қате берілген: true немесе false (1 немесе 0) "
                                      "болуы керек."),
    ("KEZEK_PUBLIC_URL", "http://kezek.kz/x", "kk", "KEZEK_PUBLIC_URL баптауы қате берілген: бос мән немесе "
                                                    "https:// мекенжайы, мысалы https://kezek.example.kz болуы керек."),
    ("KEZEK_PAGE_PORT", "70000", "ru", "Настройка KEZEK_PAGE_PORT задана неверно: нужно целое число от 1 до 65535."),
])
def test_a_wrong_setting_is_one_localized_line(tmp_path: Path, setting: str, value: str, lang: str,
                                                line: str) -> None:
    result = kezek(tmp_path, "stats", **{setting: value, "KEZEK_LANG": lang})
    says_one_line(result, line, 2)
    assert value not in result.stdout + result.stderr  # (a secret's value is never echoed)
    assert "pydantic" not in result.stdout + result.stderr
    assert files(tmp_path) == []


# --- the bot token -------------------------------------------------------------------------------

async def run_kezek(folder: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """``kezek`` without blocking the loop that serves the Bot API stand-in."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args, cwd=folder, env=environment(folder, **settings),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 180)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
    return subprocess.CompletedProcess(args, proc.returncode or 0, out.decode(), err.decode())


async def telegram_refusing_every_token() -> tuple[web.AppRunner, str]:
    async def refuse(_request: web.Request) -> web.Response:
        return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


REFUSED = "Telegram отклонил токен бота: проверьте KEZEK_BOT_TOKEN (скопируйте его заново у @BotFather)."


async def test_a_token_telegram_refuses(tmp_path: Path) -> None:
    runner, url = await telegram_refusing_every_token()
    try:
        db = f"sqlite:///{tmp_path / 'kezek.sqlite3'}"
        result = await run_kezek(tmp_path, "--db", db, "run", "--no-api", "--no-scheduler", "--no-senders",
                                 KEZEK_BOT_TOKEN=WELL_FORMED_TOKEN, KEZEK_BOT_API_URL=url)
        says_one_line(result, REFUSED, 2)
        assert WELL_FORMED_TOKEN not in result.stdout + result.stderr
        kk = await run_kezek(tmp_path, "--lang", "kk", "--db", db, "run", KEZEK_BOT_TOKEN=WELL_FORMED_TOKEN,
                             KEZEK_BOT_API_URL=url)
        says_one_line(kk, "Telegram бот токенін қабылдамады: KEZEK_BOT_TOKEN мәнін тексеріңіз (оны @BotFather-ден "
                          "қайта көшіріп алыңыз).", 2)
    finally:
        await runner.cleanup()


async def test_a_token_telegram_refuses_in_webhook_mode(tmp_path: Path) -> None:
    runner, url = await telegram_refusing_every_token()
    try:
        result = await run_kezek(tmp_path, "--db", f"sqlite:///{tmp_path / 'kezek.sqlite3'}", "run", "--no-api",
                                 KEZEK_BOT_TOKEN=WELL_FORMED_TOKEN, KEZEK_BOT_API_URL=url,
                                 KEZEK_WEBHOOK_URL="https://bot.example.kz", KEZEK_WEBHOOK_SECRET="s3cret_for_tests",
                                 KEZEK_WEBHOOK_PORT=str(closed_port()))
        says_one_line(result, REFUSED, 2)
    finally:
        await runner.cleanup()


async def test_a_token_telegram_refuses_in_the_demo(tmp_path: Path) -> None:
    runner, url = await telegram_refusing_every_token()
    try:
        result = await run_kezek(tmp_path, "demo", "--applications", "40", KEZEK_BOT_TOKEN=WELL_FORMED_TOKEN,
                                 KEZEK_BOT_API_URL=url, KEZEK_API_PORT=str(closed_port()))
        says_one_line(result, REFUSED, 2)
    finally:
        await runner.cleanup()


def test_no_network(tmp_path: Path) -> None:
    port = closed_port()
    result = kezek(tmp_path, "--db", f"sqlite:///{tmp_path / 'kezek.sqlite3'}", "run", "--no-api",
                   KEZEK_BOT_TOKEN=WELL_FORMED_TOKEN, KEZEK_BOT_API_URL=f"http://127.0.0.1:{port}")
    says_one_line(result, f"Не удаётся связаться с Bot API на 127.0.0.1:{port}: проверьте подключение к сети "
                          "(и KEZEK_BOT_API_URL).", 1)
    assert WELL_FORMED_TOKEN not in result.stdout + result.stderr


@pytest.mark.parametrize("token", ["not-a-token", "123456789:AAH with spaces"])
def test_a_malformed_token(tmp_path: Path, token: str) -> None:
    result = kezek(tmp_path, "--db", f"sqlite:///{tmp_path / 'kezek.sqlite3'}", "run", KEZEK_BOT_TOKEN=token)
    says_one_line(result, "KEZEK_BOT_TOKEN — не токен бота: токен выглядит как 123456789:AA… (от @BotFather), "
                          "без пробелов и кавычек.", 2)
    assert token not in result.stdout + result.stderr


def test_aiosqlite_delivering_to_a_closed_loop_prints_no_traceback() -> None:
    """A connection that failed to open is stopped by aiosqlite's thread after the command ended:
    its late delivery to the closed loop must not reach the operator as a traceback; any other
    exception in a thread still goes to the hook that was there before (the one that prints)."""
    import threading

    from bot.cli.operator_errors import quiet_closed_loop_deliveries

    printed: list[str] = []

    def worker(error: BaseException) -> None:
        raise error

    before = threading.excepthook
    try:
        threading.excepthook = lambda args: printed.append(f"{args.thread.name}: {args.exc_value}")
        quiet_closed_loop_deliveries()
        for name, error in (("Thread-1 (_connection_worker_thread)", RuntimeError("Event loop is closed")),
                            ("Thread-2 (other)", RuntimeError("Event loop is closed")),
                            ("Thread-3 (_connection_worker_thread)", ValueError("something else"))):
            thread = threading.Thread(target=worker, args=(error,), name=name)
            thread.start()
            thread.join()
    finally:
        threading.excepthook = before
    assert printed == ["Thread-2 (other): Event loop is closed",
                       "Thread-3 (_connection_worker_thread): something else"]
