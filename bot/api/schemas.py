"""The shapes of the registry API's request bodies, as pydantic models: one source for the check
the server makes before anything reaches the services AND for the schemas of the OpenAPI document
(``bot/api/openapi.py`` takes their JSON schemas), so the two cannot say different things. The
answers' shapes are in ``bot/api/answers.py``.

The models check shape only (types, lengths, patterns, choices): strict types (a JSON ``true`` is
never a string or a number, ``"false"`` never a boolean, ``null`` never a string). The rules that
need the database or the clock (an IIN's checksum, a known district, a birth year within the last
8 years, duplicates in a batch) stay in ``services/`` and run after.

A pydantic error becomes the domain's typed error (``MissingField``, ``InvalidField`` with its
reason, ``InvalidIIN``), so the API answers in the words and codes it always used. A list is
checked in chunks that give the event loop a turn (``check_rows``), keeping the first
``MAX_REPORTED_ERRORS`` errors and counting the rest."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, TypeAdapter
from pydantic import ValidationError as PydanticError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError

from services import parsing as p
from services.documents import NOTE_MAX, REJECTION_REASONS
from services.errors import (
    InvalidField,
    InvalidIIN,
    KezekError,
    MissingField,
    RowErrors,
)
from services.staff import INVITE_DAYS, MAX_INVITE_ID
from storage.vocab import KindergartenKind, Privilege

# services.parsing: a code, control characters refused in text (tab and newline allowed there).
CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-/]*$"
OPTIONAL_CODE_PATTERN = r"^([A-Za-z0-9][A-Za-z0-9_.\-/]*)?$"
TEXT_PATTERN = r"^[^\x00-\x08\x0b-\x1f\x7f]*$"
# services.documents.parse_rejection: newlines and tabs become spaces; other controls, C1 and
# surrogates are refused.
NOTE_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
DATE_PATTERN = r"^([0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{2}\.[0-9]{2}\.[0-9]{4})$"
ISO_DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
IIN_PATTERN = r"^[0-9]{12}$"
LANGUAGES_PATTERN = r"^(ru|kk)([,;](ru|kk))*$"
# bot.sandbox.clock.parse_iso_duration as the API takes it: days, hours, minutes, seconds, at least one.
DURATION_PATTERN = (r"^P([0-9]+D(T([0-9]+H([0-9]+M)?([0-9]+S)?|[0-9]+M([0-9]+S)?|[0-9]+S))?"
                    r"|T([0-9]+H([0-9]+M)?([0-9]+S)?|[0-9]+M([0-9]+S)?|[0-9]+S))$")

Code = Annotated[StrictStr, Field(min_length=1, max_length=40, pattern=CODE_PATTERN)]
OptionalCode = Annotated[StrictStr, Field(max_length=40, pattern=OPTIONAL_CODE_PATTERN,
                                          description="A code; empty: none.")]
Language = Literal["ru", "kk"]


def _both_languages() -> list[Language]:
    return ["ru", "kk"]


def _unique(items: list[Any]) -> list[Any]:
    if len(set(items)) != len(items):
        raise PydanticCustomError("duplicates", "each item at most once")
    return items


# Names and addresses: text without control characters (tab and newline allowed), at most so long.
Text200 = Annotated[StrictStr, Field(min_length=1, max_length=200, pattern=TEXT_PATTERN)]
Text300 = Annotated[StrictStr, Field(min_length=1, max_length=300, pattern=TEXT_PATTERN)]
OptionalText200 = Annotated[StrictStr, Field(min_length=0, max_length=200, pattern=TEXT_PATTERN)]
OptionalText300 = Annotated[StrictStr, Field(min_length=0, max_length=300, pattern=TEXT_PATTERN)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class District(_Body):
    code: Code
    name_ru: Text200
    name_kk: Text200
    profile: OptionalCode = Field("", description="Code of a rule profile; empty: the default profile.")


class Kindergarten(_Body):
    code: Code
    district: Code
    name_ru: Text300
    name_kk: Text300
    address: OptionalText300 = ""
    kind: Literal[KindergartenKind.ALL] = KindergartenKind.STATE  # type: ignore[valid-type]
    languages: list[Language] | Annotated[StrictStr, Field(pattern=LANGUAGES_PATTERN)] = Field(
        default_factory=_both_languages, description="Languages of instruction (a list, or "
        "\"ru,kk\"), each once; default both.")


class Application(_Body):
    number: Code
    child_iin: StrictStr = Field(pattern=IIN_PATTERN, description="12 digits; the check digit and the "
                                 "birth date it encodes are verified.")
    child_name: Text200
    birth_date: StrictStr = Field(pattern=DATE_PATTERN, description="YYYY-MM-DD or DD.MM.YYYY; at most "
                                  "8 years ago, not in the future.")
    district: Code
    language: Language = "ru"
    preferred_kindergartens: Annotated[list[Code], AfterValidator(_unique)] = Field(
        default_factory=list, max_length=20, json_schema_extra={"uniqueItems": True},
        description="Kindergarten codes of the district, each once; empty: any.")
    privilege: Literal[Privilege.ALL] = Privilege.NONE  # type: ignore[valid-type]
    submitted_at: StrictStr = Field(min_length=1, max_length=40, description="ISO 8601; without an "
                                    "offset it is Almaty time; at most 5 minutes ahead of now.")
    phone: StrictStr = Field(min_length=1, max_length=30, description="A Kazakhstan mobile number; "
                             "stored as +7XXXXXXXXXX.")
    email: StrictStr = Field(min_length=1, max_length=254, json_schema_extra={"format": "email"})
    twin_group: OptionalCode | None = Field(None, description="Twins of one applicant share it.")


class CalendarDay(_Body):
    day: StrictStr = Field(pattern=DATE_PATTERN, description="YYYY-MM-DD or DD.MM.YYYY.")
    working: StrictBool = Field(description="false: a day off (a moved holiday); true: a declared "
                                "working day (a working weekend). Operators' days win over the "
                                "built-in calendar.")
    name: OptionalText200 = ""


class SeatsRequest(_Body):
    kindergarten: Code
    birth_year: StrictInt = Field(description="Within the last 8 years (the document served gives the "
                                  "bounds of its day).")
    language: Language
    count: StrictInt = Field(ge=1, le=500)


class DocumentsDecision(_Body):
    decision: Literal["accepted", "rejected"]
    reason: Literal[REJECTION_REASONS] | None = Field(  # type: ignore[valid-type]
        None, description="Rejections only (optional): why, a code the parent is told in their language. "
        "\"other\" needs a note.")
    note: StrictStr | None = Field(None, min_length=1, max_length=NOTE_MAX, pattern=NOTE_PATTERN,
                                   description="Rejections only (optional): the operator's own words, quoted "
                                   "to the parent as they are (one line; a note without a reason is reason "
                                   "other).")


class StaffInviteRequest(_Body):
    kindergarten: Code
    email: StrictStr | None = Field(None, min_length=3, max_length=254,
                                    description="Also e-mail the one-time link to this address (the person's own).")
    days: StrictInt = Field(INVITE_DAYS, ge=1, le=30, description="How long the link works (it works once).")


class StaffRevokeRequest(_Body):
    kindergarten: Code
    user_id: StrictInt = Field(ge=1, le=2**63 - 1, description="The staff member's Telegram user id (GET /staff).")


class InviteRevokeRequest(_Body):
    kindergarten: Code
    invite_id: StrictInt = Field(ge=1, le=MAX_INVITE_ID, description="An invitation not used yet (GET /staff).")


class ClockAdvance(_Body):
    advance: StrictStr = Field(pattern=DURATION_PATTERN, description="ISO 8601 duration of days, hours, "
                               "minutes, seconds: PT3H, P5D, P1DT30M.", examples=["PT3H"])


class ClockSet(_Body):
    set: StrictStr = Field(json_schema_extra={"format": "date-time"}, description="An aware moment, not in "
                           "the clock's past.", examples=["2026-09-01T19:59:00+05:00"])


ARRAY_BODIES: dict[str, type[_Body]] = {"District": District, "Kindergarten": Kindergarten,
                                        "Application": Application, "CalendarDay": CalendarDay}
OBJECT_BODIES: dict[str, type[_Body]] = {"SeatsRequest": SeatsRequest, "DocumentsDecision": DocumentsDecision}


# --- checking --------------------------------------------------------------------------------------

@cache
def _adapter(model: type[_Body]) -> TypeAdapter[Any]:
    return TypeAdapter(model)


_PATTERN_REASONS = {CODE_PATTERN: "code", OPTIONAL_CODE_PATTERN: "code", TEXT_PATTERN: "characters",
                    NOTE_PATTERN: "characters", DATE_PATTERN: "date", ISO_DATE_PATTERN: "date",
                    DURATION_PATTERN: "duration", LANGUAGES_PATTERN: "choice"}


def _domain_error(model: type[_Body], error: ErrorDetails) -> KezekError:
    """The domain's error for pydantic's first error about a body (the API's words and codes)."""
    loc = error["loc"]
    kind = error["type"]
    if not loc:  # the row itself
        return InvalidField(field="*", reason="object")
    field = str(loc[0])
    info = model.model_fields.get(field)
    required = info is not None and info.is_required()
    if kind == "missing" or (required and error.get("input") is None and len(loc) == 1):
        return MissingField(field=field)
    if field == "languages":
        return InvalidField(field=field, reason="choice", options="ru, kk")
    if kind == "string_too_short" and len(loc) == 1:
        return MissingField(field=field) if required else InvalidField(field=field, reason="type")
    return _invalid_field(field, kind, error.get("ctx") or {}, info)


def _invalid_field(field: str, kind: str, ctx: dict[str, Any], info: FieldInfo | None) -> KezekError:
    """``_domain_error`` for a value that is there but does not fit, by pydantic's error type."""
    if kind == "string_too_long":
        return InvalidField(field=field, reason="too_long", max=ctx.get("max_length"))
    if kind == "string_pattern_mismatch":
        if field == "child_iin":
            return InvalidIIN(field=field, reason="format")
        return InvalidField(field=field, reason=_PATTERN_REASONS.get(str(ctx.get("pattern")), "type"))
    if kind == "literal_error":
        options = [o.strip(" '") for o in str(ctx.get("expected", "")).replace(" or ", ",").split(",")]
        return InvalidField(field=field, reason="choice", options=", ".join(o for o in options if o))
    if kind in ("greater_than_equal", "less_than_equal"):
        low = high = None
        for meta in info.metadata if info is not None else ():
            low = getattr(meta, "ge", low)
            high = getattr(meta, "le", high)
        return InvalidField(field=field, reason="range", min=low, max=high)
    if kind == "too_long":
        return InvalidField(field=field, reason="too_many", max=ctx.get("max_length"))
    if kind == "duplicates":
        return InvalidField(field=field, reason="duplicates")
    if kind == "bool_type":
        return InvalidField(field=field, reason="boolean")
    return InvalidField(field=field, reason="type")


def row_error(model: type[_Body], row: Any, also: Callable[[Any], object] | None = None) -> KezekError | None:
    """The domain's error for the first fault of ``row`` against ``model`` (then, when it fits,
    the ``KezekError`` that ``also(row)`` raises: a services' parser of one row), or None."""
    try:
        _adapter(model).validate_python(row)
    except PydanticError as exc:
        return _domain_error(model, exc.errors(include_url=False)[0])
    if also is not None:
        try:
            also(row)
        except KezekError as exc:
            return exc
    return None


def check_object(model: type[_Body], body: Any) -> None:
    """Raise the domain's error for a single-object body that does not fit ``model``."""
    error = row_error(model, body)
    if error is not None:
        raise error


async def check_rows(model: type[_Body], rows: Sequence[Any], *, also: Callable[[Any], object] | None = None) -> None:
    """Check every row (``row_error``) in turns of the event loop (``services.parsing.in_turns``);
    ``BulkRejected`` listing the first bad rows (index, error) and counting all of them."""
    errors = RowErrors()
    async for index, row in p.in_turns(rows):
        error = row_error(model, row, also)
        if error is not None:
            errors.add(index, error)
    errors.raise_any()
