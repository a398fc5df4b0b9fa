"""The words of each notice: a Telegram message in the chat's language (with a button where the
parent has something to do) and an e-mail copy in Kazakh and Russian (text and HTML from the
Jinja2 templates in bot/delivery/templates/email).

Every ``NoticeKind`` has a renderer (``RENDERERS``) and a subject (``SUBJECTS``): this module does
not import while one is missing. What is a property of the kind rather than a text (the button,
what the e-mail asks the parent to do in the bot, the deadlines of the details) is read from
``services.notices.KINDS``; the words for those properties are here.

Why one module of this size: the words of every notice kind sit in one table that its import
checks against services.notices.KINDS; split by kind, nothing would hold them together."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jinja2
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.callbacks import SeatsCallback
from locales import LANGUAGES, N_, gettext, ngettext
from locales.formats import format_datetime, format_deadline, format_number, parse_moment
from locales.names import annul_reason, language_name
from services.email import EmailContent
from services.notices import (
    CODE_KINDS,
    KINDS,
    BotAction,
    Deadline,
    NoticeKind,
    kind_of,
    require_every,
)
from services.notifications import EMAIL, Attachment, Notice

LANGS_IN_EMAIL = ("kk", "ru")
MISSING = "—"  # a value the notice does not have, in its words


@dataclass(frozen=True)
class Rendered:
    text: str
    markup: InlineKeyboardMarkup | None = None


def _zone(n: Notice) -> str:
    """How a notice's deadlines say their zone: with the offset in an e-mail, which may be read
    abroad; as Astana time in a chat."""
    return "utc" if n.channel == EMAIL else "local"


def _deadline(lang: str, value: Any, zone: str | None = None) -> str:
    moment = parse_moment(value) if value else None
    return format_deadline(lang, moment, zone=zone) if moment is not None else MISSING


def _kg(lang: str, n: Notice) -> str:
    return n.kindergarten.name(lang) if n.kindergarten is not None else MISSING


def _app(lang: str, n: Notice) -> str:
    return gettext(lang, "application {number} (child's IIN {iin})", number=n.number or MISSING,
                   iin=n.child_iin_masked or MISSING)


def _seats_button(lang: str, n: Notice, label: str) -> InlineKeyboardMarkup | None:
    if n.application_id is None:
        return None
    builder = InlineKeyboardBuilder()
    builder.button(text=gettext(lang, label), callback_data=SeatsCallback(app=n.application_id))
    return builder.as_markup()


def _reason(lang: str, n: Notice) -> str:
    return annul_reason(lang, n.payload.get("reason"))


# Why an operator rejected privilege documents (services/documents.py's REJECTION_REASONS).
REJECTION_REASONS = {
    "unreadable": N_("the files cannot be read: blurred, cut off or too dark"),
    "wrong_document": N_("the files are not documents that confirm the privilege"),
    "expired_document": N_("the document has expired"),
    "name_mismatch": N_("the name or the IIN in the document does not match the application"),
    "incomplete": N_("pages or documents are missing"),
    "other": N_("another reason, see the operator's comment"),
}


def rejection_text(lang: str, code: str | None) -> str | None:
    msgid = REJECTION_REASONS.get(str(code))
    return gettext(lang, msgid) if msgid else None


def _privilege_dropped(lang: str, n: Notice) -> str:
    lines = [gettext(lang, "{application}: {reason}, so the referral has been annulled and the child has moved "
                           "to the general queue.", application=_app(lang, n), reason=_reason(lang, n))]
    why = rejection_text(lang, n.payload.get("rejection"))
    if why:
        lines.append(gettext(lang, "Reason: {reason}.", reason=why))
    note = n.payload.get("note")
    if isinstance(note, str) and note.strip():
        lines.append(gettext(lang, "The operator's comment: «{note}»", note=note.strip()))
    return "\n".join(lines)


def _turn_came(lang: str, n: Notice) -> str:
    text = gettext(lang, "Your turn has come! A seat at {kindergarten} is offered to {application}. "
                         "Claim it by {until}, or it goes to everyone.",
                   kindergarten=_kg(lang, n), application=_app(lang, n),
                   until=_deadline(lang, n.payload.get("expires_at"), _zone(n)))
    if n.payload.get("batch"):
        text += "\n" + gettext(lang, "Twins are placed together: one claim takes the seats for all of them.")
    return text


def _seats_open(lang: str, n: Notice) -> str:
    count = int(n.payload.get("seats") or 0)
    return ngettext(
        lang, "{count} seat for your child's birth year is now open to everyone ({application}). "
              "The first to claim it gets it.",
        "{count} seats for your child's birth year are now open to everyone ({application}). "
        "The first to claim them get them.", count, count=format_number(lang, count),
        application=_app(lang, n))


def _referral_issued(lang: str, n: Notice) -> str:
    lines = [gettext(lang, "A referral to {kindergarten} has been issued for {application}.",
                     kindergarten=_kg(lang, n), application=_app(lang, n))]
    if n.group_name:
        lines.append(gettext(lang, "Group: {group}", group=n.group_name))
    lines.append(gettext(lang, "Take it to the kindergarten by {due}, or it is annulled.",
                         due=_deadline(lang, n.payload.get("showup_due_at"), _zone(n))))
    if n.payload.get("docs_due_at"):  # (the zone was said in the line above)
        lines.append(gettext(lang, "Privilege documents are due by {due}.",
                             due=_deadline(lang, n.payload.get("docs_due_at"))))
    return "\n".join(lines)


def _annulled(lang: str, n: Notice) -> str:
    text = gettext(lang, "The referral of {application} has been annulled: {reason}. The child is back "
                         "in the queue at the old place.", application=_app(lang, n), reason=_reason(lang, n))
    if n.payload.get("stoplist_until"):
        text += "\n" + gettext(lang, "Until {until} no new seat can be offered (stop-list).",
                               until=_deadline(lang, n.payload.get("stoplist_until"), _zone(n)))
    return text


Renderer = Callable[[str, Notice], str]  # (language, notice) -> the message's text


def _simple(msgid: str, **fields: Callable[[str, Notice], str]) -> Renderer:
    def render(lang: str, n: Notice) -> str:
        return gettext(lang, msgid, application=_app(lang, n), **{k: f(lang, n) for k, f in fields.items()})
    return render


def _payload_deadline(key: str) -> Callable[[str, Notice], str]:
    return lambda lang, n: _deadline(lang, n.payload.get(key), _zone(n))


def _code(lang: str, n: Notice) -> str:
    return str(n.payload.get("code", ""))


def _delta(lang: str, n: Notice) -> str:
    before, now = n.payload.get("previous"), n.payload.get("number")
    try:
        moved = int(before) - int(now)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""
    if moved > 0:
        return ngettext(lang, "{count} place closer", "{count} places closer", moved,
                             count=format_number(lang, moved))
    return ngettext(lang, "{count} place further", "{count} places further", -moved,
                         count=format_number(lang, -moved))


def _queue_number(lang: str, n: Notice) -> str:
    """The new number as every other message shows one ("1 234", not "1234")."""
    try:
        return format_number(lang, int(n.payload["number"]))
    except (KeyError, TypeError, ValueError):
        return MISSING


def _district(lang: str, n: Notice) -> str:
    name = n.extra.get("district_kk" if lang == "kk" else "district_ru") or n.extra.get("district_ru")
    return str(name) if name else MISSING


def _staff_invite(lang: str, n: Notice) -> str:
    """An operator's invitation to act for a kindergarten in the bot (services/staff.py): the link
    (``extra["link"]``, added by the e-mail port), else the command with the code."""
    kindergarten = n.kindergarten.name(lang) if n.kindergarten is not None else ""
    lines = [gettext(lang, "You are invited to act for the kindergarten in the Kezek bot: {kindergarten}. "
                           "As its staff you will see its referrals in full and record the children's "
                           "arrival.", kindergarten=kindergarten)]
    link = n.extra.get("link")
    if link:
        lines.append(gettext(lang, "Open this link on the phone where you use Telegram: {link}", link=link))
    else:
        lines.append(gettext(lang, "Open the Kezek bot in Telegram and send: /start {code}",
                             code=str(n.payload.get("code", ""))))
    lines.append(gettext(lang, "The invitation works once, until {until}. If you did not expect it, ignore this "
                               "e-mail.", until=_deadline(lang, n.payload.get("expires_at"), _zone(n))))
    return "\n".join(lines)


def _staff_digest(lang: str, n: Notice) -> str:
    """A working morning's digest for a kindergarten's staff member (services/staff.py)."""
    kindergarten = n.kindergarten.name(lang) if n.kindergarten is not None else ""
    return gettext(lang, "Good morning! {kindergarten}: referrals waiting for a child whose deadline ends by "
                         "{until}: {count}. Send /desk to see them.", kindergarten=kindergarten,
                   until=_deadline(lang, n.payload.get("until"), _zone(n)),
                   count=format_number(lang, int(n.payload.get("count", 0))))


def _registration(lang: str, n: Notice) -> str:
    """The registration e-mail (services/deep_link.py). Its queue and number are read when it is
    sent (``claim_due`` puts them in ``extra``, with ``as_of``), so the number is the one of that
    moment and says so; the deep link (``extra["link"]``, added by the e-mail port) is left out
    when the bot's username is not known or the link has expired, and the e-mail says to use /link."""
    lines = [gettext(lang, "{application} has been registered in the kindergarten queue.", application=_app(lang, n))]
    if n.extra.get("birth_year"):
        lines.append(gettext(lang, "Queue: {district}, children born in {year}.", district=_district(lang, n),
                             year=str(n.extra["birth_year"])))
    as_of = n.extra.get("as_of")
    if n.extra.get("queue_number") and isinstance(as_of, dt.datetime):
        lines.append(gettext(lang, "Queue number on {date}: {number}. It changes as seats are given out and "
                                   "new applications arrive.", date=format_datetime(lang, as_of),
                             number=format_number(lang, int(n.extra["queue_number"]))))
    link = n.extra.get("link")
    if link:
        lines.append(gettext(lang, "To get the queue's notices in Telegram, open this link: {link}. The Kezek "
                                   "bot will link the application to your chat at once.", link=link))
        lines.append(gettext(lang, "The link works once, until {until}. Do not share it: it links the "
                                   "chat that opens it first.",
                             until=_deadline(lang, n.extra.get("link_expires_at"), _zone(n))))
    else:
        lines.append(gettext(lang, "To get the queue's notices in Telegram, open the Kezek bot and send /link."))
    return "\n".join(lines)


K = NoticeKind
RENDERERS: dict[NoticeKind, Renderer] = {
    K.TURN_CAME: _turn_came,
    K.SEATS_OPEN: _seats_open,
    K.REFERRAL_ISSUED: _referral_issued,
    K.REFERRAL_ANNULLED: _annulled,
    K.OFFER_EXPIRED: _simple(N_("The offer of a seat for {application} has expired; the seat is now open "
                                "to every child of the birth year.")),
    K.ADMITTED: _simple(N_("{application}: the child has been admitted to {kindergarten}. Congratulations!"),
                        kindergarten=_kg),
    K.DOCUMENTS_ACCEPTED: _simple(N_("{application}: the privilege documents have been accepted.")),
    K.REMOVED: _simple(N_("{application} has been removed from the queue: referrals were not taken to "
                          "the kindergarten in time.")),
    K.PRIVILEGE_DROPPED: _privilege_dropped,
    K.STOPLIST_ENDED: _simple(N_("{application}: the stop-list has ended; seats can be offered again.")),
    K.WITHDRAWN: _simple(N_("{application} has been withdrawn from the queue.")),
    K.REMINDER_OFFER: _simple(N_("Reminder: the seat offered to {application} can be claimed until {until}."),
                              until=_payload_deadline("expires_at")),
    K.REMINDER_SHOWUP: _simple(N_("Reminder: take the referral of {application} to the kindergarten by {due}."),
                               due=_payload_deadline("due_at")),
    K.REMINDER_DOCS: _simple(N_("Reminder: the privilege documents of {application} are due by {due}."),
                             due=_payload_deadline("due_at")),
    K.NO_SHOW_REPORTED: _simple(N_("{application}: the kindergarten says the child has not come yet. The "
                                   "referral holds until {due}: take the child there before then, or the "
                                   "referral will be annulled."), due=_payload_deadline("due_at")),
    K.QUEUE_MOVED: _simple(N_("{application}: the queue number is now {number} ({delta})."),
                           number=_queue_number, delta=_delta),
    K.LINK_CODE: _simple(N_("Your code to link {application} in the Kezek bot: {code}. It is valid for "
                            "15 minutes. If you did not ask for it, ignore this e-mail."), code=_code),
    K.REGISTRATION: _registration,
    K.STAFF_INVITE: _staff_invite,
    K.STAFF_DIGEST: _staff_digest,
    K.EMAIL_CODE: _simple(N_("Your code to confirm this address in the Kezek bot: {code}. It is valid "
                             "for 15 minutes. If you did not ask for it, ignore this e-mail."), code=_code),
}

SUBJECTS: dict[NoticeKind, str] = {
    K.TURN_CAME: N_("Your turn has come"),
    K.SEATS_OPEN: N_("Seats are open to everyone"),
    K.REFERRAL_ISSUED: N_("Referral issued"),
    K.REFERRAL_ANNULLED: N_("Referral annulled"),
    K.OFFER_EXPIRED: N_("The offer has expired"),
    K.ADMITTED: N_("The child has been admitted"),
    K.DOCUMENTS_ACCEPTED: N_("Privilege documents accepted"),
    K.REMOVED: N_("Removed from the queue"),
    K.PRIVILEGE_DROPPED: N_("Moved to the general queue"),
    K.STOPLIST_ENDED: N_("The stop-list has ended"),
    K.WITHDRAWN: N_("Withdrawn from the queue"),
    K.REMINDER_OFFER: N_("Reminder: the offer ends soon"),
    K.REMINDER_SHOWUP: N_("Reminder: take the referral to the kindergarten"),
    K.REMINDER_DOCS: N_("Reminder: privilege documents are due"),
    K.QUEUE_MOVED: N_("Your queue number has changed"),
    K.LINK_CODE: N_("Your code"),
    K.EMAIL_CODE: N_("Your code"),
    K.REGISTRATION: N_("The application is in the queue"),
    K.NO_SHOW_REPORTED: N_("The kindergarten is waiting for the child"),
    K.STAFF_INVITE: N_("Invitation to the Kezek bot"),
    K.STAFF_DIGEST: N_("Referrals due soon"),
}
del K

# The label of the seats button (KINDS' ``button``) of each action.
BUTTONS: dict[BotAction, str] = {
    BotAction.CLAIM_OFFERED_SEAT: N_("Choose a seat"),
    BotAction.CLAIM_OPEN_SEAT: N_("See the seats"),
}


def attachment_note(lang: str) -> str:
    """The line that goes with the referral's PDF (the Telegram caption, the e-mail copy)."""
    return gettext(lang, "The referral is in the attached PDF: show it at the kindergarten, printed or on "
                         "the phone. Its QR code lets the kindergarten check that it is genuine.")


def render(lang: str, notice: Notice) -> Rendered:
    """The Telegram message for ``notice`` in ``lang``, with its kind's button (KINDS)."""
    kind = kind_of(notice.kind)
    if kind is None:  # a kind another version of Kezek wrote (each NoticeKind has its words)
        return Rendered(gettext(lang, "There is news about {application}: see /status.",
                                application=_app(lang, notice)))
    spec = KINDS[kind]
    markup = _seats_button(lang, notice, BUTTONS[spec.action]) if spec.button and spec.action else None
    return Rendered(RENDERERS[kind](lang, notice), markup)


# --- the e-mail copy ----------------------------------------------------------------------------------
# The words come from the catalogs (gettext, here); the templates in bot/delivery/templates/email only lay
# them out: one section per language (Kazakh first), the notice's text, a table of details, a footer.

_TEMPLATES = Path(__file__).resolve().parent / "templates" / "email"
_jinja = jinja2.Environment(
    loader=jinja2.FileSystemLoader(_TEMPLATES),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=True),
    undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)

# What a kind asks the parent to do in the bot (KINDS' ``action``): the e-mail says where to do it.
ACT_IN_BOT: dict[BotAction, str] = {
    BotAction.CLAIM_OFFERED_SEAT: N_("To claim the seat, open the Kezek bot in Telegram and send /status."),
    BotAction.CLAIM_OPEN_SEAT: N_("To claim a seat, open the Kezek bot in Telegram and send /status."),
}

# The label of each deadline in the details (which a kind shows: KINDS' ``deadlines``).
DEADLINE_LABELS: dict[Deadline, str] = {
    Deadline.OFFER: N_("Offer open until"),
    Deadline.SHOWUP: N_("Referral valid until"),
    Deadline.DOCS: N_("Privilege documents due by"),
    Deadline.STOPLIST: N_("On the stop-list until"),
}

# The deadlines of a kind another version of Kezek wrote: those under the payload keys the kinds
# known here use for them.
_UNKNOWN_KIND_DEADLINES = ((Deadline.OFFER, "expires_at"), (Deadline.SHOWUP, "showup_due_at"),
                           (Deadline.DOCS, "docs_due_at"), (Deadline.STOPLIST, "stoplist_until"))

# No kind, action or deadline without its words: this module does not import otherwise.
require_every(NoticeKind, RENDERERS, "bot.delivery.notices.RENDERERS")
require_every(NoticeKind, SUBJECTS, "bot.delivery.notices.SUBJECTS")
require_every(BotAction, BUTTONS, "bot.delivery.notices.BUTTONS")
require_every(BotAction, ACT_IN_BOT, "bot.delivery.notices.ACT_IN_BOT")
require_every(Deadline, DEADLINE_LABELS, "bot.delivery.notices.DEADLINE_LABELS")


@dataclass(frozen=True)
class EmailSection:
    """One language's part of an e-mail copy, as the templates get it."""

    lang: str
    title: str
    paragraphs: list[str]
    details: list[tuple[str, str]]
    footer: str
    link: str | None = None  # a button in the HTML copy (the text copy has the address in a paragraph)
    link_label: str = ""


def _email_details(lang: str, n: Notice) -> list[tuple[str, str]]:
    if n.kind in CODE_KINDS:
        return []  # a code's e-mail is the code and nothing else
    rows: list[tuple[str, str]] = []
    if n.number:
        rows.append((gettext(lang, "Application"), n.number))
    if n.child_iin_masked:
        rows.append((gettext(lang, "Child's IIN"), n.child_iin_masked))
    if n.kindergarten is not None:
        rows.append((gettext(lang, "Kindergarten"), n.kindergarten.name(lang)))
        if n.kindergarten.address:
            rows.append((gettext(lang, "Address"), n.kindergarten.address))
    if n.group_name:
        rows.append((gettext(lang, "Group"), n.group_name))
    if n.payload.get("language") in LANGUAGES:
        rows.append((gettext(lang, "Language of the group"), language_name(lang, str(n.payload["language"]))))
    if n.kind == NoticeKind.REGISTRATION and n.extra.get("birth_year"):
        rows.append((gettext(lang, "District"), _district(lang, n)))
        rows.append((gettext(lang, "Children born in"), str(n.extra["birth_year"])))
        if n.extra.get("queue_number"):
            rows.append((gettext(lang, "Queue number"), format_number(lang, int(n.extra["queue_number"]))))
    kind = kind_of(n.kind)
    for deadline, key in KINDS[kind].deadlines if kind is not None else _UNKNOWN_KIND_DEADLINES:
        if n.payload.get(key):
            rows.append((gettext(lang, DEADLINE_LABELS[deadline]), _deadline(lang, n.payload[key], "utc")))
    return rows


def _email_section(lang: str, n: Notice, subject_id: str, attached: bool) -> EmailSection:
    # (worded as an e-mail whatever channel the notice came through: deadlines with the UTC offset)
    paragraphs = [line for line in render(lang, replace(n, channel=EMAIL)).text.split("\n") if line.strip()]
    kind = kind_of(n.kind)
    action = KINDS[kind].action if kind is not None else None
    if action is not None and n.application_id is not None:
        paragraphs.append(gettext(lang, ACT_IN_BOT[action]))
    if attached:
        paragraphs.append(attachment_note(lang))
    link = n.extra.get("link") if n.kind in (NoticeKind.REGISTRATION, NoticeKind.STAFF_INVITE) else None
    return EmailSection(
        lang=lang, title=gettext(lang, subject_id), paragraphs=paragraphs, details=_email_details(lang, n),
        footer=gettext(lang, "This is an automatic message of Kezek, the kindergarten queue bot. "
                             "Do not reply to it."),
        link=str(link) if link else None, link_label=gettext(lang, "Link in Telegram") if link else "")


def render_email(notice: Notice, attachments: Sequence[Attachment] = ()) -> EmailContent:
    """The e-mail copy of ``notice``: a subject and a plain-text and an HTML body, each in Kazakh
    and then Russian (an e-mail address has no chosen language), and the ``attachments`` (the
    referral's PDF), which the text mentions."""
    kind = kind_of(notice.kind)
    subject_id = SUBJECTS[kind] if kind is not None else N_("Notice about the kindergarten queue")
    subject = "Kezek: " + " / ".join(gettext(lang, subject_id) for lang in LANGS_IN_EMAIL)
    sections = [_email_section(lang, notice, subject_id, bool(attachments)) for lang in LANGS_IN_EMAIL]
    context = {"subject": subject, "sections": sections}
    return EmailContent(subject=subject, text=_jinja.get_template("notice.txt").render(context),
                        html=_jinja.get_template("notice.html").render(context), attachments=tuple(attachments))
