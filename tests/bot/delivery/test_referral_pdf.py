"""The referral's PDF: made in Kazakh and in Russian with every Kazakh letter (the text is
read back out of the file with pypdf and compared), its QR code decodes (zxing-cpp) to a token
that verifies while a modified one does not, and it reaches the parent: as a Telegram document
with the "referral issued" notice (through the Bot API stand-in, retried like a message when the
upload fails) and as the attachment of the e-mail copy."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from sqlalchemy import select

from bot.bench.standin import TOKEN, BotApiStandIn, Upload
from bot.delivery.notices import attachment_note, render
from bot.delivery.sender import drain_once
from handlers.views.referral_pdf import page_lines, referral_pdf
from locales import gettext
from locales.formats import ALMATY, format_date, format_deadline
from services.clock import FrozenClock
from services.email import FolderSender
from services.kezek import Kezek
from services.notifications import TELEGRAM
from storage.models import Delivery, OutboxMessage
from tests.support.delivery import unlimited
from tests.support.documents import qr_tokens
from tests.support.world import World, linked_parents

KAZAKH_LETTERS = "ӘҒҚҢӨҰҮҺІәғқңөұүһі"  # the letters Kazakh adds to the Russian alphabet
# A kindergarten whose Kazakh name uses all of them (the registry's data is printed as it is).
KG_NAME_KK = "«Ақбота» бөбекжай-бақшасы (ӘҒҚҢӨҰҮҺІ әғқңөұүһі)"


def pdf_pages(data: bytes) -> list[str]:
    """The text of each page, with whitespace and CLDR's no-break spaces made plain spaces."""
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    return [" ".join(page.extract_text().replace("\u202f", " ").replace("\xa0", " ").split())
            for page in reader.pages]


def plain(text: str) -> str:
    return " ".join(text.replace("\u202f", " ").replace("\xa0", " ").split())


@pytest.fixture
async def kazakh_world(world: World) -> World:
    await world.kz.upsert_kindergartens([
        {"code": "AQB", "district": "ALM-BOS", "name_ru": "Ясли-сад «Акбота»", "name_kk": KG_NAME_KK,
         "address": "Алматы, Әуезов көшесі, 12", "languages": "ru,kk"}])
    return world


async def issue(world: World, kg: str = "AQB", language: str = "kk", **row: Any) -> tuple[Any, dict[str, Any]]:
    data = world.row(**row)
    [number] = await world.apps(data)
    pub = await world.publish(1, kg, language=language)
    seat = next(s for _, s, n in pub.offers if n == number)
    [ref] = await world.kz.claim(number, seat, confirmed_by="telegram:1")
    return ref, data


# --- the document ---------------------------------------------------------------------------------

async def test_the_pdf_in_both_languages_reads_back_with_every_kazakh_letter(
        kz: Kezek, kazakh_world: World) -> None:
    ref, row = await issue(kazakh_world, privilege="first")
    document = await kz.referral_document(ref.id)
    data = referral_pdf(document, ["kk", "ru"])
    assert data.startswith(b"%PDF-")
    kk, ru = pdf_pages(data)

    # Kazakh first: every Kazakh letter, as the font drew them, comes back out of the file.
    assert gettext("kk", "Referral to a kindergarten") in kk and gettext("ru", "Referral to a kindergarten") in ru
    for letter in KAZAKH_LETTERS:
        assert letter in kk, letter
    # ... and every one the Kazakh page used (its labels and sentences, not only the name).
    written = "".join(label + value for label, value in page_lines("kk", document.facts))
    assert {c for c in written if c in KAZAKH_LETTERS} <= set(kk)
    assert not {c for c in ru if c in KAZAKH_LETTERS} - set(KG_NAME_KK + "Әуезов көшесі")  # ru: only the data

    for lang, page in (("kk", kk), ("ru", ru)):
        for label, value in page_lines(lang, document.facts):
            assert plain(label) in page and plain(value) in page, (lang, label, value)
        assert row["number"] in page and document.facts.child_iin_masked in page
        assert plain(format_deadline(lang, document.facts.valid_until, formal=True)) in page
        assert plain(format_date(lang, document.facts.issued_at, formal=True)) in page
        assert "kezek referrals verify" in page and "/api/v1/referrals/verify?token=" in page
        # Typed in when the QR code cannot be scanned: the short code, not the 27-character token.
        assert document.short in page and document.token not in page
        # No personal data beyond the masked IIN.
        for secret in (row["child_iin"], row["phone"], row["email"], row["child_name"]):
            assert secret not in page
    assert KG_NAME_KK in kk and "Ясли-сад «Акбота»" in ru
    assert "Алматы, Әуезов көшесі, 12" in kk and "Алматы, Әуезов көшесі, 12" in ru
    assert row["child_iin"].encode() not in data


async def test_the_kazakh_page_writes_its_dates_in_the_formal_style(kz: Kezek, kazakh_world: World) -> None:
    """A formal Kazakh document writes «2026 жылғы 5 желтоқсан», not the chat's «2026 ж. 5 желтоқсан»."""
    ref, _row = await issue(kazakh_world, privilege="first")
    document = await kz.referral_document(ref.id)
    kk, ru = pdf_pages(referral_pdf(document, ["kk", "ru"]))
    issued = document.facts.issued_at.astimezone(ALMATY)
    month = format_date("kk", issued, "MMMM")
    assert f"{issued.year} жылғы {issued.day} {month}" in kk
    assert " ж. " not in kk
    assert plain(format_date("ru", issued)) in ru  # Russian keeps its long date («5 декабря 2026 г.»)


async def test_one_language_makes_one_page(kz: Kezek, kazakh_world: World) -> None:
    ref, _ = await issue(kazakh_world)
    document = await kz.referral_document(ref.id)
    [ru] = pdf_pages(referral_pdf(document, ["ru"]))
    assert gettext("ru", "Referral to a kindergarten") in ru and gettext("kk", "Referral to a kindergarten") not in ru


async def test_the_qr_code_decodes_to_a_token_that_verifies_and_a_modified_one_does_not(
        kz: Kezek, kazakh_world: World) -> None:
    ref, _ = await issue(kazakh_world)
    data = referral_pdf(await kz.referral_document(ref.id), ["kk", "ru"])
    tokens = qr_tokens(data)
    assert len(tokens) == 2 and len(set(tokens)) == 1  # one QR code a page, the same token
    verdict = await kz.verify_referral(tokens[0])
    assert verdict.state == "valid" and verdict.facts is not None and verdict.facts.referral_id == ref.id
    token = tokens[0]
    for i in (0, len(token) // 2, len(token) - 1):
        modified = token[:i] + ("B" if token[i] != "B" else "C") + token[i + 1:]
        assert (await kz.verify_referral(modified)).state == "refused"


async def test_with_a_public_page_the_qr_code_opens_it_and_the_paper_says_how(
        kz: Kezek, kazakh_world: World) -> None:
    """KEZEK_PUBLIC_URL set: the QR code holds the page's address with the signed code, and the paper
    tells the kindergarten to scan it with a phone (no command, no API); the code still verifies."""
    ref, _ = await issue(kazakh_world)
    kz.public_url = "https://kezek.example.kz"
    document = await kz.referral_document(ref.id)
    data = referral_pdf(document, ["kk", "ru"])
    [address, _same] = qr_tokens(data)
    assert address == f"https://kezek.example.kz/r/{document.token}"
    assert (await kz.verify_referral(address.rsplit("/", 1)[1])).state == "valid"
    for lang, page in zip(("kk", "ru"), pdf_pages(data), strict=True):
        assert "kezek referrals verify" not in page and "/api/v1/" not in page
        assert "https://kezek.example.kz/r" in page and document.short in page
        assert plain(gettext(lang, "For the kindergarten: check this referral")) in page


# --- delivery: Telegram ---------------------------------------------------------------------------

@pytest.fixture
async def api() -> AsyncIterator[BotApiStandIn]:
    async with BotApiStandIn(timeout_delay=3.0) as stand_in:
        yield stand_in


@pytest.fixture
async def bot(api: BotApiStandIn) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(api.base_url), timeout=5)
    bot = Bot(TOKEN, session=session)
    yield bot
    await session.close()


async def claim_for_chat(kz: Kezek, world: World, lang: str, bot: Bot) -> tuple[int, str, Any]:
    """A linked chat (in ``lang``) whose application gets a seat at AQB ("your turn" is sent) and
    claims it: the "referral issued" notice is what is due now."""
    [chat] = await linked_parents(kz, world, 1, lang=lang)
    await world.kz.upsert_kindergartens([
        {"code": "AQB", "district": "ALM-BOS", "name_ru": "Ясли-сад «Акбота»", "name_kk": KG_NAME_KK,
         "address": "Алматы, Әуезов көшесі, 12", "languages": "ru,kk"}])
    pub = await world.publish(1, "AQB", birth_year=2023, language="kk")
    [(_, seat, number)] = pub.offers
    await drain_once(kz, bot, None, unlimited(batch=50, concurrency=4))
    assert await telegram_status(kz, "turn_came") == ("sent", 1)
    [ref] = await kz.claim(number, seat, confirmed_by=f"telegram:{chat}")
    return chat, number, ref


async def telegram_status(kz: Kezek, kind: str) -> tuple[str, int]:
    async with kz.reading() as ctx:
        status, attempts = (await ctx.session.execute(
            select(Delivery.status, Delivery.attempts).join(OutboxMessage, OutboxMessage.id == Delivery.outbox_id)
            .where(Delivery.channel == TELEGRAM, OutboxMessage.kind == kind))).one()
    return status, attempts


@pytest.mark.parametrize("lang", ["kk", "ru"])
async def test_the_telegram_notice_carries_the_pdf_in_the_chats_language(
        kz: Kezek, world: World, api: BotApiStandIn, bot: Bot, lang: str) -> None:
    chat, number, ref = await claim_for_chat(kz, world, lang, bot)
    await drain_once(kz, bot, None, unlimited(batch=50, concurrency=4))
    [document] = api.sent("sendDocument")
    assert document.chat_id == chat
    upload = document.params["document"]
    assert isinstance(upload, Upload) and upload.filename == f"kezek-referral-{ref.id}-{lang}.pdf"
    # The notice's words are the caption: one message, words and file together.
    caption = document.params["caption"]
    assert number in caption and attachment_note(lang) in caption
    assert gettext(lang, "Group: {group}", group="2023-kk") in caption
    group_line = gettext(lang, "Group: {group}", group="2023-kk")  # only the referral's text has it
    assert not [c for c in api.sent("sendMessage") if c.text and group_line in c.text]
    [page] = pdf_pages(upload.content)
    assert gettext(lang, "Referral to a kindergarten") in page
    [token] = qr_tokens(upload.content)
    assert (await kz.verify_referral(token)).valid
    assert await telegram_status(kz, "referral_issued") == ("sent", 1)


async def test_a_failed_upload_is_retried_like_a_message_and_arrives_once(
        kz: Kezek, world: World, clock: FrozenClock, api: BotApiStandIn, bot: Bot) -> None:
    chat, number, _ = await claim_for_chat(kz, world, "kk", bot)
    api.faults = {chat: ["500"]}  # the first upload fails on Telegram's side
    await drain_once(kz, bot, None, unlimited(batch=50, concurrency=4))
    assert await telegram_status(kz, "referral_issued") == ("pending", 1)
    assert await drain_once(kz, bot, None, unlimited(batch=50, concurrency=4)) == 0  # not before its retry time
    clock.advance(seconds=30)
    await drain_once(kz, bot, None, unlimited(batch=50, concurrency=4))
    assert await telegram_status(kz, "referral_issued") == ("sent", 2)
    tries = api.sent("sendDocument")
    assert len(tries) == 2 and all(isinstance(t.params["document"], Upload) for t in tries)
    # It arrived exactly once (the stand-in counts what it took, a document by its caption).
    assert [c for c, text in api.accepted if number in text and attachment_note("kk") in text] == [chat]


async def test_a_flood_answer_to_an_upload_waits_without_using_a_try(
        kz: Kezek, world: World, clock: FrozenClock, api: BotApiStandIn, bot: Bot) -> None:
    chat, _, _ = await claim_for_chat(kz, world, "ru", bot)
    api.faults = {chat: ["429"]}
    await drain_once(kz, bot, None, unlimited(batch=50, concurrency=4))
    assert await telegram_status(kz, "referral_issued") == ("pending", 0)
    clock.advance(seconds=5)
    await drain_once(kz, bot, None, unlimited(batch=50, concurrency=4))
    assert await telegram_status(kz, "referral_issued") == ("sent", 1)


async def test_a_pdf_that_cannot_be_made_does_not_cost_the_parent_the_notice(
        kz: Kezek, world: World, api: BotApiStandIn, bot: Bot, monkeypatch: pytest.MonkeyPatch) -> None:
    import handlers.views.referral_pdf as module

    def broken(*_args: Any) -> bytes:
        raise RuntimeError("font trouble")

    monkeypatch.setattr(module, "referral_pdf", broken)
    chat, number, _ = await claim_for_chat(kz, world, "ru", bot)
    await drain_once(kz, bot, None, unlimited(batch=50, concurrency=4))
    assert api.sent("sendDocument") == []
    group_line = gettext("ru", "Group: {group}", group="2023-kk")
    [message] = [c for c in api.sent("sendMessage") if c.text and group_line in c.text]
    assert message.chat_id == chat and number in message.text
    assert await telegram_status(kz, "referral_issued") == ("sent", 1)


async def test_a_text_too_long_for_a_caption_goes_as_a_message_then_the_file(
        kz: Kezek, world: World, api: BotApiStandIn, bot: Bot, monkeypatch: pytest.MonkeyPatch) -> None:
    import bot.delivery.sender as sender
    from bot.delivery.notices import Rendered

    def long_render(lang: str, notice: Any) -> Rendered:
        return Rendered(render(lang, notice).text + "\n" + "x" * 1100)

    monkeypatch.setattr(sender, "render", long_render)
    chat, number, _ = await claim_for_chat(kz, world, "kk", bot)
    mark = api.mark()
    await drain_once(kz, bot, None, unlimited(batch=50, concurrency=4))
    group_line = gettext("kk", "Group: {group}", group="2023-kk")
    referral = [c for c in api.calls[mark:] if c.chat_id == chat and (
        c.method == "sendDocument" or (c.method == "sendMessage" and group_line in (c.text or "")))]
    assert [c.method for c in referral] == ["sendMessage", "sendDocument"]
    assert number in referral[0].text
    assert referral[1].params["caption"] == attachment_note("kk")


# --- delivery: e-mail -----------------------------------------------------------------------------

def eml(folder: Path, subject_kind: str = "Referral issued") -> EmailMessage:
    subject = f"Kezek: {gettext('kk', subject_kind)} / {gettext('ru', subject_kind)}"
    found = [message_from_bytes(p.read_bytes(), policy=policy.default) for p in sorted(folder.glob("*.eml"))]
    [msg] = [m for m in found if m["Subject"] == subject]
    return msg  # type: ignore[return-value]


async def test_the_email_copy_carries_the_pdf_in_both_languages(
        kz: Kezek, kazakh_world: World, clock: FrozenClock, tmp_path: Path) -> None:
    ref, row = await issue(kazakh_world)
    mailer = FolderSender(clock, tmp_path)
    while await drain_once(kz, None, mailer):
        pass
    msg = eml(tmp_path)
    assert msg["To"] == row["email"] and msg.get_content_type() == "multipart/mixed"
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == f"kezek-referral-{ref.id}.pdf"
    data = attachment.get_content()
    kk, ru = pdf_pages(data)  # Kazakh first, then Russian, like the copy's text
    assert gettext("kk", "Referral to a kindergarten") in kk and gettext("ru", "Referral to a kindergarten") in ru
    assert all(letter in kk for letter in KAZAKH_LETTERS)
    [token, same] = qr_tokens(data)
    assert token == same and (await kz.verify_referral(token)).valid
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    for lang in ("kk", "ru"):
        assert attachment_note(lang) in text
        assert gettext(lang, "Kindergarten") in html
    # The other copies carry no file.
    turn = eml(tmp_path, "Your turn has come")
    assert turn.get_content_type() == "multipart/alternative" and not list(turn.iter_attachments())


async def test_a_retry_a_day_later_sends_the_same_file(kz: Kezek, kazakh_world: World, clock: FrozenClock) -> None:
    ref, _ = await issue(kazakh_world)
    first = referral_pdf(await kz.referral_document(ref.id), ["kk", "ru"])
    clock.advance(days=1)
    assert referral_pdf(await kz.referral_document(ref.id), ["kk", "ru"]) == first


async def test_the_pages_give_the_zone_with_its_offset_and_no_english(kz: Kezek, kazakh_world: World) -> None:
    """The PDF may be read abroad (the deadlines say "Astana time, UTC+5"), and the
    verification command's placeholder is a word of the page's language, not "CODE"."""
    ref, _ = await issue(kazakh_world, privilege="first")
    document = await kz.referral_document(ref.id)
    kk, ru = pdf_pages(referral_pdf(document, ["kk", "ru"]))
    assert "(Астана уақытымен, UTC+5)" in kk and "(по времени Астаны, UTC+5)" in ru
    for page in (kk, ru):
        assert "CODE" not in page and "verify КОД" in page and "token=КОД" in page
    assert "Балабақша үшін: жолдаманы қалай тексеру керек" in kk


async def test_the_short_code_on_the_paper_verifies_however_it_is_typed_and_a_changed_one_does_not(
        kz: Kezek, kazakh_world: World) -> None:
    ref, _ = await issue(kazakh_world)
    short = (await kz.referral_document(ref.id)).short
    assert re.fullmatch(rf"{ref.id}-[0-9A-HJKMNP-TV-Z]{{4}}-[0-9A-HJKMNP-TV-Z]{{4}}", short), short
    ident, mac = short.split("-", 1)
    typed = [short, short.lower(), short.replace("-", " "), short.replace("-", ""),
             f"{ident}-{mac.replace('0', 'o').replace('1', 'l')}"]  # Crockford: O is 0, L is 1
    for variant in typed:
        verdict = await kz.verify_referral(variant)
        assert verdict.state == "valid" and verdict.facts is not None and verdict.facts.referral_id == ref.id
    last = mac[-1]
    for changed in (f"{ident}-{mac[:-1]}{'0' if last != '0' else '1'}", f"{int(ident) + 1}-{mac}", f"{ident}-"):
        assert (await kz.verify_referral(changed)).state == "refused", changed
