"""The domain's vocabulary: the words written in the status and kind columns, and the default
claim window (RULES.md, "Claim window").

Each vocabulary is an ``enum.StrEnum``: a member *is* its string (``AppStatus.QUEUED ==
"queued"``, ``str()``, f-strings and ``json.dumps`` give ``"queued"``), so the database stores and
the front ends show the same words as plain strings; rows read back from the database hold plain
strings, which compare and hash equal to the members. The tuples and maps beside the members
(``Privilege.ALL``, ``Privilege.RANK``, ``ReferralStatus.LIVE``...) are ``enum.nonmember`` and hold
the plain strings.

Two things a member is not: its ``repr()`` is ``<AppStatus.QUEUED: 'queued'>``, and SQLAlchemy does
not type it when no column does (``literal(AppStatus.QUEUED)`` gets no type and renders no
literal): compare it with a column, or pass ``type_=String()``.

This module imports nothing of the project, nor SQLAlchemy: migrations never import it (they keep
frozen copies of the words they need, storage/migrations/versions)."""

from __future__ import annotations

from enum import StrEnum, nonmember

# --- the queue ------------------------------------------------------------------------------------


class AppStatus(StrEnum):
    QUEUED = "queued"  # waiting in the queue (stop-listed ones included)
    REFERRED = "referred"  # holds an issued referral, out of the queue
    ADMITTED = "admitted"  # closed: the kindergarten admitted the child
    REMOVED = "removed"  # removed from the queue for good
    WITHDRAWN = "withdrawn"  # withdrawn by the registry


class Privilege(StrEnum):
    OUT_OF_TURN = "out_of_turn"  # внеочередное
    FIRST = "first"  # первоочередное
    NONE = "none"  # общая очередь

    RANK = nonmember({OUT_OF_TURN: 0, FIRST: 1, NONE: 2})  # the queue order's first key
    ALL = nonmember((OUT_OF_TURN, FIRST, NONE))


class DocsState(StrEnum):
    NOT_REQUIRED = "not_required"
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    MISSED = "missed"


# --- seats, offers, referrals ---------------------------------------------------------------------


class SeatStatus(StrEnum):
    FREE = "free"  # published, waiting for an eligible application
    OFFERED = "offered"  # offered to one application in queue order
    OPEN = "open"  # open to everyone eligible (after a passed offer, or state-order private)
    TAKEN = "taken"  # a live referral holds it
    WITHDRAWN = "withdrawn"


class OfferStatus(StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class ReferralStatus(StrEnum):
    ISSUED = "issued"
    ADMITTED = "admitted"
    ANNULLED = "annulled"

    LIVE = nonmember((ISSUED, ADMITTED))


class KindergartenKind(StrEnum):
    STATE = "state"
    PRIVATE = "private_state_order"

    ALL = nonmember((STATE, PRIVATE))


# --- privilege documents sent in the chat (services/documents.py) ---------------------------------


class DocumentStatus(StrEnum):
    PENDING = "pending"  # waiting for the operator's decision
    ACCEPTED = "accepted"  # the referral's documents were accepted
    REJECTED = "rejected"  # the referral's documents were rejected
    CLOSED = "closed"  # the referral ended without a decision (a deadline passed)

    ALL = nonmember((PENDING, ACCEPTED, REJECTED, CLOSED))


# --- the claim window -----------------------------------------------------------------------------

# The default claim window (RULES.md, "Claim window": 09:00-20:00), in minutes after local
# midnight: a rule profile's defaults, the profiles' import, and the scheduler when no profile is
# stored. (Migration 0001 seeds the default profile with its own frozen copy: 540, 1200.)
DEFAULT_WINDOW_OPEN_MINUTE = 9 * 60
DEFAULT_WINDOW_CLOSE_MINUTE = 20 * 60
