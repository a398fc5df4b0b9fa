"""Linking a Telegram chat to an application (the /link screen; RULES.md "Queue").

Application number → child IIN → proof that the chat belongs to the applicant: the sender's own
Telegram contact whose phone equals the application's phone, or a one-time code sent to the
application's e-mail.

* Every failure raises the same ``LinkFailed``: the answer never reveals whether a number exists.
* Every failure and every completed link is recorded (``link_attempts``); after ``MAX_FAILURES``
  failures within ``LOCK_WINDOW`` the chat is locked (``LinkLocked(until=...)``) and even correct
  data is refused until the window passes. A link made in between forgives nothing (else a chat
  that holds one application could re-link it between guesses at another's IIN). Time is always
  ``ctx.now``.
* An application the chat has linked already, proved again (its number and IIN, the contact, a
  code, the registration e-mail's link tapped again), is answered with a ``LinkTarget`` whose
  ``already`` is true: nothing is linked, nothing is counted either way, no code is e-mailed.
* Every step of one chat runs alone (``lock_chat``): the lock-out check, the evaluation and its
  record, the tries of a code and the count of e-mailed codes are one atomic step, however many
  requests of the chat arrive at once and on however many bot instances. On PostgreSQL a
  transaction-scoped advisory lock per chat; on SQLite the write transaction (``BEGIN
  IMMEDIATE``, ``storage.db``) already admits one writer at a time.
* A failure must be kept although it raises: the facade commits the unit of work and re-raises
  (see ``Kezek._linking``). The failure paths therefore write nothing but the attempt (and the
  tries counter of an e-mail code).
* The e-mail code is stored only as a hash and is never logged or audited; it travels once, in the
  payload of the ``link_code`` outbox notice.
* The deep link of the registration e-mail (``services.deep_link``): ``link_by_token`` checks the
  signed token (purpose ``link``), refuses it when another chat has linked the application, and
  uses it once (a conditional insert into ``used_tokens``), then links through the same ``_link``.
  A refused token is an ordinary failure (uniform, counted for the lock-out); the reason is logged
  with a fingerprint of the token, never its text. The chat that holds the application may tap it
  again, even expired: "already linked", nothing counted.
* E-mailed codes are rate-limited per chat: at most ``CODE_MAIL_LIMIT`` within ``CODE_MAIL_WINDOW``,
  link codes and the settings' e-mail confirmation codes together (``CodeRateLimited(until=...)``;
  nothing is written then). They are counted in the outbox by their dedupe-key prefix
  ``<kind>:<chat id>:``.

No aiogram here: the bot layer passes plain ids and strings."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import NoReturn

from sqlalchemy import delete, or_, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services import deep_link, queue, signing
from services.chats import ensure_chat
from services.context import Ctx
from services.errors import KezekError, LinkFailed, LinkLocked, RuleViolation
from services.notices import CODE_KINDS, LinkCodeIssued, NoticeKind
from services.signing import Signer, TokenError
from services.validation import mask_email, mask_iin, normalise_phone, validate_iin
from storage.models import Application, ChatLink, LinkAttempt, LinkCode, OutboxMessage, UsedToken

log = logging.getLogger("kezek.linking")

MAX_FAILURES = 5
LOCK_WINDOW = dt.timedelta(hours=1)
CODE_TTL = dt.timedelta(minutes=15)
CODE_MAX_TRIES = 5
CODE_DIGITS = 6

METHOD_CONTACT = "contact"
METHOD_EMAIL = "email"
METHOD_DEEP_LINK = "deep_link"  # the registration e-mail's one-tap link

# E-mailed codes per chat (every code notice, services.notices.CODE_KINDS, together).
CODE_MAIL_LIMIT = 3
CODE_MAIL_WINDOW = dt.timedelta(hours=1)

# PostgreSQL's advisory locks of the two-int4 key space: (this namespace, the chat id folded to
# 32 bits). storage.queue_versions uses (19290, 1); services.offers the one-bigint space (another
# space altogether). Two chats that fold alike only wait for each other.
CHAT_LOCK_NAMESPACE = 19291
_CHAT_LOCK = text("SELECT pg_advisory_xact_lock(:namespace, :key)")


class CodeRateLimited(RuleViolation):
    """Too many codes were e-mailed for this chat lately: the next one may be asked for ``until``
    (a UTC datetime)."""

    code = "code_rate_limited"

    @property
    def until(self):  # type: ignore[no-untyped-def]
        return self.params.get("until")


@dataclass(frozen=True)
class LinkTarget:
    """What a front end may show about an application it proved access to (masked)."""

    application_id: int
    number: str
    child_iin_masked: str
    email_masked: str
    already: bool = False  # the chat had linked it before: nothing was done

    @classmethod
    def of(cls, app: Application, *, already: bool = False) -> LinkTarget:
        return cls(app.id, app.number, mask_iin(app.child_iin), mask_email(app.email), already)


# --- one step of a chat at a time ------------------------------------------------------------------

def _chat_lock_key(chat_id: int) -> int:
    """The chat id (any 64-bit integer; group chats are negative) folded to a signed 32-bit key."""
    folded = (chat_id ^ (chat_id >> 32)) & 0xFFFFFFFF
    return folded - (1 << 32) if folded >= 1 << 31 else folded


async def lock_chat(ctx: Ctx, chat_id: int) -> None:
    """Wait until no other transaction is in a linking step (or a code request) of this chat, and
    keep the others waiting until this transaction ends. Called first in every step, before it
    reads anything it decides on; taking it again in the same transaction is harmless.

    PostgreSQL: ``pg_advisory_xact_lock`` (READ COMMITTED: every statement after it sees what the
    previous holder committed). SQLite: nothing to do, the unit of work's ``BEGIN IMMEDIATE``
    holds the database's write lock from its first statement (``storage.db.Database.write``)."""
    if ctx.is_postgres:
        await ctx.session.execute(_CHAT_LOCK, {"namespace": CHAT_LOCK_NAMESPACE, "key": _chat_lock_key(chat_id)})


async def _holds(ctx: Ctx, chat_id: int, app_id: int) -> bool:
    return await ctx.session.get(ChatLink, (chat_id, app_id)) is not None


# --- attempts and the lock -------------------------------------------------------------------------

async def locked_until(ctx: Ctx, chat_id: int) -> dt.datetime | None:
    """When the chat's lock ends, or None when it is not locked now.

    The failures within the last ``LOCK_WINDOW`` count, whatever succeeded in between; with
    ``MAX_FAILURES`` of them the lock lasts until the oldest of the last five leaves the window."""
    since = ctx.now - LOCK_WINDOW
    q = select(LinkAttempt.at).where(LinkAttempt.chat_id == chat_id, LinkAttempt.ok.is_(False),
                                     LinkAttempt.at > since)
    failures = list((await ctx.session.execute(q.order_by(LinkAttempt.at.desc(), LinkAttempt.id.desc())
                                               .limit(MAX_FAILURES)))
                    .scalars())
    if len(failures) < MAX_FAILURES:
        return None
    until = failures[-1] + LOCK_WINDOW
    return until if until > ctx.now else None


async def _ensure_not_locked(ctx: Ctx, chat_id: int) -> None:
    until = await locked_until(ctx, chat_id)
    if until is not None:
        raise LinkLocked(until=until)


async def _record(ctx: Ctx, chat_id: int, ok: bool) -> None:
    ctx.session.add(LinkAttempt(chat_id=chat_id, at=ctx.now, ok=ok))
    await ctx.session.flush()


async def _fail(ctx: Ctx, chat_id: int) -> NoReturn:
    """Record the failure and raise: ``LinkLocked`` when it was the one too many, else ``LinkFailed``.
    Nothing about the input is audited (it may be someone else's IIN)."""
    await _record(ctx, chat_id, ok=False)
    ctx.audit("link_failed", "chat", chat_id)
    until = await locked_until(ctx, chat_id)
    if until is not None:
        raise LinkLocked(until=until)
    raise LinkFailed()


async def _verify(ctx: Ctx, chat_id: int, number: str, iin: str) -> Application:
    await lock_chat(ctx, chat_id)
    await _ensure_not_locked(ctx, chat_id)
    app: Application | None = None
    try:
        valid_iin = validate_iin(iin)
        app = await queue.get_application(ctx.session, str(number or "")[:40])
    except KezekError:
        app = None
    if app is None or not hmac.compare_digest(app.child_iin, valid_iin):
        await _fail(ctx, chat_id)  # outside the except: no chained cause tells the failures apart
    return app


async def _link(ctx: Ctx, chat_id: int, app: Application, method: str) -> LinkTarget:
    """Link (the caller holds ``lock_chat`` and found no link of this chat to ``app``)."""
    await _record(ctx, chat_id, ok=True)
    await ensure_chat(ctx, chat_id)
    ctx.session.add(ChatLink(chat_id=chat_id, application_id=app.id, linked_at=ctx.now, method=method))
    ctx.audit("link", "application", app.id, chat_id=chat_id, method=method)
    await ctx.session.flush()
    return LinkTarget.of(app)


# --- the steps ---------------------------------------------------------------------------------------

async def check_application(ctx: Ctx, chat_id: int, number: str, iin: str) -> LinkTarget:
    """The number and the child's IIN belong together (else ``LinkFailed``; ``LinkLocked`` when the
    chat is locked). Links nothing yet (``already`` when the chat has linked it)."""
    # A matching pair is not recorded as a success (nothing is: successes forgive no failures).
    app = await _verify(ctx, chat_id, number, iin)
    return LinkTarget.of(app, already=await _holds(ctx, chat_id, app.id))


async def link_by_contact(ctx: Ctx, chat_id: int, number: str, iin: str, contact_phone: str,
                          contact_user_id: int | None, sender_user_id: int | None) -> LinkTarget:
    """Link when the shared contact is the sender's own and its phone is the application's."""
    app = await _verify(ctx, chat_id, number, iin)
    if await _holds(ctx, chat_id, app.id):
        return LinkTarget.of(app, already=True)
    if contact_user_id is None or sender_user_id is None or contact_user_id != sender_user_id:
        await _fail(ctx, chat_id)
    try:
        same = normalise_phone(contact_phone) == normalise_phone(app.phone)
    except KezekError:
        same = False
    if not same:
        await _fail(ctx, chat_id)
    return await _link(ctx, chat_id, app, METHOD_CONTACT)


# --- the rate limit of e-mailed codes ------------------------------------------------------------------

def new_code() -> str:
    """A fresh one-time code of ``CODE_DIGITS`` digits (link codes and e-mail confirmation codes)."""
    return f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"


def code_notice_key(kind: NoticeKind, chat_id: int) -> str:
    """The dedupe key of a code notice: ``<kind>:<chat id>:<random>`` (each code is a new notice;
    the prefix is what the rate limit counts)."""
    return f"{kind}:{chat_id}:{secrets.token_hex(8)}"


async def code_mail_allowed_at(ctx: Ctx, chat_id: int) -> dt.datetime | None:
    """When the chat may have the next code e-mailed, or None when it may now."""
    since = ctx.now - CODE_MAIL_WINDOW
    kinds = sorted(CODE_KINDS)
    prefixes = [OutboxMessage.dedupe_key.startswith(f"{kind}:{chat_id}:", autoescape=True) for kind in kinds]
    recent = list((await ctx.session.execute(
        select(OutboxMessage.created_at)
        .where(OutboxMessage.kind.in_(kinds), or_(*prefixes), OutboxMessage.created_at > since)
        .order_by(OutboxMessage.created_at.desc()).limit(CODE_MAIL_LIMIT))).scalars())
    if len(recent) < CODE_MAIL_LIMIT:
        return None
    until = recent[-1] + CODE_MAIL_WINDOW
    return until if until > ctx.now else None


async def ensure_code_mail_allowed(ctx: Ctx, chat_id: int) -> None:
    """``CodeRateLimited(until=...)`` when the chat had ``CODE_MAIL_LIMIT`` codes e-mailed within
    the last ``CODE_MAIL_WINDOW``. Takes ``lock_chat``: the caller's code then goes out (or not)
    before any other request of the chat counts."""
    await lock_chat(ctx, chat_id)
    until = await code_mail_allowed_at(ctx, chat_id)
    if until is not None:
        raise CodeRateLimited(until=until)


def _code_hash(chat_id: int, code: str) -> str:
    return hashlib.sha256(f"{chat_id}:{code}".encode()).hexdigest()


async def send_email_code(ctx: Ctx, chat_id: int, number: str, iin: str) -> LinkTarget:
    """A fresh 6-digit code for this chat (replacing an earlier one), valid ``CODE_TTL``; the
    ``link_code`` outbox notice carries it to the application's e-mail. Over the rate limit:
    ``CodeRateLimited`` and nothing is written (the verification wrote nothing on success). An
    application the chat has linked gets no code (``already``)."""
    app = await _verify(ctx, chat_id, number, iin)
    if await _holds(ctx, chat_id, app.id):
        return LinkTarget.of(app, already=True)
    await ensure_code_mail_allowed(ctx, chat_id)
    code = new_code()
    await ctx.session.execute(delete(LinkCode).where(LinkCode.chat_id == chat_id))
    ctx.session.add(LinkCode(chat_id=chat_id, application_id=app.id, code_hash=_code_hash(chat_id, code),
                             expires_at=ctx.now + CODE_TTL, attempts=0))
    ctx.notify(NoticeKind.LINK_CODE, app.id, code_notice_key(NoticeKind.LINK_CODE, chat_id), LinkCodeIssued(code=code))
    ctx.audit("link_code_sent", "application", app.id, chat_id=chat_id)  # never the code
    await ctx.session.flush()
    return LinkTarget.of(app)


async def link_by_code(ctx: Ctx, chat_id: int, code: str) -> LinkTarget:
    """Link with the code from the e-mail: right, unexpired, within ``CODE_MAX_TRIES`` tries."""
    await lock_chat(ctx, chat_id)
    await _ensure_not_locked(ctx, chat_id)
    pending = await ctx.session.get(LinkCode, chat_id)
    if pending is None:
        await _fail(ctx, chat_id)
    if pending.expires_at <= ctx.now or pending.attempts >= CODE_MAX_TRIES:
        await ctx.session.delete(pending)
        await _fail(ctx, chat_id)
    typed = "".join(str(code or "").split())
    if not hmac.compare_digest(pending.code_hash, _code_hash(chat_id, typed)):
        pending.attempts += 1
        if pending.attempts >= CODE_MAX_TRIES:
            await ctx.session.delete(pending)
        await _fail(ctx, chat_id)
    app = await ctx.session.get(Application, pending.application_id)
    await ctx.session.delete(pending)
    if app is None:  # pragma: no cover - the foreign key keeps it
        await _fail(ctx, chat_id)
    if await _holds(ctx, chat_id, app.id):  # (linked by its contact since the code was sent)
        return LinkTarget.of(app, already=True)
    return await _link(ctx, chat_id, app, METHOD_EMAIL)


# --- the deep link of the registration e-mail -----------------------------------------------------------

def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


async def _use_token(ctx: Ctx, token: str, app_id: int, chat_id: int) -> bool:
    """Record the token's use; False when it was used already. One conditional insert (the
    primary key), so of two chats racing with one token exactly one gets True: on PostgreSQL the
    second insert waits for the first transaction and then does nothing; SQLite has one writer."""
    insert_ = pg_insert if ctx.is_postgres else sqlite_insert
    stmt = (insert_(UsedToken).values(digest=token_digest(token), purpose=deep_link.PURPOSE, subject_id=app_id,
                                      chat_id=chat_id, used_at=ctx.now)
            .on_conflict_do_nothing(index_elements=["digest"]).returning(UsedToken.digest))
    return (await ctx.session.execute(stmt)).first() is not None


async def _refuse_token(ctx: Ctx, chat_id: int, reason: str, token: object) -> NoReturn:
    log.warning("link token refused: %s (%s)", reason, signing.fingerprint(token))
    await _fail(ctx, chat_id)


async def link_by_token(ctx: Ctx, signer: Signer, chat_id: int, token: str) -> LinkTarget:
    """Link with the deep link of the registration e-mail (``/start <token>``): a genuine,
    unexpired token of purpose ``link``, not used before, naming an application that no other
    chat has linked. Every refusal is the same ``LinkFailed`` (``LinkLocked`` when the chat is, or
    becomes, locked) and counts as a failed attempt; only a link uses the token up.

    An application another chat has linked is refused: the e-mail proves the applicant, but the
    applicant has linked already (the other chat); a link lying in a mailbox must not add a chat
    the applicant does not know about. A second parent links with /link (number, IIN, proof). The
    chat that holds the application may tap its link again, used or expired: it is told it is
    linked already (``already``), nothing counted; the token is used up."""
    await lock_chat(ctx, chat_id)
    await _ensure_not_locked(ctx, chat_id)
    app: Application | None = None
    try:
        # The token is bound to the address it was mailed to: verified with the application's
        # address now (a link sent before the registry changed it is refused).
        app = await ctx.session.get(Application, signer.claimed_id(token))
        signer.verify(deep_link.PURPOSE, token, now=ctx.now,
                      bound=deep_link.link_binding(app.email if app is not None else None))
    except TokenError as exc:
        # ("expired" comes only after the signature, the purpose and the binding verified.)
        if exc.reason == "expired" and app is not None and await _holds(ctx, chat_id, app.id):
            return LinkTarget.of(app, already=True)
        await _refuse_token(ctx, chat_id, exc.reason, token)
    if app is None:  # genuine under our key, but no such application (another database)
        await _refuse_token(ctx, chat_id, "no such application", token)
    if await _holds(ctx, chat_id, app.id):
        await _use_token(ctx, token, app.id, chat_id)  # (used up, whether or not it was before)
        return LinkTarget.of(app, already=True)
    elsewhere = (await ctx.session.execute(select(ChatLink.chat_id).where(
        ChatLink.application_id == app.id, ChatLink.chat_id != chat_id).limit(1))).first()
    if elsewhere is not None:
        await _refuse_token(ctx, chat_id, "application linked from another chat", token)
    if not await _use_token(ctx, token, app.id, chat_id):
        await _refuse_token(ctx, chat_id, "used already", token)
    log.info("link token used for application %s", app.id)
    return await _link(ctx, chat_id, app, METHOD_DEEP_LINK)


async def linked_applications(session: AsyncSession, chat_id: int) -> list[LinkTarget]:
    rows = (await session.execute(
        select(Application).join(ChatLink, ChatLink.application_id == Application.id)
        .where(ChatLink.chat_id == chat_id).order_by(ChatLink.linked_at, Application.number))).scalars()
    return [LinkTarget.of(a) for a in rows]
