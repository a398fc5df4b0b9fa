"""Privilege documents as a parent sends them: the files (images, PDFs, their QR codes read back),
the parent's chat through the real Dispatcher and the Bot API stand-in (getFile and the file
server: ``bot/bench/standin.py``), and a referral awaiting its documents."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from aiogram import Bot, Dispatcher
from sqlalchemy import select

from bot.bench.standin import BotApiStandIn, Call
from services.doc_storage import FolderDocumentStore
from services.kezek import Kezek
from storage.models import Document, Referral
from tests.support.world import World, link

CHAT = 5005  # the parent's chat
OTHER = 6006  # another parent's


# --- files to send ------------------------------------------------------------------------------------

def image(width: int, height: int, fmt: str = "JPEG", mark: str = "") -> bytes:
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(im)
    for y in range(10, height, 60):
        draw.text((20, y), f"Справка о праве на льготу {mark}", fill="black")
    out = io.BytesIO()
    im.save(out, fmt)
    return out.getvalue()


def pdf(pages: int = 1, mark: str = "") -> bytes:
    from fpdf import FPDF

    doc = FPDF()
    for page in range(pages):
        doc.add_page()
        doc.set_font("helvetica", size=12)
        doc.cell(text=f"Certificate {mark} page {page + 1}")
    return bytes(doc.output())


def qr_tokens(data: bytes) -> list[str]:
    """What the QR code of each page of a PDF says: the embedded image, decoded with zxing-cpp."""
    import zxingcpp
    from pypdf import PdfReader

    found = []
    for page in PdfReader(io.BytesIO(data)).pages:
        for image in page.images:
            found += [code.text for code in zxingcpp.read_barcodes(image.image)
                      if code.format == zxingcpp.BarcodeFormat.QRCode]
    return found


# --- the parent's chat ----------------------------------------------------------------------------

class Chat:
    """One parent's chat: updates go into the real Dispatcher, answers come back from the stand-in."""

    def __init__(self, dp: Dispatcher, bot: Bot, api: BotApiStandIn, chat_id: int = CHAT) -> None:
        self.dp, self.bot, self.api, self.chat_id = dp, bot, api, chat_id

    async def feed(self, update: dict[str, Any]) -> list[Call]:
        mark = self.api.mark()
        await self.dp.feed_raw_update(self.bot, update)
        return [c for c in self.api.calls[mark:] if c.method not in ("getFile",)]

    async def photo(self, content: bytes, width: int, height: int) -> list[Call]:
        return await self.feed(self.api.send_photo(self.chat_id, content, width, height, deliver=False))

    async def document(self, content: bytes, name: str, mime: str | None = None, size: int | None = None) -> list[Call]:
        return await self.feed(self.api.send_document(self.chat_id, content, name, mime, size=size, deliver=False))

    async def press(self, data: str) -> list[Call]:
        return await self.feed(self.api.press(self.chat_id, data, deliver=False))

    async def text(self, text: str) -> list[Call]:
        return await self.feed(self.api.send_text(self.chat_id, text, deliver=False))


def replies(calls: list[Call]) -> list[str]:
    """The texts of the messages the bot sent."""
    return [c.text or "" for c in calls if c.method == "sendMessage"]


def alerts(calls: list[Call]) -> list[str]:
    """The texts of the answers to button presses."""
    return [c.params.get("text", "") for c in calls if c.method == "answerCallbackQuery"]


async def referral_for(kz: Kezek, world: World, chat_id: int = CHAT, lang: str = "ru",
                       privilege: str = "first") -> tuple[dict[str, Any], int, Referral]:
    """An application of ``chat_id`` (in ``lang``) holding a referral; a privileged one awaits its
    documents (due by 15 September 2026, 00:00 Almaty: five working days after Monday the 7th)."""
    row = world.row(privilege=privilege)
    await world.apps(row)
    app_id = await link(kz, row, chat_id)
    await kz.set_chat_language(chat_id, lang)
    pub = await world.publish(1)
    seat = next(s for _, s, n in pub.offers if n == row["number"])
    [ref] = await kz.claim(row["number"], seat, confirmed_by=f"telegram:{chat_id}")
    return row, app_id, ref


async def stored(kz: Kezek) -> list[Document]:
    """The documents kept, in the order they came."""
    async with kz.reading(with_calendar=False) as ctx:
        return list((await ctx.session.execute(select(Document).order_by(Document.id))).scalars())


def files_on_disk(store: FolderDocumentStore) -> list[Path]:
    return sorted(p for p in store.root.rglob("*") if p.is_file()) if store.root.exists() else []
