"""Telegram chats as the domain sees them: only an id and the language the chat chose.

No aiogram here: the bot layer passes plain chat ids."""

from __future__ import annotations

from typing import TypedDict

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.context import Ctx
from storage.models import Chat

LANGUAGES = ("ru", "kk")


async def get_language(session: AsyncSession, chat_id: int) -> str | None:
    """The language a chat chose ('ru' | 'kk'), or None when it has not chosen one yet."""
    return (await session.execute(select(Chat.language).where(Chat.id == chat_id))).scalar_one_or_none()


class NoticeDefaults(TypedDict):
    """A chat's notice settings (``services.settings.NOTICE_KEYS``' columns)."""

    notify_moves: bool
    notify_reminders: bool
    notify_open_seats: bool


# A chat's settings before it changes any (the columns' defaults in storage.models say the same).
CHAT_DEFAULTS: NoticeDefaults = {"notify_moves": False, "notify_reminders": True, "notify_open_seats": True}


def chat_viewer(chat_id: int) -> str:
    """The viewer whose last look at a queue number a chat's status screen remembers."""
    return f"chat:{chat_id}"


async def ensure_chat(ctx: Ctx, chat_id: int) -> Chat:
    """The chat's row, created on first use (language not chosen yet, default notice settings):
    a chat that links an application must exist to be routed its notices.

    Created with ``INSERT ... ON CONFLICT DO NOTHING``: a brand-new chat's first updates may be
    handled at the same moment (two instances, or a button and a message), and the one that
    loses the race uses the row the other made instead of failing on the key."""
    chat = await ctx.session.get(Chat, chat_id)
    if chat is None:
        await ctx.insert_ignore(Chat, [{"id": chat_id, "language": None, "created_at": ctx.now,
                                        "updated_at": ctx.now, "email_code_attempts": 0, **CHAT_DEFAULTS}], "id")
        chat = await ctx.session.get(Chat, chat_id, populate_existing=True)
        assert chat is not None
    return chat


async def set_language(ctx: Ctx, chat_id: int, lang: str) -> Chat:
    """Remember the chat's language (creating the chat's row on first use) and audit the change."""
    if lang not in LANGUAGES:
        raise ValueError(f"unsupported language: {lang!r}")
    chat = await ensure_chat(ctx, chat_id)
    previous = chat.language
    if chat.language != lang:
        chat.language = lang
        chat.updated_at = ctx.now
    if previous != lang:
        ctx.audit("set_language", "chat", chat_id, language=lang, previous=previous)
    await ctx.session.flush()
    return chat
