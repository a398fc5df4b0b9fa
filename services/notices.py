"""The notices Kezek writes to parents: every kind, what each one carries, and how it travels.

``NoticeKind`` names every notice; its values are what the outbox stores (``outbox.kind``), so
they never change. ``KINDS`` is the one table of their properties: the payload class, the chat
setting that can turn the notice off, whether it goes by e-mail only, whether it carries a code,
the file that goes with it, what the parent is asked to do in the bot (and whether the Telegram
message has the button for it) and the deadlines an e-mail copy lists. Routing
(``services.notifications``, ``services.settings.notice_wanted``), the code e-mails' rate limit
(``services.linking``) and the bot's words (``bot/delivery/notices.py``) all read this table.

A notice is written with ``Ctx.notify(kind, application_id, dedupe_key, payload)``: ``kind`` must
be a ``NoticeKind`` and ``payload`` an instance of the kind's payload class (a frozen dataclass
built with keywords, so a missing or misspelt field fails where the notice is written, in the
tests of that path). ``Payload.to_json`` gives the dict the outbox stores: the fields in their
order, moments as ISO 8601 text; a field made with ``omitted_if_none()`` is left out while None.

Adding a kind: a member here, its payload class and its ``KINDS`` row; its words (a renderer
and a subject) in ``bot/delivery/notices.py``, whose import fails while either is missing; the
producer's ``ctx.notify``; the ru/kk catalogs; and in tests/bot/delivery/test_notices.py its stored value, a
sample payload and its producer's path (those tests fail until it has them). A kind a chat may turn off
names an existing ``NoticeSetting``; a new setting also needs its ``Chat`` column (a migration),
its row in ``services.settings.NOTICE_KEYS`` (checked at import) and its toggle in /settings.

No aiogram, no database here: a leaf that any layer may import."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, fields
from enum import Enum, StrEnum
from typing import Any


class NoticeKind(StrEnum):
    """Every notice. The values are stored in the outbox: never rename one."""

    TURN_CAME = "turn_came"  # a seat is offered to the application
    OFFER_EXPIRED = "offer_expired"  # the offer was not claimed in time
    SEATS_OPEN = "seats_open"  # seats of the birth year are open to everyone
    REFERRAL_ISSUED = "referral_issued"
    REFERRAL_ANNULLED = "referral_annulled"  # not taken to the kindergarten: back in the queue
    ADMITTED = "admitted"
    DOCUMENTS_ACCEPTED = "documents_accepted"
    REMOVED = "removed"  # removed from the queue for good (RULES.md, Show-up)
    PRIVILEGE_DROPPED = "privilege_dropped"  # documents missed or rejected: general queue
    STOPLIST_ENDED = "stoplist_ended"
    WITHDRAWN = "withdrawn"  # the registry withdrew the application
    REMINDER_OFFER = "reminder_offer"
    REMINDER_SHOWUP = "reminder_showup"
    REMINDER_DOCS = "reminder_docs"
    QUEUE_MOVED = "queue_moved"  # opt-in: the number a chat was told changed
    LINK_CODE = "link_code"  # a code to link a chat, to the application's address
    EMAIL_CODE = "email_code"  # a code to confirm a chat's own address, to that address
    REGISTRATION = "registration"  # the application is registered; the one-tap deep link
    NO_SHOW_REPORTED = "no_show_reported"  # the kindergarten says the child has not come yet
    STAFF_INVITE = "staff_invite"  # an operator's invitation to act for a kindergarten, to the address given
    STAFF_DIGEST = "staff_digest"  # a working morning: referrals due soon, to a kindergarten's staff member


class NoticeSetting(StrEnum):
    """The chat settings that turn optional notices off (the /settings keys, the API's
    ``notice``); ``services.settings.NOTICE_KEYS`` maps each to its ``Chat`` column."""

    MOVES = "moves"
    REMINDERS = "reminders"
    OPEN_SEATS = "open_seats"


class NoticeAttachment(StrEnum):
    """A file that goes with a notice (made by the bot when it is sent)."""

    REFERRAL_PDF = "referral_pdf"  # the referral with its QR code (handlers/views/referral_pdf.py)


class BotAction(StrEnum):
    """What a notice asks the parent to do in the bot: the e-mail copy says where to do it."""

    CLAIM_OFFERED_SEAT = "claim_offered_seat"
    CLAIM_OPEN_SEAT = "claim_open_seat"


class Deadline(StrEnum):
    """The deadlines an e-mail copy lists in its details."""

    OFFER = "offer"  # the offer can be claimed until
    SHOWUP = "showup"  # the referral must reach the kindergarten by
    DOCS = "docs"  # the privilege documents are due by
    STOPLIST = "stoplist"  # on the stop-list until


# --- payloads ------------------------------------------------------------------------------------------

_OMIT_IF_NONE = "omit_if_none"


def omitted_if_none() -> Any:
    """A payload field that defaults to None and is left out of the stored JSON while None."""
    return field(default=None, metadata={_OMIT_IF_NONE: True})


_LAYOUTS: dict[type, tuple[tuple[str, bool], ...]] = {}


def _layout(cls: type) -> tuple[tuple[str, bool], ...]:
    """A payload class's (field, left out while None) pairs, worked out once per class."""
    layout = _LAYOUTS.get(cls)
    if layout is None:
        layout = _LAYOUTS[cls] = tuple((f.name, bool(f.metadata.get(_OMIT_IF_NONE))) for f in fields(cls))
    return layout


@dataclass(frozen=True, kw_only=True)
class Payload:
    """What a notice carries: the base of every payload class."""

    def to_json(self) -> dict[str, Any]:
        """The payload as the outbox stores it."""
        out: dict[str, Any] = {}
        for name, omit_if_none in _layout(type(self)):
            value = getattr(self, name)
            if value is None and omit_if_none:
                continue
            out[name] = value.isoformat() if isinstance(value, dt.datetime) else value
        return out


@dataclass(frozen=True, kw_only=True)
class NoDetails(Payload):
    """A notice whose application says it all."""


@dataclass(frozen=True, kw_only=True)
class OfferMade(Payload):
    offer_id: int
    seat_id: int
    kindergarten_id: int
    expires_at: dt.datetime
    batch: str | None  # the twins' batch: one claim takes the seats for all of them


@dataclass(frozen=True, kw_only=True)
class OfferClosed(Payload):
    offer_id: int
    seat_id: int


@dataclass(frozen=True, kw_only=True)
class SeatsOpened(Payload):
    district_id: int
    birth_year: int
    seats: int


@dataclass(frozen=True, kw_only=True)
class ReferralIssued(Payload):
    referral_id: int
    kindergarten_id: int
    group_id: int | None
    showup_due_at: dt.datetime
    docs_due_at: dt.datetime | None  # stored as null when no documents are due


@dataclass(frozen=True, kw_only=True)
class ReferralNotice(Payload):
    referral_id: int


@dataclass(frozen=True, kw_only=True)
class Admitted(ReferralNotice):
    kindergarten_id: int


@dataclass(frozen=True, kw_only=True)
class Annulment(ReferralNotice):
    """A referral annulled (``services.referrals.annul``): why, and from when."""

    reason: str  # services.referrals: NO_SHOW, DOCS_MISSED, DOCS_REJECTED
    effective_at: dt.datetime


@dataclass(frozen=True, kw_only=True)
class Removed(Annulment):
    missed: int  # referrals not taken to the kindergarten in time, this one included


@dataclass(frozen=True, kw_only=True)
class ReferralAnnulled(Annulment):
    stoplist_until: dt.datetime | None  # stored as null when the profile has no stop-list


@dataclass(frozen=True, kw_only=True)
class PrivilegeDropped(Annulment):
    rejection: str | None = omitted_if_none()  # services.documents.REJECTION_REASONS
    note: str | None = omitted_if_none()  # the operator's own words


@dataclass(frozen=True, kw_only=True)
class StoplistEnded(Payload):
    until: dt.datetime


@dataclass(frozen=True, kw_only=True)
class OfferReminder(Payload):
    offer_id: int
    expires_at: dt.datetime


@dataclass(frozen=True, kw_only=True)
class ReferralDeadline(Payload):
    referral_id: int
    due_at: dt.datetime


@dataclass(frozen=True, kw_only=True)
class QueueMoved(Payload):
    chat_id: int  # the one chat this notice is for (routing sends it nowhere else)
    number: int
    previous: int


@dataclass(frozen=True, kw_only=True)
class LinkCodeIssued(Payload):
    code: str = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class EmailCodeIssued(Payload):
    chat_id: int
    email: str = field(repr=False)  # the address being confirmed: the code goes there
    code: str = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class StaffInvited(Payload):
    email: str = field(repr=False)  # the address the operator gave
    code: str = field(repr=False)  # the invitation's token (scrubbed from the outbox once sent)
    kindergarten_id: int
    expires_at: dt.datetime


@dataclass(frozen=True, kw_only=True)
class StaffDigest(Payload):
    chat_id: int  # the staff member's chat: the one chat this notice is for
    kindergarten_id: int
    count: int  # referrals waiting for a child whose show-up deadline ends by ``until``
    until: dt.datetime


@dataclass(frozen=True, kw_only=True)
class Registration(Payload):
    link_expires_at: dt.datetime  # when the e-mail's deep link stops working


# --- the table -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NoticeSpec:
    """The properties of one kind of notice."""

    payload: type[Payload]
    # The chat setting that can turn it off in a chat (None: it always comes). The application's
    # own e-mail copy comes whatever any chat chose.
    setting: NoticeSetting | None = None
    # E-mail only: never to a chat; to the payload's "email", else the application's address.
    email_only: bool = False
    # For a kindergarten's staff member: to the payload's "chat_id" only, by Telegram, no e-mail copy.
    staff: bool = False
    # A one-time code: e-mail only, counted by the per-chat rate limit of e-mailed codes, scrubbed
    # from the outbox once sent, and its e-mail shows nothing but the code.
    code: bool = False
    attachment: NoticeAttachment | None = None
    action: BotAction | None = None
    # The Telegram message carries the seats button for ``action``.
    button: bool = False
    # The deadlines the e-mail copy lists: (which, the payload field that holds it), in order.
    deadlines: tuple[tuple[Deadline, str], ...] = ()


K = NoticeKind
KINDS: Mapping[NoticeKind, NoticeSpec] = {
    K.TURN_CAME: NoticeSpec(OfferMade, action=BotAction.CLAIM_OFFERED_SEAT, button=True,
                            deadlines=((Deadline.OFFER, "expires_at"),)),
    K.OFFER_EXPIRED: NoticeSpec(OfferClosed),
    K.SEATS_OPEN: NoticeSpec(SeatsOpened, setting=NoticeSetting.OPEN_SEATS, action=BotAction.CLAIM_OPEN_SEAT,
                             button=True),
    K.REFERRAL_ISSUED: NoticeSpec(ReferralIssued, attachment=NoticeAttachment.REFERRAL_PDF,
                                  deadlines=((Deadline.SHOWUP, "showup_due_at"), (Deadline.DOCS, "docs_due_at"))),
    K.REFERRAL_ANNULLED: NoticeSpec(ReferralAnnulled, deadlines=((Deadline.STOPLIST, "stoplist_until"),)),
    K.ADMITTED: NoticeSpec(Admitted),
    K.DOCUMENTS_ACCEPTED: NoticeSpec(ReferralNotice),
    K.REMOVED: NoticeSpec(Removed),
    K.PRIVILEGE_DROPPED: NoticeSpec(PrivilegeDropped),
    K.STOPLIST_ENDED: NoticeSpec(StoplistEnded),
    K.WITHDRAWN: NoticeSpec(NoDetails),
    K.REMINDER_OFFER: NoticeSpec(OfferReminder, setting=NoticeSetting.REMINDERS,
                                 action=BotAction.CLAIM_OFFERED_SEAT, deadlines=((Deadline.OFFER, "expires_at"),)),
    K.REMINDER_SHOWUP: NoticeSpec(ReferralDeadline, setting=NoticeSetting.REMINDERS,
                                  deadlines=((Deadline.SHOWUP, "due_at"),)),
    K.REMINDER_DOCS: NoticeSpec(ReferralDeadline, setting=NoticeSetting.REMINDERS,
                                deadlines=((Deadline.DOCS, "due_at"),)),
    K.QUEUE_MOVED: NoticeSpec(QueueMoved, setting=NoticeSetting.MOVES),
    K.LINK_CODE: NoticeSpec(LinkCodeIssued, email_only=True, code=True),
    K.EMAIL_CODE: NoticeSpec(EmailCodeIssued, email_only=True, code=True),
    K.REGISTRATION: NoticeSpec(Registration, email_only=True),
    K.NO_SHOW_REPORTED: NoticeSpec(ReferralDeadline, deadlines=((Deadline.SHOWUP, "due_at"),)),
    K.STAFF_INVITE: NoticeSpec(StaffInvited, email_only=True),
    K.STAFF_DIGEST: NoticeSpec(StaffDigest, staff=True),
}
del K


def require_every(members: Iterable[Enum], table: Collection[Any], what: str) -> None:
    """Raise at import when ``table`` lacks a key for one of ``members`` (a kind without its
    words, a setting without its column): never a parent's notice going wrong at run time."""
    missing = [str(m) for m in members if m not in table]
    if missing:
        raise RuntimeError(f"{what} lacks {', '.join(sorted(missing))}")


def _check_table() -> None:
    require_every(NoticeKind, KINDS, "services.notices.KINDS")
    for kind, spec in KINDS.items():
        names = {f.name for f in fields(spec.payload)}
        for _deadline, key in spec.deadlines:
            if key not in names:
                raise RuntimeError(f"KINDS[{kind}]: {key!r} is not a field of {spec.payload.__name__}")
        if spec.code and not spec.email_only:
            raise RuntimeError(f"KINDS[{kind}]: a code goes by e-mail only")
        if spec.staff and (spec.email_only or "chat_id" not in names):
            raise RuntimeError(f"KINDS[{kind}]: a staff notice goes to its payload's chat_id by Telegram")
        if spec.button and spec.action is None:
            raise RuntimeError(f"KINDS[{kind}]: a button needs its action")


_check_table()

# Derived sets (one definition: the table).
EMAIL_ONLY: frozenset[NoticeKind] = frozenset(k for k, s in KINDS.items() if s.email_only)
STAFF_KINDS: frozenset[NoticeKind] = frozenset(k for k, s in KINDS.items() if s.staff)
CODE_KINDS: frozenset[NoticeKind] = frozenset(k for k, s in KINDS.items() if s.code)


_BY_VALUE: Mapping[str, NoticeKind] = {kind.value: kind for kind in NoticeKind}


def kind_of(stored: str) -> NoticeKind | None:
    """The ``NoticeKind`` of a stored kind; None for a string this version does not know (a row
    written by another version of Kezek)."""
    return _BY_VALUE.get(stored)


def spec_of(stored: str) -> NoticeSpec | None:
    """The properties of a stored kind (None: see ``kind_of``)."""
    kind = kind_of(stored)
    return KINDS[kind] if kind is not None else None


def outbox_row(kind: NoticeKind, application_id: int | None, dedupe_key: str, payload: Payload | None,
               now: dt.datetime) -> dict[str, Any]:
    """The outbox row of a notice (``Ctx.notify``; bulk writers insert these themselves).
    ``TypeError`` for a kind that is not a ``NoticeKind`` or a payload of another class than the
    kind's (None: the kind's payload class without arguments, for a kind that carries nothing)."""
    if not isinstance(kind, NoticeKind):
        raise TypeError(f"a notice kind must be a NoticeKind, not {kind!r}")
    expected = KINDS[kind].payload
    if payload is None:
        payload = expected()
    if type(payload) is not expected:
        raise TypeError(f"a {kind} notice carries {expected.__name__}, not {type(payload).__name__}")
    return {
        "dedupe_key": dedupe_key, "kind": kind.value, "application_id": application_id,
        "payload": payload.to_json(), "created_at": now, "status": "pending", "attempts": 0,
        "next_attempt_at": now,
    }
