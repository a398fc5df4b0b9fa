"""Kindergarten staff in the bot: the kindergarten's side of a referral (RULES.md "Show-up").

An operator invites one person at a time (``invite``: the CLI, later the API): a signed token of
purpose ``staff`` naming a ``StaffInvite`` row and its expiry (``INVITE_DAYS``), which becomes the
Telegram start link ``https://t.me/<bot>?start=<token>``. Opening it binds that Telegram account
to that kindergarten (``accept``): once, by a conditional update of the invitation, so a link
forwarded after use, expired or revoked binds nobody (one answer for every cause,
``StaffInviteInvalid``). ``revoke`` ends a binding or an unused invitation.

Staff of a kindergarten, and nobody else, see that kindergarten's referrals in full
(``staff_referral``: from the referral's code, which the public page's "Open in Telegram" passes
to the bot) and record what happened at the door:

* ``staff_admit``: the child came: the same admission as the registry's (``referrals.admit``),
  audited with the staff member's account; the parent is told at once (chat and e-mail copy).
* ``staff_no_show``: the child has not come. The rules give the parent until the show-up deadline,
  so nothing is annulled early: the parent is told (``NO_SHOW_REPORTED``) that the kindergarten
  is waiting and until when; the deadline sweep annuls the referral if nobody comes.

Staff of another kindergarten, parents and strangers get ``NotStaff`` and learn nothing beyond
what the public page shows."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update

from services import referral_check as rc
from services import referrals, signing
from services.context import Ctx
from services.directory import KindergartenInfo
from services.errors import (
    NotStaff,
    ReferralNotActive,
    ReferralNotFound,
    ShowUpDeadlinePassed,
    StaffInviteInvalid,
    UnknownKindergarten,
)
from services.facade import is_row_id
from services.notices import NoticeKind, ReferralDeadline, StaffDigest, StaffInvited
from services.signing import Signer, TokenError
from services.validation import normalise_email
from storage.models import Application, Group, Kindergarten, Referral, StaffInvite, StaffMember
from storage.vocab import ReferralStatus

log = logging.getLogger("kezek.staff")

PURPOSE = "staff"
MAX_INVITE_ID = 2**31 - 1  # staff_invites.id is a 32-bit INTEGER
INVITE_DAYS = 7  # an invitation link works for a week, once


def actor_of(user_id: int) -> str:
    """The audit's name for a staff member's actions."""
    return f"staff:{user_id}"


@dataclass(frozen=True)
class Invitation:
    id: int
    kindergarten: KindergartenInfo
    token: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class StaffRow:
    """One line of ``kezek staff list``: a bound account or an invitation not used yet."""

    kindergarten: str  # its code
    kind: str  # "staff" | "invite"
    id: int  # the staff row's or the invitation's id
    user_id: int | None
    since: dt.datetime  # bound at / invited at
    expires_at: dt.datetime | None  # an invitation's


@dataclass(frozen=True)
class StaffReferral:
    """A referral as its kindergarten's staff see it: everything the paper shows, and the name."""

    facts: rc.ReferralFacts
    state: str  # referral_check's VALID | ADMITTED | ANNULLED | EXPIRED
    child_name: str


async def _kindergarten(ctx: Ctx, code: str) -> Kindergarten:
    kg = (await ctx.session.execute(select(Kindergarten).where(Kindergarten.code == code))).scalar_one_or_none()
    if kg is None:
        raise UnknownKindergarten(field="kindergarten", value=code)
    return kg


async def invite(ctx: Ctx, signer: Signer, kindergarten_code: str, *, days: int = INVITE_DAYS,
                 email: str | None = None) -> Invitation:
    """A one-time invitation; with ``email``, its link is also e-mailed to that address (the
    token leaves the outbox once the e-mail went)."""
    address = normalise_email(email) if email is not None else None  # (InvalidEmail before anything)
    kg = await _kindergarten(ctx, kindergarten_code)
    row = StaffInvite(kindergarten_id=kg.id, created_at=ctx.now, created_by=ctx.actor[:64],
                      expires_at=ctx.now + dt.timedelta(days=days))
    ctx.session.add(row)
    await ctx.session.flush()
    ctx.audit("staff.invite", "kindergarten", kg.id, invite_id=row.id)
    token = signer.sign(PURPOSE, row.id, expires_at=row.expires_at)
    if address is not None:
        ctx.notify(NoticeKind.STAFF_INVITE, None, f"staff-invite:{row.id}",
                   StaffInvited(email=address, code=token, kindergarten_id=kg.id, expires_at=row.expires_at))
    return Invitation(row.id, KindergartenInfo.of(kg), token, row.expires_at)


async def accept(ctx: Ctx, signer: Signer, token: str, user_id: int) -> KindergartenInfo:
    """Bind ``user_id`` to the invitation's kindergarten; ``StaffInviteInvalid`` otherwise."""
    try:
        claims = signer.verify(PURPOSE, token, now=ctx.now)
    except TokenError as exc:
        log.warning("staff invitation refused: %s (%s)", exc.reason, signing.fingerprint(token))
        raise StaffInviteInvalid() from None
    taken = cast(CursorResult[Any], await ctx.session.execute(
        update(StaffInvite)
        .where(StaffInvite.id == claims.id, StaffInvite.used_at.is_(None), StaffInvite.revoked_at.is_(None),
               StaffInvite.expires_at > ctx.now)
        .values(used_at=ctx.now, used_by=user_id).execution_options(synchronize_session=False)))
    if taken.rowcount != 1:
        log.warning("staff invitation refused: used, revoked or unknown (%s)", signing.fingerprint(token))
        raise StaffInviteInvalid()
    kg_id = (await ctx.session.execute(select(StaffInvite.kindergarten_id)
                                       .where(StaffInvite.id == claims.id))).scalar_one()
    member = (await ctx.session.execute(select(StaffMember).where(
        StaffMember.kindergarten_id == kg_id, StaffMember.user_id == user_id))).scalar_one_or_none()
    if member is None:
        ctx.session.add(StaffMember(kindergarten_id=kg_id, user_id=user_id, invite_id=claims.id,
                                    created_at=ctx.now))
    else:  # invited again after a revocation (or twice): the same row, active
        member.revoked_at, member.invite_id = None, claims.id
    ctx.audit("staff.bind", "kindergarten", kg_id, invite_id=claims.id, user_id=user_id)
    kg = (await ctx.session.execute(select(Kindergarten).where(Kindergarten.id == kg_id))).scalar_one()
    return KindergartenInfo.of(kg)


async def revoke(ctx: Ctx, kindergarten_code: str, *, user_id: int | None = None,
                 invite_id: int | None = None) -> int:
    """End a staff member's binding (``user_id``) or an unused invitation (``invite_id``) of the
    kindergarten: how many were ended (0: nothing active matched)."""
    kg = await _kindergarten(ctx, kindergarten_code)
    ended = 0
    if user_id is not None and not is_row_id(user_id):
        user_id = None  # (no account has it: nothing matches)
    if invite_id is not None and not 1 <= invite_id <= MAX_INVITE_ID:
        invite_id = None
    if user_id is not None:
        res = cast(CursorResult[Any], await ctx.session.execute(
            update(StaffMember).where(StaffMember.kindergarten_id == kg.id, StaffMember.user_id == user_id,
                                      StaffMember.revoked_at.is_(None))
            .values(revoked_at=ctx.now).execution_options(synchronize_session=False)))
        ended += res.rowcount
    if invite_id is not None:
        res = cast(CursorResult[Any], await ctx.session.execute(
            update(StaffInvite).where(StaffInvite.kindergarten_id == kg.id, StaffInvite.id == invite_id,
                                      StaffInvite.used_at.is_(None), StaffInvite.revoked_at.is_(None))
            .values(revoked_at=ctx.now).execution_options(synchronize_session=False)))
        ended += res.rowcount
    if ended:
        ctx.audit("staff.revoke", "kindergarten", kg.id, user_id=user_id, invite_id=invite_id)
    return ended


async def list_staff(ctx: Ctx, kindergarten_code: str | None = None) -> list[StaffRow]:
    """The active staff and the invitations still open, by kindergarten, oldest first."""
    members = (select(Kindergarten.code, StaffMember.id, StaffMember.user_id, StaffMember.created_at)
               .join(Kindergarten, Kindergarten.id == StaffMember.kindergarten_id)
               .where(StaffMember.revoked_at.is_(None)))
    invites = (select(Kindergarten.code, StaffInvite.id, StaffInvite.created_at, StaffInvite.expires_at)
               .join(Kindergarten, Kindergarten.id == StaffInvite.kindergarten_id)
               .where(StaffInvite.used_at.is_(None), StaffInvite.revoked_at.is_(None),
                      StaffInvite.expires_at > ctx.now))
    if kindergarten_code is not None:
        await _kindergarten(ctx, kindergarten_code)
        members = members.where(Kindergarten.code == kindergarten_code)
        invites = invites.where(Kindergarten.code == kindergarten_code)
    rows = [StaffRow(code, "staff", ident, user, since, None)
            for code, ident, user, since in (await ctx.session.execute(members)).all()]
    rows += [StaffRow(code, "invite", ident, None, since, until)
             for code, ident, since, until in (await ctx.session.execute(invites)).all()]
    return sorted(rows, key=lambda r: (r.kindergarten, r.since, r.kind, r.id))


async def kindergartens_of(ctx: Ctx, user_id: int) -> set[int]:
    """The kindergartens ``user_id`` is active staff of."""
    return set((await ctx.session.execute(select(StaffMember.kindergarten_id).where(
        StaffMember.user_id == user_id, StaffMember.revoked_at.is_(None)))).scalars())


DESK_SIZE = 20  # the soonest deadlines shown at once (a Telegram message holds 4,096 characters)


@dataclass(frozen=True)
class DeskEntry:
    """A referral waiting at a kindergarten's door: what the desk lists of it."""

    referral_id: int
    child_name: str
    group_name: str
    showup_due_at: dt.datetime
    docs_state: str
    docs_due_at: dt.datetime | None


@dataclass(frozen=True)
class Desk:
    entries: list[DeskEntry]  # the ``DESK_SIZE`` soonest deadlines
    total: int  # all of them


async def desk(ctx: Ctx, user_id: int, *, size: int = DESK_SIZE) -> Desk:
    """The referrals to the staff member's kindergartens that wait for the child (issued, the
    show-up deadline not passed), the soonest deadline first; ``NotStaff`` for anyone else."""
    kindergartens = await kindergartens_of(ctx, user_id)
    if not kindergartens:
        raise NotStaff()
    waiting = (Referral.kindergarten_id.in_(kindergartens), Referral.status == ReferralStatus.ISSUED,
               Referral.showup_due_at > ctx.now)
    total = (await ctx.session.execute(select(func.count()).select_from(Referral).where(*waiting))).scalar_one()
    rows = (await ctx.session.execute(
        select(Referral.id, Application.child_name, Group.name, Referral.showup_due_at, Referral.docs_state,
               Referral.docs_due_at)
        .join(Application, Application.id == Referral.application_id)
        .join(Group, Group.id == Referral.group_id)
        .where(*waiting).order_by(Referral.showup_due_at, Referral.id).limit(size))).all()
    return Desk([DeskEntry(ident, name, group or "", due, docs, docs_due)
                 for ident, name, group, due, docs, docs_due in rows], int(total))


async def morning_digest(ctx: Ctx) -> int:
    """On a working day: each staff member whose kindergarten has referrals waiting for a child
    with a deadline ending today or on the next working day is told how many (once a day: the
    notice's key holds the date). The number of notices written."""
    today = ctx.calendar.local_date(ctx.now)
    if not ctx.calendar.is_working_day(today):
        return 0
    until = ctx.calendar.deadline_after(today, 1)  # the end of the next working day
    due = (select(Referral.kindergarten_id, func.count())
           .where(Referral.status == ReferralStatus.ISSUED, Referral.showup_due_at > ctx.now,
                  Referral.showup_due_at <= until)
           .group_by(Referral.kindergarten_id))
    counts = {kg: int(n) for kg, n in (await ctx.session.execute(due)).all()}
    if not counts:
        return 0
    members = (await ctx.session.execute(select(StaffMember.user_id, StaffMember.kindergarten_id).where(
        StaffMember.revoked_at.is_(None), StaffMember.kindergarten_id.in_(counts)))).all()
    for user_id, kg_id in members:
        ctx.notify(NoticeKind.STAFF_DIGEST, None, f"staff-digest:{user_id}:{kg_id}:{today.isoformat()}",
                   StaffDigest(chat_id=user_id, kindergarten_id=kg_id, count=counts[kg_id], until=until))
    return len(members)


async def _staff_referral_row(ctx: Ctx, referral_id: int, user_id: int) -> Referral:
    """The referral, when ``user_id`` is staff of its kindergarten; ``NotStaff`` otherwise (an
    unknown referral too: staff of one kindergarten learn nothing of other ids)."""
    ref = None
    if is_row_id(referral_id):
        ref = (await ctx.session.execute(select(Referral).where(Referral.id == referral_id))).scalar_one_or_none()
    if ref is None or ref.kindergarten_id not in await kindergartens_of(ctx, user_id):
        raise NotStaff()
    return ref


async def staff_referral(ctx: Ctx, referral_id: int, user_id: int) -> StaffReferral:
    return await _card(ctx, await _staff_referral_row(ctx, referral_id, user_id))


async def _card(ctx: Ctx, ref: Referral) -> StaffReferral:
    facts = await rc.referral_facts(ctx, ref.id)
    name = (await ctx.session.execute(select(Application.child_name)
                                      .where(Application.id == ref.application_id))).scalar_one()
    return StaffReferral(facts, rc.state_of(facts, ctx.now), name)


async def staff_admit(ctx: Ctx, referral_id: int, user_id: int) -> Referral:
    await _staff_referral_row(ctx, referral_id, user_id)
    return await referrals.admit(ctx, referral_id)


async def staff_no_show(ctx: Ctx, referral_id: int, user_id: int) -> Referral:
    """The kindergarten says the child has not come: the parent is told, once, until when the
    referral still holds; nothing else changes (the deadline sweep decides)."""
    ref = await _staff_referral_row(ctx, referral_id, user_id)
    if ref.status != ReferralStatus.ISSUED:
        raise ReferralNotActive(status=ref.status)
    if ctx.now >= ref.showup_due_at:
        raise ShowUpDeadlinePassed(due_at=ref.showup_due_at.isoformat())
    ctx.audit("referral.no_show_reported", "referral", ref.id, application_id=ref.application_id)
    ctx.notify(NoticeKind.NO_SHOW_REPORTED, ref.application_id, f"no-show-reported:{ref.id}",
               ReferralDeadline(referral_id=ref.id, due_at=ref.showup_due_at))
    return ref


class StaffFacade(rc.ReferralCheckFacade):
    """Staff invitations and the kindergarten's side of a referral (the signer is the referral
    check's)."""

    async def invite_staff(self, kindergarten_code: str, *, actor: str = "operator",
                           days: int = INVITE_DAYS, email: str | None = None) -> Invitation:
        if email is not None:
            normalise_email(email)  # (a bad address or kindergarten makes nothing, not even a key)
        async with self.reading(with_calendar=False) as ctx:
            await _kindergarten(ctx, kindergarten_code)
        signer = await self.signer()
        async with self.unit(actor, with_calendar=False) as ctx:
            return await invite(ctx, signer, kindergarten_code, days=days, email=email)

    async def accept_staff_invite(self, token: str, user_id: int) -> KindergartenInfo:
        signer = await self.signer()
        async with self.unit(actor_of(user_id), with_calendar=False) as ctx:
            return await accept(ctx, signer, token, user_id)

    async def revoke_staff(self, kindergarten_code: str, *, user_id: int | None = None,
                           invite_id: int | None = None, actor: str = "operator") -> int:
        async with self.unit(actor, with_calendar=False) as ctx:
            return await revoke(ctx, kindergarten_code, user_id=user_id, invite_id=invite_id)

    async def staff_list(self, kindergarten_code: str | None = None) -> list[StaffRow]:
        async with self.reading(with_calendar=False) as ctx:
            return await list_staff(ctx, kindergarten_code)

    async def staff_referral_by_token(self, token: str, user_id: int) -> StaffReferral:
        """The referral a code names, for its kindergarten's staff (``NotStaff`` for anyone else,
        and for a code that is not a genuine referral's)."""
        signer = await self.signer()
        async with self.reading(with_calendar=False) as ctx:
            try:
                claims = signer.verify(rc.PURPOSE, token, now=ctx.now)
            except TokenError:
                raise NotStaff() from None
            try:
                return await staff_referral(ctx, claims.id, user_id)
            except ReferralNotFound:
                raise NotStaff() from None

    async def staff_desk(self, user_id: int) -> Desk:
        async with self.reading(with_calendar=False) as ctx:
            return await desk(ctx, user_id)

    async def staff_referral(self, referral_id: int, user_id: int) -> StaffReferral:
        async with self.reading(with_calendar=False) as ctx:
            return await staff_referral(ctx, referral_id, user_id)

    async def staff_admit(self, referral_id: int, user_id: int) -> StaffReferral:
        async with self.unit(actor_of(user_id)) as ctx:
            return await _card(ctx, await staff_admit(ctx, referral_id, user_id))

    async def staff_no_show(self, referral_id: int, user_id: int) -> StaffReferral:
        async with self.unit(actor_of(user_id)) as ctx:
            return await _card(ctx, await staff_no_show(ctx, referral_id, user_id))

    async def staff_digest(self) -> int:
        """The working morning's digest for kindergarten staff (``morning_digest``); idempotent."""
        async with self.unit("scheduler") as ctx:
            return await morning_digest(ctx)

    def token_purpose(self, token: str) -> str | None:
        """What a ``/start`` parameter is, unverified: "link", "staff", "referral" or None."""
        return Signer.claimed_purpose(token)
