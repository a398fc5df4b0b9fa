"""The referral as a PDF (fpdf2): one A4 page per language, with the referral's facts and a QR
code (segno) carrying its signed token (``services.referral_check``).

Telegram gets the page in the chat's language; the e-mail copy, like its text, gets both (Kazakh
first, then Russian) in one file. The font is DejaVu Sans from matplotlib's own data (already a
dependency): it has every letter of the Kazakh alphabet (Ә Ғ Қ Ң Ө Ұ Ү Һ І), and fpdf2 embeds
the subset the page uses with a ToUnicode map, so the text can be searched and copied.

The PDF holds no personal data beyond the page itself (the child's masked IIN) and no moment but
the referral's own: its creation date is the referral's issue date, so the same referral always
makes the same document."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from locales import DEFAULT_LANGUAGE, gettext, normalize_language
from locales.formats import format_date, format_deadline
from locales.names import annul_reason, language_name
from services import referral_check as rc
from services.errors import ReferralNotFound
from services.notices import NoticeAttachment, spec_of
from services.notifications import Attachment, Notice
from services.referral_check import ReferralDocument, ReferralFacts, Verdict

if TYPE_CHECKING:  # fpdf2 and segno (and numpy, which fpdf2 loads) are imported on the first PDF
    from fpdf import FPDF

log = logging.getLogger("kezek.referral_pdf")

PDF_TYPE = "application/pdf"
LABEL_WIDTH = 68.0  # mm
QR_SIZE = 46.0  # mm: a phone reads it from arm's length, and a worn print still scans
VERIFY_COMMAND = "kezek referrals verify"
VERIFY_PATH = "GET /api/v1/referrals/verify?token="


@lru_cache(maxsize=1)
def font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def _fonts(pdf: FPDF) -> None:
    ttf = font_dir()
    pdf.add_font("DejaVu", "", str(ttf / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(ttf / "DejaVuSans-Bold.ttf"))
    pdf.add_font("DejaVuMono", "", str(ttf / "DejaVuSansMono.ttf"))


def qr_png(token: str) -> bytes:
    """The QR code of ``token`` as a PNG: error correction M, the standard 4-module quiet zone."""
    import segno

    out = io.BytesIO()
    segno.make(token, error="m", micro=False).save(out, kind="png", scale=10, border=4)
    return out.getvalue()


def page_lines(lang: str, facts: ReferralFacts) -> list[tuple[str, str]]:
    """The (label, value) rows of a page: what the parent and the kindergarten read."""
    kg = facts.kindergarten
    rows = [
        (gettext(lang, "Referral number"), str(facts.referral_id)),
        (gettext(lang, "Application"), facts.application),
        (gettext(lang, "Child's IIN"), facts.child_iin_masked),
        (gettext(lang, "Kindergarten"), kg.name(lang)),
        (gettext(lang, "Address"), kg.address or "—"),
        (gettext(lang, "Group"), facts.group_name or "—"),
        (gettext(lang, "Language of the group"), language_name(lang, facts.group_language)),
        (gettext(lang, "Children born in"), str(facts.birth_year)),
        (gettext(lang, "Issued on"), format_date(lang, facts.issued_at, formal=True)),
        (gettext(lang, "Referral valid until"), format_deadline(lang, facts.valid_until, zone="utc", formal=True)),
    ]
    if facts.docs_due_at is not None:  # (the page may be read abroad: each deadline with its offset)
        rows.append((gettext(lang, "Privilege documents due by"),
                     format_deadline(lang, facts.docs_due_at, zone="utc", formal=True)))
    return rows


def verdict_text(lang: str, verdict: Verdict) -> str:
    """What the kindergarten is told about a checked token, in one or two sentences."""
    facts = verdict.facts
    if verdict.state == rc.REFUSED or facts is None:
        return gettext(lang, "This code is not a genuine Kezek referral: it is forged, altered or incomplete. "
                             "Do not admit the child on it; ask the parent for the referral from the Kezek "
                             "bot or the e-mail.")
    number = facts.referral_id
    if verdict.state == rc.VALID:
        text = gettext(lang, "Genuine referral № {id}, valid until {due}: the child may be admitted.",
                       id=number, due=format_deadline(lang, facts.valid_until, zone="local"))
        if facts.docs_due_at is not None and facts.docs_state == "pending":
            text += " " + gettext(lang, "The privilege documents are still awaited (due by {due}): the child "
                                        "can be admitted once they are accepted.",
                                  due=format_deadline(lang, facts.docs_due_at))
        return text
    if verdict.state == rc.ADMITTED:
        return gettext(lang, "Genuine referral № {id}, but already used: the child was admitted on {date}.",
                       id=number, date=format_date(lang, facts.closed_at or facts.issued_at))
    if verdict.state == rc.ANNULLED:
        return gettext(lang, "Genuine referral № {id}, but annulled on {date}: {reason}. The child cannot be "
                             "admitted on it.", id=number,
                       date=format_date(lang, facts.closed_at or facts.valid_until),
                       reason=annul_reason(lang, facts.annul_reason))
    passed = facts.docs_due_at if facts.docs_state == "pending" and facts.docs_due_at else facts.valid_until
    return gettext(lang, "Genuine referral № {id}, but no longer valid: its deadline passed ({due}). The "
                         "child cannot be admitted on it.", id=number,
                   due=format_deadline(lang, passed, zone="local"))


def _row(pdf: FPDF, label: str, value: str) -> None:
    top = pdf.get_y()
    pdf.set_font("DejaVu", "", 10)
    pdf.set_text_color(90, 90, 90)
    pdf.multi_cell(LABEL_WIDTH, 6, label, new_x="LMARGIN", new_y="NEXT", align="L")
    below_label = pdf.get_y()
    pdf.set_xy(pdf.l_margin + LABEL_WIDTH, top)
    pdf.set_font("DejaVu", "B", 11)
    pdf.set_text_color(0, 0, 0)
    pdf.multi_cell(0, 6, value, new_x="LMARGIN", new_y="NEXT", align="L")
    pdf.set_y(max(below_label, pdf.get_y()) + 1.5)


def _page(pdf: FPDF, lang: str, document: ReferralDocument, qr: bytes) -> None:
    facts = document.facts
    pdf.add_page()
    pdf.set_font("DejaVu", "", 9)
    pdf.set_text_color(90, 90, 90)
    pdf.multi_cell(0, 5, gettext(lang, "Kezek: the electronic queue to kindergartens"),
                   new_x="LMARGIN", new_y="NEXT", align="L")
    pdf.ln(2)
    pdf.set_font("DejaVu", "B", 17)
    pdf.set_text_color(0, 0, 0)
    pdf.multi_cell(0, 8, gettext(lang, "Referral to a kindergarten"), new_x="LMARGIN", new_y="NEXT", align="L")
    pdf.ln(4)
    for label, value in page_lines(lang, facts):
        _row(pdf, label, value)
    pdf.ln(2)
    pdf.set_font("DejaVu", "", 10.5)
    pdf.multi_cell(0, 5.5, gettext(lang, "Take it to the kindergarten by {due}, or it is annulled.",
                                   due=format_deadline(lang, facts.valid_until, zone="utc", formal=True)),
                   new_x="LMARGIN", new_y="NEXT", align="L")
    if facts.docs_due_at is not None:
        pdf.multi_cell(0, 5.5, gettext(lang, "Privilege documents are due by {due}.",
                                       due=format_deadline(lang, facts.docs_due_at, formal=True)),
                       new_x="LMARGIN", new_y="NEXT", align="L")
    pdf.ln(6)

    # The QR code on the left, how to check it on the right.
    top = pdf.get_y()
    pdf.image(io.BytesIO(qr), x=pdf.l_margin, y=top, w=QR_SIZE, h=QR_SIZE,
              alt_text=gettext(lang, "Verification code"))
    text_x = pdf.l_margin + QR_SIZE + 6
    width = pdf.w - pdf.r_margin - text_x

    def beside(height: float, text: str, font: tuple[str, str, float]) -> None:
        pdf.set_font(*font)
        pdf.set_x(text_x)
        pdf.multi_cell(width, height, text, new_x="LMARGIN", new_y="NEXT", align="L")

    pdf.set_y(top + 1)
    # Translators: the placeholder for the verification code in a command, in capitals (ru, kk: КОД).
    code = gettext(lang, "CODE")
    beside(6, gettext(lang, "For the kindergarten: check this referral"), ("DejaVu", "B", 11))
    if document.page:  # the public page: a phone's camera is all the kindergarten needs
        beside(5, gettext(
            lang, "Scan the QR code with a phone's camera: the page that opens says whether the referral "
                  "is genuine and still valid, already used or annulled. Without a camera, open {page} "
                  "and type the verification code below.", page=document.page), ("DejaVu", "", 9.5))
    else:
        beside(5, gettext(
            lang, "Scan the QR code or type the verification code below, then check it with the command "
                  "{command} or in the Kezek API: {request}. The answer says whether the referral is "
                  "genuine and still valid, already used or annulled.",
            command=f"«{VERIFY_COMMAND} {code}»", request=f"{VERIFY_PATH}{code}"), ("DejaVu", "", 9.5))
    pdf.ln(2)
    beside(5, gettext(lang, "Verification code"), ("DejaVu", "", 9))
    beside(6, document.short or document.token, ("DejaVuMono", "", 12))
    pdf.set_y(max(pdf.get_y(), top + QR_SIZE) + 8)

    pdf.set_font("DejaVu", "", 8.5)
    pdf.set_text_color(90, 90, 90)
    pdf.multi_cell(0, 4.5, gettext(lang, "This referral was made by Kezek automatically. Only its check "
                                         "(the QR code) proves that it is genuine and still valid."),
                   new_x="LMARGIN", new_y="NEXT", align="L")


def referral_pdf(document: ReferralDocument, langs: Sequence[str]) -> bytes:
    """The referral's PDF: one page per language of ``langs``, in that order."""
    langs = [normalize_language(lang) for lang in langs] or [DEFAULT_LANGUAGE]
    from fpdf import FPDF

    pdf = FPDF(format="A4", unit="mm")
    pdf.set_margins(20, 18, 20)
    pdf.set_auto_page_break(True, margin=15)
    _fonts(pdf)
    first = langs[0]
    pdf.set_lang(first)
    pdf.set_title(" / ".join(gettext(lang, "Referral to a kindergarten") for lang in langs)
                  + f" № {document.facts.referral_id}")
    pdf.set_author("Kezek")
    pdf.set_creator("Kezek")
    pdf.set_creation_date(document.facts.issued_at)
    qr = qr_png(document.qr_content)
    for lang in langs:
        _page(pdf, lang, document, qr)
    return bytes(pdf.output())


def file_name(referral_id: int, langs: Sequence[str]) -> str:
    suffix = "" if len(langs) != 1 else f"-{langs[0]}"
    return f"kezek-referral-{referral_id}{suffix}.pdf"


async def referral_attachment(document: ReferralDocument, langs: Sequence[str]) -> Attachment:
    """The PDF made in a worker thread (fpdf2 is CPU work: a tenth of a second or two)."""
    content = await asyncio.to_thread(referral_pdf, document, langs)
    return Attachment(file_name(document.facts.referral_id, langs), content, PDF_TYPE)


DocumentSource = Callable[[int], Awaitable[ReferralDocument]]
Attachments = Callable[[Notice], Awaitable[list[Attachment]]]


def notice_attachments(documents: DocumentSource, langs: Sequence[str] | None = None) -> Attachments:
    """What goes with a notice: the referral's PDF with a kind whose ``attachment`` is
    ``REFERRAL_PDF`` (services.notices.KINDS: "referral issued"), nothing otherwise.

    ``langs``: the pages (None: the notice's language, for a chat). Reading the referral may fail
    like any read (the database away): the error goes up and the delivery is retried. A PDF that
    cannot be *made* (a bug) must not cost the parent the notice: it is logged and the notice goes
    without it; the kindergarten can still check the referral by its number."""

    async def attachments(notice: Notice) -> list[Attachment]:
        spec = spec_of(notice.kind)
        if spec is None or spec.attachment is not NoticeAttachment.REFERRAL_PDF \
                or not notice.payload.get("referral_id"):
            return []
        referral_id = int(notice.payload["referral_id"])
        try:
            document = await documents(referral_id)
        except ReferralNotFound:
            log.error("referral %s of delivery %s: not found, sent without its PDF", referral_id,
                      notice.delivery_id)
            return []
        try:
            return [await referral_attachment(document, langs or (notice.lang,))]
        except Exception as exc:  # noqa: BLE001 - the notice goes on without the PDF
            log.error("referral %s: the PDF could not be made (%s); sent without it", referral_id,
                      type(exc).__name__)
            return []

    return attachments
