"""An operator's mistake as one localized line.

A wrong setting, a database URL Kezek cannot use, a PostgreSQL that is not there, a database never
migrated, a bot token Telegram refuses: each is a line saying what to check, never a traceback.
The lines name hosts, ports, paths and setting names; never a password, a token or a setting's
value."""

from __future__ import annotations

import os
import socket
import sqlite3
import typing
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from locales import N_, gettext
from storage.db import normalise_url
from storage.private_files import sqlite_file

# Exit codes: a mistake in the configuration (a usage error, as click's); the network may come back.
CONFIG_EXIT, NETWORK_EXIT = 2, 1


class OperatorError(Exception):
    """A localized line for the operator and the exit code; raised where the mistake is found."""

    def __init__(self, msgid: str, code: int = CONFIG_EXIT, **params: Any) -> None:
        super().__init__(msgid)
        self.msgid, self.code, self.params = msgid, code, params

    def text(self, lang: str) -> str:
        return gettext(lang, self.msgid, **params_in(lang, self.params))


def params_in(lang: str, params: dict[str, Any]) -> dict[str, Any]:
    """Parameters that are msgids themselves (``N_``-marked), translated."""
    return {k: (v.text(lang) if isinstance(v, OperatorError) else v) for k, v in params.items()}


# --- settings ------------------------------------------------------------------------------------

def _expected(field: str) -> OperatorError:
    """What a setting takes, as a phrase (an OperatorError used as a translatable piece)."""
    from bot.config import Settings

    info = Settings.model_fields.get(field)
    if field in ("signing_key", "signing_key_previous"):
        return OperatorError(N_("empty, or 32 to 512 bytes long"))
    if field == "admin_ids":
        return OperatorError(N_("Telegram user ids separated by commas"))
    if field == "public_url":
        return OperatorError(N_("empty, or an https:// address such as https://kezek.example.kz"))
    if info is None:
        return OperatorError(N_("a value of the form the README's settings table shows"))
    kind = info.annotation
    if typing.get_origin(kind) is typing.Literal:
        return OperatorError(N_("one of: {choices}"), choices=", ".join(map(str, typing.get_args(kind))))
    if kind is bool:
        return OperatorError(N_("true or false (1 or 0)"))
    if kind is int or kind is float:
        return _number(info.metadata, whole=kind is int)
    return OperatorError(N_("a value of the form the README's settings table shows"))


def _number(metadata: list[Any], *, whole: bool) -> OperatorError:
    """``_expected`` of a numeric setting: the number and its bounds (pydantic's ``ge``, ``gt``, ``le``)."""
    bounds: dict[str, Any] = {}
    for item in metadata:
        for name in ("ge", "gt", "le"):
            if getattr(item, name, None) is not None:
                bounds[name] = getattr(item, name)
    if whole:
        if "ge" in bounds and "le" in bounds:
            return OperatorError(N_("a whole number from {low} to {high}"), low=bounds["ge"], high=bounds["le"])
        if "ge" in bounds:
            return OperatorError(N_("a whole number, at least {low}"), low=bounds["ge"])
        return OperatorError(N_("a whole number"))
    if "gt" in bounds and "le" in bounds:
        return OperatorError(N_("a number greater than {low} and at most {high}"), low=bounds["gt"],
                             high=bounds["le"])
    if "ge" in bounds:
        return OperatorError(N_("a number, at least {low}"), low=bounds["ge"])
    return OperatorError(N_("a number"))


def settings_errors(exc: ValidationError) -> list[OperatorError]:
    """One line per setting pydantic refused (its KEZEK_ name and what it takes; not the value)."""
    lines: list[OperatorError] = []
    seen: set[str] = set()
    for error in exc.errors(include_input=False, include_url=False):
        loc = [part for part in error.get("loc", ()) if isinstance(part, str)]
        if not loc:  # the model's own check: the previous signing key without a key
            line = OperatorError(N_("KEZEK_SIGNING_KEY_PREVIOUS is set without KEZEK_SIGNING_KEY: set the new "
                                    "key too."))
            key = "*"
        else:
            key = loc[0]
            line = OperatorError(N_("The setting {name} is not valid: it should be {expected}."),
                                 name=f"KEZEK_{key.upper()}", expected=_expected(key))
        if key not in seen:
            seen.add(key)
            lines.append(line)
    return lines


# --- the database --------------------------------------------------------------------------------

def _bad_url() -> OperatorError:
    return OperatorError(N_("KEZEK_DATABASE_URL (--db) is not a database URL Kezek can use: give "
                            "sqlite:///path/to/kezek.sqlite3 or postgresql://user@host/database."))


def check_url(url: str, *, may_create: bool) -> None:
    """Refuse (OperatorError) a URL that names no database Kezek can use, an SQLite file under a
    regular file, and, unless the command ``may_create`` it, an SQLite file that is not there
    (SQLite would make an empty one)."""
    try:
        parsed = make_url(normalise_url(url))
    except ArgumentError:
        raise _bad_url() from None
    if parsed.drivername not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        raise _bad_url()
    if parsed.drivername.startswith("postgresql"):
        if not parsed.database:
            raise _bad_url()
        return
    if not parsed.database or parsed.database == ":memory:":  # (in memory: gone with the process)
        raise _bad_url()
    path = sqlite_file(url)
    if path is None:  # a file: URI
        return
    level = path.parent
    while not level.exists() and level != level.parent:
        level = level.parent
    if level.exists() and not level.is_dir():
        raise OperatorError(N_("The database file {path} cannot be created: {parent} is a file, not a folder. "
                               "Check --db (KEZEK_DATABASE_URL)."), path=str(path), parent=str(level))
    if path.is_dir():  # (SQLite cannot open a folder; refused before a connection is tried)
        raise _cannot_open(path)
    if not may_create and not path.exists():
        raise OperatorError(N_("There is no database at {path}: create it with kezek db upgrade (or check --db, "
                               "KEZEK_DATABASE_URL)."), path=str(path))
    if not may_create and path.is_file() and path.stat().st_size == 0:  # (opening it would write to it)
        raise _not_migrated()


def _not_migrated() -> OperatorError:
    return OperatorError(N_("The database has no Kezek tables yet: run kezek db upgrade first."))


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        todo += [item.__cause__, item.__context__, getattr(item, "orig", None)]
        todo += list(getattr(item, "exceptions", ()))  # an ExceptionGroup
    return seen


def _through(exc: BaseException, package: str) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if f"{os.sep}{package}{os.sep}" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


def database_error(exc: BaseException, url: str) -> OperatorError | None:
    """The line for a database that cannot be used as it is (not there, not reachable, not
    migrated), or None: not such a mistake (a bug keeps its traceback)."""
    try:
        parsed = make_url(normalise_url(url))
    except ArgumentError:
        return None
    postgres = parsed.drivername.startswith("postgresql")
    where: dict[str, Any] = {"host": parsed.host or "localhost", "port": parsed.port or 5432}
    for item in _chain(exc):
        name = type(item).__name__
        if name == "UndefinedTableError" or (isinstance(item, sqlite3.OperationalError)
                                             and str(item).startswith("no such table")):
            return _not_migrated()
        if not postgres:
            continue
        if name == "InvalidCatalogNameError":
            return OperatorError(N_("PostgreSQL at {host}:{port} has no database {name}: create it "
                                    "(createdb {name}) or check --db (KEZEK_DATABASE_URL)."),
                                 name=parsed.database, **where)
        if name in ("InvalidPasswordError", "InvalidAuthorizationSpecificationError"):
            return OperatorError(N_("PostgreSQL at {host}:{port} refused the login: check the user and the "
                                    "password in --db (KEZEK_DATABASE_URL)."), **where)
        if (isinstance(item, (ConnectionError, socket.gaierror, TimeoutError))
                or (isinstance(item, OSError) and _through(item, "asyncpg"))):
            return OperatorError(N_("Cannot connect to PostgreSQL at {host}:{port}: is the server running and "
                                    "listening there? Check --db (KEZEK_DATABASE_URL)."), code=CONFIG_EXIT, **where)
    if not postgres:
        path = sqlite_file(url)
        for item in _chain(exc):
            if isinstance(item, OSError) or (isinstance(item, sqlite3.OperationalError)
                                             and "unable to open database file" in str(item)):
                return _cannot_open(path)
    return None


def _cannot_open(path: Any) -> OperatorError:
    return OperatorError(N_("The database file {path} cannot be opened: check the path and its "
                            "permissions (--db, KEZEK_DATABASE_URL)."), path=str(path or "?"))


def quiet_closed_loop_deliveries() -> None:
    """Keep aiosqlite's worker thread from printing a traceback to the operator when it delivers a
    result to an event loop that is already closed: a connection that failed to open (a folder, a
    file without permission) is stopped by aiosqlite after the command has ended, and nobody
    awaits what it delivers then. Every other exception in a thread is printed as before."""
    import threading

    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if isinstance(args.exc_value, RuntimeError) and str(args.exc_value) == "Event loop is closed" \
                and args.thread is not None and "_connection_worker_thread" in args.thread.name:
            return
        previous(args)

    threading.excepthook = hook


# --- the bot token -------------------------------------------------------------------------------

def bot_error(exc: BaseException, api_url: str) -> OperatorError | None:
    """The line for a bot token Telegram refuses, a malformed one, or a Bot API out of reach."""
    from aiogram.exceptions import TelegramNetworkError, TelegramUnauthorizedError
    from aiogram.utils.token import TokenValidationError

    for item in _chain(exc):
        if isinstance(item, TokenValidationError):
            return OperatorError(N_("KEZEK_BOT_TOKEN is not a bot token: it looks like 123456789:AA… (from "
                                    "@BotFather), without spaces or quotes."))
        if isinstance(item, TelegramUnauthorizedError):
            return OperatorError(N_("Telegram refused the bot token: check KEZEK_BOT_TOKEN (copy it again from "
                                    "@BotFather)."))
        if isinstance(item, TelegramNetworkError):
            host = urlsplit(api_url).netloc.rsplit("@", 1)[-1] or api_url
            return OperatorError(N_("Cannot reach the Bot API at {host}: check the network connection (and "
                                    "KEZEK_BOT_API_URL)."), code=NETWORK_EXIT, host=host)
    return None


def lang_of(value: str | None) -> str:
    """The CLI's language before its settings are read (--lang, else KEZEK_LANG, else ru)."""
    for candidate in (value, os.environ.get("KEZEK_LANG")):
        if candidate in ("ru", "kk"):
            return candidate
    return "ru"


__all__ = ["OperatorError", "bot_error", "check_url", "database_error", "lang_of", "settings_errors"]
