"""Personal data on disk is the owner's only, whatever the umask: the mail
folder's .eml files (they carry one-tap link tokens and codes), the SQLite database with its -wal
and -shm files, the sandbox API token; folders 0700, files 0600 from the first byte."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.delivery.notices import render_email
from bot.sandbox.demo import write_sandbox_token
from services.clock import FrozenClock
from services.email import FolderSender
from services.notifications import EMAIL, Notice
from storage.db import Database

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The loosest umask a host may have (0o000): every file kezek does not guard is 0666."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def a_code_notice() -> Notice:
    return Notice(delivery_id=4, channel=EMAIL, target="parent@example.kz", lang="ru", kind="email_code",
                  payload={"code": "123456"}, application_id=None)


async def test_the_mail_folder_and_its_files_are_the_owners(tmp_path: Path, clock: FrozenClock,
                                                           open_umask: None) -> None:
    data = tmp_path / "data"
    mailer = FolderSender(clock, data / "mail")
    await mailer.send("parent@example.kz", render_email(a_code_notice()), message_key="kezek-4")
    [eml] = list((data / "mail").iterdir())  # (no temporary file left behind)
    assert eml.suffix == ".eml" and b"Subject:" in eml.read_bytes()
    assert (mode(data), mode(data / "mail"), mode(eml)) == (0o700, 0o700, 0o600)


async def test_an_older_versions_mail_folder_is_narrowed(tmp_path: Path, clock: FrozenClock) -> None:
    folder = tmp_path / "mail"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    old = folder / "kezek-1.eml"
    old.write_bytes(b"Subject: old\n\nlink token")
    os.chmod(old, 0o644)
    await FolderSender(clock, folder).send("parent@example.kz", render_email(a_code_notice()),
                                           message_key="kezek-2")
    assert mode(folder) == 0o700  # the old 0644 file is out of other users' reach with it
    assert mode(folder / "kezek-2.eml") == 0o600


async def test_the_sqlite_database_and_its_wal_are_the_owners(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "state" / "kezek.sqlite3"
    db = Database(f"sqlite:///{path}")
    try:
        async with db.write() as session:
            await session.execute(text("CREATE TABLE t (iin TEXT)"))
            await session.execute(text("INSERT INTO t VALUES ('230315650441')"))
        async with db.read() as session:
            assert (await session.execute(text("SELECT iin FROM t"))).scalar_one() == "230315650441"
        files = {p.name: mode(p) for p in path.parent.iterdir()}
    finally:
        await db.dispose()
    assert mode(path.parent) == 0o700
    assert files == {"kezek.sqlite3": 0o600, "kezek.sqlite3-wal": 0o600, "kezek.sqlite3-shm": 0o600}


async def test_an_older_versions_database_is_narrowed(tmp_path: Path) -> None:
    path = tmp_path / "kezek.sqlite3"
    db = Database(f"sqlite:///{path}")
    async with db.write() as session:
        await session.execute(text("CREATE TABLE t (x INTEGER)"))
    await db.dispose()
    for name in ("kezek.sqlite3", "kezek.sqlite3-wal", "kezek.sqlite3-shm"):
        if (tmp_path / name).exists():
            os.chmod(tmp_path / name, 0o644)
    db = Database(f"sqlite:///{path}")
    try:
        async with db.write() as session:
            await session.execute(text("INSERT INTO t VALUES (1)"))
        assert {p.name: mode(p) for p in tmp_path.iterdir()} == {
            "kezek.sqlite3": 0o600, "kezek.sqlite3-wal": 0o600, "kezek.sqlite3-shm": 0o600}
    finally:
        await db.dispose()


def test_the_sandbox_token_is_never_readable_by_others(tmp_path: Path, open_umask: None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Created 0600, not created readable and narrowed afterwards: with every chmod by path
    disabled, the file still has the owner's mode."""
    monkeypatch.setattr(os, "chmod", lambda *_a, **_k: None)
    monkeypatch.setattr(Path, "chmod", lambda *_a, **_k: None)
    token, path = write_sandbox_token(tmp_path / "data")
    assert path == tmp_path / "data" / "sandbox-api-token"
    assert path.read_text() == token + "\n" and len(token) >= 32
    assert (mode(path), mode(path.parent) & 0o077) == (0o600, 0)
    assert [p.name for p in path.parent.iterdir()] == ["sandbox-api-token"]
