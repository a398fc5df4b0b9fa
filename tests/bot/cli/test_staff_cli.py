"""`kezek staff invite | list | revoke` (bot/cli/staff.py): the operator's side of kindergarten staff."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest

from bot.config import get_settings
from locales import gettext
from locales.formats import format_datetime
from services.clock import FrozenClock
from services.errors import StaffInviteInvalid
from services.kezek import Kezek
from storage.db import Database
from tests.support.cli import MONDAY, seed


@pytest.fixture
def username(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("KEZEK_BOT_USERNAME", "kezek_test_bot")
    monkeypatch.delenv("KEZEK_BOT_TOKEN", raising=False)
    get_settings.cache_clear()
    yield "kezek_test_bot"
    get_settings.cache_clear()


def accept(tmp_path: Path, token: str, user_id: int) -> Any:
    async def go() -> Any:
        db = Database(f"sqlite:///{tmp_path / 'cli.sqlite3'}")
        try:
            return await Kezek(db, FrozenClock(dt.datetime.fromisoformat(MONDAY))).accept_staff_invite(token, user_id)
        finally:
            await db.dispose()

    return asyncio.run(go())


@pytest.mark.parametrize("lang", ["ru", "kk"])
def test_invite_list_and_revoke(run: Any, tmp_path: Path, username: str, lang: str) -> None:
    seed(run, tmp_path)
    invited = run("staff", "invite", "--kindergarten", "KG1", lang=lang)
    assert invited.exit_code == 0, invited.output
    link = re.search(rf"https://t\.me/{username}\?start=([A-Za-z0-9_-]+)", invited.output)
    assert link, invited.output
    monday = dt.datetime.fromisoformat(MONDAY)
    assert gettext(lang, "Invitation {id} to {kindergarten}, valid once until {until}:", id=1,
                   kindergarten="№1 бөбекжай-бақша" if lang == "kk" else "Ясли-сад №1",
                   until=format_datetime(lang, monday + dt.timedelta(days=7), zone="local")) in invited.output
    listed = run("staff", "list", "--json", lang=lang)
    assert '"kind": "invite"' in listed.output and '"user_id": null' in listed.output

    assert accept(tmp_path, link[1], 424242).code == "KG1"
    with pytest.raises(StaffInviteInvalid):  # once
        accept(tmp_path, link[1], 515151)
    listed = run("staff", "list", lang=lang)
    assert gettext(lang, "{kindergarten}: Telegram user {user}, staff since {since}", kindergarten="KG1",
                   user=424242, since=format_datetime(lang, monday, "short")) in listed.output

    assert run("staff", "revoke", "--kindergarten", "KG1", "--user", "424242", lang=lang).exit_code == 0
    again = run("staff", "revoke", "--kindergarten", "KG1", "--user", "424242", lang=lang)
    assert again.exit_code == 1
    assert gettext(lang, "Nothing active matched: the binding or the invitation had already ended.") in again.output
    assert gettext(lang, "No staff and no open invitations.") in run("staff", "list", lang=lang).output


def test_mistakes_are_one_line_and_change_nothing(run: Any, tmp_path: Path, username: str) -> None:
    seed(run, tmp_path)
    unknown = run("staff", "invite", "--kindergarten", "NOPE", lang="kk")
    assert unknown.exit_code == 1 and "Traceback" not in unknown.output and len(unknown.output.splitlines()) == 1
    both = run("staff", "revoke", "--kindergarten", "KG1", "--user", "1", "--invite", "1")
    assert both.exit_code == 2 and gettext("ru", "Give either --user or --invite.") in both.output
    for option, value in (("--invite", str(2**40)), ("--user", str(2**70))):  # beyond any column: nothing matches
        huge = run("staff", "revoke", "--kindergarten", "KG1", option, value)
        assert huge.exit_code == 1 and "Traceback" not in huge.output, huge.output
    assert gettext("ru", "No staff and no open invitations.") in run("staff", "list").output
