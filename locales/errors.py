"""A domain error as one sentence for a parent or an operator, in their language.

An error is anything with a stable ``code`` and ``params`` (``services.errors.KezekError``, and
the registry API's own ``bot.api.base.ApiError``; this package imports neither). Every error text
lives here: a renderer for the codes whose wording depends on their params, else a message whose
``{placeholders}`` are the params (dates and moments formatted in the reader's language).
``tests/locales/test_locales.py`` checks that every error class of the services has its own message in
both languages.

    error_text(lang, exc) -> str
    error_lines(lang, exc, *, first_row=1) -> list[str]
    has_error_message(code) -> bool

Why one module of this size: every error sentence of the service is here, in one place the
catalog test reads (one message or renderer per error code)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, Protocol

from locales import N_, NP_, gettext, ngettext, normalize_language
from locales.formats import format_date, format_datetime, format_deadline, format_number, parse_moment
from locales.names import field_text, language_name


# (an error is one message with one moment: it says its zone)
def _param_deadline(lang: str, value: Any) -> str:
    moment = parse_moment(value)
    return format_deadline(lang, moment, zone="local") if moment is not None else str(value)


def _param_moment(lang: str, value: Any) -> str:
    moment = parse_moment(value)
    return format_datetime(lang, moment, zone="local") if moment is not None else str(value)


def _param_date(lang: str, value: Any) -> str:
    if isinstance(value, dt.date):
        return format_date(lang, value)
    try:
        return format_date(lang, dt.date.fromisoformat(str(value)))
    except ValueError:
        return str(value)


class DomainError(Protocol):
    """What is read of an error: ``services.errors.KezekError`` (a bulk rejection also lists
    ``errors``: (row index, error) pairs)."""

    code: str
    params: dict[str, Any]


_Renderer = Callable[[str, dict[str, Any]], str]

# Codes whose message needs no parameters.
ERROR_MESSAGES: dict[str, str] = {
    "error": N_("Something went wrong. Please try again later."),
    "invalid": N_("The data is invalid. Please check it and try again."),
    "invalid_phone": N_("Enter a Kazakhstan mobile number, for example +7 701 234 56 78."),
    "invalid_email": N_("The e-mail address is invalid."),
    "link_failed": N_("The details do not match. Please check them and try again; to start over, "
                      "send /link."),
    "child_already_queued": N_("This child is already in the queue with another application."),
    "not_found": N_("Nothing was found."),
    "application_not_found": N_("The application was not found. Please check the number."),
    "seat_not_found": N_("The seat was not found."),
    "referral_not_found": N_("The referral was not found."),
    "rule_violation": N_("The rules do not allow this action now."),
    "seat_not_available": N_(
        "This seat is no longer available: someone else has taken it, or it is not offered to you."),
    "not_eligible_for_seat": N_(
        "This seat is not for your child: it is in another district or for another year of birth."),
    "confirmation_required": N_("Please confirm that you take this seat."),
    "staff_invite_invalid": N_("This invitation link does not work: it has expired, has been used or has been "
                               "withdrawn. Ask the operator for a new one."),
    "not_staff": N_("Only the staff of the kindergarten the referral is for see it here. Anyone can check it "
                    "on the page its QR code opens."),
}

_INVALID_REASONS: dict[str, str] = {
    "object": N_("Each record must be an object with named fields."),
    "future": N_("The field «{field}» cannot be in the future."),
    "type": N_("The field «{field}» has a value of the wrong type."),
    "characters": N_("The field «{field}» contains forbidden control characters."),
    "code": N_("The field «{field}» must be a code of Latin letters, digits and the signs _ . - /."),
    "choice": N_("The field «{field}» must be one of: {options}."),
    "integer": N_("The field «{field}» must be a whole number."),
    "boolean": N_("The field «{field}» must be yes or no."),
    "date": N_("The field «{field}» must be a date in the form DD.MM.YYYY or YYYY-MM-DD."),
    "datetime": N_("The field «{field}» must be a date and time in ISO 8601 form, "
                   "for example 2024-05-17T10:30."),
    "duplicates": N_("The field «{field}» lists the same code more than once."),
    "too_many": N_("The field «{field}» lists too many codes: at most {max}."),
    "time": N_("The field «{field}» must be a time of day in the form HH:MM."),
    "before_open": N_("The field «{field}» must be later than the claim window opening time."),
    "range": N_("The field «{field}» is outside the allowed range."),
}
_NOT_TAUGHT = N_("The kindergarten does not teach in this language; its languages: {options}.")
_RANGE_MIN_MAX = N_("The field «{field}» must be from {min} to {max}.")
_TOO_LONG = NP_("The field «{field}» is too long: at most {max} character.",
                "The field «{field}» is too long: at most {max} characters.")
_INVALID_OTHER = N_("The field «{field}» is filled in incorrectly.")
_INVALID_NO_FIELD = N_("A field is filled in incorrectly.")

_IIN_REASONS: dict[str, str] = {
    "format": N_("The IIN must consist of 12 digits."),
    "checksum": N_("The IIN has a wrong check digit. Please check it for typos."),
    "century": N_("The 7th digit of the IIN (century of birth and sex) is wrong."),
    "date": N_("The IIN does not contain a valid date of birth."),
}
_IIN_OTHER = N_("The IIN is invalid.")

_NOT_WAITING: dict[str, str] = {
    "referred": N_("The child already holds a referral."),
    "admitted": N_("The child has already been admitted to a kindergarten."),
    "removed": N_("The application has been removed from the queue."),
    "withdrawn": N_("The application has been withdrawn."),
    "changed": N_("The application changed in the meantime. Please try again."),
}
_NOT_WAITING_OTHER = N_("The application is not waiting in the queue.")

_REFERRAL_NOT_ACTIVE: dict[str, str] = {
    "admitted": N_("The child has already been admitted on this referral."),
    "annulled": N_("This referral has been annulled."),
    "changed": N_("The referral changed in the meantime. Please try again."),
}
_REFERRAL_NOT_ACTIVE_OTHER = N_("This referral is no longer active.")

_DOCS_NOT_PENDING: dict[str, str] = {
    "not_required": N_("This referral needs no privilege documents."),
    "accepted": N_("The privilege documents have already been accepted."),
    "rejected": N_("The privilege documents have already been rejected."),
    "missed": N_("The privilege documents were not confirmed in time; the referral was annulled."),
    "deadline_passed": N_("The deadline for the privilege documents has passed."),
}
_DOCS_DEADLINE_AT = N_("The deadline for the privilege documents passed: {due_at}.")
_DOCS_OTHER = N_("No privilege documents are awaited for this referral.")

_CLOSED: dict[str, str] = {
    "admitted": N_("The application is closed: the child has been admitted to a kindergarten."),
    "removed": N_("The application is closed: it was removed from the queue."),
    "withdrawn": N_("The application is closed: it was withdrawn."),
}
_CLOSED_OTHER = N_("The application is closed and can no longer be changed.")

CATCH_ALL = N_("The request could not be completed (error: {code}).")


def _invalid_field(lang: str, params: dict[str, Any]) -> str:
    field = params.get("field")
    reason = params.get("reason")
    values = dict(params)
    if field is not None:
        values["field"] = field_text(lang, str(field))
    if reason == "not_taught" and "options" in params:
        codes = [c.strip() for c in str(params["options"]).split(",") if c.strip()]
        values["options"] = ", ".join(language_name(lang, c) for c in codes)
        return gettext(lang, _NOT_TAUGHT, **values)
    if field is None and reason != "object":
        return gettext(lang, _INVALID_NO_FIELD)
    if reason == "too_long" and "max" in params:
        return ngettext(lang, *_TOO_LONG, int(params["max"]), **values)
    if reason == "range" and "min" in params and "max" in params:
        return gettext(lang, _RANGE_MIN_MAX, **values)
    msgid = _INVALID_REASONS.get(str(reason))
    if msgid is None or ("{options}" in msgid and "options" not in params) or (
            "{max}" in msgid and "max" not in params):
        return gettext(lang, _INVALID_OTHER, **values)
    return gettext(lang, msgid, **values)


def _missing_field(lang: str, params: dict[str, Any]) -> str:
    if params.get("field") is None:
        return gettext(lang, "A required field is empty.")
    return gettext(lang, "The required field «{field}» is empty.",
                   field=field_text(lang, str(params["field"])))


def _invalid_iin(lang: str, params: dict[str, Any]) -> str:
    return gettext(lang, _IIN_REASONS.get(str(params.get("reason")), _IIN_OTHER))


def _iin_birth_date(lang: str, params: dict[str, Any]) -> str:
    if "iin_date" in params and "birth_date" in params:
        return gettext(lang, "By the IIN the child was born on {iin_date}, but the date of birth "
                             "given is {birth_date}.",
                       iin_date=_param_date(lang, params["iin_date"]),
                       birth_date=_param_date(lang, params["birth_date"]))
    return gettext(lang, "The IIN does not match the child's date of birth.")


def _unknown(with_value: str, without: str) -> _Renderer:
    def render(lang: str, params: dict[str, Any]) -> str:
        if params.get("value"):
            return gettext(lang, with_value, value=params["value"])
        return gettext(lang, without)
    return render


def _duplicate(lang: str, params: dict[str, Any]) -> str:
    field = params.get("field")
    if field is None:
        return gettext(lang, "This record occurs more than once in the load.")
    name = field_text(lang, str(field))
    if params.get("value"):
        return gettext(lang, "The value «{value}» of the field «{field}» occurs more than once "
                             "in the load.", field=name, value=params["value"])
    return gettext(lang, "The same value of the field «{field}» occurs more than once in the load.",
                   field=name)


def _bulk(lang: str, params: dict[str, Any]) -> str:
    count = int(params.get("count", 0))
    return ngettext(lang, "The load was rejected and nothing was saved: {count} record has an error.",
                    "The load was rejected and nothing was saved: {count} records have errors.",
                    count, count=format_number(lang, count))


def _outside_window(lang: str, params: dict[str, Any]) -> str:
    if params.get("opens_at"):
        return gettext(lang, "A seat can be claimed only during the claim window of a working day. "
                             "The next window opens: {opens_at}.",
                       opens_at=_param_moment(lang, params["opens_at"]))
    return gettext(lang, "A seat can be claimed only during the claim window of a working day.")


def _offer_expired(lang: str, params: dict[str, Any]) -> str:
    if params.get("expired_at"):
        return gettext(lang, "The offer has expired: {expired_at}.",
                       expired_at=_param_moment(lang, params["expired_at"]))
    return gettext(lang, "The offer has expired.")


def _stop_listed(lang: str, params: dict[str, Any]) -> str:
    if params.get("until"):
        return gettext(lang, "The application is on the stop-list until {until}: until then seats "
                             "are neither offered nor claimed.",
                       until=_param_deadline(lang, params["until"]))
    return gettext(lang, "The application is on the stop-list: seats are neither offered nor claimed.")


def _too_young(lang: str, params: dict[str, Any]) -> str:
    if params.get("min_age") is not None:
        age = int(params["min_age"])
        return ngettext(lang,
                        "Seats in private kindergartens under the state order are for children "
                        "from {min_age} year old.",
                        "Seats in private kindergartens under the state order are for children "
                        "from {min_age} years old.",
                        age, min_age=age)
    return gettext(lang, "The child is too young for a seat in a private kindergarten under the "
                         "state order.")


def _showup_passed(lang: str, params: dict[str, Any]) -> str:
    if params.get("due_at"):
        return gettext(lang, "The deadline to admit the child on this referral has passed: {due_at}.",
                       due_at=_param_deadline(lang, params["due_at"]))
    return gettext(lang, "The deadline to admit the child on this referral has passed.")


def _link_locked(lang: str, params: dict[str, Any]) -> str:
    if not params.get("until"):
        return gettext(lang, "Too many unsuccessful attempts. Linking from this chat is paused for a while.")
    return gettext(lang, "Too many unsuccessful attempts. Linking from this chat is paused until {until}.",
                   until=_param_moment(lang, params["until"]))


def _docs_pending(lang: str, params: dict[str, Any]) -> str:
    if params.get("due_at"):
        return gettext(lang, "The child can be admitted once the privilege documents are confirmed "
                             "(they are due by {due_at}).", due_at=_param_deadline(lang, params["due_at"]))
    return gettext(lang, "The child can be admitted once the privilege documents are confirmed.")


def _by_status(table: dict[str, str], other: str, key: str = "status") -> _Renderer:
    def render(lang: str, params: dict[str, Any]) -> str:
        return gettext(lang, table.get(str(params.get(key)), other))
    return render


def _docs(lang: str, params: dict[str, Any]) -> str:
    state = str(params.get("state"))
    if state == "deadline_passed" and params.get("due_at"):
        return gettext(lang, _DOCS_DEADLINE_AT, due_at=_param_deadline(lang, params["due_at"]))
    return gettext(lang, _DOCS_NOT_PENDING.get(state, _DOCS_OTHER))


_IMAGE_FORMATS = {"heic": "HEIC", "avif": "AVIF", "webp": "WEBP", "gif": "GIF", "tiff": "TIFF", "bmp": "BMP"}


def _document_type(lang: str, params: dict[str, Any]) -> str:
    kind = str(params.get("kind"))
    if kind in _IMAGE_FORMATS:
        return gettext(lang, "This is a {format} image, and only JPEG and PNG images and PDF files are accepted. "
                             "Send it as a photo rather than as a file (Telegram converts it), or save it as "
                             "JPEG or PDF.", format=_IMAGE_FORMATS[kind])
    if kind == "zip":
        return gettext(lang, "Word and Excel files and archives are not accepted. Send the documents as a PDF "
                             "file or as photos of the pages.")
    return gettext(lang, "This type of file is not accepted. Send a photo, a JPEG or PNG image, or a PDF file.")


# The registry API's own refusals (bot/api): the HTTP layer's, not the domain's.
API_ERRORS: dict[str, str] = {
    "unauthorized": N_("A valid access token is required: send it in the header "
                       "Authorization: Bearer <token>."),
    "api_not_configured": N_("The API is not configured: the server has no access token."),
    "too_many_attempts": N_("Too many requests with a wrong access token. Please try again later."),
    "bad_json": N_("The request body is not valid JSON."),
    "not_array": N_("The request body must be a JSON array of objects."),
    "not_object": N_("The request body must be a JSON object."),
    "method_not_allowed": N_("This method is not allowed here."),
    "body_too_large": N_("The request body is too large: at most {max} bytes."),
    "bad_request": N_("The request is not valid HTTP (e.g. a header with a forbidden character)."),
    "too_many_rows": N_("Too many records in one request: at most {max}. Send them in several requests."),
}


def _numbers_in_words(msgid: str) -> _Renderer:
    """``msgid`` with its whole-number params written the reader's way (65 536)."""
    def render(lang: str, params: dict[str, Any]) -> str:
        values = {k: format_number(lang, v) if isinstance(v, int) else v for k, v in params.items()}
        return gettext(lang, msgid, **values)
    return render


ERROR_RENDERERS: dict[str, _Renderer] = {
    **{code: _numbers_in_words(msgid) for code, msgid in API_ERRORS.items()},
    "document_type_refused": _document_type,
    "invalid_field": _invalid_field,
    "missing_field": _missing_field,
    "invalid_iin": _invalid_iin,
    "iin_birth_date_mismatch": _iin_birth_date,
    "unknown_district": _unknown(N_("The district with code «{value}» was not found."),
                                 N_("The district was not found.")),
    "unknown_kindergarten": _unknown(N_("The kindergarten with code «{value}» was not found."),
                                     N_("The kindergarten was not found.")),
    "unknown_profile": _unknown(N_("The rule profile with code «{value}» was not found."),
                                N_("The rule profile was not found.")),
    "duplicate_in_batch": _duplicate,
    "bulk_rejected": _bulk,
    "outside_claim_window": _outside_window,
    "offer_expired": _offer_expired,
    "not_waiting": _by_status(_NOT_WAITING, _NOT_WAITING_OTHER),
    "stop_listed": _stop_listed,
    "too_young_for_private": _too_young,
    "referral_not_active": _by_status(_REFERRAL_NOT_ACTIVE, _REFERRAL_NOT_ACTIVE_OTHER),
    "showup_deadline_passed": _showup_passed,
    "documents_not_pending": _docs,
    "documents_pending": _docs_pending,
    "link_locked": _link_locked,
    "application_closed": _by_status(_CLOSED, _CLOSED_OTHER),
}


# Codes whose message is a sentence with the error's params as its {placeholders}.
ERROR_SENTENCES: dict[str, str] = {
    "document_not_found": N_("The document was not found."),
    "document_refused": N_("This file cannot be accepted. Send a photo of the document or a PDF file."),
    "document_too_complex": N_("The file could not be checked: it is too complex and takes too long to open. Send a "
        "photo of the document, or the scan as an ordinary JPEG, PNG or PDF file."),
    "document_too_large": N_("The file is too large: at most {max} MB is accepted. Send a smaller file, or a photo of "
        "each page."),
    "document_unreadable": N_(
        "The file is damaged or cannot be opened. Please send it again, or photograph the pages."),
    "documents_need_link": N_("To send privilege documents, first link your application with /link."),
    "image_too_many_pixels": N_("The image is too large: at most {max} megapixels. Send a smaller photo."),
    "image_too_small": N_("The image is too small to read: {width}×{height} pixels, and at least "
        "{min_short}×{min_long} are needed. Photograph the whole page up close in good light, or "
        "send the scan as a file."),
    "no_documents_awaited": N_("No privilege documents are awaited from you now. Documents are sent here after a "
        "referral issued through a privilege, until its documents deadline."),
    "pdf_encrypted": N_("The PDF file is protected by a password, so it cannot be checked. Send it without a "
        "password, or photograph the pages."),
    "pdf_too_many_pages": N_("The PDF file has {pages} pages, and at most {max} are accepted. Send only the pages of "
        "the privilege documents."),
    "too_many_documents": N_("{max} files have already been received for this referral, the most that can be sent. The"
        " operator will check them."),
    "not_linked": N_("This application is not linked to this chat. Link it with /link."),
    "code_rate_limited": N_("Too many codes have been sent from this chat. You can ask for a new code after {until}."),
    "email_code_expired": N_("The code has expired. Ask for a new one in /settings."),
    "email_code_missing": N_("No e-mail address is waiting for a code. To set one, open /settings."),
    "email_code_tries_exceeded": N_("Too many wrong codes. Ask for a new one in /settings."),
    "email_code_wrong": N_("The code is wrong. Check the e-mail and type the code again. To stop, send /cancel."),
    "unknown_notice_setting": N_("There is no such notice setting."),
}


def has_error_message(code: str) -> bool:
    """True when ``code`` has its own message (error_text does not fall back to the catch-all)."""
    return code in ERROR_RENDERERS or code in ERROR_MESSAGES or code in ERROR_SENTENCES


def _param_text(lang: str, value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return format_datetime(lang, value, zone="local")
    if isinstance(value, dt.date):
        return format_date(lang, value)
    return value


def error_text(lang: str | None, exc: DomainError) -> str:
    """A domain error as one sentence for a parent or an operator, in ``lang``."""
    code = str(getattr(exc, "code", "error"))
    params = dict(getattr(exc, "params", None) or {})
    lang = normalize_language(lang)
    renderer = ERROR_RENDERERS.get(code)
    if renderer is not None:
        return renderer(lang, params)
    msgid = ERROR_MESSAGES.get(code)
    if msgid is not None:
        return gettext(lang, msgid)
    msgid = ERROR_SENTENCES.get(code)
    if msgid is not None:
        return gettext(lang, msgid, **{k: _param_text(lang, v) for k, v in params.items()})
    return gettext(lang, CATCH_ALL, code=code)


def error_lines(lang: str | None, exc: DomainError, *, first_row: int = 1) -> list[str]:
    """``error_text`` plus, for a rejected bulk load, one line per bad row it lists and one for
    how many more there are.

    Services number rows from 0; ``first_row`` is the number shown for row 0 (e.g. 2 for a CSV
    file whose line 1 is the header)."""
    lines = [error_text(lang, exc)]
    listed = getattr(exc, "errors", None) or []
    for index, error in listed:
        lines.append(gettext(lang, "Row {row}: {error}", row=index + first_row,
                             error=error_text(lang, error)))
    more = int(exc.params.get("count", 0)) - len(listed) if listed else 0
    if more > 0:  # (a bulk rejection lists its first rows and counts the rest)
        lines.append(gettext(lang, "… and more rows with errors: {count}.", count=format_number(lang, more)))
    return lines
