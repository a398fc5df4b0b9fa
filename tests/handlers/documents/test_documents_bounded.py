"""Privilege documents: the check of a file is bounded.

A progressive JPEG of very many tiny scans used to cost minutes of CPU to check (and was then
accepted), a PNG whose pixel data does not decode was accepted, and the checks ran in asyncio's
default thread pool, so six crafted files held up every chart, PDF, e-mail and download. Now the
cheap checks come first (the link, the referral awaiting documents, the size, the 10-file cap), a
JPEG of more scans than any camera or scanner writes is refused without decoding, and the decode
runs in a worker process of its own, killed at the time budget, beside (never in) the default
thread pool. The parent gets one clear line in ru or kk; nothing is kept."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import os
import struct
import zlib
from collections.abc import AsyncIterator

import pytest

from bot.bench.standin import BotApiStandIn
from handlers.views.chart import PNG_SIGNATURE, render_history_png
from locales import gettext
from locales.errors import ERROR_SENTENCES, error_text
from services import doc_check
from services import documents as docs
from services.doc_check import DocumentChecker
from services.doc_storage import FolderDocumentStore
from services.kezek import Kezek
from tests.support.documents import CHAT, Chat, files_on_disk, image, pdf, referral_for, replies, stored
from tests.support.standin import until
from tests.support.world import World, almaty

LANGS = pytest.mark.parametrize("lang", ["ru", "kk"])


# --- crafted files --------------------------------------------------------------------------------

def many_scans_jpeg(side: int, scans: int) -> bytes:
    """A progressive greyscale JPEG of ``side``×``side`` pixels whose last scan (a refinement of
    every block) is repeated until the file has ``scans`` more scans: each one costs the decoder a
    pass over the whole image, a few bytes each in the file."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("L", (side, side), 128).save(out, "JPEG", progressive=True, quality=75)
    data = out.getvalue()
    last = data.rindex(b"\xff\xda")  # the last scan runs to the end of image marker
    assert data.endswith(b"\xff\xd9")
    return data[:-2] + data[last:-2] * scans + b"\xff\xd9"


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def random_idat_png(width: int = 7000, height: int = 7000, size: int = 200_000) -> bytes:
    """A PNG with a valid signature, header and checksums whose image data is random bytes."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, not interlaced
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", os.urandom(size))
            + _chunk(b"IEND", b""))


def progressive(width: int, height: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.open(io.BytesIO(image(width, height))).save(out, "JPEG", progressive=True, quality=85)
    return out.getvalue()


def too_complex(lang: str) -> str:
    text = error_text(lang, docs.DocumentTooComplex())
    assert "JPEG" in text and "PDF" in text and text != ERROR_SENTENCES["document_too_complex"]  # translated
    return text


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
async def checker(kz: Kezek) -> AsyncIterator[DocumentChecker]:
    """A checker of the test's own: a budget of 2 seconds, and no scan limit, so that a crafted
    JPEG reaches the decoder and the budget."""
    kz.document_checker = DocumentChecker(budget=2.0, workers=2, max_scans=10**9)
    yield kz.document_checker
    await until(lambda: kz.document_checker is not None and kz.document_checker.running == 0,
                "no check running", 30)


# --- refused -------------------------------------------------------------------------------------------

@LANGS
async def test_a_progressive_jpeg_of_very_many_scans_is_refused_without_decoding(
        kz: Kezek, world: World, chat: Chat, store: FolderDocumentStore, lang: str) -> None:
    await referral_for(kz, world, lang=lang)
    crafted = many_scans_jpeg(1000, 2000)  # 30 kB; without a limit it decodes, slowly, and passes
    assert kz.checker.started == 0
    [text] = replies(await chat.document(crafted, "scan.jpg", "image/jpeg"))
    assert text == too_complex(lang) and "\n" not in text
    assert await stored(kz) == [] and files_on_disk(store) == []
    assert kz.checker.started == 0  # no worker was started for it


@LANGS
async def test_a_png_whose_image_data_does_not_decode_is_refused(
        kz: Kezek, world: World, chat: Chat, store: FolderDocumentStore, lang: str) -> None:
    await referral_for(kz, world, lang=lang)
    [text] = replies(await chat.document(random_idat_png(), "scan.png", "image/png"))
    assert text == error_text(lang, docs.DocumentUnreadable())
    assert await stored(kz) == [] and files_on_disk(store) == []


def test_the_decoder_itself_refuses_a_png_that_does_not_decode() -> None:
    assert doc_check.inspect(random_idat_png(), docs.PNG, docs.MAX_PIXELS) == {"verdict": doc_check.UNREADABLE}
    # Cut short: its rows stop halfway.
    from PIL import Image

    out = io.BytesIO()
    Image.effect_noise((1000, 1000), 64).convert("RGB").save(out, "PNG")
    whole = out.getvalue()
    idat = whole.index(b"IDAT") - 4
    length = struct.unpack(">I", whole[idat:idat + 4])[0]
    body = whole[idat + 8:idat + 8 + length][: length // 2]
    cut = whole[:idat] + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")
    assert doc_check.inspect(cut, docs.PNG, docs.MAX_PIXELS) == {"verdict": doc_check.UNREADABLE}
    assert doc_check.inspect(whole, docs.PNG, docs.MAX_PIXELS) == {"verdict": doc_check.OK, "width": 1000,
                                                                      "height": 1000}


@LANGS
async def test_a_check_past_its_budget_is_stopped_and_the_parent_told(
        kz: Kezek, world: World, chat: Chat, store: FolderDocumentStore, checker: DocumentChecker,
        lang: str) -> None:
    await referral_for(kz, world, lang=lang)
    # Some 30 seconds of CPU to decode (4000 passes over 140 000 blocks); the budget is 2.
    crafted = many_scans_jpeg(3000, 4000)
    [text] = replies(await chat.document(crafted, "scan.jpg", "image/jpeg"))
    assert text == too_complex(lang) and "\n" not in text
    assert await stored(kz) == [] and files_on_disk(store) == []
    [pid] = checker.killed  # the worker was killed at the budget ...
    await until(lambda: gone(pid), "the worker killed", 30)
    # ... and the next parent's file is checked as usual.
    [text] = replies(await chat.document(progressive(1600, 1200), "scan.jpg", "image/jpeg"))
    assert gettext(lang, "Received for application {number}: an image of {width}×{height} pixels.",
                   number=(await kz.document_targets(CHAT))[0].number, width=1600, height=1200) in text
    assert checker.started == 2 and len(checker.killed) == 1


async def test_a_worker_that_dies_is_a_clear_refusal_and_the_next_check_works(
        kz: Kezek, world: World, store: FolderDocumentStore) -> None:
    _, app_id, _ = await referral_for(kz, world)
    kz.document_checker = DocumentChecker(budget=30.0, memory_limit=64 << 20)  # too little to decode
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (7000, 7000), "white").save(out, "PNG")  # 147 MB when decoded
    with pytest.raises(docs.DocumentTooComplex):
        await kz.submit_document(CHAT, app_id, out.getvalue())
    assert await stored(kz) == []
    kz.document_checker = DocumentChecker(budget=30.0)
    received = await kz.submit_document(CHAT, app_id, image(1280, 960, "PNG"))
    assert (received.kind, received.width, received.height) == (docs.PNG, 1280, 960)


# --- the order: the cheap checks first --------------------------------------------------------------

async def test_the_eleventh_file_is_refused_before_any_decoding(
        kz: Kezek, world: World, chat: Chat, api: BotApiStandIn, store: FolderDocumentStore) -> None:
    _, app_id, _ = await referral_for(kz, world)
    for n in range(docs.MAX_FILES):
        await kz.submit_document(CHAT, app_id, pdf(1, mark=str(n)))
    started = kz.checker.started
    assert started == docs.MAX_FILES
    # The facade: the cap before the decoder.
    with pytest.raises(docs.TooManyDocuments):
        await kz.submit_document(CHAT, app_id, random_idat_png())
    # The chat: refused before the file is even downloaded.
    downloads = len(api.downloads)
    [text] = replies(await chat.document(many_scans_jpeg(1000, 50), "scan.jpg", "image/jpeg"))
    assert text == error_text("ru", docs.TooManyDocuments(max=docs.MAX_FILES))
    assert len(api.downloads) == downloads
    assert kz.checker.started == started
    assert len(await stored(kz)) == docs.MAX_FILES == len(files_on_disk(store))


async def test_a_file_from_a_chat_not_awaiting_documents_is_never_decoded(kz: Kezek, world: World) -> None:
    _, app_id, ref = await referral_for(kz, world, privilege="none")
    with pytest.raises(docs.NoDocumentsAwaited):
        await kz.submit_document(CHAT, app_id, random_idat_png())
    assert kz.checker.started == 0


# --- other work goes on -----------------------------------------------------------------------------

async def test_crafted_files_never_hold_up_charts_or_downloads(
        kz: Kezek, world: World, store: FolderDocumentStore) -> None:
    _, app_id, _ = await referral_for(kz, world)
    paper = pdf(2)
    kept = await kz.submit_document(CHAT, app_id, paper)
    # A long budget: the crafted checks are still running while the rest is served.
    checker = kz.document_checker = DocumentChecker(budget=60.0, workers=2, max_scans=10**9)
    heavy = many_scans_jpeg(3000, 4000)
    crafted = [asyncio.create_task(kz.submit_document(CHAT, app_id, heavy))
               for _ in range(8)]  # more than asyncio's default thread pool has threads here
    await until(lambda: checker.running == 2, "two checks running", 30)
    start = almaty(2026, 1, 1, 10, 0)
    points = [(start + dt.timedelta(days=9 * i), 60 - i) for i in range(30)]
    chart = asyncio.to_thread(render_history_png, points, "ru", "A00001")
    download = kz.document_file(kept.document_id)
    png, (_, data) = await asyncio.wait_for(asyncio.gather(chart, download), 60)
    assert png.startswith(PNG_SIGNATURE) and data == paper
    assert not any(task.done() for task in crafted)  # served while every crafted check waits
    assert checker.running == 2  # two at a time, the rest wait their turn
    for task in crafted:
        task.cancel()
    await asyncio.gather(*crafted, return_exceptions=True)
    await until(lambda: checker.running == 0 and all(gone(pid) for pid in checker.killed),
                "every check over and its worker gone", 30)
    assert len(checker.killed) == 2  # the two running ones, killed when the uploads were cancelled
    assert [d.id for d in await stored(kz)] == [kept.document_id] and len(files_on_disk(store)) == 1


# --- still accepted ---------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["baseline jpeg", "progressive jpeg", "png", "pdf"])
async def test_ordinary_files_are_still_accepted(kz: Kezek, world: World, store: FolderDocumentStore,
                                                 case: str) -> None:
    _, app_id, _ = await referral_for(kz, world)
    content, kind, pages = {
        "baseline jpeg": (image(1600, 1200), docs.JPEG, 1),
        "progressive jpeg": (progressive(1600, 1200), docs.JPEG, 1),
        "png": (image(1000, 1400, "PNG"), docs.PNG, 1),
        "pdf": (pdf(3), docs.PDF, 3),
    }[case]
    received = await kz.submit_document(CHAT, app_id, content)
    assert (received.kind, received.pages, received.duplicate) == (kind, pages, False)
    if kind != docs.PDF:
        from PIL import Image

        assert (received.width, received.height) == Image.open(io.BytesIO(content)).size
    [path] = files_on_disk(store)
    assert path.read_bytes() == content
    assert kz.checker.started == 1 and kz.checker.killed == []


def test_the_scans_of_a_jpeg_are_counted_without_decoding() -> None:
    assert doc_check.jpeg_scans(image(1600, 1200)) == 1
    assert 2 <= doc_check.jpeg_scans(progressive(1600, 1200)) <= 12  # libjpeg's usual progression
    assert doc_check.jpeg_scans(many_scans_jpeg(1000, 2000)) > doc_check.MAX_SCANS


def test_the_budget_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from bot.config import Settings

    assert Settings(_env_file=None).document_check_seconds == doc_check.DEFAULT_BUDGET  # type: ignore[call-arg]
    monkeypatch.setenv("KEZEK_DOCUMENT_CHECK_SECONDS", "5")
    monkeypatch.setenv("KEZEK_DOCUMENT_CHECK_WORKERS", "1")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.document_check_seconds, settings.document_check_workers) == (5.0, 1)
    for wrong in ("0", "-1"):
        monkeypatch.setenv("KEZEK_DOCUMENT_CHECK_SECONDS", wrong)
        with pytest.raises(ValidationError):
            Settings(_env_file=None)  # type: ignore[call-arg]


async def test_the_bot_checks_documents_with_the_budget_it_was_given(api: BotApiStandIn, kz: Kezek) -> None:
    from bot.bench.standin import TOKEN
    from bot.config import Settings
    from bot.telegram.runner import run

    settings = Settings(_env_file=None, bot_token=TOKEN, bot_api_url=api.base_url,  # type: ignore[call-arg]
                        document_check_seconds=3.5, document_check_workers=1)
    stop = asyncio.Event()
    serving = asyncio.create_task(run(settings, kz, handle_signals=False, stop=stop))
    await api.wait_for("getUpdates", since=0)
    checker = kz.checker
    assert (checker.budget, checker.workers, checker.max_scans) == (3.5, 1, doc_check.MAX_SCANS)
    stop.set()
    await asyncio.wait_for(serving, 20)
