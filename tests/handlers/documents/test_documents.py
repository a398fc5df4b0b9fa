"""Privilege documents sent in the chat: each accepted type (a photo, JPEG and PNG images
sent as files, a PDF) is checked, kept and answered with what was received, the count and the
deadline left; each refused kind (too small an image, a wrong type, too big, a damaged or locked or
too long PDF, after the deadline, nothing awaited, a chat not linked, another chat's application)
gets a clear answer at once and changes nothing; the operator's review through the API and the
CLI (list, download the very bytes, accept, reject with a reason the parent reads in ru and kk);
and the deadline sweep still annuls when nothing was accepted.

The Telegram side runs through the real Dispatcher with a real aiohttp session against the Bot API
stand-in (``bot/bench/standin.py``: getFile and the file server); the chat and its fixtures are in
tests/support/documents.py and this folder's conftest.py."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from sqlalchemy import func, select

from bot.bench.standin import BotApiStandIn, Call
from bot.delivery.notices import rejection_text
from bot.delivery.sender import drain_once
from handlers.callbacks import DocsCallback
from handlers.documents import left_text
from handlers.status import card_keyboard
from locales import gettext, ngettext
from locales.errors import error_text
from locales.formats import format_deadline
from locales.names import document_status_text, document_type_text
from services import documents as docs
from services.clock import FrozenClock
from services.doc_storage import FolderDocumentStore
from services.errors import DocumentsNotPending, NotLinked
from services.kezek import Kezek
from storage.models import AuditEntry, Document, OutboxMessage, Referral
from tests.support.delivery import unlimited
from tests.support.documents import CHAT, OTHER, Chat, alerts, files_on_disk, image, pdf, referral_for, replies, stored
from tests.support.world import World, almaty

LANGS = pytest.mark.parametrize("lang", ["ru", "kk"])


# --- files to send ------------------------------------------------------------------------------------

def locked_pdf() -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf(1))))
    writer.encrypt("secret", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def pixel_bomb() -> bytes:
    """A small PNG file that would decode to 81 million pixels."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("1", (9000, 9000)).save(out, "PNG")
    return out.getvalue()


# --- accepted ---------------------------------------------------------------------------------------

ACCEPTED = {
    "photo": lambda: ("photo", image(1280, 960), 1280, 960, "image/jpeg"),
    "jpeg file": lambda: ("document", image(1600, 1200), "справка.jpg", "image/jpeg", "image/jpeg"),
    "png file": lambda: ("document", image(1000, 1400, "PNG"), "scan.png", "image/png", "image/png"),
    "pdf": lambda: ("document", pdf(3), "справка.pdf", "application/pdf", "application/pdf"),
}


@LANGS
@pytest.mark.parametrize("case", list(ACCEPTED))
async def test_each_accepted_type_is_kept_and_answered(
        kz: Kezek, world: World, chat: Chat, api: BotApiStandIn, store: FolderDocumentStore, lang: str,
        case: str) -> None:
    row, app_id, ref = await referral_for(kz, world, lang=lang)
    how, content, a, b, mime = ACCEPTED[case]()
    calls = await (chat.photo(content, a, b) if how == "photo" else chat.document(content, a, b))
    [text] = replies(calls)
    if mime == "application/pdf":
        assert ngettext(lang, "Received for application {number}: a PDF file of {count} page.",
                        "Received for application {number}: a PDF file of {count} pages.", 3,
                        number=row["number"], count="3") in text
    else:
        from PIL import Image

        width, height = Image.open(io.BytesIO(content)).size
        assert gettext(lang, "Received for application {number}: an image of {width}×{height} pixels.",
                       number=row["number"], width=width, height=height) in text
    assert ngettext(lang, "{count} file received so far (at most {max}).",
                    "{count} files received so far (at most {max}).", 1, count="1", max="10") in text
    assert ref.docs_due_at is not None and format_deadline(lang, ref.docs_due_at) in text
    assert left_text(lang, ref.docs_due_at, kz.clock.now()) in text
    assert ngettext(lang, "{count} day left", "{count} days left", 7, count="7") in text
    if case == "photo":  # the largest of Telegram's sizes, and only it, was downloaded
        assert len(api.downloads) == 1 and api.downloads[0] == api.files[
            [fid for fid, (_, data) in api.files.items() if data == content][0]][0]

    [doc] = await stored(kz)
    assert (doc.referral_id, doc.application_id, doc.chat_id, doc.mime, doc.status) == (
        ref.id, app_id, CHAT, mime, "pending")
    assert doc.size == len(content) and doc.pages == (3 if mime == "application/pdf" else 1)
    # Kept under a generated name, never the sender's file name.
    [path] = files_on_disk(store)
    assert path.read_bytes() == content and "справка" not in str(path) and "scan" not in path.name
    info, data = await kz.document_file(doc.id)
    assert data == content and info.application == row["number"]
    async with kz.reading() as ctx:
        uploads = select(AuditEntry).where(AuditEntry.action == "documents.upload")
        [audit] = (await ctx.session.execute(uploads)).scalars()
    assert audit.entity_id == ref.id and audit.data["document_id"] == doc.id
    assert row["child_iin"] not in json.dumps(audit.data)


async def test_the_same_file_twice_is_received_once(kz: Kezek, world: World, chat: Chat,
                                                    store: FolderDocumentStore) -> None:
    row, _, _ = await referral_for(kz, world, lang="kk")
    content = pdf(2)
    await chat.document(content, "a.pdf", "application/pdf")
    [text] = replies(await chat.document(content, "same-again.pdf", "application/pdf"))
    assert gettext("kk", "This file has already been received for application {number}; there is no need to "
                         "send it again.", number=row["number"]) in text
    assert len(await stored(kz)) == 1 and len(files_on_disk(store)) == 1
    # A different file is the second.
    [text] = replies(await chat.photo(image(1280, 960), 1280, 960))
    assert ngettext("kk", "{count} file received so far (at most {max}).",
                    "{count} files received so far (at most {max}).", 2, count="2", max="10") in text


async def test_at_most_ten_files_a_referral(kz: Kezek, world: World, store: FolderDocumentStore) -> None:
    _, app_id, _ = await referral_for(kz, world)
    for n in range(docs.MAX_FILES):
        received = await kz.submit_document(CHAT, app_id, pdf(1, mark=str(n)))
        assert received.count == n + 1
    with pytest.raises(docs.TooManyDocuments) as caught:
        await kz.submit_document(CHAT, app_id, pdf(1, mark="eleventh"))
    assert "10" in error_text("ru", caught.value) and "10" in error_text("kk", caught.value)
    assert len(await stored(kz)) == docs.MAX_FILES and len(files_on_disk(store)) == docs.MAX_FILES


# --- refused -------------------------------------------------------------------------------------------

REFUSED: dict[str, Any] = {
    "too small a photo": (lambda: ("photo", image(640, 480), 640, 480),
                          docs.ImageTooSmall(width=640, height=480, min_short=720, min_long=960)),
    "too small an image file": (lambda: ("document", image(900, 700), "small.jpg", "image/jpeg"),
                                docs.ImageTooSmall(width=900, height=700, min_short=720, min_long=960)),
    "webp": (lambda: ("document", image(1280, 960, "WEBP"), "scan.webp", "image/webp"),
             docs.DocumentTypeRefused(kind="webp")),
    "heic": (lambda: ("document", b"\x00\x00\x00\x18ftypheic" + b"\x00" * 2000, "IMG_0001.HEIC", "image/heic"),
             docs.DocumentTypeRefused(kind="heic")),
    "word": (lambda: ("document", b"PK\x03\x04" + b"\x00" * 2000, "справка.docx", None),
             docs.DocumentTypeRefused(kind="zip")),
    "a text named .pdf": (lambda: ("document", b"this is not a pdf at all", "iin.pdf", "application/pdf"),
                          docs.DocumentTypeRefused(kind="unknown")),
    "damaged pdf": (lambda: ("document", b"%PDF-1.7\n1 0 obj << /Type /Catalog >> broken", "a.pdf", "application/pdf"),
                    docs.DocumentUnreadable()),
    "cut jpeg": (lambda: ("document", image(1280, 960)[:3000], "cut.jpg", "image/jpeg"), docs.DocumentUnreadable()),
    "locked pdf": (lambda: ("document", locked_pdf(), "locked.pdf", "application/pdf"), docs.PdfEncrypted()),
    "too many pages": (lambda: ("document", pdf(11), "book.pdf", "application/pdf"),
                       docs.PdfTooManyPages(pages=11, max=10)),
    "decompression bomb": (lambda: ("document", pixel_bomb(), "bomb.png", "image/png"),
                           docs.ImageTooManyPixels(max=50)),
    "too big by Telegram's word": (lambda: ("document", b"%PDF-1.4 small", "big.pdf", "application/pdf", 15 << 20),
                                   docs.DocumentTooLarge(max=10)),
    "too big in fact": (lambda: ("document", b"\xff\xd8\xff" + b"\x00" * (10 << 20), "big.jpg", "image/jpeg", 1000),
                        docs.DocumentTooLarge(max=10)),
}


@LANGS
@pytest.mark.parametrize("case", list(REFUSED))
async def test_each_refused_file_gets_a_clear_answer_at_once_and_nothing_is_kept(
        kz: Kezek, world: World, chat: Chat, api: BotApiStandIn, store: FolderDocumentStore, lang: str,
        case: str) -> None:
    await referral_for(kz, world, lang=lang)
    make, error = REFUSED[case]
    how, content, *rest = make()
    calls = await (chat.photo(content, *rest) if how == "photo" else chat.document(content, *rest))
    [text] = replies(calls)
    assert text == error_text(lang, error)
    assert await stored(kz) == [] and files_on_disk(store) == []
    if case == "too big by Telegram's word":
        assert api.downloads == [] and not api.sent("getFile")  # not even asked for


async def test_the_accepted_types_are_named_when_a_type_is_refused() -> None:
    for lang in ("ru", "kk"):
        for kind in ("heic", "webp", "zip", "unknown"):
            text = error_text(lang, docs.DocumentTypeRefused(kind=kind))
            assert "PDF" in text and ("JPEG" in text or kind == "zip"), text


@LANGS
async def test_after_the_deadline_the_file_is_refused_with_the_deadline(
        kz: Kezek, world: World, chat: Chat, api: BotApiStandIn, clock: FrozenClock, lang: str) -> None:
    _, _, ref = await referral_for(kz, world, lang=lang)
    assert ref.docs_due_at is not None
    clock.set(ref.docs_due_at + dt.timedelta(minutes=1))
    [text] = replies(await chat.photo(image(1280, 960), 1280, 960))
    assert text == error_text(lang, DocumentsNotPending(state="deadline_passed",
                                                             due_at=ref.docs_due_at.isoformat()))
    assert format_deadline(lang, ref.docs_due_at) in text
    assert api.downloads == [] and await stored(kz) == []


@LANGS
async def test_a_chat_not_linked_or_with_nothing_awaited_is_told_so(
        kz: Kezek, world: World, dp: Dispatcher, bot: Bot, api: BotApiStandIn, lang: str) -> None:
    stranger = Chat(dp, bot, api, chat_id=7007)
    await kz.set_chat_language(7007, lang)
    [text] = replies(await stranger.photo(image(1280, 960), 1280, 960))
    assert text == error_text(lang, docs.DocumentsNeedLink())
    # Linked, but a general referral (no privilege) and a waiting application: nothing awaited.
    await referral_for(kz, world, lang=lang, privilege="none")
    [text] = replies(await Chat(dp, bot, api).document(pdf(1), "a.pdf", "application/pdf"))
    assert text == error_text(lang, docs.NoDocumentsAwaited())
    assert api.downloads == [] and await stored(kz) == []


async def test_documents_already_accepted_are_not_awaited_any_more(kz: Kezek, world: World, chat: Chat) -> None:
    _, app_id, ref = await referral_for(kz, world, lang="kk")
    await kz.submit_document(CHAT, app_id, pdf(1))
    await kz.decide_documents(ref.id, True)
    [text] = replies(await chat.photo(image(1280, 960), 1280, 960))
    assert text == error_text("kk", docs.NoDocumentsAwaited())
    [doc] = await stored(kz)
    assert doc.status == "accepted" and doc.decided_at is not None


async def test_a_file_for_another_chats_application_is_refused(
        kz: Kezek, world: World, chat: Chat, store: FolderDocumentStore) -> None:
    await referral_for(kz, world, lang="ru")
    _, other_app, _ = await referral_for(kz, world, chat_id=OTHER, lang="kk")
    with pytest.raises(NotLinked):
        await kz.submit_document(CHAT, other_app, pdf(1))
    # A forged button naming the other chat's application: refused, nothing kept or chosen.
    calls = await chat.press(DocsCallback(action="p", app=other_app).pack())
    [alert] = alerts(calls)
    assert alert == error_text("ru", NotLinked()) and not replies(calls)
    for data in ("docs:h:99999999999999999999", "docs:x:1", "docs:p:-1", "docs:h:abc"):
        calls = await chat.press(data)
        assert alerts(calls) and alerts(calls)[0] and not replies(calls)
    assert await stored(kz) == [] and files_on_disk(store) == []


async def test_videos_and_voice_messages_are_told_what_is_accepted(kz: Kezek, world: World, chat: Chat,
                                                                 api: BotApiStandIn) -> None:
    await referral_for(kz, world, lang="kk")
    voice = {"file_id": "v1", "file_unique_id": "vu1", "duration": 3}
    [text] = replies(await chat.feed(api.queue(False, message=api.message(CHAT, voice=voice))))
    assert "PDF" in text and text == gettext("kk", "Videos, animations, voice and audio messages are not accepted. "
                                                   "Privilege documents are sent as photos of the pages, or as "
                                                   "JPEG, PNG or PDF files.")


# --- several applications, the status card ------------------------------------------------------------

async def test_with_two_applications_awaiting_the_parent_is_asked_which(
        kz: Kezek, world: World, chat: Chat) -> None:
    first, first_app, first_ref = await referral_for(kz, world, lang="ru")
    second, second_app, second_ref = await referral_for(kz, world, lang="ru")
    calls = await chat.photo(image(1280, 960), 1280, 960)
    [ask] = [c for c in calls if c.method == "sendMessage"]
    assert ask.text == gettext("ru", "Which application are these documents for?")
    assert [(b["text"], b["callback_data"]) for b in ask.buttons()] == sorted([
        (first["number"], DocsCallback(action="p", app=first_app).pack()),
        (second["number"], DocsCallback(action="p", app=second_app).pack())])
    assert all(len(b["callback_data"].encode()) <= 64 for b in ask.buttons())
    assert await stored(kz) == []
    [text] = replies(await chat.press(DocsCallback(action="p", app=second_app).pack()))
    assert second["number"] in text
    # The choice holds for the next file.
    [text] = replies(await chat.document(pdf(1), "a.pdf", "application/pdf"))
    assert second["number"] in text
    assert [d.referral_id for d in await stored(kz)] == [second_ref.id, second_ref.id]


@LANGS
async def test_the_status_card_offers_to_send_the_documents(kz: Kezek, world: World, chat: Chat,
                                                            lang: str) -> None:
    row, app_id, ref = await referral_for(kz, world, lang=lang)
    [card] = [c for c in replies_calls(await chat.text("/status"))]
    label = gettext(lang, "Send privilege documents")
    assert card.button(label)["callback_data"] == DocsCallback(action="h", app=app_id).pack()
    [text] = replies(await chat.press(DocsCallback(action="h", app=app_id).pack()))
    assert row["number"] in text and "PDF" in text
    assert ref.docs_due_at is not None and format_deadline(lang, ref.docs_due_at) in text
    # No such button without a privilege referral.
    cards = await kz.status_cards(OTHER)
    assert cards == [] or all(label not in str(card_keyboard(lang, c)) for c in cards)


def replies_calls(calls: list[Call]) -> list[Call]:
    return [c for c in calls if c.method == "sendMessage"]


# --- the deadline sweep -----------------------------------------------------------------------------

async def test_files_received_but_not_accepted_by_the_deadline_do_not_save_the_referral(
        kz: Kezek, world: World, clock: FrozenClock, store: FolderDocumentStore) -> None:
    # Thursday before Nauryz (21-25 March off): the 10th calendar day (Sunday 29 March) ends the
    # documents' time before the 5th working day ends the show-up's.
    clock.set(almaty(2026, 3, 19, 11, 0))
    _, app_id, ref = await referral_for(kz, world)
    assert ref.docs_due_at == almaty(2026, 3, 30, 0, 0) and ref.showup_due_at == almaty(2026, 4, 1, 0, 0)
    await kz.submit_document(CHAT, app_id, pdf(2))
    clock.set(almaty(2026, 3, 29, 23, 0))
    await kz.submit_document(CHAT, app_id, image(1280, 960))  # the last hour still counts
    clock.set(ref.docs_due_at + dt.timedelta(seconds=5))
    done = await kz.run_sweeps()
    assert done["docs_missed"] == 1
    async with kz.reading() as ctx:
        after = await ctx.session.get(Referral, ref.id)
    assert after is not None and (after.status, after.annul_reason, after.docs_state) == (
        "annulled", "docs_missed", "missed")
    assert after.closed_at == ref.docs_due_at
    assert {(d.status, d.reason) for d in await stored(kz)} == {("closed", "docs_missed")}
    assert await kz.review_documents("pending") == []
    assert len(await kz.review_documents("closed")) == 2
    assert (await kz.run_sweeps())["docs_missed"] == 0  # idempotent
    with pytest.raises(DocumentsNotPending):
        await kz.decide_documents(ref.id, True)


async def test_when_both_deadlines_pass_together_the_files_are_closed_too(
        kz: Kezek, world: World, clock: FrozenClock, store: FolderDocumentStore) -> None:
    _, app_id, ref = await referral_for(kz, world)
    await kz.submit_document(CHAT, app_id, pdf(1))
    assert ref.docs_due_at == ref.showup_due_at
    clock.set(ref.docs_due_at)
    done = await kz.run_sweeps()
    # RULES.md, "Privilege documents": at the tie the documents deadline decides
    assert (done["no_show"], done["docs_missed"]) == (0, 1)
    assert [d.status for d in await stored(kz)] == ["closed"]


# --- the operator's review: the API ------------------------------------------------------------------

@LANGS
async def test_the_review_through_the_api_and_the_parent_reads_the_reason(
        kz: Kezek, world: World, bot: Bot, api: BotApiStandIn, store: FolderDocumentStore, lang: str,
        tmp_path: Path) -> None:
    from tests.support.api import AUTH, KK, api_client, call, counts

    row, app_id, ref = await referral_for(kz, world, lang=lang)
    scan, paper = image(1280, 960), pdf(2)
    await kz.submit_document(CHAT, app_id, scan)
    await kz.submit_document(CHAT, app_id, paper)
    async with api_client(kz) as client:
        body = await call(client, "GET", "/documents", status=200, params={"status": "pending"})
        first, second = body["documents"]
        assert (first["referral"], first["application"], first["mime"], first["pages"], first["size"]) == (
            ref.id, row["number"], "image/jpeg", 1, len(scan))
        assert (second["mime"], second["pages"]) == ("application/pdf", 2)
        assert second["due"] == "2026-09-15T00:00:00+05:00" and first["received_at"].endswith("+05:00")
        assert row["child_iin"] not in json.dumps(body) and row["phone"] not in json.dumps(body)
        listed = await call(client, "GET", "/documents", status=200, params={"referral": ref.id})
        assert listed["documents"] == body["documents"]
        for doc, content, mime in ((first, scan, "image/jpeg"), (second, paper, "application/pdf")):
            resp = await client.get(f"/api/v1/documents/{doc['id']}/file", headers=AUTH)
            assert resp.status == 200 and resp.content_type == mime and await resp.read() == content
            assert f"kezek-document-{doc['id']}." in resp.headers["Content-Disposition"]
        assert (await client.get(f"/api/v1/documents/{first['id']}/file")).status == 401

        # Bad input: a clear error, nothing changes.
        before = await counts(kz)
        bad = await call(client, "GET", "/documents", status=422, headers=KK, params={"status": "everything"})
        assert bad["errors"][0]["field"] == "status" and "pending" in bad["message"]
        for doc_id in ("999", "abc", "-1", "0"):
            resp = await client.get(f"/api/v1/documents/{doc_id}/file", headers=KK)
            assert resp.status == 404 and (await resp.json())["message"] == error_text("kk", docs.DocumentNotFound())
        for wrong, field, reason in (({"reason": "ugly"}, "reason", "invalid_field"),
                                     ({"reason": "other"}, "note", "missing_field"),
                                     ({"reason": "unreadable", "note": "x" * 501}, "note", "invalid_field"),
                                     ({"note": 42}, "note", "invalid_field"),
                                     ({"note": "a\x00b"}, "note", "invalid_field")):
            body = await call(client, "POST", f"/referrals/{ref.id}/documents", status=422,
                              json={"decision": "rejected", **wrong})
            assert (body["errors"][0]["field"], body["errors"][0]["reason"]) == (field, reason)
        assert await counts(kz) == before

        note = "Печать на справке не читается / мөр оқылмайды"
        body = await call(client, "POST", f"/referrals/{ref.id}/documents", status=200,
                          json={"decision": "rejected", "reason": "unreadable", "note": note})
        assert (body["referral"]["status"], body["referral"]["annul_reason"]) == ("annulled", "docs_rejected")
        rejected = (await call(client, "GET", "/documents", status=200, params={"status": "rejected"}))["documents"]
        assert [(d["reason"], d["note"]) for d in rejected] == [("unreadable", note)] * 2
        assert (await call(client, "GET", "/documents", status=200))["documents"] == []

    # The parent is told the reason in the chat's language, the operator's words quoted.
    while await drain_once(kz, bot, None, unlimited(batch=50, concurrency=4)):
        pass
    [notice] = [c for c in api.sent("sendMessage") if c.chat_id == CHAT and row["number"] in (c.text or "")
                and gettext(lang, "Reason: {reason}.", reason=rejection_text(lang, "unreadable")) in c.text]
    assert f"«{note}»" in notice.text
    other = "kk" if lang == "ru" else "ru"
    assert rejection_text(other, "unreadable") not in notice.text
    # The e-mail copy says it in both languages.
    from services.email import FolderSender

    mailer = FolderSender(kz.clock, tmp_path / "mail")
    while await drain_once(kz, None, mailer):
        pass
    from email import message_from_bytes, policy

    texts = [message_from_bytes(p.read_bytes(), policy=policy.default).get_body(("plain",)).get_content()  # type: ignore[union-attr]
             for p in (tmp_path / "mail").glob("*.eml")]
    [copy] = [t for t in texts if rejection_text("kk", "unreadable") in t]
    assert rejection_text("ru", "unreadable") in copy and note in copy


async def test_accepting_through_the_api_marks_the_files(kz: Kezek, world: World, store: FolderDocumentStore) -> None:
    from tests.support.api import api_client, call

    _, app_id, ref = await referral_for(kz, world)
    await kz.submit_document(CHAT, app_id, pdf(1))
    async with api_client(kz) as client:
        # A reason given with an acceptance is ignored (backward compatible body).
        await call(client, "POST", f"/referrals/{ref.id}/documents", status=200,
                   json={"decision": "accepted", "reason": "unreadable"})
        [doc] = (await call(client, "GET", "/documents", status=200, params={"status": "accepted"}))["documents"]
    assert doc["referral"] == ref.id and doc["decided_at"]


# --- the operator's review: the CLI ------------------------------------------------------------------

def test_the_review_through_the_cli(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from bot.cli.main import cli
    from bot.config import get_settings
    from storage.db import Database
    from tests.support.databases import truncate_pg

    folder = tmp_path / "documents"
    monkeypatch.setenv("KEZEK_DOCUMENTS_DIR", str(folder))
    get_settings.cache_clear()
    monday = almaty(2026, 9, 7, 10, 0)

    async def seed() -> tuple[str, int, int, bytes, bytes]:
        db = Database(db_url)
        try:
            if db.is_postgres:
                await truncate_pg(db)
            kz = Kezek(db, FrozenClock(monday), document_store=FolderDocumentStore(folder))
            world = await World(kz, kz.clock).setup()  # type: ignore[arg-type]
            row, app_id, ref = await referral_for(kz, world)
            _, app_b, ref_b = await referral_for(kz, world, chat_id=OTHER, lang="kk")
            paper, scan = pdf(4), image(1280, 960)
            await kz.submit_document(CHAT, app_id, paper)
            await kz.submit_document(OTHER, app_b, scan)
            return row["number"], ref.id, ref_b.id, paper, scan
        finally:
            await db.dispose()

    number, ref_a, ref_b, paper, scan = asyncio.run(seed())
    runner = CliRunner()

    def run(*args: str, lang: str = "ru") -> Any:
        return runner.invoke(cli, ["--db", db_url, "--lang", lang, "--now", "2026-09-08T10:00:00+05:00", *args])

    try:
        listed = run("documents", "list")
        assert listed.exit_code == 0, listed.output
        assert number in listed.output and document_type_text("ru", "application/pdf") in listed.output
        assert ngettext("ru", "{count} page", "{count} pages", 4, count=4) in listed.output
        as_json = json.loads(run("documents", "list", "--json").output)
        assert [d["referral"] for d in as_json] == [ref_a, ref_b]
        kk = run("documents", "list", "--status", "all", lang="kk")
        assert kk.exit_code == 0 and document_status_text("kk", "pending") in kk.output

        out = tmp_path / "got.pdf"
        got = run("documents", "download", str(as_json[0]["id"]), "--out", str(out))
        assert got.exit_code == 0, got.output
        assert out.read_bytes() == paper
        got = run("documents", "download", str(as_json[1]["id"]), "--out", str(tmp_path))
        assert got.exit_code == 0 and (tmp_path / f"kezek-document-{as_json[1]['id']}.jpg").read_bytes() == scan

        missing = run("documents", "download", "999")
        assert missing.exit_code == 1 and error_text("ru", docs.DocumentNotFound()) in missing.output
        bad = run("documents", "list", "--status", "bogus")
        assert bad.exit_code == 2 and "Traceback" not in bad.output
        no_note = run("documents", "reject", str(ref_a), "--reason", "other")
        assert no_note.exit_code == 1 and "Traceback" not in no_note.output
        assert json.loads(run("documents", "list", "--json").output) == as_json  # nothing changed

        rejected = run("documents", "reject", str(ref_b), "--reason", "name_mismatch", "--note", "Фамилия другая")
        assert rejected.exit_code == 0, rejected.output
        accepted = run("documents", "accept", str(ref_a))
        assert accepted.exit_code == 0, accepted.output
        final = json.loads(run("documents", "list", "--status", "all", "--json").output)
        assert [(d["status"], d["reason"], d["note"]) for d in final] == [
            ("accepted", None, None), ("rejected", "name_mismatch", "Фамилия другая")]
        assert run("documents", "list").output.strip() == gettext("ru", "No documents.")
    finally:
        get_settings.cache_clear()

    async def notices() -> list[dict[str, Any]]:
        db = Database(db_url)
        try:
            async with db.read() as session:
                return [m.payload for m in (await session.execute(
                    select(OutboxMessage).where(OutboxMessage.kind == "privilege_dropped"))).scalars()]
        finally:
            await db.dispose()

    [payload] = asyncio.run(notices())
    assert (payload["rejection"], payload["note"], payload["reason"]) == ("name_mismatch", "Фамилия другая",
                                                                          "docs_rejected")


async def test_counts_of_rows_stay_in_step(kz: Kezek, world: World, store: FolderDocumentStore) -> None:
    """The review list counts what was kept: one row per file on disk."""
    _, app_id, _ = await referral_for(kz, world)
    for n in range(3):
        await kz.submit_document(CHAT, app_id, pdf(1, mark=str(n)))
    async with kz.reading() as ctx:
        rows = (await ctx.session.execute(select(func.count()).select_from(Document))).scalar_one()
    assert rows == 3 == len(files_on_disk(store)) == len(await kz.review_documents())


# --- the store and the logs -------------------------------------------------------------------------

def test_the_folder_store_keeps_files_under_generated_keys_only(tmp_path: Path) -> None:
    from services.doc_storage import DocumentStoreError, MemoryDocumentStore, new_key

    for store in (FolderDocumentStore(tmp_path / "docs"), MemoryDocumentStore()):
        key = new_key()
        store.put(key, b"first")
        store.put(key, b"second")  # replaced whole
        assert store.get(key) == b"second"
        store.delete(key)
        store.delete(key)  # gone already: nothing happens
        with pytest.raises(DocumentStoreError):
            store.get(key)
        for bad in ("../../etc/passwd", "справка.pdf", "", "A" * 32, new_key() + "/x"):
            with pytest.raises(DocumentStoreError):
                store.put(bad, b"x")
    left = [p for p in (tmp_path / "docs").rglob("*") if p.is_file()]
    assert left == []  # no temporary files left behind either


async def test_logs_carry_no_personal_data_nor_file_contents(
        kz: Kezek, world: World, chat: Chat, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    row, _, _ = await referral_for(kz, world)
    caplog.set_level(logging.DEBUG)
    await chat.document(pdf(1, mark="SECRET-CONTENT"), f"{row['child_iin']}.pdf", "application/pdf")
    await chat.document(b"not a document " + row["phone"].encode(), "x.txt", "text/plain")
    logged = caplog.text
    assert "received for referral" in logged
    for secret in (row["child_iin"], row["phone"], row["email"], "SECRET-CONTENT"):
        assert secret not in logged
