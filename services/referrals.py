"""Referrals after they are issued: admission, privilege documents, and the deadline sweeps.

* Show-up: the kindergarten must confirm admission within N working days (default 5). Missed:
  the referral is annulled at the end of the last day (dated the next calendar day), the seat
  returns to the pool, the child goes back to its old place on the stop-list for M working days
  counted from that date; the K-th annulment (default 2nd) removes the application for good.
* Privilege documents: confirmed within 5 working days and never later than 10 calendar days,
  else (or when rejected) the referral is annulled and the child moves to the general queue,
  keeping its submission moment, without a stop-list.
* Both missed: while the documents are due and not accepted, a documents deadline on or before
  the show-up deadline decides (the documents outcome, never both penalties); documents
  accepted, or due only after the show-up deadline, and the child not admitted: the show-up
  outcome (RULES.md, "Privilege documents"). ``missed_deadline`` is that rule, in one place.

Every sweep is idempotent: each transition is a conditional update, and its consequences are
dated by the deadline, not by when the sweep happened to run."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import CursorResult, select, update

from services.context import Ctx
from services.documents import close_documents, parse_rejection
from services.errors import (
    DocumentsNotPending,
    DocumentsPending,
    ReferralNotActive,
    ReferralNotFound,
    ShowUpDeadlinePassed,
)
from services.notices import (
    Admitted,
    NoticeKind,
    PrivilegeDropped,
    ReferralAnnulled,
    ReferralNotice,
    Removed,
    StoplistEnded,
)
from services.offers import fill_free_seats
from services.queue import PRIVILEGE_DROPPED, RETURNED, queue_event
from storage.models import (
    Application,
    Referral,
    Seat,
)
from storage.vocab import AppStatus, DocsState, DocumentStatus, Privilege, ReferralStatus, SeatStatus

NO_SHOW = "no_show"
DOCS_MISSED = "docs_missed"
DOCS_REJECTED = "docs_rejected"


async def _referral(ctx: Ctx, referral_id: int) -> Referral:
    q = select(Referral).where(Referral.id == referral_id)
    if ctx.is_postgres:
        q = q.with_for_update()
    ref = (await ctx.session.execute(q)).scalar_one_or_none()
    if ref is None:
        raise ReferralNotFound()
    return ref


async def admit(ctx: Ctx, referral_id: int) -> Referral:
    """The kindergarten confirms the child came: the application is closed."""
    ref = await _referral(ctx, referral_id)
    if ref.status != ReferralStatus.ISSUED:
        raise ReferralNotActive(status=ref.status)
    if ctx.now >= ref.showup_due_at:
        raise ShowUpDeadlinePassed(due_at=ref.showup_due_at.isoformat())
    if ref.docs_state == DocsState.PENDING:
        # A privileged referral is admitted once the privilege is confirmed. The documents are
        # due no later than the show-up deadline, so this never shortens the parent's time; and
        # a closed application is never reopened by a later documents decision.
        assert ref.docs_due_at is not None
        raise DocumentsPending(due_at=ref.docs_due_at.isoformat())
    res = cast(CursorResult[Any], await ctx.session.execute(
        update(Referral).where(Referral.id == ref.id, Referral.status == ReferralStatus.ISSUED)
        .values(status=ReferralStatus.ADMITTED, closed_at=ctx.now).execution_options(synchronize_session=False)))
    if res.rowcount != 1:
        raise ReferralNotActive(status="changed")
    await ctx.session.execute(
        update(Application).where(Application.id == ref.application_id)
        .values(status=AppStatus.ADMITTED, updated_at=ctx.now).execution_options(synchronize_session=False))
    await ctx.session.refresh(ref)
    ctx.audit("referral.admit", "referral", ref.id, application_id=ref.application_id)
    ctx.notify(NoticeKind.ADMITTED, ref.application_id, f"admitted:{ref.id}",
               Admitted(referral_id=ref.id, kindergarten_id=ref.kindergarten_id))
    return ref


async def decide_documents(ctx: Ctx, referral_id: int, accepted: bool, reason: object = None,
                           note: object = None) -> Referral:
    """The operator confirms or rejects the privilege documents of a referral.

    A rejection may say why: ``reason``, one of ``documents.REJECTION_REASONS`` (the parent reads
    it in their language), and ``note``, the operator's own words, quoted as they are (a note
    without a reason is reason "other"). Both are checked before anything changes, and ignored
    for an acceptance."""
    code, text = (None, None) if accepted else parse_rejection(reason, note)
    ref = await _referral(ctx, referral_id)
    if ref.status != ReferralStatus.ISSUED or ref.docs_state != DocsState.PENDING:
        raise DocumentsNotPending(state=ref.docs_state)
    assert ref.docs_due_at is not None
    if ctx.now >= ref.docs_due_at:
        raise DocumentsNotPending(state="deadline_passed", due_at=ref.docs_due_at.isoformat())
    if accepted:
        ref.docs_state = DocsState.ACCEPTED
        await ctx.session.execute(update(Application).where(Application.id == ref.application_id)
                                  .values(docs_state=DocsState.ACCEPTED, updated_at=ctx.now)
                                  .execution_options(synchronize_session=False))
        files = await close_documents(ctx, ref.id, DocumentStatus.ACCEPTED, ctx.now)
        ctx.audit("documents.accept", "referral", ref.id, application_id=ref.application_id, files=files)
        ctx.notify(NoticeKind.DOCUMENTS_ACCEPTED, ref.application_id, f"docs-accepted:{ref.id}",
                   ReferralNotice(referral_id=ref.id))
    else:
        files = await close_documents(ctx, ref.id, DocumentStatus.REJECTED, ctx.now, code, text)
        ctx.audit("documents.reject", "referral", ref.id, application_id=ref.application_id, files=files,
                  reason=code, note=text)
        await annul(ctx, ref, DOCS_REJECTED, ctx.now, rejection=code, note=text)
        await fill_free_seats(ctx, [ref.seat_id])
    return ref


async def annul(ctx: Ctx, ref: Referral, reason: str, effective_at: dt.datetime, *,
                rejection: str | None = None, note: str | None = None) -> bool:
    """Annul a live referral with the consequences the rules attach to ``reason``; a rejection's
    reason code and note go into its notice (``privilege_dropped``). Documents still waiting for
    a decision are closed.

    Returns False (and changes nothing) when the referral was no longer live."""
    docs_state = {DOCS_MISSED: DocsState.MISSED, DOCS_REJECTED: DocsState.REJECTED}.get(reason)
    values: dict[str, object] = {"status": ReferralStatus.ANNULLED, "closed_at": effective_at,
                                 "annul_reason": reason}
    if docs_state is not None:
        values["docs_state"] = docs_state
    res = cast(CursorResult[Any], await ctx.session.execute(
        update(Referral).where(Referral.id == ref.id, Referral.status == ReferralStatus.ISSUED).values(**values)
        .execution_options(synchronize_session=False)))
    if res.rowcount != 1:
        return False
    await close_documents(ctx, ref.id, DocumentStatus.CLOSED, effective_at, reason)
    # The seat returns to the pool: a state seat is offered in queue order again, a private
    # state-order seat is open again to every child of the district aged 3+.
    seat = await ctx.session.get(Seat, ref.seat_id)
    assert seat is not None
    back = SeatStatus.OPEN if seat.private else SeatStatus.FREE
    await ctx.session.execute(update(Seat).where(Seat.id == ref.seat_id, Seat.status == SeatStatus.TAKEN)
                              .values(status=back, opened_at=effective_at if seat.private else seat.opened_at)
                              .execution_options(synchronize_session=False))
    app = await ctx.session.get(Application, ref.application_id)
    assert app is not None
    await ctx.session.refresh(app)
    profile = await ctx.profile(app.district_id)
    app.updated_at = ctx.now
    if docs_state is not None:  # the privilege is dropped with its documents
        app.privilege, app.priv_rank = Privilege.NONE, Privilege.RANK[Privilege.NONE]
        app.docs_state = docs_state
    if reason == NO_SHOW:
        app.missed_referrals += 1
        if app.missed_referrals >= profile.removal_on_annulment:
            app.status = AppStatus.REMOVED
            ctx.audit("application.remove", "application", app.id, missed=app.missed_referrals)
            ctx.notify(NoticeKind.REMOVED, app.id, f"removed:{app.id}", Removed(
                referral_id=ref.id, reason=reason, effective_at=effective_at, missed=app.missed_referrals))
        else:
            app.status = AppStatus.QUEUED
            day = ctx.calendar.effective_date(effective_at)
            app.stoplist_until = (ctx.calendar.deadline_after(day, profile.stoplist_working_days)
                                  if profile.stoplist_working_days else None)
            queue_event(ctx, app, +1, RETURNED)
            ctx.notify(NoticeKind.REFERRAL_ANNULLED, app.id, f"annulled:{ref.id}", ReferralAnnulled(
                referral_id=ref.id, reason=reason, effective_at=effective_at, stoplist_until=app.stoplist_until))
    else:
        app.status = AppStatus.QUEUED
        queue_event(ctx, app, +1, PRIVILEGE_DROPPED)
        ctx.notify(NoticeKind.PRIVILEGE_DROPPED, app.id, f"annulled:{ref.id}", PrivilegeDropped(
            referral_id=ref.id, reason=reason, effective_at=effective_at, rejection=rejection, note=note))
    ctx.audit("referral.annul", "referral", ref.id, application_id=app.id, reason=reason,
              effective_at=effective_at.isoformat())
    return True


# --- sweeps ------------------------------------------------------------------------------------------

def missed_deadline(ref: Referral, now: dt.datetime) -> tuple[dt.datetime, str] | None:
    """The deadline of a live referral that has passed by ``now`` and decides its annulment
    (when it takes effect, and why), or None while none has.

    Documents due and not accepted, with their deadline on or before the show-up deadline: the
    documents deadline decides, whether or not the show-up deadline has passed too (one day's
    difference must not double the penalty). Otherwise the show-up deadline decides."""
    if ref.docs_state == DocsState.PENDING and ref.docs_due_at is not None \
            and ref.docs_due_at <= ref.showup_due_at:
        return (ref.docs_due_at, DOCS_MISSED) if ref.docs_due_at <= now else None
    return (ref.showup_due_at, NO_SHOW) if ref.showup_due_at <= now else None


async def sweep_deadlines(ctx: Ctx) -> dict[str, int]:
    """Annul every referral whose deciding deadline passed (``missed_deadline``), in deadline
    order."""
    live = (await ctx.session.execute(select(Referral).where(
        Referral.status == ReferralStatus.ISSUED,
        (Referral.showup_due_at <= ctx.now)
        | ((Referral.docs_state == DocsState.PENDING) & (Referral.docs_due_at <= ctx.now))))).scalars().all()
    due = [(missed, ref) for ref in live if (missed := missed_deadline(ref, ctx.now)) is not None]
    due.sort(key=lambda d: (d[0][0], d[1].id))
    counts = {NO_SHOW: 0, DOCS_MISSED: 0}
    freed: list[int] = []
    for (effective_at, reason), ref in due:
        if await annul(ctx, ref, reason, effective_at):
            counts[reason] += 1
            freed.append(ref.seat_id)
    if freed:
        await fill_free_seats(ctx, freed)
    return counts


async def end_stoplists(ctx: Ctx) -> int:
    """Clear stop-lists that ended (eligibility already reads the end; this tells the parent)."""
    apps = (await ctx.session.execute(select(Application).where(
        Application.stoplist_until.is_not(None), Application.stoplist_until <= ctx.now))).scalars().all()
    for app in apps:
        until = app.stoplist_until
        assert until is not None
        res = cast(CursorResult[Any], await ctx.session.execute(
            update(Application).where(Application.id == app.id, Application.stoplist_until == until)
            .values(stoplist_until=None).execution_options(synchronize_session=False)))
        if res.rowcount == 1:
            ctx.audit("stoplist.end", "application", app.id, until=until.isoformat())
            if app.status == AppStatus.QUEUED:
                ctx.notify(NoticeKind.STOPLIST_ENDED, app.id, f"stoplist-end:{app.id}:{until.isoformat()}",
                           StoplistEnded(until=until))
    return len(apps)
