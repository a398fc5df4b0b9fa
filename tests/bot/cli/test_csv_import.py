"""``kezek import`` of CSV files as people make them: Excel in a Russian
locale writes ``;`` separators, a UTF-8 BOM and CRLF line ends, quotes cells holding ``;`` or a line
break; a header with a missing or an unknown column is named before any row is read; a cp1251 file
gets one line saying how to save it as UTF-8; a large import shows a progress bar on a terminal only.
On SQLite and PostgreSQL (the ``db_url`` fixture); nothing is written on any refusal."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import pty
import select
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy import select as sql_select

from locales import gettext
from locales.names import field_text
from services.validation import make_iin
from storage.db import Database
from storage.models import Application, Kindergarten
from tests.support import ROOT
from tests.support.cli import MONDAY, cli_on
from tests.support.databases import truncate_pg

APP_HEADER = ["number", "child_iin", "child_name", "birth_date", "district", "preferred_kindergartens",
              "submitted_at", "phone", "email"]


def excel_csv(rows: list[list[str]], encoding: str = "utf-8-sig") -> bytes:
    """What Excel (Russian locale) writes for «CSV UTF-8»: ``;``, CRLF, a BOM, quotes where needed."""
    out = io.StringIO(newline="")
    csv.writer(out, delimiter=";", lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode(encoding)


def iins(count: int, start: int = 0) -> list[str]:
    """``count`` different IINs of children born on 15 March 2023 (``make_iin`` skips a serial
    without a check digit to the next one)."""
    out: dict[str, None] = {}
    serial = start
    while len(out) < count:
        out[make_iin(date(2023, 3, 15), serial)] = None
        serial += 1
    return list(out)


def app_rows(count: int, header: list[str] = APP_HEADER, start: int = 0) -> list[list[str]]:
    rows = [header]
    for i, iin in enumerate(iins(count, start)):
        values = {"number": f"X{start + i}", "child_iin": iin, "child_name": f"Ребёнок {i}",
                  "birth_date": "15.03.2023", "district": "BOS", "preferred_kindergartens": "KG1;KG2",
                  "submitted_at": f"2024-01-01T09:{i % 60:02d}:00+05:00", "phone": "8 701 000 00 01",
                  "email": f"p{i}@example.kz"}
        rows.append([values.get(column, "") for column in header])
    return rows


async def _count(url: str, model: Any) -> int:
    db = Database(url)
    try:
        async with db.read() as session:
            return (await session.execute(sql_select(func.count()).select_from(model))).scalar_one()
    finally:
        await db.dispose()


def count(url: str, model: Any) -> int:
    return asyncio.run(_count(url, model))


@pytest.fixture
def run(db_url: str, tmp_path: Path):
    async def clean() -> None:
        db = Database(db_url)
        try:
            if db.is_postgres:
                await truncate_pg(db)
        finally:
            await db.dispose()

    asyncio.run(clean())
    invoke = cli_on(db_url)

    kgs = tmp_path / "kindergartens.csv"
    districts = tmp_path / "districts.csv"
    districts.write_bytes(excel_csv([["code", "name_ru", "name_kk"], ["BOS", "Бостандыкский район",
                                                                      "Бостандық ауданы"]]))
    # An address with a ';' and a line break inside: quoted, as Excel does.
    kgs.write_bytes(excel_csv([["code", "district", "name_ru", "name_kk", "address"],
                               ["KG1", "BOS", "Ясли-сад №1", "№1 бөбекжай-бақша", "ул. Абая, 1;\r\nкорпус 2"],
                               ["KG2", "BOS", "Ясли-сад №2", "№2 бөбекжай-бақша", ""]]))
    for kind, path in (("districts", districts), ("kindergartens", kgs)):
        result = invoke("import", kind, str(path))
        assert result.exit_code == 0, result.output
    return invoke


def test_an_excel_file_imports_every_row(run: Any, db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "applications.csv"
    path.write_bytes(excel_csv(app_rows(3)))
    result = run("import", "applications", str(path))
    assert result.exit_code == 0, result.output
    assert count(db_url, Application) == 3
    shown = run("queue", "show", "X2")
    assert shown.exit_code == 0 and "Номер в очереди: 3." in shown.output, shown.output

    async def address() -> str:
        db = Database(db_url)
        try:
            async with db.read() as session:
                kg = (await session.execute(sql_select(Kindergarten).where(Kindergarten.code == "KG1"))).scalar_one()
                return kg.address
        finally:
            await db.dispose()

    assert asyncio.run(address()) == "ул. Абая, 1;\nкорпус 2"  # one line break, as it was typed


@pytest.mark.parametrize("lang", ["ru", "kk"])
def test_a_cp1251_file_is_told_to_be_saved_as_utf8(run: Any, db_url: str, tmp_path: Path, lang: str) -> None:
    path = tmp_path / "applications.csv"
    path.write_bytes(excel_csv(app_rows(2), encoding="cp1251"))
    result = run("import", "applications", str(path), lang=lang)
    assert result.exit_code == 1
    assert "Traceback" not in result.output and "UnicodeDecodeError" not in result.output
    lines = result.output.strip().splitlines()
    assert lines == [gettext(lang, "The file is not in UTF-8: in Excel choose “Save as” → “CSV UTF-8”.")]
    assert "UTF-8" in lines[0] and ("Сохранить как" if lang == "ru" else "Басқаша сақтау") in lines[0]
    assert count(db_url, Application) == 0


@pytest.mark.parametrize("lang", ["ru", "kk"])
def test_a_missing_column_is_named_before_any_row(run: Any, db_url: str, tmp_path: Path, lang: str) -> None:
    path = tmp_path / "applications.csv"
    path.write_bytes(excel_csv(app_rows(2, [c for c in APP_HEADER if c != "birth_date"])))
    result = run("import", "applications", str(path), lang=lang)
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    missing = [line for line in lines if "birth_date" in line]
    assert missing and field_text(lang, "birth_date") in missing[0], lines
    assert not any(line.startswith(("Строка", "Жол")) for line in lines), lines  # no row was read
    expected = [line for line in lines if "child_iin" in line and "twin_group" in line]
    assert expected, lines  # the columns the file should have are named
    assert len(lines) <= 3
    assert count(db_url, Application) == 0


@pytest.mark.parametrize("lang", ["ru", "kk"])
def test_an_unknown_column_is_named(run: Any, db_url: str, tmp_path: Path, lang: str) -> None:
    path = tmp_path / "applications.csv"
    path.write_bytes(excel_csv(app_rows(2, [*APP_HEADER, "comment"])))
    result = run("import", "applications", str(path), lang=lang)
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert any("comment" in line for line in lines), lines
    assert not any(line.startswith(("Строка", "Жол")) for line in lines), lines
    assert count(db_url, Application) == 0


def test_a_misspelt_column_is_named_both_ways(run: Any, db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "districts.csv"
    path.write_bytes(excel_csv([["code", "name_ru", "name_kz"], ["ALM", "Алмалинский", "Алмалы"]]))
    result = run("import", "districts", str(path))
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert any("name_kk" in line and "name_kz" not in line for line in lines), lines  # missing
    assert any("name_kz" in line for line in lines), lines  # unknown
    assert "Алмалинский" not in result.output


def test_a_comma_file_and_a_tab_file_still_import(run: Any, db_url: str, tmp_path: Path) -> None:
    for offset, delimiter, name in ((0, ",", "a.csv"), (10, "\t", "b.csv")):
        rows = app_rows(2, start=offset)
        out = io.StringIO(newline="")
        csv.writer(out, delimiter=delimiter).writerows(rows)
        path = tmp_path / name
        path.write_text(out.getvalue(), encoding="utf-8")
        result = run("import", "applications", str(path))
        assert result.exit_code == 0, result.output
    assert count(db_url, Application) == 4


def test_an_empty_file_is_answered(run: Any, tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"\xef\xbb\xbf")
    result = run("import", "districts", str(path))
    assert result.exit_code == 1 and "Traceback" not in result.output and result.output.strip()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_no_progress_bar_when_not_a_terminal(run: Any, tmp_path: Path) -> None:
    path = tmp_path / "applications.csv"
    path.write_bytes(excel_csv(app_rows(3)))
    result = run("import", "applications", str(path))
    assert result.exit_code == 0
    assert gettext("ru", "Importing") not in result.output, result.output


def _on_a_terminal(args: list[str], deadline: float = 120.0) -> tuple[int, str]:
    """Run ``kezek`` with its stderr on a pseudo-terminal; its exit code and what the terminal got."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", "from bot.cli.main import main; main()", *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=slave, env={**os.environ, "COLUMNS": "80"})
    os.close(slave)
    got = bytearray()
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                chunk = b""
            if not chunk and proc.poll() is not None:
                break
            got += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=max(1.0, end - time.monotonic())), got.decode("utf-8", "replace")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("kind", ["applications", "kindergartens"])
def test_a_large_import_shows_a_progress_bar_on_a_terminal(run: Any, db_url: str, tmp_path: Path,
                                                           kind: str) -> None:
    path = tmp_path / f"{kind}.csv"
    if kind == "applications":
        rows = app_rows(1200)
    else:
        rows = [["code", "district", "name_ru", "name_kk"]]
        rows += [[f"K{i}", "BOS", f"Сад {i}", f"Бақша {i}"] for i in range(1200)]
    path.write_bytes(excel_csv(rows))
    code, shown = _on_a_terminal(["--db", db_url, "--lang", "ru", "--now", MONDAY, "import", kind, str(path)])
    assert code == 0, shown
    assert gettext("ru", "Importing") in shown and "100%" in shown, shown[-500:]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("kind", ["applications", "districts"])
def test_the_errors_of_a_large_import_come_on_lines_of_their_own(run: Any, db_url: str, tmp_path: Path,
                                                                 kind: str) -> None:
    path = tmp_path / f"{kind}.csv"
    if kind == "applications":
        rows = app_rows(1200)
        rows[600][3] = "31.02.2023"  # no such day
    else:
        rows = [["code", "name_ru", "name_kk"]] + [[f"D{i}", f"Район {i}", f"Аудан {i}"] for i in range(1200)]
        rows[600][1] = ""
    path.write_bytes(excel_csv(rows))
    code, shown = _on_a_terminal(["--db", db_url, "--lang", "ru", "--now", MONDAY, "import", kind, str(path)])
    assert code == 1, shown
    lines = shown.replace("\r\n", "\n").split("\n")
    assert any(line.startswith("Загрузка отклонена") for line in lines), lines[:5]
    assert any(line.startswith("Строка 601:") for line in lines), lines[:5]
    assert count(db_url, Application) == 0
