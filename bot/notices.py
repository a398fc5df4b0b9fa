"""The words of each notice: a Telegram message in the chat's language (with a button where the
parent has something to do) and an e-mail copy in Kazakh and Russian."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot import i18n
from bot.i18n import N_, gettext
from handlers.claim import SeatsCallback
from services.notifications import Notice

LANGS_IN_EMAIL = ("kk", "ru")


@dataclass(frozen=True)
class Rendered:
    text: str
    markup: InlineKeyboardMarkup | None = None


def _deadline(lang: str, value: Any) -> str:
    moment = i18n.parse_moment(value) if value else None
    return i18n.format_deadline(lang, moment) if moment is not None else "—"


def _kg(lang: str, n: Notice) -> str:
    return n.kindergarten.name(lang) if n.kindergarten is not None else "—"


def _app(lang: str, n: Notice) -> str:
    return gettext(lang, "application {number} (child's IIN {iin})", number=n.number or "—",
                   iin=n.child_iin_masked or "—")


def _seats_button(lang: str, n: Notice, label: str) -> InlineKeyboardMarkup | None:
    if n.application_id is None:
        return None
    builder = InlineKeyboardBuilder()
    builder.button(text=gettext(lang, label), callback_data=SeatsCallback(app=n.application_id))
    return builder.as_markup()


_ANNUL_REASONS = {
    "no_show": N_("the referral was not taken to the kindergarten in time"),
    "docs_missing": N_("the privilege documents were not brought in time"),
    "docs_rejected": N_("the privilege documents were rejected"),
}


def _reason(lang: str, n: Notice) -> str:
    msgid = _ANNUL_REASONS.get(str(n.payload.get("reason")))
    return gettext(lang, msgid) if msgid else gettext(lang, "a deadline passed")


def _turn_came(lang: str, n: Notice) -> Rendered:
    text = gettext(lang, "Your turn has come! A seat at {kindergarten} is offered to {application}. "
                         "Claim it by {until}, or it goes to everyone.",
                   kindergarten=_kg(lang, n), application=_app(lang, n), until=_deadline(lang, n.payload.get("expires_at")))
    if n.payload.get("batch"):
        text += "\n" + gettext(lang, "Twins are placed together: one claim takes the seats for all of them.")
    return Rendered(text, _seats_button(lang, n, N_("Choose a seat")))


def _seats_open(lang: str, n: Notice) -> Rendered:
    count = int(n.payload.get("seats") or 0)
    text = i18n.ngettext(
        lang, "{count} seat for your child's birth year is now open to everyone ({application}). "
              "The first to claim it gets it.",
        "{count} seats for your child's birth year are now open to everyone ({application}). "
        "The first to claim them get them.", count, count=i18n.format_number(lang, count),
        application=_app(lang, n))
    return Rendered(text, _seats_button(lang, n, N_("See the seats")))


def _referral_issued(lang: str, n: Notice) -> Rendered:
    lines = [gettext(lang, "A referral to {kindergarten} has been issued for {application}.",
                     kindergarten=_kg(lang, n), application=_app(lang, n))]
    if n.group_name:
        lines.append(gettext(lang, "Group: {group}", group=n.group_name))
    lines.append(gettext(lang, "Take it to the kindergarten by {due}, or it is annulled.",
                         due=_deadline(lang, n.payload.get("showup_due_at"))))
    if n.payload.get("docs_due_at"):
        lines.append(gettext(lang, "Privilege documents are due by {due}.",
                             due=_deadline(lang, n.payload.get("docs_due_at"))))
    return Rendered("\n".join(lines))


def _annulled(lang: str, n: Notice) -> Rendered:
    text = gettext(lang, "The referral of {application} has been annulled: {reason}. The child is back "
                         "in the queue at the old place.", application=_app(lang, n), reason=_reason(lang, n))
    if n.payload.get("stoplist_until"):
        text += "\n" + gettext(lang, "Until {until} no new seat can be offered (stop-list).",
                               until=_deadline(lang, n.payload.get("stoplist_until")))
    return Rendered(text)


def _simple(msgid: str, **fields: Callable[[str, Notice], str]) -> Callable[[str, Notice], Rendered]:
    def render(lang: str, n: Notice) -> Rendered:
        return Rendered(gettext(lang, msgid, application=_app(lang, n),
                                **{k: f(lang, n) for k, f in fields.items()}))
    return render


def _payload_deadline(key: str) -> Callable[[str, Notice], str]:
    return lambda lang, n: _deadline(lang, n.payload.get(key))


def _code(lang: str, n: Notice) -> str:
    return str(n.payload.get("code", ""))


def _delta(lang: str, n: Notice) -> str:
    before, now = n.payload.get("previous"), n.payload.get("number")
    try:
        moved = int(before) - int(now)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""
    if moved > 0:
        return i18n.ngettext(lang, "{count} place closer", "{count} places closer", moved,
                             count=i18n.format_number(lang, moved))
    return i18n.ngettext(lang, "{count} place further", "{count} places further", -moved,
                         count=i18n.format_number(lang, -moved))


RENDERERS: dict[str, Callable[[str, Notice], Rendered]] = {
    "turn_came": _turn_came,
    "seats_open": _seats_open,
    "referral_issued": _referral_issued,
    "referral_annulled": _annulled,
    "offer_expired": _simple(N_("The offer of a seat for {application} has expired; the seat is now open "
                                "to every child of the birth year.")),
    "admitted": _simple(N_("{application}: the child has been admitted to {kindergarten}. Congratulations!"),
                        kindergarten=_kg),
    "documents_accepted": _simple(N_("{application}: the privilege documents have been accepted.")),
    "removed": _simple(N_("{application} has been removed from the queue: referrals were not taken to "
                          "the kindergarten in time.")),
    "privilege_dropped": _simple(N_("{application}: {reason}, so the referral has been annulled and the "
                                    "child has moved to the general queue."), reason=_reason),
    "stoplist_ended": _simple(N_("{application}: the stop-list has ended; seats can be offered again.")),
    "withdrawn": _simple(N_("{application} has been withdrawn from the queue.")),
    "reminder_offer": _simple(N_("Reminder: the seat offered to {application} can be claimed until {until}."),
                              until=_payload_deadline("expires_at")),
    "reminder_showup": _simple(N_("Reminder: take the referral of {application} to the kindergarten by {due}."),
                               due=_payload_deadline("due_at")),
    "reminder_docs": _simple(N_("Reminder: the privilege documents of {application} are due by {due}."),
                             due=_payload_deadline("due_at")),
    "queue_moved": _simple(N_("{application}: the queue number is now {number} ({delta})."),
                           number=lambda lang, n: str(n.payload.get("number", "—")), delta=_delta),
    "link_code": _simple(N_("Your code to link {application} in the Kezek bot: {code}. It is valid for "
                            "15 minutes. If you did not ask for it, ignore this e-mail."), code=_code),
    "email_code": _simple(N_("Your code to confirm this address in the Kezek bot: {code}. It is valid "
                             "for 15 minutes. If you did not ask for it, ignore this e-mail."), code=_code),
}

SUBJECTS: dict[str, str] = {
    "turn_came": N_("Your turn has come"),
    "seats_open": N_("Seats are open to everyone"),
    "referral_issued": N_("Referral issued"),
    "referral_annulled": N_("Referral annulled"),
    "link_code": N_("Your code"),
    "email_code": N_("Your code"),
}


def render(lang: str, notice: Notice) -> Rendered:
    """The Telegram message for ``notice`` in ``lang``."""
    renderer = RENDERERS.get(notice.kind)
    if renderer is None:
        return Rendered(gettext(lang, "There is news about {application}: see /status.",
                                application=_app(lang, notice)))
    return renderer(lang, notice)


def render_email(notice: Notice) -> tuple[str, str]:
    """Subject and plain-text body: Kazakh first, then Russian (an e-mail has no chosen language)."""
    subject_id = SUBJECTS.get(notice.kind, N_("Notice about the kindergarten queue"))
    subject = "Kezek: " + " / ".join(gettext(lang, subject_id) for lang in LANGS_IN_EMAIL)
    parts = [render(lang, notice).text for lang in LANGS_IN_EMAIL]
    footer = "\n".join(gettext(lang, "This is an automatic message of Kezek, the kindergarten queue bot. "
                                     "Do not reply to it.") for lang in LANGS_IN_EMAIL)
    return subject, "\n\n".join(parts) + "\n\n--\n" + footer + "\n"
