"""The names of things Kezek shows: input fields (inside error sentences), languages, privileges,
application states, queue-move causes, documents. An unknown key is shown as it is."""

from __future__ import annotations

import datetime as dt

from locales import N_, NP_, gettext, ngettext
from locales.formats import format_deadline, format_number

# Field names of registry input (services/parsing.py callers), shown inside error messages.
# Translators: these are inserted into sentences like 'The field «{field}» …'; use lower case.
FIELD_NAMES: dict[str, str] = {
    "*": N_("record"),
    "number": N_("application number"),
    "child_iin": N_("child's IIN"),
    "child_name": N_("child's full name"),
    "birth_date": N_("date of birth"),
    "birth_year": N_("year of birth"),
    "phone": N_("mobile phone"),
    "email": N_("e-mail"),
    "day": N_("date"),
    "working": N_("working day"),
    "decision": N_("decision"),
    "advance": N_("clock shift"),
    "set": N_("new clock time"),
    "token": N_("verification code"),
    "submitted_at": N_("submission time"),
    "district": N_("district"),
    "kindergarten": N_("kindergarten"),
    "preferred_kindergartens": N_("preferred kindergartens"),
    "privilege": N_("privilege"),
    "language": N_("language of instruction"),
    "languages": N_("languages of instruction"),
    "count": N_("number of seats"),
    "code": N_("code"),
    "name": N_("name"),
    "name_ru": N_("name in Russian"),
    "name_kk": N_("name in Kazakh"),
    "address": N_("address"),
    "kind": N_("kindergarten type"),
    "twin_group": N_("twin group"),
    "profile": N_("rule profile"),
    "window_open": N_("claim window opening time"),
    "window_close": N_("claim window closing time"),
    "twins_together": N_("offer twins together"),
    "offer_windows": N_("offer lifetime, in claim windows"),
    "showup_working_days": N_("show-up period, in working days"),
    "stoplist_working_days": N_("stop-list period, in working days"),
    "removal_on_annulment": N_("annulments before removal from the queue"),
    "docs_working_days": N_("privilege documents period, in working days"),
    "docs_calendar_days": N_("privilege documents limit, in calendar days"),
    "private_min_age_years": N_("minimum age for private kindergartens, in years"),
    "interleave_general_per_first": N_("general referrals after each first-priority one"),
    "status": N_("status"),
    "referral": N_("referral"),
    "reason": N_("rejection reason"),
    "note": N_("operator's note"),
}

LANGUAGE_NAMES: dict[str, str] = {
    "ru": N_("Russian"),
    "kk": N_("Kazakh"),
}

PRIVILEGES: dict[str, str] = {
    "out_of_turn": N_("Out-of-turn right"),
    "first": N_("First-priority right"),
    "none": N_("General queue"),
}

STATUSES: dict[str, str] = {
    "waiting": N_("Waiting in the queue"),
    "queued": N_("Waiting in the queue"),
    "stop_listed": N_("On the stop-list"),
    "offer_open": N_("A seat is offered"),
    "referred": N_("Referral issued"),
    "admitted": N_("Admitted to the kindergarten"),
    "removed": N_("Removed from the queue"),
    "withdrawn": N_("Application withdrawn"),
}

STATUSES_UNTIL: dict[str, str] = {
    "stop_listed": N_("On the stop-list until {until}"),
    "offer_open": N_("A seat is offered: claim it by {until}"),
    "referred": N_("Referral issued, valid until {until}"),
}

# Queue-move causes (services.queue): "count" applications/children caused the move.
CAUSES: dict[str, tuple[str, str]] = {
    "arrival": NP_("{count} new application was placed ahead of you",
                   "{count} new applications were placed ahead of you"),
    "referral": NP_("{count} referral was issued ahead of you",
                    "{count} referrals were issued ahead of you"),
    "returned": NP_("{count} child whose referral was annulled returned to the queue ahead of you",
                    "{count} children whose referrals were annulled returned to the queue ahead of you"),
    "privilege_dropped": NP_("{count} child lost a privilege and moved to the general queue",
                             "{count} children lost a privilege and moved to the general queue"),
    "changed": NP_("The registry changed the data of {count} application in the queue",
                   "The registry changed the data of {count} applications in the queue"),
    "withdrawn": NP_("{count} application was withdrawn from the queue",
                     "{count} applications were withdrawn from the queue"),
}
OTHER_CAUSE = NP_("{count} other change in the queue", "{count} other changes in the queue")


def _named(lang: str | None, names: dict[str, str], key: str) -> str:
    """The localized name of ``key`` in ``names``; a key it does not know is shown as it is."""
    msgid = names.get(key)
    return gettext(lang, msgid) if msgid else key


def field_text(lang: str | None, field: str) -> str:
    """The localized name of an input field; an unknown field is shown as it is."""
    return _named(lang, FIELD_NAMES, field)


def language_name(lang: str | None, code: str) -> str:
    return _named(lang, LANGUAGE_NAMES, code)


DOCUMENT_STATUSES: dict[str, str] = {
    "pending": N_("waiting for a decision"),
    "accepted": N_("accepted"),
    "rejected": N_("rejected"),
    "closed": N_("closed without a decision"),
}

DOCUMENT_TYPES: dict[str, str] = {
    "image/jpeg": N_("JPEG image"),
    "image/png": N_("PNG image"),
    "application/pdf": N_("PDF file"),
}


# A referral's privilege documents as a whole (storage.vocab.DocsState), for the kindergarten's desk.
DOCS_STATES: dict[str, str] = {
    "not_required": N_("not needed"),
    "pending": N_("awaited"),
    "accepted": N_("confirmed"),
    "rejected": N_("turned down"),
    "missed": N_("not brought in time"),
}


def docs_state_text(lang: str | None, state: str) -> str:
    return _named(lang, DOCS_STATES, state)


def document_status_text(lang: str | None, status: str) -> str:
    return _named(lang, DOCUMENT_STATUSES, status)


def document_type_text(lang: str | None, mime: str) -> str:
    return _named(lang, DOCUMENT_TYPES, mime)


def privilege_text(lang: str | None, privilege: str | None) -> str:
    msgid = PRIVILEGES.get(privilege or "none")
    if msgid is None:
        return gettext(lang, "Unknown privilege ({privilege})", privilege=privilege)
    return gettext(lang, msgid)


def status_text(lang: str | None, status: str, until: dt.datetime | None = None,
                zone: str | None = None) -> str:
    """An application's state: waiting (= queued), stop_listed, offer_open, referred, admitted,
    removed, withdrawn; with ``until`` the stop-list / offer / referral shows its end (and
    ``zone``, see format_datetime)."""
    if until is not None and status in STATUSES_UNTIL:
        return gettext(lang, STATUSES_UNTIL[status], until=format_deadline(lang, until, zone=zone))
    msgid = STATUSES.get(status)
    if msgid is None:
        return gettext(lang, "Unknown status ({status})", status=status)
    return gettext(lang, msgid)


def cause_text(lang: str | None, cause: str, count: int) -> str:
    """Why a queue number moved, e.g. '2 referrals were issued ahead of you' (plural-aware).

    ``count`` is the signed move a cause made (referrals ahead move a number by -1 each); the
    sentence already says the direction, so it shows how many."""
    singular, plural = CAUSES.get(cause, OTHER_CAUSE)
    n = abs(count)
    return ngettext(lang, singular, plural, n, count=format_number(lang, n))


# Why a referral was annulled (services/referrals.py's reasons).
ANNUL_REASONS = {
    "no_show": N_("the referral was not taken to the kindergarten in time"),
    "docs_missed": N_("the privilege documents were not brought in time"),
    "docs_rejected": N_("the privilege documents were rejected"),
}


def annul_reason(lang: str, reason: str | None) -> str:
    """Why a referral was annulled (services/referrals.py's reasons), in words."""
    msgid = ANNUL_REASONS.get(str(reason))
    return gettext(lang, msgid) if msgid else gettext(lang, "a deadline passed")
