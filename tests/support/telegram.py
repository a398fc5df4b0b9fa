"""The Telegram side without a network: a Bot whose session records every Bot API call and answers it
(the shape of aiogram's own tests/mocked_bot.py), and a harness that feeds updates to the real
Dispatcher and returns the calls each one made.

A call gets the result queued for its method (``add_result_for``: a result, a Telegram error by its
status code, or an exception raised on the way), else the answer Telegram gives to a call that
works: the bot's user for getMe, the sent message for sendMessage, sendPhoto and sendDocument,
``True`` for the rest."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from itertools import count
from typing import TYPE_CHECKING, Any

from aiogram import Bot, Dispatcher
from aiogram.client.session.base import BaseSession
from aiogram.fsm.state import State
from aiogram.methods import (
    AnswerCallbackQuery,
    EditMessageText,
    GetMe,
    SendDocument,
    SendMessage,
    SendPhoto,
    TelegramMethod,
)
from aiogram.types import CallbackQuery, Chat, InlineKeyboardMarkup, Message, PhotoSize, Update, User

from handlers.link import LinkFlow
from handlers.settings import EmailFlow
from locales import gettext

BOT_USER = User(id=42, is_bot=True, first_name="Kezek", username="kezek_bot")
TOKEN = "42:TEST"
CHAT_ID = 1001  # the parent's chat (private: its id is the parent's user id)
OTHER_CHAT = 2002  # another parent's

# The catalogs' message ids of the answers most tests look for.
SORRY = "Something went wrong. Please try again later."
HINT = "I did not understand this message. Please use the menu buttons below or send /help."
WELCOME = ("Welcome to Kezek! Here you can follow your child's place in the kindergarten queue and "
           "get notices about seats. Use the menu below.")
STALE = "This button is no longer valid. Send /start to begin again."
HELP = "Kezek helps you follow the kindergarten queue. Commands:"

# Every dialogue state a chat can be in (None: no dialogue).
STATES: dict[str, State | None] = {
    "no dialogue": None,
    "link: number": LinkFlow.number,
    "link: IIN": LinkFlow.iin,
    "link: proof": LinkFlow.proof,
    "link: code": LinkFlow.code,
    "settings: e-mail": EmailFlow.address,
    "settings: code": EmailFlow.code,
}


@dataclass
class Reply:
    """A queued answer to one method: ``result``, or a Telegram error (``error_code`` other than 200,
    with its ``description`` and ``retry_after``) made into aiogram's exception by aiogram itself,
    or ``exception`` raised as a network failure would be. ``chat_id``: only for calls to that chat;
    ``times``: how many calls it answers (None: every one)."""

    result: Any = None
    error_code: int = 200
    description: str | None = None
    retry_after: int | None = None
    exception: BaseException | None = None
    chat_id: int | None = None
    times: int | None = 1

    def matches(self, method: TelegramMethod[Any]) -> bool:
        return self.chat_id is None or int(getattr(method, "chat_id", 0) or 0) == self.chat_id


class MockedSession(BaseSession):
    """Records every Bot API call (``requests``, the method objects in order) and answers it."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[TelegramMethod[Any]] = []
        self.replies: list[tuple[type[TelegramMethod[Any]], Reply]] = []
        self.closed = False
        self._ids = count(500)

    def add_result_for(self, method: type[TelegramMethod[Any]], result: Any = None, *, error_code: int = 200,
                       description: str | None = None, retry_after: int | None = None,
                       exception: BaseException | None = None, chat_id: int | None = None,
                       times: int | None = 1) -> Reply:
        reply = Reply(result, error_code, description, retry_after, exception, chat_id, times)
        self.replies.append((method, reply))
        return reply

    async def close(self) -> None:
        self.closed = True

    def _queued(self, method: TelegramMethod[Any]) -> Reply | None:
        for i, (kind, reply) in enumerate(self.replies):
            if isinstance(method, kind) and reply.matches(method):
                if reply.times is not None:
                    reply.times -= 1
                    if reply.times <= 0:
                        del self.replies[i]
                return reply
        return None

    async def make_request(self, bot: Bot, method: TelegramMethod[Any], timeout: int | None = None) -> Any:
        self.requests.append(method)
        reply = self._queued(method)
        if reply is None:
            return self._works(method)
        if reply.exception is not None:
            raise reply.exception
        if reply.error_code != 200:
            body: dict[str, Any] = {"ok": False, "error_code": reply.error_code, "description": reply.description}
            if reply.retry_after is not None:
                body["parameters"] = {"retry_after": reply.retry_after}
            self.check_response(bot=bot, method=method, status_code=reply.error_code, content=json.dumps(body))
        return reply.result

    def _works(self, method: TelegramMethod[Any]) -> Any:
        """What Telegram answers to a call that works."""
        if isinstance(method, GetMe):
            return BOT_USER
        if isinstance(method, SendMessage | SendPhoto | SendDocument):
            sent = {"text": method.text} if isinstance(method, SendMessage) else {"caption": method.caption}
            if isinstance(method, SendPhoto):
                sent["photo"] = [PhotoSize(file_id="f", file_unique_id="fu", width=640, height=340)]
            return Message(message_id=next(self._ids), date=dt.datetime.now(dt.UTC),
                           chat=Chat(id=int(method.chat_id), type="private"), from_user=BOT_USER, **sent)
        return True

    async def stream_content(self, url: str, headers: dict[str, Any] | None = None, timeout: int = 30,
                             chunk_size: int = 65536, raise_for_status: bool = True) -> AsyncGenerator[bytes, None]:
        yield b""


class MockedBot(Bot):
    """A Bot on a MockedSession: ``bot.session.requests`` holds what it was asked to do."""

    if TYPE_CHECKING:
        session: MockedSession

    def __init__(self, session: MockedSession | None = None) -> None:
        super().__init__(TOKEN, session=session or MockedSession())


class Harness:
    """The real Dispatcher fed updates from the parent's chat (``CHAT_ID``) on a MockedBot."""

    def __init__(self, dp: Dispatcher, bot: MockedBot | None = None) -> None:
        self.dp = dp
        self.bot = bot or MockedBot()
        self.session = self.bot.session
        self._update_ids = count(1)
        self._message_ids = count(1)

    def user(self, language_code: str | None = "ru", user_id: int = CHAT_ID) -> User:
        return User(id=user_id, is_bot=False, first_name="Айгерим", language_code=language_code)

    async def send(self, language_code: str | None = "ru", chat_type: str = "private",
                   **content: Any) -> list[TelegramMethod[Any]]:
        message = Message(message_id=next(self._message_ids), date=dt.datetime.now(dt.UTC),
                          chat=Chat(id=CHAT_ID, type=chat_type), from_user=self.user(language_code),
                          **content)
        return await self.feed(Update(update_id=next(self._update_ids), message=message))

    async def press(self, data: str, language_code: str | None = "ru") -> list[TelegramMethod[Any]]:
        picker = Message(message_id=next(self._message_ids), date=dt.datetime.now(dt.UTC),
                         chat=Chat(id=CHAT_ID, type="private"), from_user=BOT_USER, text="…")
        callback = CallbackQuery(id=f"cb{next(self._update_ids)}", from_user=self.user(language_code),
                                 chat_instance="ci", message=picker, data=data)
        return await self.feed(Update(update_id=next(self._update_ids), callback_query=callback))

    async def feed(self, update: Update) -> list[TelegramMethod[Any]]:
        """The calls the Dispatcher made for ``update``."""
        start = len(self.session.requests)
        await self.dp.feed_update(self.bot, update)
        return self.session.requests[start:]


class Chats:
    """Feeds messages and presses of several chats into one harness's Dispatcher."""

    def __init__(self, harness: Harness) -> None:
        self.h = harness
        self.ids = count(1)

    async def feed(self, update: Update) -> list[TelegramMethod[Any]]:
        return await self.h.feed(update)

    def user(self, chat_id: int, lang: str = "ru") -> User:
        return User(id=chat_id, is_bot=False, first_name="Айгерим", language_code=lang)

    async def text(self, chat_id: int, text: str, lang: str = "ru") -> list[TelegramMethod[Any]]:
        message = Message(message_id=next(self.ids), date=dt.datetime.now(dt.UTC), text=text,
                          chat=Chat(id=chat_id, type="private"), from_user=self.user(chat_id, lang))
        return await self.feed(Update(update_id=next(self.ids), message=message))

    async def press(self, chat_id: int, data: str, lang: str = "ru") -> list[TelegramMethod[Any]]:
        under = Message(message_id=next(self.ids), date=dt.datetime.now(dt.UTC), text="…",
                        chat=Chat(id=chat_id, type="private"), from_user=BOT_USER)
        callback = CallbackQuery(id=f"cb{next(self.ids)}", from_user=self.user(chat_id, lang), chat_instance="ci",
                                 message=under, data=data)
        return await self.feed(Update(update_id=next(self.ids), callback_query=callback))


# --- what the calls were ------------------------------------------------------------------------------

def sent(calls: list[TelegramMethod[Any]]) -> list[SendMessage]:
    return [c for c in calls if isinstance(c, SendMessage)]


def texts(calls: list[TelegramMethod[Any]]) -> list[str]:
    return [c.text for c in calls if isinstance(c, SendMessage)]


def answers(calls: list[TelegramMethod[Any]]) -> list[AnswerCallbackQuery]:
    return [c for c in calls if isinstance(c, AnswerCallbackQuery)]


def edits(calls: list[TelegramMethod[Any]]) -> list[EditMessageText]:
    return [c for c in calls if isinstance(c, EditMessageText)]


def inline_buttons(markup: Any) -> list[tuple[str, str]]:
    """(label, callback data) of each button of an inline keyboard."""
    assert isinstance(markup, InlineKeyboardMarkup)
    return [(b.text, b.callback_data or "") for row in markup.inline_keyboard for b in row]


def button_texts(markup: Any) -> list[str]:
    rows = markup.inline_keyboard if isinstance(markup, InlineKeyboardMarkup) else markup.keyboard
    return [b.text for row in rows for b in row]


def is_help(calls: list[TelegramMethod[Any]], lang: str = "ru") -> bool:
    """Whether the answer was /help's text, and only it."""
    return len(texts(calls)) == 1 and texts(calls)[0].startswith(gettext(lang, HELP))


# --- the throttle -------------------------------------------------------------------------------------

RATE, WINDOW = 3, 60.0  # updates a chat may send in a window of seconds, in the throttle's tests


class FakeTime:
    """The throttle's time source, moved by hand (no sleeps)."""

    def __init__(self) -> None:
        self.now = 1000 * WINDOW + 1.0  # one second into a window

    def __call__(self) -> float:
        return self.now
