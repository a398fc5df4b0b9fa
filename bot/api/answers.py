"""The shapes of the registry API's answers, as pydantic models: every JSON body the API sends is
one of these (``bodies.json_response`` renders it), and ``bot/api/openapi.py`` takes their JSON
schemas for the document, so an answer's keys and the document's are one list. The requests'
shapes are in ``bot/api/schemas.py``.

A route builds its answer from what the facade returns (``model_validate`` reads a dataclass's
attributes or a dict's keys; keys the model does not name are not sent). A field is always sent,
null where its type allows it, unless it is ``Omitted``: then it is sent only when there is
something to say, and never as null. Moments are aware datetimes here; ``json_response`` writes
them in Almaty time."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from bot.api.schemas import Language
from services.errors import MAX_REPORTED_ERRORS
from storage.vocab import AppStatus, DocsState, DocumentStatus, OfferStatus, Privilege, ReferralStatus


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def Omitted(**field: Any) -> Any:
    """A field sent only when it is set (``Answer.body`` leaves out unset fields); the document
    lists it as not required, with its type (never null) and no default. (Capitalised like
    pydantic's ``Field``, which it is.)"""
    return Field(None, json_schema_extra=_no_default, **field)


class Answer(BaseModel):
    """An answer's body. Lax: built from the facade's dataclasses and dicts, which hold datetimes,
    plain strings for the vocabularies' words, and so on."""

    model_config = ConfigDict(from_attributes=True, extra="ignore")

    def body(self) -> dict[str, Any]:
        """The body as Python values for ``json_response``, without the unset ``Omitted`` fields."""
        return self.model_dump(exclude_unset=True)


Moment = Annotated[dt.datetime, Field(description="ISO 8601; answers are in Asia/Almaty time (+05:00).")]
Count = Annotated[int, Field(ge=0)]
AnnulReason = Literal["no_show", "docs_missed", "docs_rejected"]


# --- errors ---------------------------------------------------------------------------------------

class ErrorItem(Answer):
    index: Annotated[int, Field(ge=0)] | None = Field(
        description="Position of the object in the request's array (from 0); null for a request with one object.")
    field: str | None = Field(description="The field at fault ('*': the object itself); null when the error is "
                              "not about one field.")
    reason: str = Field(description="Machine code: missing_field, invalid_field, invalid_iin, "
                        "iin_birth_date_mismatch, invalid_phone, invalid_email, unknown_district, "
                        "unknown_kindergarten, unknown_profile, duplicate_in_batch, child_already_queued, "
                        "application_closed.")
    detail: str = Omitted(description="A finer reason where there is one: type, code, choice, date, datetime, "
                          "range, too_long, checksum, format, ...")
    message: str


class Error(Answer):  # every error answer: errors for bad input, details for a rule or a limit
    error: str = Field(description="A stable machine code, e.g. bulk_rejected, unauthorized, bad_json, not_array, "
                       "referral_not_found, outside_claim_window.")
    message: str = Field(description="The same in words, in the language of Accept-Language (ru | kk; default ru).")
    errors: list[ErrorItem] = Omitted(max_length=MAX_REPORTED_ERRORS, description=(
        f"Validation errors: one per bad object or field, the first {MAX_REPORTED_ERRORS}."))
    error_count: int = Omitted(ge=1, description="How many objects were refused in all (errors lists the first "
                               "ones).")
    details: dict[str, Any] = Omitted(description="Machine-readable parameters of a rule violation (e.g. due_at, "
                                      "opens_at, status).")


# --- the registry ---------------------------------------------------------------------------------

class Upserted(Answer):
    upserted: Count


class ImportReport(Answer):
    created: Count
    updated: Count
    unchanged: Count


class Offer(Answer):
    id: int
    seat_id: int
    application: str = Field(description="The application number.")
    kindergarten: str
    birth_year: int
    language: Language
    made_at: Moment
    expires_at: Moment = Field(description="The end of the claim window the offer lives in.")
    status: OfferStatus


class Referral(Answer):
    id: int
    application: str
    kindergarten: str
    group: str
    language: Language
    via: Literal["offer", "open", "state_order"]
    privilege: Privilege
    status: ReferralStatus
    issued_at: Moment
    showup_due_at: Moment = Field(description="Exclusive: the child must be admitted before it.")
    docs_state: DocsState
    docs_due_at: dt.datetime | None = Field(description="Privilege documents due before it.")
    closed_at: dt.datetime | None
    annul_reason: AnnulReason | None


class ApplicationStatus(Answer):
    number: str
    status: AppStatus
    state: Literal["waiting", "stop_listed", "offer_open", "referred", "admitted", "removed", "withdrawn"]
    district: str = Field(description="The queue: district code ...")
    birth_year: int = Field(description="... and the child's birth year.")
    language: Language
    privilege: Privilege
    docs_state: str
    queue_number: Annotated[int, Field(ge=1)] | None = Field(
        description="1 + waiting applications ahead; null unless waiting.")
    stoplist_until: dt.datetime | None = Field(description="While stop-listed: no offers, no claims.")
    missed_referrals: int
    preferred_kindergartens: list[str]
    submitted_at: Moment
    offers: list[Offer] = Field(description="Open offers.")
    referral: Referral | None = Field(description="The live referral (issued or admitted).")
    referrals: list[Referral] = Field(description="Every referral of the application, the latest first.")


class SeatsResult(Answer):
    seats: list[int] = Field(description="Ids of the new seats.")
    private: bool = Field(description="A private kindergarten under the state order: the seats are open at once "
                          "to every waiting child of the district aged 3+.")
    offers: list[Offer] = Field(description="The offers made at once.")


class ReferralAnswer(Answer):
    referral: Referral


class StaffInvitation(Answer):
    id: int
    kindergarten: str = Field(description="The kindergarten's code.")
    token: str = Field(description="The invitation's code: whoever sends the bot /start <token> first (or opens "
                       "the link) becomes the kindergarten's staff. Give it to that person only.")
    link: str | None = Field(description="https://t.me/<bot>?start=<token>; null when the bot's username is not "
                             "configured (KEZEK_BOT_USERNAME).")
    expires_at: Moment
    emailed: bool = Field(description="The link is also on its way to the address given.")


class StaffEntry(Answer):
    kindergarten: str
    kind: Literal["staff", "invite"] = Field(description="A bound account, or an invitation not used yet.")
    id: int
    user_id: int | None = Field(description="The staff member's Telegram user id; null for an invitation.")
    since: Moment
    expires_at: Moment | None = Field(description="An invitation's; null for staff.")


class StaffList(Answer):
    staff: list[StaffEntry]


class Ended(Answer):
    ended: Count = Field(description="1: ended; 0: nothing active matched (already ended).")


class VerifiedKindergarten(Answer):
    code: str
    name_ru: str
    name_kk: str
    address: str


class VerifiedGroup(Answer):
    name: str
    language: Language
    birth_year: int


class VerifiedReferral(Answer):
    id: int
    application: str = Field(description="The application number.")
    child_iin_masked: str = Field(description="The child's IIN, masked: its first and last two digits (never the "
                                  "full IIN, nor a phone or an e-mail).")
    kindergarten: VerifiedKindergarten
    group: VerifiedGroup
    status: ReferralStatus
    issued_at: Moment
    valid_until: Moment = Field(description="The show-up deadline (exclusive): the child must be admitted before "
                                "it.")
    docs_state: DocsState
    docs_due_at: dt.datetime | None = Field(description="A privilege referral's documents deadline.")
    closed_at: dt.datetime | None = Field(description="When it was admitted or annulled.")
    annul_reason: AnnulReason | None


class ReferralVerdict(Answer):
    state: Literal["valid", "admitted", "annulled", "expired", "refused"] = Field(
        description="valid: genuine, issued, no deadline passed: the child may be admitted; admitted: genuine but "
        "used; annulled: genuine but annulled; expired: genuine but a deadline passed (it will be annulled); "
        "refused: not a genuine Kezek referral (forged, altered, incomplete, or naming no referral): one answer "
        "whatever the reason.")
    genuine: bool = Field(description="false only when refused.")
    valid: bool = Field(description="true only when state is valid.")
    referral: VerifiedReferral | None = Field(description="What to check at the door; null when refused.")
    message: str = Field(description="The verdict in words, in the language of Accept-Language (ru | kk; default "
                         "ru).")


class Document(Answer):
    id: int
    referral: int = Field(description="The referral's id.")
    application: str = Field(description="The application number.")
    status: DocumentStatus = Field(description="pending: waiting for a decision; closed: the referral ended "
                                   "without one.")
    mime: Literal["image/jpeg", "image/png", "application/pdf"] = Field(
        description="Found from the file's bytes on arrival.")
    size: int = Field(description="Bytes.")
    pages: int = Field(ge=1)
    width: int | None
    height: int | None
    sha256: str
    received_at: Moment
    due: dt.datetime | None = Field(description="The referral's documents deadline (exclusive).")
    decided_at: dt.datetime | None
    reason: str | None = Field(description="A rejection's reason code (or the annulment's, for closed documents).")
    note: str | None


class DocumentList(Answer):
    documents: list[Document]


class CalendarResult(Answer):
    days: int


# --- the service ----------------------------------------------------------------------------------

class Counts(RootModel[dict[str, int]]):  # by status, or by reason
    pass


class ChannelBacklog(Answer):
    pending: int
    due_now: int
    oldest_due_seconds: int
    failed: int


class Backlog(Answer):
    outbox_pending: int = Field(description="Notices not routed yet.")
    deliveries: dict[str, ChannelBacklog] = Field(description="Per channel (telegram, email).")


class Stats(Answer):
    applications: Counts
    seats: Counts
    offers: Counts
    referrals: Counts
    annulments: Counts
    outbox: Counts
    backlog: Backlog


class FailedDelivery(Answer):
    delivery: int
    kind: str
    channel: str
    to: str = Field(description="masked")
    tries: int
    reason: str | None


class OutboxReport(Answer):
    outbox: Counts
    deliveries: dict[str, Counts]
    failed_reasons: Counts
    waiting_reasons: Counts = Field(description="\"channel: reason\" of pending deliveries a try was refused for "
                                    "(e.g. the SMTP server away)")
    blocked_chats: int
    failed_latest: list[FailedDelivery]


class Health(Answer):
    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unavailable"]
    senders: Literal["stuck"] = Omitted(description="Only when the senders are stuck: deliveries due for over 5 "
                                        "minutes and no sender round of this process finished within that time "
                                        "(30 minutes of backlog where no sender runs in this process).")
    problems: list[str] = Omitted(description="What is stuck, for operators (English).")


# --- the sandbox ----------------------------------------------------------------------------------

class Clock(Answer):
    now: Moment


class ClockMoved(Answer):
    model_config = ConfigDict(extra="allow")

    now: Moment
    sweeps: list[dict[str, Any]] = Field(description="The sweeps run at each scheduler edge passed, with what "
                                         "they did.")

