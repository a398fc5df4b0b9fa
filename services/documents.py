"""Privilege documents sent in the chat: the checks, who may send, and the review queue.

After a referral obtained through a privilege, the parent sends the supporting documents in the
chat (photos, JPEG or PNG images sent as files, PDF files) until the documents deadline
(``Referral.docs_due_at``, exclusive). Before anything is kept, Kezek checks what it can:

* the type by the file's first bytes, never by its name or the MIME type the client claims:
  JPEG, PNG and PDF are accepted; HEIC, WEBP, GIF, TIFF, Word files and the rest get an answer that
  lists what is accepted;
* the size: at most ``MAX_BYTES`` (Telegram's reported size is checked before downloading, the
  real size while and after);
* an image: it opens and decodes (``Pillow``; a PNG whole, a JPEG at an eighth of its size), has at
  most ``MAX_PIXELS`` (a decompression bomb is refused before it is decoded) and is big enough to
  read: the shorter side at least ``MIN_SHORT_SIDE`` and the longer at least ``MIN_LONG_SIDE``
  pixels (a page photographed at Telegram's usual 1280 px passes; a thumbnail or a screenshot of a
  screenshot does not); a JPEG of more than ``doc_check.MAX_SCANS`` scans is refused before it is
  decoded;
* a PDF: it opens (``pypdf``), is not locked by a password, and has 1 to ``MAX_PAGES`` pages.

The cheap checks come first (the size, the type, the scans, then who may send and the
``MAX_FILES`` cap); only then is the file decoded, in a worker process killed at a time budget
(``services/doc_check.py``), never in the thread pool the rest of the bot uses. A file that cannot
be decoded within the budget is refused as too complex (``DocumentTooComplex``).

Who may send: a chat that has linked an application whose live (issued) referral awaits its
documents (docs_state pending) and whose deadline has not passed at the clock's now. A chat with
several such applications is asked which one the files are for (the bot layer's buttons; each
press is authorised here again). The same file twice for one referral is received once; at most
``MAX_FILES`` files a referral.

The operator's review (API, CLI): list the files by status, download one, and accept or reject
the referral's documents (``services.referrals.decide_documents``) with a reason code from
``REJECTION_REASONS`` (translated for the parent) and an optional note of the operator's own words,
quoted as they are. The deadline sweep is unchanged: files received but not accepted by the
deadline do not save the referral.

No aiogram here: the bot layer downloads the file and passes its bytes.

Why one module of this size: a document's path from the chat to the operator's decision
(receive, check, keep, list, decide) shares its states and limits; split, each step would
restate them."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
from dataclasses import dataclass, replace
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.exc import IntegrityError

from services import doc_check
from services.context import Ctx
from services.doc_check import DocumentChecker, run_cheap
from services.doc_storage import DocumentStore, FolderDocumentStore, new_key
from services.errors import (
    DocumentsNotPending,
    InvalidField,
    MissingField,
    NotFound,
    RuleViolation,
    ValidationError,
)
from services.facade import FacadeBase, is_row_id, linked_application
from storage.models import (
    Application,
    ChatLink,
    Document,
    Referral,
)
from storage.vocab import DocsState, DocumentStatus, ReferralStatus

log = logging.getLogger("kezek.documents")

# --- limits --------------------------------------------------------------------------------------
MAX_BYTES = 10 * 1024 * 1024  # one file
MAX_MEGABYTES = MAX_BYTES // (1024 * 1024)
MIN_SHORT_SIDE = 720  # pixels: an A4 page at ~60 dpi across, readable on a screen
MIN_LONG_SIDE = 960
MAX_PIXELS = 50_000_000  # a 50-megapixel phone photo; more is refused before decoding
MAX_PAGES = 10  # one PDF
MAX_FILES = 10  # one referral
NOTE_MAX = 500  # characters of the operator's note

DEFAULT_DIR = "data/documents"  # bot.config's KEZEK_DOCUMENTS_DIR default

# The accepted kinds and their MIME types.
JPEG, PNG, PDF = "jpeg", "png", "pdf"
MIME = {JPEG: "image/jpeg", PNG: "image/png", PDF: "application/pdf"}
EXTENSIONS = {JPEG: "jpg", PNG: "png", PDF: "pdf"}
KIND_OF_MIME = {mime: kind for kind, mime in MIME.items()}

# Why an operator rejects documents: each has a sentence for the parent in ru and kk
# (bot/delivery/notices.py). "other" needs the operator's note.
REJECTION_REASONS = ("unreadable", "wrong_document", "expired_document", "name_mismatch", "incomplete", "other")
NOTE_REQUIRED = frozenset({"other"})


# --- errors ----------------------------------------------------------------------------------------

class DocumentRefused(ValidationError):
    """A file that cannot be accepted; the parent is told why at once."""

    code = "document_refused"


class DocumentTypeRefused(DocumentRefused):
    """``kind``: what the file is (heic, webp, gif, tiff, bmp, zip, unknown)."""

    code = "document_type_refused"


class DocumentTooLarge(DocumentRefused):
    code = "document_too_large"


class ImageTooSmall(DocumentRefused):
    code = "image_too_small"


class ImageTooManyPixels(DocumentRefused):
    code = "image_too_many_pixels"


class DocumentUnreadable(DocumentRefused):
    code = "document_unreadable"


class DocumentTooComplex(DocumentRefused):
    """A file that cannot be checked within a check's time and memory (a progressive JPEG of
    very many scans; a file that takes the decoder longer than the budget)."""

    code = "document_too_complex"


class PdfEncrypted(DocumentRefused):
    code = "pdf_encrypted"


class PdfTooManyPages(DocumentRefused):
    code = "pdf_too_many_pages"


class TooManyDocuments(RuleViolation):
    code = "too_many_documents"


class DocumentsNeedLink(RuleViolation):
    """A file from a chat that has linked no application."""

    code = "documents_need_link"


class NoDocumentsAwaited(RuleViolation):
    """A file from a chat none of whose applications awaits privilege documents now."""

    code = "no_documents_awaited"


class DocumentNotFound(NotFound):
    code = "document_not_found"


# --- the checks --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CheckedFile:
    kind: str  # jpeg | png | pdf
    size: int
    sha256: str
    pages: int = 1
    width: int | None = None
    height: int | None = None

    @property
    def mime(self) -> str:
        return MIME[self.kind]


def sniff(data: bytes) -> str:
    """What the first bytes say the file is: jpeg, png, pdf, or (refused) heic, avif, webp, gif,
    tiff, bmp, zip (Word, Excel and other Office files are ZIPs), or unknown."""
    head = data[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if b"%PDF-" in data[:1024]:  # the header may follow a little junk (the PDF reference allows it)
        return PDF
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "avif"
        if brand in (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"):
            return "heic"
        return "unknown"  # a video (mp4, mov)
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if head.startswith(b"BM"):
        return "bmp"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    return "unknown"


def precheck(data: bytes, max_scans: int = doc_check.MAX_SCANS) -> CheckedFile:
    """The cheap checks, nothing decoded: the size, the type, a JPEG's scans; the digest. A
    ``DocumentRefused`` says what is wrong. Hashes up to ``MAX_BYTES``: call it off the event
    loop (``doc_check.run_cheap``)."""
    if len(data) > MAX_BYTES:
        raise DocumentTooLarge(max=MAX_MEGABYTES)
    if not data:
        raise DocumentUnreadable(kind="unknown")
    kind = sniff(data)
    if kind not in MIME:
        raise DocumentTypeRefused(kind=kind)
    if kind == JPEG and doc_check.jpeg_scans(data) > max_scans:
        raise DocumentTooComplex()
    return CheckedFile(kind, len(data), hashlib.sha256(data).hexdigest())


def conclude(checked: CheckedFile, verdict: dict[str, Any]) -> CheckedFile:
    """The file of ``precheck`` once decoded (``doc_check.inspect``'s ``verdict``): its pages or
    its size in pixels, or the ``DocumentRefused`` that says what is wrong."""
    outcome = verdict.get("verdict")
    if outcome == doc_check.TOO_MANY_PIXELS:
        raise ImageTooManyPixels(max=MAX_PIXELS // 1_000_000)
    if outcome == doc_check.ENCRYPTED:
        raise PdfEncrypted()
    if outcome == doc_check.UNREADABLE:
        raise DocumentUnreadable(kind=checked.kind)
    if outcome != doc_check.OK:
        raise DocumentTooComplex()
    if checked.kind == PDF:
        pages = int(verdict["pages"])
        if pages > MAX_PAGES:
            raise PdfTooManyPages(pages=pages, max=MAX_PAGES)
        return replace(checked, pages=pages)
    width, height = int(verdict["width"]), int(verdict["height"])
    short, long = sorted((width, height))
    if short < MIN_SHORT_SIDE or long < MIN_LONG_SIDE:
        raise ImageTooSmall(width=width, height=height, min_short=MIN_SHORT_SIDE, min_long=MIN_LONG_SIDE)
    return replace(checked, width=width, height=height)


# --- who may send ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """An application of the chat whose referral awaits its privilege documents now."""

    application_id: int
    number: str
    referral_id: int
    docs_due_at: dt.datetime
    received: int  # files received so far

    def check_room(self) -> None:
        """``TooManyDocuments`` when the referral has its ``MAX_FILES`` already: a front end asks
        before it downloads a file (the submission checks again)."""
        if self.received >= MAX_FILES:
            raise TooManyDocuments(max=MAX_FILES)


async def targets(ctx: Ctx, chat_id: int, application_id: int | None = None) -> list[Target]:
    """The chat's applications that await documents now (one, when ``application_id`` is given).

    ``DocumentsNeedLink``: the chat has linked nothing; ``NotLinked``: ``application_id`` is not
    this chat's; ``DocumentsNotPending`` (deadline_passed): the only awaited documents are late;
    ``NoDocumentsAwaited``: nothing is awaited."""
    if application_id is not None:
        await linked_application(ctx, chat_id, application_id)
    q = (select(Application.id, Application.number, Referral.id, Referral.docs_state, Referral.docs_due_at)
         .join(ChatLink, ChatLink.application_id == Application.id)
         .outerjoin(Referral, (Referral.application_id == Application.id)
                    & (Referral.status == ReferralStatus.ISSUED))
         .where(ChatLink.chat_id == chat_id).order_by(Application.number))
    if application_id is not None:
        q = q.where(Application.id == application_id)
    rows = (await ctx.session.execute(q)).all()
    if not rows:
        raise DocumentsNeedLink()
    waiting = [(app_id, number, ref_id, due) for app_id, number, ref_id, docs_state, due in rows
               if ref_id is not None and docs_state == DocsState.PENDING and due is not None]
    live = [w for w in waiting if ctx.now < w[3]]
    if not live:
        if waiting:
            raise DocumentsNotPending(state="deadline_passed", due_at=max(w[3] for w in waiting).isoformat())
        raise NoDocumentsAwaited()
    counts = dict((await ctx.session.execute(
        select(Document.referral_id, func.count()).where(Document.referral_id.in_([r[2] for r in live]))
        .group_by(Document.referral_id))).all())
    return [Target(app_id, number, ref_id, due, int(counts.get(ref_id, 0)))
            for app_id, number, ref_id, due in live]


@dataclass(frozen=True)
class Received:
    """What the parent is told after a file was taken (or recognised as already received)."""

    document_id: int
    application_number: str
    referral_id: int
    kind: str
    pages: int
    width: int | None
    height: int | None
    count: int  # files received for the referral, this one included
    docs_due_at: dt.datetime
    now: dt.datetime
    duplicate: bool = False


async def _live_referral(ctx: Ctx, chat_id: int, application_id: int) -> tuple[Application, Referral]:
    app = await linked_application(ctx, chat_id, application_id)
    q = select(Referral).where(Referral.application_id == app.id, Referral.status == ReferralStatus.ISSUED)
    if ctx.is_postgres:
        q = q.with_for_update()
    ref = (await ctx.session.execute(q)).scalar_one_or_none()
    if ref is None or ref.docs_state != DocsState.PENDING or ref.docs_due_at is None:
        raise NoDocumentsAwaited()
    if ctx.now >= ref.docs_due_at:
        raise DocumentsNotPending(state="deadline_passed", due_at=ref.docs_due_at.isoformat())
    return app, ref


async def _count(ctx: Ctx, referral_id: int) -> int:
    return int((await ctx.session.execute(
        select(func.count()).select_from(Document).where(Document.referral_id == referral_id))).scalar_one())


async def _received_before(ctx: Ctx, app: Application, ref: Referral, checked: CheckedFile) -> Received | None:
    """The answer for a file the referral already has, None for a new one it may still take
    (``TooManyDocuments`` when it is full)."""
    doc = (await ctx.session.execute(select(Document).where(
        Document.referral_id == ref.id, Document.sha256 == checked.sha256))).scalar_one_or_none()
    count = await _count(ctx, ref.id)
    if doc is not None:
        assert ref.docs_due_at is not None
        return Received(doc.id, app.number, ref.id, checked.kind, doc.pages, doc.width, doc.height, count,
                        ref.docs_due_at, ctx.now, duplicate=True)
    if count >= MAX_FILES:
        raise TooManyDocuments(max=MAX_FILES)
    return None


async def already_received(ctx: Ctx, chat_id: int, application_id: int, checked: CheckedFile) -> Received | None:
    """The rules of ``record`` without writing: the answer for a file already received, None for
    a new one (which may be recorded), or the error ``record`` would raise."""
    app, ref = await _live_referral(ctx, chat_id, application_id)
    return await _received_before(ctx, app, ref, checked)


async def record(ctx: Ctx, chat_id: int, application_id: int, checked: CheckedFile, key: str) -> Received:
    """Record a checked file kept under ``key`` for the application's referral."""
    app, ref = await _live_referral(ctx, chat_id, application_id)
    seen = await _received_before(ctx, app, ref, checked)
    if seen is not None:
        return seen
    assert ref.docs_due_at is not None
    doc = Document(referral_id=ref.id, application_id=app.id, chat_id=chat_id, storage_key=key,
                   mime=checked.mime, size=checked.size, pages=checked.pages, width=checked.width,
                   height=checked.height, sha256=checked.sha256, status=DocumentStatus.PENDING,
                   received_at=ctx.now)
    ctx.session.add(doc)
    await ctx.session.flush()
    count = await _count(ctx, ref.id)
    ctx.audit("documents.upload", "referral", ref.id, application_id=app.id, document_id=doc.id,
              mime=checked.mime, size=checked.size, pages=checked.pages, sha256=checked.sha256)
    log.info("document %s received for referral %s: %s, %d page(s), %d bytes", doc.id, ref.id, checked.kind,
             checked.pages, checked.size)
    return Received(doc.id, app.number, ref.id, checked.kind, checked.pages, checked.width, checked.height,
                    count, ref.docs_due_at, ctx.now)


# --- the operator's side ---------------------------------------------------------------------------

def parse_status(value: object) -> str | None:
    """A status filter: one of ``DocumentStatus.ALL``, or "all" / empty (None: every status)."""
    if value is None or value == "" or value == "all":
        return None
    if not isinstance(value, str) or value not in DocumentStatus.ALL:
        raise InvalidField(field="status", reason="choice", options=", ".join((*DocumentStatus.ALL, "all")))
    return value


def parse_rejection(reason: object, note: object) -> tuple[str | None, str | None]:
    """The reason code (one of ``REJECTION_REASONS``, or None) and the operator's note (stripped,
    at most ``NOTE_MAX`` characters, or None) of a rejection."""
    code: str | None = None
    if reason is not None and reason != "":
        if not isinstance(reason, str) or reason not in REJECTION_REASONS:
            raise InvalidField(field="reason", reason="choice", options=", ".join(REJECTION_REASONS))
        code = reason
    text: str | None = None
    if note is not None:
        if not isinstance(note, str):
            raise InvalidField(field="note", reason="type")
        text = " ".join(note.split())  # one line: newlines and tabs become spaces
        if not text:
            text = None
        elif any(ord(c) < 32 or 0x7f <= ord(c) < 0xa0 or 0xd800 <= ord(c) < 0xe000 for c in text):
            raise InvalidField(field="note", reason="characters")
        elif len(text) > NOTE_MAX:
            raise InvalidField(field="note", reason="too_long", max=NOTE_MAX)
    if text is not None and code is None:
        code = "other"
    if code in NOTE_REQUIRED and text is None:
        raise MissingField(field="note")
    return code, text


@dataclass(frozen=True)
class DocumentInfo:
    id: int
    referral_id: int
    application: str  # the application number
    status: str
    mime: str
    size: int
    pages: int
    width: int | None
    height: int | None
    sha256: str
    received_at: dt.datetime
    docs_due_at: dt.datetime | None
    decided_at: dt.datetime | None
    reason: str | None
    note: str | None
    storage_key: str

    @property
    def filename(self) -> str:
        kind = KIND_OF_MIME.get(self.mime, "")
        return f"kezek-document-{self.id}.{EXTENSIONS.get(kind, 'bin')}"

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "referral": self.referral_id, "application": self.application,
                "status": self.status, "mime": self.mime, "size": self.size, "pages": self.pages,
                "width": self.width, "height": self.height, "sha256": self.sha256,
                "received_at": self.received_at, "due": self.docs_due_at, "decided_at": self.decided_at,
                "reason": self.reason, "note": self.note}


_INFO = (select(Document, Application.number, Referral.docs_due_at)
         .join(Application, Application.id == Document.application_id)
         .join(Referral, Referral.id == Document.referral_id))


def _info(doc: Document, number: str, due: dt.datetime | None) -> DocumentInfo:
    return DocumentInfo(doc.id, doc.referral_id, number, doc.status, doc.mime, doc.size, doc.pages, doc.width,
                        doc.height, doc.sha256, doc.received_at, due, doc.decided_at, doc.reason, doc.note,
                        doc.storage_key)


async def list_documents(ctx: Ctx, status: str | None, referral_id: int | None = None,
                         limit: int = 500) -> list[DocumentInfo]:
    """The review queue: documents of ``status`` (None: all), oldest first."""
    q = _INFO.order_by(Document.received_at, Document.id).limit(limit)
    if status is not None:
        q = q.where(Document.status == status)
    if referral_id is not None:
        q = q.where(Document.referral_id == referral_id)
    return [_info(*row) for row in (await ctx.session.execute(q)).all()]


async def document_info(ctx: Ctx, document_id: int) -> DocumentInfo:
    if not is_row_id(document_id):
        raise DocumentNotFound()
    row = (await ctx.session.execute(_INFO.where(Document.id == document_id))).one_or_none()
    if row is None:
        raise DocumentNotFound()
    return _info(*row)


async def close_documents(ctx: Ctx, referral_id: int, status: str, at: dt.datetime,
                          reason: str | None = None, note: str | None = None) -> int:
    """The decision on a referral's pending documents (accepted, rejected, or closed by a deadline)."""
    res = cast(CursorResult[Any], await ctx.session.execute(
        update(Document).where(Document.referral_id == referral_id, Document.status == DocumentStatus.PENDING)
        .values(status=status, decided_at=at, reason=reason, note=note).execution_options(synchronize_session=False)))
    return int(res.rowcount or 0)


# --- the facade ------------------------------------------------------------------------------------

class DocumentsFacade(FacadeBase):
    """Documents from the chat and the operator's review queue. ``document_store``: where the
    files are kept (``bot.config``'s KEZEK_DOCUMENTS_DIR; a folder under ``DEFAULT_DIR`` when
    none was given); ``document_checker``: how files are decoded (``bot.config``'s
    KEZEK_DOCUMENT_CHECK_SECONDS and KEZEK_DOCUMENT_CHECK_WORKERS; the defaults of
    ``DocumentChecker`` when none was given)."""

    document_store: DocumentStore | None = None
    document_checker: DocumentChecker | None = None

    @property
    def documents(self) -> DocumentStore:
        if self.document_store is None:
            self.document_store = FolderDocumentStore(DEFAULT_DIR)
        return self.document_store

    @property
    def checker(self) -> DocumentChecker:
        if self.document_checker is None:
            self.document_checker = DocumentChecker()
        return self.document_checker

    async def document_targets(self, chat_id: int, application_id: int | None = None) -> list[Target]:
        async with self.reading(with_calendar=False, small=True) as ctx:
            return await targets(ctx, chat_id, application_id)

    async def submit_document(self, chat_id: int, application_id: int, data: bytes) -> Received:
        """Check ``data``, keep it and record it for the application's referral; a
        ``KezekError`` (nothing kept) says why not. Every cheap check (the size and type, who may
        send, the ``MAX_FILES`` cap, a file already received) comes before the file is decoded."""
        checker = self.checker
        checked = await run_cheap(precheck, data, checker.max_scans)
        async with self.reading(with_calendar=False, small=True) as ctx:
            seen = await already_received(ctx, chat_id, application_id, checked)
        if seen is not None:
            return seen
        checked = conclude(checked, await checker.decode(data, checked.kind, MAX_PIXELS))
        # The file first, outside the transaction (no disk I/O under SQLite's write lock); the row
        # after. A refused or failed row takes the file away again.
        store, key = self.documents, new_key()
        await asyncio.to_thread(store.put, key, data)
        try:
            async with self.unit("telegram", with_calendar=False) as ctx:
                received = await record(ctx, chat_id, application_id, checked, key)
        except IntegrityError:
            # The same file arrived twice at once: the other upload recorded it.
            await asyncio.to_thread(store.delete, key)
            async with self.reading(with_calendar=False, small=True) as ctx:
                seen = await already_received(ctx, chat_id, application_id, checked)
            if seen is None:
                raise
            return seen
        except BaseException:
            await asyncio.to_thread(store.delete, key)
            raise
        if received.duplicate:
            await asyncio.to_thread(store.delete, key)
        return received

    async def review_documents(self, status: object = DocumentStatus.PENDING, referral_id: int | None = None,
                               limit: int = 500) -> list[DocumentInfo]:
        wanted = parse_status(status)
        async with self.reading(with_calendar=False) as ctx:
            return await list_documents(ctx, wanted, referral_id, limit)

    async def document_file(self, document_id: int) -> tuple[DocumentInfo, bytes]:
        """A document and its bytes (``DocumentNotFound``; ``DocumentStoreError`` when the store
        has lost the file)."""
        async with self.reading(with_calendar=False) as ctx:
            info = await document_info(ctx, document_id)
        return info, await asyncio.to_thread(self.documents.get, info.storage_key)
