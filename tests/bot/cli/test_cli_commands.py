"""Every ``kezek`` command on a temporary database: help everywhere, the privilege documents, the
calendar, withdrawals, sweeps, the outbox report and the sandbox city."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from bot.cli.main import cli
from services.validation import make_iin
from tests.support.cli import app_csv, seed, write

TUESDAY_NEXT_WEEK = "2026-09-15T10:00:00+05:00"


def commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [path]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            out += commands(command, path + (name,))
        else:
            out.append(path + (name,))
    return out


@pytest.mark.parametrize("path", commands(cli), ids=lambda p: " ".join(p) or "kezek")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output
    assert len(result.output.splitlines()) > 3  # it says what the command does


def privileged_csv(iin: str) -> str:
    return ("number,child_iin,child_name,birth_date,district,submitted_at,phone,email,privilege\n"
            f"P1,{iin},Ребёнок P1,2023-03-15,BOS,2024-01-01T09:00:00+05:00,87010000001,p1@example.kz,first\n")


def test_privilege_documents_accept_and_reject(run: Any, tmp_path: Path) -> None:
    seed(run, tmp_path)
    iins = [make_iin(date(2023, 3, 15), i) for i in range(2)]
    assert run("import", "applications", write(tmp_path, "p.csv", privileged_csv(iins[0]))).exit_code == 0
    assert run("seats", "publish", "--kindergarten", "KG1", "--birth-year", "2023", "--language", "ru",
               "--count", "1").exit_code == 0
    claimed = run("claim", "P1", "1", "--confirm", "parent")
    assert claimed.exit_code == 0, claimed.output
    accepted = run("documents", "accept", "1")
    assert accepted.exit_code == 0, accepted.output
    again = run("documents", "reject", "1")  # decided already: refused, nothing changes
    assert again.exit_code == 1 and "Traceback" not in again.output
    assert json.loads(run("stats").output)["referrals"] == {"issued": 1}
    missing = run("documents", "accept", "42")
    assert missing.exit_code == 1 and missing.output.strip()


def test_withdraw_calendar_and_sweep(run: Any, tmp_path: Path) -> None:
    seed(run, tmp_path)
    iins = [make_iin(date(2023, 3, 15), i) for i in range(2)]
    assert run("import", "applications", write(tmp_path, "a.csv", app_csv([("A1", iins[0]), ("A2", iins[1])]))
               ).exit_code == 0
    withdrawn = run("applications", "withdraw", "A1")
    assert withdrawn.exit_code == 0, withdrawn.output
    assert "Номер в очереди: 1." in run("queue", "show", "A2").output

    decreed = run("calendar", "set", "2026-09-14", "--day-off", "--name", "Decree")
    assert decreed.exit_code == 0, decreed.output
    shown = run("calendar", "show", "--from", "2026-09-12", "--days", "3", lang="kk")
    assert shown.exit_code == 0 and "Decree" in shown.output
    bad_day = run("calendar", "set", "2026-13-40", "--day-off")
    assert bad_day.exit_code == 2 and "Traceback" not in bad_day.output

    swept = run("sweep", now=TUESDAY_NEXT_WEEK)
    assert swept.exit_code == 0 and swept.output.strip()


def test_outbox_stats_reports_the_backlog(run: Any, tmp_path: Path) -> None:
    seed(run, tmp_path)
    iins = [make_iin(date(2023, 3, 15), i) for i in range(1)]
    assert run("import", "applications", write(tmp_path, "a.csv", app_csv([("A1", iins[0])]))).exit_code == 0
    assert run("seats", "publish", "--kindergarten", "KG1", "--birth-year", "2023", "--language", "ru",
               "--count", "1").exit_code == 0
    text = run("outbox", "stats")
    assert text.exit_code == 0 and "2" in text.output  # "your turn" and the registration e-mail wait
    report = json.loads(run("outbox", "stats", "--json").output)
    assert report["outbox"] == {"pending": 2}
    assert report["failed_latest"] == []


def test_demo_builds_a_city_once_and_points_at_the_head_of_a_queue(run: Any) -> None:
    first = run("demo", "--seed-only", "--applications", "200", "--phone", "+77011234567")
    assert first.exit_code == 0, first.output
    assert "200" in first.output and "seats publish" in first.output
    again = run("demo", "--seed-only", "--applications", "200")
    assert again.exit_code == 0 and "200" in again.output  # built once: the same city
    hint = first.output.split("kezek seats publish", 1)[1].split()
    args = dict(zip(hint[0::2], hint[1::2], strict=False))  # (the words after the hint too)
    example = first.output.split("DEMO-", 1)[1][:6]
    published = run("seats", "publish", "--kindergarten", args["--kindergarten"], "--birth-year",
                    args["--birth-year"], "--language", args["--language"], "--count", "1")
    assert published.exit_code == 0 and f"DEMO-{example}" in published.output  # its turn came
    bad_phone = run("demo", "--seed-only", "--phone", "12")
    assert bad_phone.exit_code == 2 and "Traceback" not in bad_phone.output


def every_command(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    out: list[tuple[tuple[str, ...], click.Command]] = [(path, group)]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            out += every_command(command, path + (name,))
        else:
            out.append((path + (name,), command))
    return out


def test_every_option_says_what_it_is_for() -> None:
    bare = [f"kezek {' '.join(path)} {param.opts[0]}".replace("  ", " ")
            for path, command in every_command(cli) for param in command.params
            if isinstance(param, click.Option) and not (param.help or "").strip()]
    assert bare == []


def test_the_import_help_names_the_columns_of_each_kind() -> None:
    text = " ".join(CliRunner().invoke(cli, ["import", "--help"], terminal_width=200).output.split())
    for kind, columns in {
        "profiles": ["code", "window_open", "showup_working_days"],
        "districts": ["code", "name_ru", "name_kk", "profile"],
        "kindergartens": ["code", "district", "name_ru", "name_kk", "address", "kind", "languages"],
        "applications": ["number", "child_iin", "child_name", "birth_date", "district", "submitted_at", "phone",
                         "email", "privilege", "language", "preferred_kindergartens", "twin_group"],
    }.items():
        assert f"{kind}:" in text
        section = text.split(f"{kind}:", 1)[1].split(".", 1)[0]
        for column in columns:
            assert column in section, (kind, column, section)
