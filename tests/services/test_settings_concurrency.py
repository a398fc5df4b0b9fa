"""The limit linking shares with /settings: 5 tries per e-mail confirmation code hold
when one chat's guesses arrive at once, from three bot instances (facades on databases of their
own), on SQLite and PostgreSQL. What is asserted is what the parent would notice: how many
guesses got "wrong code, N tries left", that the address was not confirmed by guessing, and that
every guess got an answer the bot can word (never the generic apology)."""

from __future__ import annotations

import contextlib

from services.kezek import Kezek
from services.settings import EMAIL_CODE_MAX_TRIES, EmailCodeMissing, EmailCodeTriesExceeded, EmailCodeWrong
from tests.support.concurrency import burst, kinds
from tests.support.telegram import CHAT_ID
from tests.support.world import email_codes


async def test_a_burst_of_wrong_email_codes_gets_at_most_the_allowed_tries(kz: Kezek,
                                                                           facades: list[Kezek]) -> None:
    await kz.request_email(CHAT_ID, "mama@example.kz")
    [notice] = await email_codes(kz)
    code = notice.payload["code"]
    wrong = [f"{n:06d}" for n in range(20) if f"{n:06d}" != code][:20]
    results = await burst(facades, [lambda k, c=c: k.confirm_email(CHAT_ID, c) for c in wrong])
    seen = kinds(results)
    assert set(seen) <= {"EmailCodeWrong", "EmailCodeTriesExceeded", "EmailCodeMissing"}, seen
    # four "wrong, N left", the fifth ends the code; every later guess finds no code waiting
    assert seen.get("EmailCodeWrong", 0) == EMAIL_CODE_MAX_TRIES - 1, seen
    assert seen.get("EmailCodeTriesExceeded", 0) == 1, seen
    settings = await kz.chat_settings(CHAT_ID)
    assert settings.email is None and settings.email_pending is None
    # the right code no longer confirms the address
    with contextlib.suppress(EmailCodeMissing, EmailCodeTriesExceeded, EmailCodeWrong):
        await kz.confirm_email(CHAT_ID, code)
    assert (await kz.chat_settings(CHAT_ID)).email is None


async def test_a_new_chats_first_steps_at_once_make_one_chat(kz: Kezek, facades: list[Kezek]) -> None:
    """A brand-new chat picks its language, turns a notice off and asks for an e-mail code in the
    same instant (three instances): every step is done, none gets the generic apology."""
    new_chat = 777_000_001
    results = await burst(facades, [
        lambda k: k.set_chat_language(new_chat, "kk"),
        lambda k: k.set_notice(new_chat, "reminders", False),
        lambda k: k.request_email(new_chat, "papa@example.kz"),
    ] * 2)
    assert not [r for r in results if isinstance(r, BaseException)], kinds(results)
    settings = await kz.chat_settings(new_chat)
    assert (settings.language, settings.notify_reminders, settings.email_pending) == ("kk", False, "papa@example.kz")
