"""A chat's settings (the /settings and /unlink screens of handlers/settings.py): the optional
notices it gets, its own e-mail address for copies (confirmed with a code sent to that address) and
unlinking an application.

* Optional notices: queue number moved (opt-in), deadline reminders, seats open to everyone. The
  mandatory ones (your turn, referral, annulment, stop-list, removal) always come:
  ``notice_wanted`` decides for the outbox sender, from the ``setting`` of each kind in
  ``services.notices.KINDS``.
* The e-mail code is stored only as a hash (bound to the chat and the address), never logged or
  audited; it travels once, in the payload of the ``email_code`` outbox notice, to the NEW address.
  Codes e-mailed per chat are rate-limited together with link codes (``linking.CodeRateLimited``).
* A wrong code counts a try that must be kept although it raises: the facade commits the unit of
  work and re-raises (like ``Kezek._linking``).
* Addresses are personal data: they are never written to the audit log or to a log; the
  ``ChatSettings`` repr leaves them out.

No aiogram here: the bot layer passes plain ids and strings."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, delete, select

from services import linking
from services.chats import CHAT_DEFAULTS, chat_viewer, ensure_chat
from services.context import Ctx
from services.errors import InvalidEmail, RuleViolation, ValidationError
from services.facade import FacadeBase, linked_application
from services.notices import (
    EmailCodeIssued,
    NoticeKind,
    NoticeSetting,
    require_every,
    spec_of,
)
from services.validation import normalise_email
from storage.hot import Hot
from storage.models import Chat, ChatLink, QueueLook

EMAIL_CODE_TTL = dt.timedelta(minutes=15)
EMAIL_CODE_MAX_TRIES = 5

# setting key (callback data, API) -> Chat column; which notices each one turns off is
# services.notices.KINDS's ``setting``.
NOTICE_KEYS: dict[str, str] = {
    NoticeSetting.MOVES: "notify_moves",
    NoticeSetting.REMINDERS: "notify_reminders",
    NoticeSetting.OPEN_SEATS: "notify_open_seats",
}
require_every(NoticeSetting, NOTICE_KEYS, "services.settings.NOTICE_KEYS")


# --- errors ----------------------------------------------------------------------------------------

class UnknownNoticeSetting(ValidationError):
    code = "unknown_notice_setting"


class EmailCodeMissing(RuleViolation):
    """No address is waiting for a code (never asked, confirmed already, or cleared)."""

    code = "email_code_missing"


class EmailCodeWrong(ValidationError):
    code = "email_code_wrong"


class EmailCodeExpired(RuleViolation):
    code = "email_code_expired"


class EmailCodeTriesExceeded(RuleViolation):
    code = "email_code_tries_exceeded"


_KEPT_FAILURES = (EmailCodeWrong, EmailCodeExpired, EmailCodeTriesExceeded)


# --- what the front end shows ------------------------------------------------------------------------

@dataclass(frozen=True)
class ChatSettings:
    """A chat's settings. ``email``/``email_pending`` are raw addresses: mask them for display
    (``validation.mask_email``) and never log them (the repr leaves them out)."""

    language: str | None
    notify_moves: bool
    notify_reminders: bool
    notify_open_seats: bool
    email: str | None = field(default=None, repr=False)
    email_pending: str | None = field(default=None, repr=False)

    def notice(self, key: str) -> bool:
        return bool(getattr(self, NOTICE_KEYS[key]))

    @classmethod
    def of(cls, chat: Any) -> ChatSettings:
        """``chat``: a Chat, a row with its settings' columns, or None (defaults)."""
        if chat is None:
            return cls(None, **CHAT_DEFAULTS)
        return cls(chat.language, bool(chat.notify_moves), bool(chat.notify_reminders),
                   bool(chat.notify_open_seats), chat.email, chat.email_pending)


_CHAT_SETTINGS = Hot(select(Chat.language, Chat.notify_moves, Chat.notify_reminders, Chat.notify_open_seats,
                            Chat.email, Chat.email_pending).where(Chat.id == bindparam("chat_id")))


def notice_wanted(chat: Chat, kind: str) -> bool:
    """Whether ``chat`` wants an outbox notice of ``kind``: an optional one (its ``setting`` in
    ``services.notices.KINDS``) follows the chat's setting; every other notice (the mandatory
    ones, and a kind this version does not know) always comes."""
    spec = spec_of(kind)
    if spec is None or spec.setting is None:
        return True
    return bool(getattr(chat, NOTICE_KEYS[spec.setting]))


# --- services ----------------------------------------------------------------------------------------

def _clear_pending(chat: Chat) -> None:
    chat.email_pending = None
    chat.email_code_hash = None
    chat.email_code_expires_at = None
    chat.email_code_attempts = 0


def _code_hash(chat_id: int, email: str, code: str) -> str:
    return hashlib.sha256(f"email:{chat_id}:{email}:{code}".encode()).hexdigest()


async def set_notice(ctx: Ctx, chat_id: int, key: str, on: bool) -> ChatSettings:
    column = NOTICE_KEYS.get(key)
    if column is None:
        raise UnknownNoticeSetting()
    chat = await ensure_chat(ctx, chat_id)
    if bool(getattr(chat, column)) != bool(on):
        setattr(chat, column, bool(on))
        chat.updated_at = ctx.now
        ctx.audit("set_notice", "chat", chat_id, notice=key, on=bool(on))
    await ctx.session.flush()
    return ChatSettings.of(chat)


async def request_email(ctx: Ctx, chat_id: int, raw_email: str) -> str:
    """Keep ``raw_email`` (normalised) as the chat's pending address and e-mail it a fresh code
    (replacing an earlier one). Returns the normalised address. ``InvalidEmail`` on bad input,
    ``CodeRateLimited`` over the limit (nothing written either way)."""
    text = str(raw_email or "")
    if len(text) > 400:  # far beyond any address; not worth validating
        raise InvalidEmail()
    email = normalise_email(text)
    if len(email) > 320:  # the column (email_validator already keeps addresses to 254)
        raise InvalidEmail()
    await linking.ensure_code_mail_allowed(ctx, chat_id)
    chat = await ensure_chat(ctx, chat_id)
    code = linking.new_code()
    chat.email_pending = email
    chat.email_code_hash = _code_hash(chat_id, email, code)
    chat.email_code_expires_at = ctx.now + EMAIL_CODE_TTL
    chat.email_code_attempts = 0
    chat.updated_at = ctx.now
    # The code goes to the NEW address (that is what it proves), so the notice carries it.
    ctx.notify(NoticeKind.EMAIL_CODE, None, linking.code_notice_key(NoticeKind.EMAIL_CODE, chat_id),
               EmailCodeIssued(chat_id=chat_id, email=email, code=code))
    ctx.audit("email_code_sent", "chat", chat_id)  # never the address or the code
    await ctx.session.flush()
    return email


async def confirm_email(ctx: Ctx, chat_id: int, code: str) -> str:
    """Make the pending address the chat's e-mail with the code it was sent. Returns the address.

    A wrong code counts a try (``EmailCodeWrong``); the last allowed wrong try, an expired code and
    one past its tries clear the pending address (``EmailCodeTriesExceeded`` / ``EmailCodeExpired``);
    no pending address: ``EmailCodeMissing``.

    The chat's linking lock comes first (``linking.lock_chat``): guesses arriving at once, from any
    number of instances, are judged one after another, so the tries limit holds."""
    await linking.lock_chat(ctx, chat_id)
    chat = await ctx.session.get(Chat, chat_id)
    if chat is None or chat.email_pending is None or chat.email_code_hash is None:
        raise EmailCodeMissing()
    if chat.email_code_expires_at is None or chat.email_code_expires_at <= ctx.now:
        _clear_pending(chat)
        await ctx.session.flush()
        raise EmailCodeExpired()
    if chat.email_code_attempts >= EMAIL_CODE_MAX_TRIES:
        _clear_pending(chat)
        await ctx.session.flush()
        raise EmailCodeTriesExceeded()
    typed = "".join(str(code or "").split())[:20]
    if not hmac.compare_digest(chat.email_code_hash, _code_hash(chat_id, chat.email_pending, typed)):
        chat.email_code_attempts += 1
        ctx.audit("email_code_failed", "chat", chat_id)
        if chat.email_code_attempts >= EMAIL_CODE_MAX_TRIES:
            _clear_pending(chat)
            await ctx.session.flush()
            raise EmailCodeTriesExceeded()
        await ctx.session.flush()
        raise EmailCodeWrong(tries_left=EMAIL_CODE_MAX_TRIES - chat.email_code_attempts)
    email = chat.email_pending
    replaced = chat.email is not None
    chat.email = email
    _clear_pending(chat)
    chat.updated_at = ctx.now
    ctx.audit("email_set", "chat", chat_id, replaced=replaced)
    await ctx.session.flush()
    return email


async def remove_email(ctx: Ctx, chat_id: int) -> bool:
    """Forget the chat's e-mail (and an address waiting for its code). True when there was one."""
    chat = await ctx.session.get(Chat, chat_id)
    if chat is None or (chat.email is None and chat.email_pending is None):
        return False
    had = chat.email is not None
    chat.email = None
    _clear_pending(chat)
    chat.updated_at = ctx.now
    if had:
        ctx.audit("email_removed", "chat", chat_id)
    await ctx.session.flush()
    return had


async def unlink(ctx: Ctx, chat_id: int, application_id: int) -> linking.LinkTarget:
    """Unlink an application from this chat only (``NotLinked`` when it is not linked to it): its
    link and the numbers this chat last saw go; other chats' links stay."""
    app = await linked_application(ctx, chat_id, application_id)
    target = linking.LinkTarget.of(app)
    await ctx.session.execute(delete(ChatLink).where(ChatLink.chat_id == chat_id,
                                                     ChatLink.application_id == app.id))
    await ctx.session.execute(delete(QueueLook).where(QueueLook.application_id == app.id,
                                                      QueueLook.viewer == chat_viewer(chat_id)))
    ctx.audit("unlink", "application", app.id, chat_id=chat_id)
    await ctx.session.flush()
    return target


# --- the facade part ---------------------------------------------------------------------------------

class SettingsFacade(FacadeBase):
    async def chat_settings(self, chat_id: int) -> ChatSettings:
        async with self.db.hot() as db:  # the «Settings» button: on the driver (storage.hot.Hot)
            return ChatSettings.of(await db.first(_CHAT_SETTINGS, {"chat_id": chat_id}))

    async def set_notice(self, chat_id: int, key: str, on: bool) -> ChatSettings:
        async with self.unit("telegram", with_calendar=False) as ctx:
            return await set_notice(ctx, chat_id, key, on)

    async def request_email(self, chat_id: int, raw_email: str) -> str:
        async with self.unit("telegram", with_calendar=False) as ctx:
            return await request_email(ctx, chat_id, raw_email)

    async def confirm_email(self, chat_id: int, code: str) -> str:
        return await self.unit_keeping(lambda ctx: confirm_email(ctx, chat_id, code), _KEPT_FAILURES)

    async def remove_email(self, chat_id: int) -> bool:
        async with self.unit("telegram", with_calendar=False) as ctx:
            return await remove_email(ctx, chat_id)

    async def code_mail_allowed_at(self, chat_id: int) -> dt.datetime | None:
        """When the chat may have the next code e-mailed (None: now)."""
        async with self.reading(with_calendar=False, small=True) as ctx:
            return await linking.code_mail_allowed_at(ctx, chat_id)

    async def linked_target(self, chat_id: int, application_id: int) -> linking.LinkTarget:
        """What may be shown about an application this chat has linked (``NotLinked`` otherwise)."""
        async with self.reading(with_calendar=False, small=True) as ctx:
            return linking.LinkTarget.of(await linked_application(ctx, chat_id, application_id))

    async def unlink(self, chat_id: int, application_id: int) -> linking.LinkTarget:
        async with self.unit("telegram", with_calendar=False) as ctx:
            return await unlink(ctx, chat_id, application_id)
