"""Apply Alembic migrations from code (``kezek db upgrade``, tests, the demo)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

from storage.db import normalise_url
from storage.private_files import private_sqlite

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Blocking; runs its own event loop. Call from sync code (the CLI). One transaction; every
    step's result is checked for the queue triggers, and a database at the newest revision that
    lacks them gets them back (storage/migrations/env.py, storage/queue_versions.py)."""
    private_sqlite(url)  # a new SQLite file 0600 (and its folder 0700) before SQLite makes it
    command.upgrade(alembic_config(url), revision)


async def upgrade_async(url: str, revision: str = "head") -> None:
    """Run the migrations from async code (a worker thread owns their event loop)."""
    await asyncio.to_thread(upgrade, url, revision)
