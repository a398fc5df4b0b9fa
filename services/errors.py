"""Typed domain errors. Each has a stable ``code`` (the front ends' message key) and ``params``.

Nothing is half-written when one is raised: services raise before or inside the unit of work,
and the unit of work rolls back whole."""

from __future__ import annotations

import heapq
from typing import Any


class KezekError(Exception):
    code = "error"  # its sentence, in both languages, is locales.errors' (ARCHITECTURE.md)

    def __init__(self, **params: Any) -> None:
        self.params = params
        super().__init__(f"{self.code} {params}" if params else self.code)


class ValidationError(KezekError):
    """Bad input: ``field`` says which, and ``index``/``line`` may say where in a bulk load."""

    code = "invalid"


class InvalidIIN(ValidationError):
    code = "invalid_iin"


class IINBirthDateMismatch(ValidationError):
    code = "iin_birth_date_mismatch"


class InvalidPhone(ValidationError):
    code = "invalid_phone"


class InvalidEmail(ValidationError):
    code = "invalid_email"


class InvalidField(ValidationError):
    code = "invalid_field"


class MissingField(ValidationError):
    code = "missing_field"


class UnknownDistrict(ValidationError):
    code = "unknown_district"


class UnknownKindergarten(ValidationError):
    code = "unknown_kindergarten"


class UnknownProfile(ValidationError):
    code = "unknown_profile"


class DuplicateInBatch(ValidationError):
    code = "duplicate_in_batch"


class ChildAlreadyQueued(ValidationError):
    code = "child_already_queued"


# A bulk load with bad rows names the first of them and counts the rest: an answer (and the
# memory behind it) stays small however many rows are bad.
MAX_REPORTED_ERRORS = 50


class BulkRejected(KezekError):
    """A bulk load was refused whole; ``errors`` lists (line or index, KezekError) of the first bad
    rows, ``params["count"]`` counts them all."""

    code = "bulk_rejected"

    def __init__(self, errors: list[tuple[int, KezekError]], count: int | None = None) -> None:
        self.errors = errors
        super().__init__(count=len(errors) if count is None else count)


class RowErrors:
    """The bad rows of a bulk load as they are found, in any order: all are counted, the
    ``keep`` with the lowest index are kept (a heap: memory bounded by ``keep``)."""

    def __init__(self, keep: int = MAX_REPORTED_ERRORS) -> None:
        self.keep, self.count = keep, 0
        self._heap: list[tuple[int, int, KezekError]] = []  # (-index, -order, error): the root goes first

    def add(self, index: int, error: KezekError) -> None:
        self.count += 1
        heapq.heappush(self._heap, (-index, -self.count, error))
        if len(self._heap) > self.keep:
            heapq.heappop(self._heap)

    def raise_any(self) -> None:
        """``BulkRejected`` with the kept rows in index order, when any row was bad."""
        if self.count:
            kept = sorted(((-i, -order, e) for i, order, e in self._heap), key=lambda t: (t[0], t[1]))
            raise BulkRejected([(i, e) for i, _, e in kept], count=self.count)


class NotFound(KezekError):
    code = "not_found"


class ApplicationNotFound(NotFound):
    code = "application_not_found"


class SeatNotFound(NotFound):
    code = "seat_not_found"


class ReferralNotFound(NotFound):
    code = "referral_not_found"


class RuleViolation(KezekError):
    """The action is well-formed but the rules forbid it now."""

    code = "rule_violation"


class OutsideClaimWindow(RuleViolation):
    code = "outside_claim_window"


class SeatNotAvailable(RuleViolation):
    code = "seat_not_available"


class OfferExpired(RuleViolation):
    code = "offer_expired"


class NotWaiting(RuleViolation):
    code = "not_waiting"


class StopListed(RuleViolation):
    code = "stop_listed"


class NotEligibleForSeat(RuleViolation):
    code = "not_eligible_for_seat"


class TooYoungForPrivate(RuleViolation):
    code = "too_young_for_private"


class ConfirmationRequired(RuleViolation):
    code = "confirmation_required"


class ReferralNotActive(RuleViolation):
    code = "referral_not_active"


class ShowUpDeadlinePassed(RuleViolation):
    code = "showup_deadline_passed"


class DocumentsPending(RuleViolation):
    """Admission waits until the privilege documents of the referral are confirmed."""

    code = "documents_pending"


class DocumentsNotPending(RuleViolation):
    code = "documents_not_pending"


class ApplicationClosed(RuleViolation):
    code = "application_closed"


class LinkFailed(ValidationError):
    """The application number, the IIN or the proof did not match. One error for every cause, so
    that nobody can probe which application numbers exist."""

    code = "link_failed"


class LinkLocked(RuleViolation):
    """Too many failed link attempts: linking is refused for this chat ``until`` (a UTC datetime)."""

    code = "link_locked"

    @property
    def until(self) -> Any:
        return self.params.get("until")


class NotLinked(RuleViolation):
    """The chat asked about an application it has not linked (a forged or stale button, or a
    link removed meanwhile)."""

    code = "not_linked"


def all_error_classes() -> list[type[KezekError]]:
    out: list[type[KezekError]] = []
    stack: list[type[KezekError]] = [KezekError]
    while stack:
        cls = stack.pop()
        out.append(cls)
        stack.extend(cls.__subclasses__())
    return out


class StaffInviteInvalid(KezekError):
    """An invitation link that is forged, expired, already used or revoked: one answer for all."""

    code = "staff_invite_invalid"


class NotStaff(KezekError):
    """The account is not staff of the referral's kindergarten (or of any)."""

    code = "not_staff"
