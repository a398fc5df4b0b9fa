"""/unlink: unlinking an application from one chat — through the facade and through the real
Dispatcher (on the mocked Bot of tests/support/telegram.py)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from locales import gettext
from services.errors import NotLinked
from services.kezek import Kezek
from services.validation import mask_iin
from storage.models import Application, AuditEntry, ChatLink, QueueLook
from tests.support.telegram import CHAT_ID, OTHER_CHAT, STALE, Harness, answers, edits, inline_buttons, sent
from tests.support.world import World, link

LANGS = ["ru", "kk"]
NOT_LINKED = "This application is not linked to this chat. Link it with /link."
NONE_LINKED = "No application is linked to this chat yet. To link one, send /link."
CONFIRM = ("Unlink application {number} (child's IIN {iin}) from this chat? You will stop getting its "
           "notices here.")
DONE = "Application {number} (child's IIN {iin}) is unlinked from this chat. To link it again, send /link."
KEPT = "Nothing changed: application {number} stays linked to this chat."


async def linked_pairs(kz: Kezek) -> set[tuple[int, int]]:
    async with kz.reading() as ctx:
        return {(r.chat_id, r.application_id) for r in (await ctx.session.execute(select(ChatLink))).scalars()}


async def looks(kz: Kezek) -> set[tuple[int, str]]:
    async with kz.reading() as ctx:
        return {(r.application_id, r.viewer) for r in (await ctx.session.execute(select(QueueLook))).scalars()}


async def two_apps_linked(kz: Kezek, world: World) -> tuple[dict[str, Any], int, dict[str, Any], int]:
    first, second = world.row(), world.row()
    await world.apps(first, second)
    first_id, second_id = await link(kz, first), await link(kz, second)
    await link(kz, first, OTHER_CHAT)  # the other parent's chat
    return first, first_id, second, second_id


# --- the facade ----------------------------------------------------------------------------------------------

async def test_unlink_removes_only_this_chats_link(kz: Kezek, world: World) -> None:
    first, first_id, second, second_id = await two_apps_linked(kz, world)
    for viewer in (f"chat:{CHAT_ID}", f"chat:{OTHER_CHAT}"):
        await kz.queue_view(first["number"], viewer=viewer)
    await kz.queue_view(second["number"], viewer=f"chat:{CHAT_ID}")
    target = await kz.unlink(CHAT_ID, first_id)
    assert (target.number, target.child_iin_masked) == (first["number"], mask_iin(first["child_iin"]))
    assert await linked_pairs(kz) == {(CHAT_ID, second_id), (OTHER_CHAT, first_id)}
    assert await looks(kz) == {(first_id, f"chat:{OTHER_CHAT}"), (second_id, f"chat:{CHAT_ID}")}
    async with kz.reading() as ctx:
        audit = (await ctx.session.execute(select(AuditEntry).where(AuditEntry.action == "unlink"))).scalars().all()
        app = await ctx.session.get(Application, first_id)
    assert [(a.entity, a.entity_id, a.data) for a in audit] == [("application", first_id, {"chat_id": CHAT_ID})]
    assert app is not None  # the application itself stays
    # Twice: a clear refusal and nothing changes.
    with pytest.raises(NotLinked):
        await kz.unlink(CHAT_ID, first_id)
    with pytest.raises(NotLinked):  # an application of another chat only
        await kz.unlink(OTHER_CHAT, second_id)
    with pytest.raises(NotLinked):
        await kz.unlink(CHAT_ID, 999_999)
    assert await linked_pairs(kz) == {(CHAT_ID, second_id), (OTHER_CHAT, first_id)}
    assert [t.number for t in await kz.linked_applications(OTHER_CHAT)] == [first["number"]]


# --- the dialogue --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("lang", LANGS)
async def test_nothing_linked_gets_a_hint(tg: Harness, kz: Kezek, lang: str) -> None:
    await kz.set_chat_language(CHAT_ID, lang)
    [reply] = sent(await tg.send(lang, text="/unlink"))
    assert reply.text == gettext(lang, NONE_LINKED)
    [reply] = sent(await tg.send(lang, text=gettext(lang, "Unlink")))  # the menu button
    assert reply.text == gettext(lang, NONE_LINKED)


@pytest.mark.parametrize("lang", LANGS)
async def test_unlink_dialogue(tg: Harness, kz: Kezek, world: World, lang: str) -> None:
    first, first_id, second, second_id = await two_apps_linked(kz, world)
    await kz.set_chat_language(CHAT_ID, lang)
    g = lambda msgid, **kw: gettext(lang, msgid, **kw)  # noqa: E731
    [menu] = sent(await tg.send(lang, text=g("Unlink")))
    assert menu.text == g("Which application should be unlinked from this chat?")
    assert inline_buttons(menu.reply_markup) == [
        (f"{first['number']} · {mask_iin(first['child_iin'])}", f"unl:ask:{first_id}"),
        (f"{second['number']} · {mask_iin(second['child_iin'])}", f"unl:ask:{second_id}"),
    ]
    assert first["child_iin"] not in str(menu.reply_markup)
    [same] = sent(await tg.send(lang, text="/unlink"))
    assert same.text == menu.text
    # Pick → confirmation with Yes / No.
    calls = await tg.press(f"unl:ask:{first_id}")
    [ask] = edits(calls)
    assert ask.text == g(CONFIRM, number=first["number"], iin=mask_iin(first["child_iin"]))
    assert inline_buttons(ask.reply_markup) == [(g("Yes, unlink"), f"unl:yes:{first_id}"),
                                         (g("No"), f"unl:no:{first_id}")]
    # No → nothing changes.
    [kept] = edits(await tg.press(f"unl:no:{first_id}"))
    assert kept.text == g(KEPT, number=first["number"])
    assert (CHAT_ID, first_id) in await linked_pairs(kz)
    # Yes → unlinked from this chat only.
    calls = await tg.press(f"unl:yes:{first_id}")
    [done] = edits(calls)
    assert done.text == g(DONE, number=first["number"], iin=mask_iin(first["child_iin"]))
    assert answers(calls) and not answers(calls)[0].show_alert
    assert await linked_pairs(kz) == {(CHAT_ID, second_id), (OTHER_CHAT, first_id)}
    # A double press, or the old confirmation's buttons: an alert and nothing changes.
    for data in (f"unl:yes:{first_id}", f"unl:ask:{first_id}", f"unl:no:{first_id}"):
        calls = await tg.press(data)
        [ack] = answers(calls)
        assert ack.show_alert and ack.text == g(NOT_LINKED)
        assert edits(calls) == [] and sent(calls) == []
    assert await linked_pairs(kz) == {(CHAT_ID, second_id), (OTHER_CHAT, first_id)}
    [menu] = sent(await tg.send(lang, text="/unlink"))
    assert [d for _, d in inline_buttons(menu.reply_markup)] == [f"unl:ask:{second_id}"]


@pytest.mark.parametrize("lang", LANGS)
async def test_forged_unlink_buttons_change_nothing(tg: Harness, kz: Kezek, world: World, lang: str) -> None:
    mine, theirs = world.row(), world.row()
    await world.apps(mine, theirs)
    mine_id = await link(kz, mine)
    theirs_id = await link(kz, theirs, OTHER_CHAT)
    await kz.set_chat_language(CHAT_ID, lang)
    before = await linked_pairs(kz)
    # Another chat's application, and one that does not exist.
    for data in (f"unl:yes:{theirs_id}", f"unl:ask:{theirs_id}", "unl:yes:999999"):
        calls = await tg.press(data)
        [ack] = answers(calls)
        assert ack.show_alert and ack.text == gettext(lang, NOT_LINKED)
        assert edits(calls) == [] and sent(calls) == []
    # Malformed data: the stale-button answer.
    for data in ("unl:yes:abc", f"unl:drop:{mine_id}", "unl:yes", f"unl:yes:{mine_id}:1"):
        calls = await tg.press(data)
        [ack] = answers(calls)
        assert ack.show_alert and ack.text == gettext(lang, STALE)
        assert edits(calls) == []
    assert await linked_pairs(kz) == before


def test_callback_data_fit_in_64_bytes() -> None:
    from handlers.callbacks import UnlinkCallback

    assert len(UnlinkCallback(action="yes", app_id=2 ** 63 - 1).pack().encode()) <= 64
