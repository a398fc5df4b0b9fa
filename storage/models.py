"""SQLAlchemy 2 typed models of Kezek.

All timestamps are stored as naive UTC (``UTCDateTime`` converts) so SQLite and PostgreSQL
behave the same; the domain computes in Asia/Almaty through ``services.calendar``.

Why one module of this size: SQLAlchemy's declarative models are one metadata and their
relationships name each other; split, every module would import the others for its foreign keys."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from storage import vocab  # (the module, not its names: the vocabulary is imported from there)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BigInteger primary keys that still autoincrement on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware datetimes in, aware UTC datetimes out; stored naive UTC."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# --- reference data ------------------------------------------------------------------------------

class RuleProfile(Base):
    """Every number of the rules, per region. Defaults: RULES.md, "Rule profile"."""

    __tablename__ = "rule_profiles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    window_open_minute: Mapped[int] = mapped_column(Integer, default=vocab.DEFAULT_WINDOW_OPEN_MINUTE)
    window_close_minute: Mapped[int] = mapped_column(Integer, default=vocab.DEFAULT_WINDOW_CLOSE_MINUTE)
    offer_windows: Mapped[int] = mapped_column(Integer, default=1)
    showup_working_days: Mapped[int] = mapped_column(Integer, default=5)
    stoplist_working_days: Mapped[int] = mapped_column(Integer, default=10)
    removal_on_annulment: Mapped[int] = mapped_column(Integer, default=2)
    docs_working_days: Mapped[int] = mapped_column(Integer, default=5)
    docs_calendar_days: Mapped[int] = mapped_column(Integer, default=10)
    private_min_age_years: Mapped[int] = mapped_column(Integer, default=3)
    interleave_general_per_first: Mapped[int] = mapped_column(Integer, default=0)
    twins_together: Mapped[bool] = mapped_column(Boolean, default=True)


class District(Base):
    __tablename__ = "districts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name_ru: Mapped[str] = mapped_column(String(200))
    name_kk: Mapped[str] = mapped_column(String(200))
    profile_id: Mapped[int | None] = mapped_column(ForeignKey("rule_profiles.id"), default=None)

    profile: Mapped[RuleProfile | None] = relationship(lazy="raise")


class Kindergarten(Base):
    __tablename__ = "kindergartens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id"), index=True)
    name_ru: Mapped[str] = mapped_column(String(300))
    name_kk: Mapped[str] = mapped_column(String(300))
    address: Mapped[str] = mapped_column(String(300), default="")
    kind: Mapped[str] = mapped_column(String(30), default=vocab.KindergartenKind.STATE)
    languages: Mapped[str] = mapped_column(String(20), default="ru,kk")


class Group(Base):
    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("kindergarten_id", "birth_year", "language"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kindergarten_id: Mapped[int] = mapped_column(ForeignKey("kindergartens.id"))
    birth_year: Mapped[int] = mapped_column(Integer)
    language: Mapped[str] = mapped_column(String(2))
    name: Mapped[str] = mapped_column(String(100), default="")


# --- the queue -----------------------------------------------------------------------------------

class Application(Base):
    __tablename__ = "applications"
    __table_args__ = (
        # The queue order: privilege rank, submission moment, application number.
        Index(
            "ix_applications_queue",
            "district_id", "birth_year", "status", "priv_rank", "submitted_at", "number",
        ),
        Index("ix_applications_stoplist", "stoplist_until"),
        Index("ix_applications_twin_group", "twin_group"),
        Index("ix_applications_child_iin", "child_iin"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    child_iin: Mapped[str] = mapped_column(String(12))
    child_name: Mapped[str] = mapped_column(String(200))
    birth_date: Mapped[dt.date] = mapped_column(Date)
    birth_year: Mapped[int] = mapped_column(Integer)
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id"))
    language: Mapped[str] = mapped_column(String(2), default="ru")
    privilege: Mapped[str] = mapped_column(String(20), default=vocab.Privilege.NONE)
    priv_rank: Mapped[int] = mapped_column(Integer, default=2)
    docs_state: Mapped[str] = mapped_column(String(20), default=vocab.DocsState.NOT_REQUIRED)
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    phone: Mapped[str] = mapped_column(String(16))
    email: Mapped[str] = mapped_column(String(254))
    status: Mapped[str] = mapped_column(String(20), default=vocab.AppStatus.QUEUED)
    missed_referrals: Mapped[int] = mapped_column(Integer, default=0)
    stoplist_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    any_kindergarten: Mapped[bool] = mapped_column(Boolean, default=True)
    twin_group: Mapped[str | None] = mapped_column(String(40), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    @property
    def queue_key(self) -> tuple[int, dt.datetime, str]:
        return (self.priv_rank, self.submitted_at, self.number)


class ApplicationPreference(Base):
    """Preferred kindergartens of an application, in the parent's order."""

    __tablename__ = "application_preferences"
    __table_args__ = (Index("ix_application_preferences_kg", "kindergarten_id", "application_id"),)

    application_id: Mapped[int] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE"), primary_key=True
    )
    kindergarten_id: Mapped[int] = mapped_column(ForeignKey("kindergartens.id"), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer)


class QueueEvent(Base):
    """A change of a queue's waiting set: who joined or left, where, when and why.

    A parent's queue number moves by the sum of ``delta`` of the events whose key is ahead of
    theirs; the causes of a move are read from here (see services.queue.queue_view)."""

    __tablename__ = "queue_events"
    __table_args__ = (Index("ix_queue_events_queue_at", "district_id", "birth_year", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    district_id: Mapped[int] = mapped_column(Integer)
    birth_year: Mapped[int] = mapped_column(Integer)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    priv_rank: Mapped[int] = mapped_column(Integer)
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    number: Mapped[str] = mapped_column(String(40))
    delta: Mapped[int] = mapped_column(Integer)  # +1 joined ahead, -1 left
    cause: Mapped[str] = mapped_column(String(30))
    application_id: Mapped[int] = mapped_column(BigInteger)


class QueueChange(Base):
    """One committed change of a queue's waiting order (an application joined, left, or moved
    in it), written by the database itself: triggers on ``applications`` (migration 0009), so
    that no code path can change a queue without it. Append-only until ``fold_queue_changes``
    adds them to ``QueueVersion.base``.

    A queue's version is ``base`` + the count of its rows here (``queue_version``): a count, not
    the newest id, because ids are handed out before commit and commits can land out of order,
    while the set of committed changes a snapshot sees only grows. Two reads that see the same
    version see the same waiting order, so the queue numbers computed at one version hold for
    every read at that version (``services.queue_numbers``).

    Trap for later migrations: a ``batch_alter_table`` of ``applications`` on SQLite rebuilds the
    table and drops its triggers; such a migration creates them again itself, from a frozen copy
    of their DDL, or the migration environment refuses it (``storage.queue_versions``)."""

    __tablename__ = "queue_changes"
    __table_args__ = (Index("ix_queue_changes_queue", "district_id", "birth_year"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    district_id: Mapped[int] = mapped_column(Integer)
    birth_year: Mapped[int] = mapped_column(Integer)


class QueueVersion(Base):
    """The changes of a queue folded so far (see ``QueueChange``)."""

    __tablename__ = "queue_versions"

    district_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    birth_year: Mapped[int] = mapped_column(Integer, primary_key=True)
    base: Mapped[int] = mapped_column(BigInteger)


class QueueLook(Base):
    """The number a viewer (a chat, the CLI...) last saw for an application."""

    __tablename__ = "queue_looks"

    application_id: Mapped[int] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE"), primary_key=True
    )
    viewer: Mapped[str] = mapped_column(String(60), primary_key=True)
    number: Mapped[int] = mapped_column(Integer)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class QueueSnapshot(Base):
    """An application's queue number as it stood on a night (the nightly snapshot)."""

    __tablename__ = "queue_snapshots"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    application_id: Mapped[int] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer)


class QueueState(Base):
    """Per-queue state of the privilege interleave (general offers owed after a first-priority one)."""

    __tablename__ = "queue_states"

    district_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    birth_year: Mapped[int] = mapped_column(Integer, primary_key=True)
    general_owed: Mapped[int] = mapped_column(Integer, default=0)


# --- seats, offers, referrals --------------------------------------------------------------------

class Seat(Base):
    __tablename__ = "seats"
    __table_args__ = (
        Index("ix_seats_status_queue", "status", "district_id", "birth_year"),
        Index("ix_seats_kindergarten", "kindergarten_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kindergarten_id: Mapped[int] = mapped_column(ForeignKey("kindergartens.id"))
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id"))
    district_id: Mapped[int] = mapped_column(Integer)
    birth_year: Mapped[int] = mapped_column(Integer)
    language: Mapped[str] = mapped_column(String(2))
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default=vocab.SeatStatus.FREE)
    published_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    opened_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)


class Offer(Base):
    __tablename__ = "offers"
    __table_args__ = (
        # one open offer per seat and per application: the database refuses a second one
        Index(
            "uq_offers_open_seat", "seat_id", unique=True,
            sqlite_where=text("status = 'open'"), postgresql_where=text("status = 'open'"),
        ),
        Index(
            "uq_offers_open_application", "application_id", unique=True,
            sqlite_where=text("status = 'open'"), postgresql_where=text("status = 'open'"),
        ),
        Index("ix_offers_status_expires", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    seat_id: Mapped[int] = mapped_column(ForeignKey("seats.id"))
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"))
    batch: Mapped[str | None] = mapped_column(String(40), default=None)
    made_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(20), default=vocab.OfferStatus.OPEN)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)


_LIVE = "status IN ('issued', 'admitted')"


class Referral(Base):
    __tablename__ = "referrals"
    __table_args__ = (
        # A seat is never issued twice; a child never holds two referrals.
        Index("uq_referrals_live_seat", "seat_id", unique=True,
              sqlite_where=text(_LIVE), postgresql_where=text(_LIVE)),
        Index("uq_referrals_live_application", "application_id", unique=True,
              sqlite_where=text(_LIVE), postgresql_where=text(_LIVE)),
        Index("uq_referrals_issued_child", "child_iin", unique=True,
              sqlite_where=text("status = 'issued'"), postgresql_where=text("status = 'issued'")),
        Index("ix_referrals_showup", "status", "showup_due_at"),
        Index("ix_referrals_docs", "docs_state", "docs_due_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"))
    child_iin: Mapped[str] = mapped_column(String(12))
    seat_id: Mapped[int] = mapped_column(ForeignKey("seats.id"))
    kindergarten_id: Mapped[int] = mapped_column(ForeignKey("kindergartens.id"))
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id"))
    via: Mapped[str] = mapped_column(String(20))  # offer | open | state_order
    privilege: Mapped[str] = mapped_column(String(20), default=vocab.Privilege.NONE)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    confirmed_by: Mapped[str] = mapped_column(String(100))
    showup_due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    docs_state: Mapped[str] = mapped_column(String(20), default=vocab.DocsState.NOT_REQUIRED)
    docs_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    status: Mapped[str] = mapped_column(String(20), default=vocab.ReferralStatus.ISSUED)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    annul_reason: Mapped[str | None] = mapped_column(String(30), default=None)


# --- calendar, outbox, audit ---------------------------------------------------------------------

class CalendarDay(Base):
    """Operator overrides of the Kazakhstan calendar: a decree's day off or working weekend."""

    __tablename__ = "calendar_days"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    working: Mapped[bool] = mapped_column(Boolean)
    name: Mapped[str] = mapped_column(String(200), default="")


class OutboxMessage(Base):
    """A notice to a parent, written in the same transaction as the change that caused it."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    application_id: Mapped[int | None] = mapped_column(BigInteger, default=None, index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)


class Delivery(Base):
    """One notice (an outbox row) to one recipient on one channel: what a sender sends exactly
    once. Written when the outbox row is routed to the chats linked to its application and to
    the e-mail addresses; (outbox_id, channel, target) is unique, so routing twice adds nothing."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("outbox_id", "channel", "target"),
        Index("ix_deliveries_due", "channel", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id"))
    channel: Mapped[str] = mapped_column(String(10))  # telegram | email
    target: Mapped[str] = mapped_column(String(320))  # a chat id or an e-mail address
    lang: Mapped[str] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_entity", "entity", "entity_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(60))
    entity: Mapped[str] = mapped_column(String(30))
    entity_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# --- the Telegram front --------------------------------------------------------------------------

class Chat(Base):
    """A Telegram chat that talks to the bot, and the language it chose ('ru' | 'kk')."""

    __tablename__ = "chats"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    language: Mapped[str | None] = mapped_column(String(2), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # Which optional notices the chat gets (the rest — your turn, referral, annulment, stop-list,
    # removal — always come): queue number moved (opt-in), deadline reminders, seats open to all.
    notify_moves: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    notify_reminders: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    notify_open_seats: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # The chat's own address for e-mail copies of its notices (confirmed with a code), and an
    # address waiting for its code: only the code's hash is kept.
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    email_pending: Mapped[str | None] = mapped_column(String(320), default=None)
    email_code_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    email_code_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    email_code_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When Telegram last answered 403 for this chat (the user blocked the bot): no Telegram notices
    # are routed to it (e-mail copies go on) until the chat writes to the bot again.
    blocked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)


class ChatLink(Base):
    """An application linked to a Telegram chat (a parent may link several children; an
    application may be linked from the chats of both parents)."""

    __tablename__ = "chat_links"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), primary_key=True,
                                                autoincrement=False)
    linked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    method: Mapped[str] = mapped_column(String(10))  # 'contact' | 'email'


class LinkAttempt(Base):
    """One try to prove a link, kept to lock a chat after repeated failures."""

    __tablename__ = "link_attempts"
    __table_args__ = (Index("ix_link_attempts_chat_at", "chat_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ok: Mapped[bool] = mapped_column(Boolean)


class LinkCode(Base):
    """The pending e-mail code of a chat: only its hash is kept."""

    __tablename__ = "link_codes"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"))
    code_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


# --- signed tokens ---------------------------------------------------------------------------------

class SigningKey(Base):
    """The key of the signed tokens (services/signing.py) when KEZEK_SIGNING_KEY is not set:
    made once at random, so every instance and the CLI sign and check alike."""

    __tablename__ = "signing_keys"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    secret: Mapped[str] = mapped_column(String(100))  # base64url of the key's bytes
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class UsedToken(Base):
    """A single-use signed token that has been used (services/signing.py; purpose ``link``: the
    deep link of the registration e-mail). The key is the SHA-256 of the token's text (decoding is
    strict, so one token has one text): a token is never stored, and the primary key makes its
    use a conditional insert: of two chats racing with one token, one wins."""

    __tablename__ = "used_tokens"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[int] = mapped_column(BigInteger)  # the row the token names (an application)
    chat_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    used_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


# --- privilege documents sent in the chat (services/documents.py) ---------------------------------

class Document(Base):
    """A file a parent sent in the chat for a referral's privilege documents. The bytes are in the
    document store (services/doc_storage.py) under ``storage_key``, a generated name; the row holds
    what the checks found and the operator's decision. (referral_id, sha256) is unique: the same
    file twice for one referral is received once."""

    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("referral_id", "sha256"),
        Index("ix_documents_status", "status", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id"))
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"))
    chat_id: Mapped[int] = mapped_column(BigInteger)
    storage_key: Mapped[str] = mapped_column(String(64), unique=True)
    mime: Mapped[str] = mapped_column(String(40))
    size: Mapped[int] = mapped_column(Integer)
    pages: Mapped[int] = mapped_column(Integer, default=1)
    width: Mapped[int | None] = mapped_column(Integer, default=None)
    height: Mapped[int | None] = mapped_column(Integer, default=None)
    sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default=vocab.DocumentStatus.PENDING)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    reason: Mapped[str | None] = mapped_column(String(30), default=None)  # a rejection reason code
    note: Mapped[str | None] = mapped_column(Text, default=None)  # the operator's words


# --- kindergarten staff (services/staff.py) -----------------------------------------------------------------

class StaffInvite(Base):
    """An operator's invitation for one person to act as a kindergarten's staff in the bot. Its link
    carries a signed token (purpose ``staff``) naming this row and its expiry; it works once:
    ``used_at`` is set by a conditional update, so of two accounts racing with one link one wins."""

    __tablename__ = "staff_invites"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kindergarten_id: Mapped[int] = mapped_column(ForeignKey("kindergartens.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(64))  # the operator (an actor name)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    used_by: Mapped[int | None] = mapped_column(BigInteger, default=None)  # the Telegram user
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)


class StaffMember(Base):
    """A Telegram account bound to a kindergarten as its staff: it sees that kindergarten's
    referrals in full and records admissions. Revoked: ``revoked_at`` set (the row stays for the
    audit's sake); invited again: the same row, active again."""

    __tablename__ = "staff"
    __table_args__ = (UniqueConstraint("kindergarten_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kindergarten_id: Mapped[int] = mapped_column(ForeignKey("kindergartens.id"))
    user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    invite_id: Mapped[int | None] = mapped_column(ForeignKey("staff_invites.id"), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)


# --- dialogues of the bot (bot/telegram/fsm_storage.py: aiogram's FSM without Redis) ----------------------

class FsmState(Base):
    """A chat's dialogue half-way (aiogram's FSM state and data) when no Redis is configured: the
    bot's own database keeps it, so that a restart does not lose it. The key is aiogram's
    ``StorageKey`` (no thread: 0, no business connection: ''). ``data`` may hold what a parent typed
    (an application number, an IIN): the row is deleted when the dialogue ends, and a row left
    for more than a day is ignored and deleted (``DatabaseStorage.TTL_SECONDS``)."""

    __tablename__ = "fsm_states"

    bot_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    thread_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    business_connection_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    destiny: Mapped[str] = mapped_column(String(100), primary_key=True)
    state: Mapped[str | None] = mapped_column(String(255), default=None)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


# --- the sandbox's test clock (bot/sandbox/clock.py) ---------------------------------------------------

class SandboxClockRow(Base):
    """The sandbox's test clock, in the sandbox's database so that every process on it (``kezek
    demo``, ``kezek seats publish`` from another terminal, the API's clock route) reads the same
    time: one row (id 1), the clock's lead over real time in microseconds. A database with this
    row is a sandbox; a production database never has it."""

    __tablename__ = "sandbox_clock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    offset_us: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
