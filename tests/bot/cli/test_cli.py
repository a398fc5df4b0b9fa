"""The ``kezek`` CLI end to end on a real SQLite file: an operator imports the directory and the
applications (a bad file saves nothing), shows a queue number (in Russian and Kazakh), publishes a
seat, a claim is refused on a Saturday and taken on a Monday, the child is admitted, and the stats
count it all; bad input gets a clear line, never a traceback."""

import json
from pathlib import Path

import pytest

from services.validation import make_iin
from tests.support.cli import SATURDAY, app_csv, seed, write


def test_done_when_walk(run, tmp_path: Path) -> None:
    seed(run, tmp_path)
    from datetime import date

    iins = [make_iin(date(2023, 3, 15), i) for i in range(3)]
    bad = write(tmp_path, "bad.csv", app_csv([("A1", iins[0]), ("A2", "123456789012"), ("A3", iins[2])]))
    result = run("import", "applications", bad)
    assert result.exit_code == 1
    assert "Строка 3" in result.output and "ИИН" in result.output
    assert '"queued"' not in run("stats").output  # nothing of the bad file was saved

    good = write(tmp_path, "good.csv", app_csv([("A1", iins[0]), ("A2", iins[1]), ("A3", iins[2])]))
    result = run("import", "applications", good)
    assert result.exit_code == 0, result.output
    assert "3" in result.output

    result = run("queue", "show", "A2", "--viewer", "op")
    assert result.exit_code == 0 and "Номер в очереди: 2." in result.output

    result = run("seats", "publish", "--kindergarten", "KG1", "--birth-year", "2023", "--language", "ru",
                 "--count", "1")
    assert result.exit_code == 0 and "A1" in result.output

    preview = run("claim", "A1", "1")
    assert preview.exit_code == 0 and "--confirm" in preview.output
    refused = run("claim", "A1", "1", "--confirm", "parent", now=SATURDAY)
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    claimed = run("claim", "A1", "1", "--confirm", "parent")
    assert claimed.exit_code == 0, claimed.output

    result = run("queue", "show", "A2", "--viewer", "op", lang="kk")
    assert result.exit_code == 0 and "1" in result.output
    assert run("referrals", "admit", "1").exit_code == 0
    stats = json.loads(run("stats").output)
    assert stats["applications"] == {"admitted": 1, "queued": 2}
    assert stats["referrals"] == {"admitted": 1}


def test_bad_input_is_answered_clearly(run, tmp_path: Path) -> None:
    seed(run, tmp_path)
    for args in (["queue", "show", "NOPE"], ["referrals", "admit", "99"], ["claim", "NOPE", "1"],
                 ["seats", "publish", "--kindergarten", "NOPE", "--birth-year", "2023", "--language", "ru",
                  "--count", "1"]):
        result = run(*args)
        assert result.exit_code == 1, args
        assert "Traceback" not in result.output and result.output.strip()
    notjson = write(tmp_path, "x.json", "{not json")
    assert run("import", "applications", notjson).exit_code != 0
    weird = write(tmp_path, "x.txt", "hello")
    assert run("import", "applications", weird).exit_code != 0


def test_causes_read_as_counts_not_signed_moves(run, tmp_path: Path) -> None:
    seed(run, tmp_path)
    from datetime import date

    iins = [make_iin(date(2023, 3, 15), i) for i in range(3)]
    good = write(tmp_path, "good.csv", app_csv([("A1", iins[0]), ("A2", iins[1]), ("A3", iins[2])]))
    assert run("import", "applications", good).exit_code == 0
    assert "3." in run("queue", "show", "A3", "--viewer", "op").output
    run("seats", "publish", "--kindergarten", "KG1", "--birth-year", "2023", "--language", "ru", "--count", "2")
    for app, seat in (("A1", "1"), ("A2", "2")):
        assert run("claim", app, seat, "--confirm", "parent", now="2026-09-07T11:00:00+05:00").exit_code == 0
    shown = run("queue", "show", "A3", "--viewer", "op", now="2026-09-07T12:00:00+05:00").output
    assert "-2" in shown  # the change itself is signed
    assert "2 направления" in shown and "-2 направ" not in shown


@pytest.mark.parametrize("kind", ["applications", "districts"])
def test_a_file_of_bad_rows_lists_the_first_50_and_counts_them_all(run, tmp_path: Path, kind: str) -> None:
    """The CLI shares the API's cap on the errors it prints."""
    seed(run, tmp_path)
    bad = write(tmp_path, "bad.json", json.dumps([{}] * 3000))
    result = run("import", kind, bad)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert sum(line.startswith("Строка") for line in lines) == 50, lines[:5]
    assert "Строка 50:" in result.output and "Строка 51:" not in result.output
    assert any("3000" in line.replace("\xa0", "").replace(" ", "") for line in lines[:3]), lines[:3]
    assert any("2950" in line.replace("\xa0", "").replace(" ", "") for line in lines[-2:]), lines[-2:]
    assert len(result.output) < 10_000
