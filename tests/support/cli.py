"""The operators' ``kezek`` CLI in this process (click's runner) on a database of the test's own, and
the directory and application files an operator imports. The ``run`` fixture (a migrated SQLite
file) is in tests/conftest.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from bot.cli.main import cli

MONDAY = "2026-09-07T10:00:00+05:00"
SATURDAY = "2026-09-12T10:00:00+05:00"

Run = Callable[..., Result]


def cli_on(url: str) -> Run:
    """``kezek --db url --lang <lang> --now <now> ...`` (Monday 10:00 in Russian unless told)."""
    runner = CliRunner()

    def invoke(*args: str, now: str = MONDAY, lang: str = "ru") -> Result:
        return runner.invoke(cli, ["--db", url, "--lang", lang, "--now", now, *args])

    return invoke


def migrated_cli(tmp_path: Path) -> Run:
    """The CLI on a new SQLite file, migrated."""
    run = cli_on(f"sqlite:///{tmp_path / 'cli.sqlite3'}")
    assert run("db", "upgrade").exit_code == 0
    return run


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def seed(run: Any, tmp_path: Path) -> None:
    """A district (BOS) and its kindergarten (KG1), imported."""
    districts = write(tmp_path, "d.csv", "code,name_ru,name_kk\nBOS,Бостандыкский район,Бостандық ауданы\n")
    assert run("import", "districts", districts).exit_code == 0
    kgs = write(tmp_path, "k.json", json.dumps([
        {"code": "KG1", "district": "BOS", "name_ru": "Ясли-сад №1", "name_kk": "№1 бөбекжай-бақша",
         "address": "ул. Абая, 1"}]))
    assert run("import", "kindergartens", kgs).exit_code == 0


def app_csv(rows: list[tuple[str, str]]) -> str:
    """An applications CSV of (number, child's IIN) in BOS, born 15 March 2023."""
    lines = ["number,child_iin,child_name,birth_date,district,submitted_at,phone,email"]
    for number, iin in rows:
        lines.append(f"{number},{iin},Ребёнок {number},2023-03-15,BOS,2024-01-0{len(lines)}T09:00:00+05:00,"
                     f"8 701 000 00 0{len(lines)},p{len(lines)}@example.kz")
    return "\n".join(lines) + "\n"
