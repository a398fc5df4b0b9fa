"""``kezek demo --console``: the Telegram bot in a terminal, no Telegram needed.

The same code path as ``kezek run``: the real Dispatcher of ``bot.telegram.app.build_dispatcher`` with every
router of ``handlers/``, fed with real ``Update`` objects (``dp.feed_update``). Only the Bot's session
differs: ``ConsoleSession.make_request`` draws each Bot API call on the terminal instead of sending it
(messages and their keyboards as text, edits, alerts, pictures saved to a folder) and answers with
plausible results (a ``Message`` with its id, chat, date, text and keyboard), so that handlers that
edit their messages work as they do in Telegram. The outbox sender (``bot.delivery.sender.drain_once`` with
the Telegram port over the same Bot, and the e-mail port of ``bot.delivery.mail.make_mailer``) runs in the
background, so notices such as "your turn has come" appear as they are sent.

One demo parent talks to the bot (``Console``): a line of text or a /command is a message; a number
presses a button under a message (``[1]``), a letter a button of the keyboard (``[a]``); the
keyboard's "share my phone number" button and ``/contact`` share the parent's contact. Lines that
start with ``!`` are the operator's (``!help``): they act on the services directly, as the registry
and the sandbox test clock would. A backslash sends the rest of the line as it is (``\\12``).

Personal data: the console shows what the parent would see in Telegram (the bot masks IINs) and logs
nothing. Messages the sender addresses to other chats are not shown.

Why one long module: ``Console`` is one terminal's state (the messages shown, their buttons, the
keyboard, the clock, the mail folder) that the parent's side and the operator's ``!`` commands
both read and change; the terminal's text handling is apart (bot/sandbox/terminal.py)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from email import message_from_bytes, policy
from email.message import EmailMessage
from itertools import count
from pathlib import Path
from typing import Any

from aiogram import Bot
from aiogram.client.default import Default
from aiogram.client.session.base import BaseSession
from aiogram.exceptions import TelegramBadRequest
from aiogram.methods import (
    AnswerCallbackQuery,
    DeleteMessage,
    EditMessageReplyMarkup,
    EditMessageText,
    GetMe,
    SendDocument,
    SendMessage,
    SendPhoto,
    TelegramMethod,
)
from aiogram.types import (
    CallbackQuery,
    Chat,
    Contact,
    Document,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    KeyboardButton,
    Message,
    PhotoSize,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
    User,
)

from bot.config import Settings
from bot.delivery.mail import make_mailer
from bot.delivery.sender import SendPolicy, outbox_loop
from bot.sandbox.clock import window_hint
from bot.sandbox.hint import WindowWatch
from bot.sandbox.report import done_text, moved_lines
from bot.sandbox.terminal import (
    INDENT,
    WIDTH,
    _button_rows,
    _letter,
    _StdinReader,
    _wrap,
    clean,
    html_to_text,
    parse_duration,
)
from bot.telegram.app import build_dispatcher
from locales import LANGUAGES, N_, gettext, normalize_language
from locales.errors import error_text
from locales.formats import format_datetime
from locales.names import language_name
from services.calendar import ALMATY
from services.clock import SandboxClock
from services.email import EmailSender
from services.errors import KezekError
from services.kezek import Kezek
from services.pacing import Pacer

log = logging.getLogger("kezek.console")


# The demo parent's chat (a private chat: its id is the user's id).
CHAT_ID = 100001
PARENT_NAME = "Айгерим"
# A phone outside the range bot.sandbox.demo gives the seeded applications (+770 then 10000000-99999999):
# `kezek demo --console` seeds the first application with it.
DEMO_PHONE = "+77000000001"
BOT_TOKEN = "4200000001:kezek-console-demo"
BOT_USER = User(id=4200000001, is_bot=True, first_name="Kezek", username="kezek_console_bot")

MAX_TEXT = 4096  # Telegram's limit for a message's text
MAX_PRESS_DIGITS = 3  # a longer number (an IIN, a code) is text, not a button
MAIL_LIST = 10  # !mail lists the latest ones

# The update being handled (its replies are drawn as one batch: their inline buttons are numbered
# together); None for what the background sender sends.
_BATCH: ContextVar[object | None] = ContextVar("kezek_console_batch", default=None)

HELP: tuple[tuple[str, str], ...] = (
    ("/contact", N_("share your phone number (as the contact button does)")),
    ("1, 2, …", N_("press a button under a message")),
    ("a, b, …", N_("press a keyboard button")),
    ("\\TEXT", N_("send TEXT as it is (say, a number that is not a button)")),
    ("!publish KG BIRTH_YEAR ru|kk COUNT",
     N_("the registry publishes free seats; they are offered to the first in the queue")),
    ("!sweep", N_("run the deadline sweeps now")),
    ("!advance PT3H | 1d | 2h30m", N_("move the sandbox clock forward; whatever falls due runs")),
    ("!now", N_("the sandbox time")),
    ("!mail [N]", N_("the e-mails in the mail folder; with a number, read that one")),
    ("!lang ru|kk", N_("the language of your Telegram app")),
    ("!keys", N_("show the buttons again")),
    ("!quit", N_("end the demo")),
)
USAGE = {
    "publish": "!publish KG BIRTH_YEAR ru|kk COUNT",
    "advance": "!advance PT3H | 1d | 2h30m",
    "lang": "!lang ru|kk",
    "mail": "!mail [N]",
}

class ConsoleSession(BaseSession):
    """A Bot session that draws each Bot API call on the console instead of calling Telegram."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    async def close(self) -> None:
        pass

    async def make_request(self, bot: Bot, method: TelegramMethod[Any], timeout: int | None = None) -> Any:
        return await self.console.api(bot, method)

    async def stream_content(self, url: str, headers: dict[str, Any] | None = None, timeout: int = 30,
                             chunk_size: int = 65536, raise_for_status: bool = True) -> Any:
        yield b""


class Console:
    """One demo parent's chat with the bot: the updates it sends, what the bot shows it, and the
    buttons that can be pressed now."""

    def __init__(self, kz: Kezek, settings: Settings, clock: SandboxClock, *, phone: str,
                 example: dict[str, Any], out: Callable[[str], None] = print, ansi: bool = False,
                 files_dir: Path | None = None, echo: bool = True, prompt: str = "") -> None:
        self.kz, self.settings, self.clock = kz, settings, clock
        self.phone, self.example = phone or DEMO_PHONE, example
        self.out, self.ansi, self.echo, self.prompt = out, ansi, echo, prompt
        self.files_dir = files_dir or Path(tempfile.gettempdir()) / "kezek-demo"
        self.chat_id = CHAT_ID
        self.name = PARENT_NAME
        self.language_code = normalize_language(settings.lang)
        self.session = ConsoleSession(self)
        self.bot = Bot(BOT_TOKEN, session=self.session)
        self.watch = WindowWatch(kz)
        self.dp = build_dispatcher(self.watch)  # type: ignore[arg-type]
        # The bot's messages in this chat (for edits and for the message a button belongs to).
        self.messages: dict[int, Message] = {}
        # The inline buttons that can be pressed: number -> (message id, button).
        self.inline: dict[int, tuple[int, InlineKeyboardButton]] = {}
        self._inline_batch: object | None = None
        self._next_number = 1
        # The keyboard under the input field (ReplyKeyboardMarkup), if any.
        self.keyboard: ReplyKeyboardMarkup | None = None
        self.other_chats = 0  # messages the sender addressed to other chats (not shown)
        self._ids = count(1)  # message ids of the chat (the parent's and the bot's)
        self._update_ids = count(1)
        self._callback_ids = count(1)
        self._wake = asyncio.Event()
        self._reading = False  # waiting for a line at an interactive prompt

    # --- who is who ---------------------------------------------------------------------------------

    def user(self) -> User:
        return User(id=self.chat_id, is_bot=False, first_name=self.name, language_code=self.language_code)

    def chat(self) -> Chat:
        return Chat(id=self.chat_id, type="private", first_name=self.name)

    def now(self) -> dt.datetime:
        return self.clock.now()

    async def lang(self) -> str:
        """The language of the operator's lines: the one the chat chose in the bot, else the app's."""
        try:
            chosen = await self.kz.chat_language(self.chat_id)
        except Exception:  # noqa: BLE001 - the database may be gone at the very end
            chosen = None
        return chosen if chosen in LANGUAGES else self.language_code

    async def t(self, msgid: str, **params: Any) -> str:
        return gettext(await self.lang(), msgid, **params)

    # --- output ---------------------------------------------------------------------------------------

    def emit(self, *lines: str) -> None:
        background = _BATCH.get() is None and self._reading
        if background and self.prompt:
            sys.stdout.write("\r\x1b[K")  # the prompt line gives way to what arrived
        for line in lines:
            self.out(line)
        if background and self.prompt:
            sys.stdout.write(self.prompt)
            sys.stdout.flush()

    def _bold(self, text: str) -> str:
        return f"\x1b[1m{text}\x1b[22m" if self.ansi else text

    def _dim(self, text: str) -> str:
        return f"\x1b[2m{text}\x1b[22m" if self.ansi else text

    def _header(self, message: Message, mark: str = "") -> str:
        local = message.date.astimezone(ALMATY)
        return self._bold(f"Kezek · {local:%d.%m %H:%M}") + (f" {mark}" if mark else "")

    def _text(self, text: str | None, parse_mode: str | None) -> str:
        text = clean(text or "")
        if (parse_mode or "").upper() == "HTML":
            text = html_to_text(text, ansi=self.ansi)
        return text

    def _number_buttons(self, message: Message) -> list[str]:
        """Numbers for the inline buttons of ``message`` (the first keyboard of a batch starts at
        [1]; later ones in the same batch go on counting); its lines."""
        for number in [n for n, (mid, _b) in self.inline.items() if mid == message.message_id]:
            del self.inline[number]
        markup = message.reply_markup
        if markup is None or not markup.inline_keyboard:
            return []
        batch = _BATCH.get() or object()  # the background sender: every message is its own batch
        if batch is not self._inline_batch:
            self._inline_batch = batch
            self.inline.clear()
            self._next_number = 1
        rows: list[list[str]] = []
        for row in markup.inline_keyboard:
            items = []
            for button in row:
                number = self._next_number
                self._next_number += 1
                self.inline[number] = (message.message_id, button)
                items.append(f"[{number}] {clean(button.text)}" + (" ↗" if button.url else ""))
            rows.append(items)
        return _button_rows(rows)

    def _keyboard_lines(self) -> list[str]:
        if self.keyboard is None:
            return []
        rows, index = [], 0
        for row in self.keyboard.keyboard:
            items = []
            for button in row:
                items.append(f"[{_letter(index)}] {clean(button.text)}")
                index += 1
            rows.append(items)
        return [INDENT + self._dim("⌨")] + _button_rows(rows, INDENT + "  ")

    def _set_keyboard(self, markup: Any) -> list[str]:
        """Follow the keyboard under the input field; its lines when it changed."""
        if isinstance(markup, ReplyKeyboardRemove):
            self.keyboard = None
        elif isinstance(markup, ReplyKeyboardMarkup) and markup != self.keyboard:
            self.keyboard = markup
            return self._keyboard_lines()
        return []

    def _show(self, message: Message, text: str, *, mark: str = "", markup: Any = None,
              extra: tuple[str, ...] = ()) -> None:
        lines = ["", self._header(message, mark), *_wrap(text), *extra, *self._number_buttons(message)]
        lines += self._set_keyboard(markup)
        self.emit(*lines)

    # --- the Bot API, drawn ---------------------------------------------------------------------------

    def _ours(self, chat_id: int | str | None) -> bool:
        if chat_id is None:
            return False
        try:
            return int(chat_id) == self.chat_id
        except (TypeError, ValueError):
            return False

    def _bot_message(self, bot: Bot, chat_id: int | str, **content: Any) -> Message:
        ours = self._ours(chat_id)
        chat = self.chat() if ours else Chat(id=int(chat_id) if str(chat_id).lstrip("-").isdigit() else 0,
                                             type="private")
        message = Message(message_id=next(self._ids), date=self.now(), chat=chat, from_user=BOT_USER, **content)
        if ours:
            self.messages[message.message_id] = message
        else:
            self.other_chats += 1
        return message.as_(bot)

    @staticmethod
    def _parse_mode(bot: Bot, method: TelegramMethod[Any]) -> str | None:
        mode = getattr(method, "parse_mode", None)
        if isinstance(mode, Default):
            mode = bot.default[mode.name]
        return mode if isinstance(mode, str) else None

    def _edited(self, bot: Bot, method: EditMessageText | EditMessageReplyMarkup) -> Message:
        if method.inline_message_id is not None or not self._ours(method.chat_id):
            raise TelegramBadRequest(method, "Bad Request: message to edit not found")
        old = self.messages.get(int(method.message_id or 0))
        if old is None:
            raise TelegramBadRequest(method, "Bad Request: message to edit not found")
        markup = method.reply_markup if isinstance(method.reply_markup, InlineKeyboardMarkup) else None
        text = method.text if isinstance(method, EditMessageText) else old.text
        if text == old.text and markup == old.reply_markup:
            raise TelegramBadRequest(method, "Bad Request: message is not modified: specified new message "
                                             "content and reply markup are exactly the same as a current "
                                             "content and reply markup of the message")
        new = old.model_copy(update={"text": text, "reply_markup": markup, "edit_date": int(self.now().timestamp())})
        self.messages[new.message_id] = new
        return new

    async def _save(self, bot: Bot, message_id: int, file: Any, default_name: str) -> Path | None:
        if not isinstance(file, InputFile):
            return None
        data = b"".join([chunk async for chunk in file.read(bot)])
        name = re.sub(r"[^A-Za-z0-9._-]", "_", file.filename or default_name)
        path = self.files_dir / f"{message_id}-{name}"

        def write() -> None:
            self.files_dir.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

        await asyncio.to_thread(write)
        return path

    async def api(self, bot: Bot, method: TelegramMethod[Any]) -> Any:
        """What Telegram would do with ``method``, drawn for the demo parent; the result."""
        if isinstance(method, GetMe):
            return BOT_USER
        if isinstance(method, SendMessage):
            inline = method.reply_markup if isinstance(method.reply_markup, InlineKeyboardMarkup) else None
            message = self._bot_message(bot, method.chat_id, text=method.text, reply_markup=inline)
            if self._ours(method.chat_id):
                self._show(message, self._text(method.text, self._parse_mode(bot, method)), markup=method.reply_markup)
            return message
        if isinstance(method, EditMessageText | EditMessageReplyMarkup):
            message = self._edited(bot, method)
            text = method.text if isinstance(method, EditMessageText) else message.text
            self._show(message, self._text(text, self._parse_mode(bot, method)), mark="✎")
            return message.as_(bot)
        if isinstance(method, AnswerCallbackQuery):
            self._answered(method)
            return True
        if isinstance(method, SendPhoto | SendDocument):
            return await self._sent_file(bot, method)
        if isinstance(method, DeleteMessage):
            self._deleted(method)
            return True
        # SetMyCommands, DeleteWebhook, SendChatAction...: nothing to show.
        return True

    def _answered(self, method: AnswerCallbackQuery) -> None:
        if method.text:  # an alert (a box the user must close) or a toast
            mark = "┃ " if method.show_alert else "‣ "
            self.emit(*[INDENT + mark + line.strip() for line in _wrap(clean(method.text), "")])
        if method.url:
            self.emit(INDENT + "↗ " + clean(method.url))

    async def _sent_file(self, bot: Bot, method: SendPhoto | SendDocument) -> Message:
        inline = method.reply_markup if isinstance(method.reply_markup, InlineKeyboardMarkup) else None
        content: dict[str, Any] = {"caption": method.caption, "reply_markup": inline}
        file: InputFile | str
        if isinstance(method, SendPhoto):
            file = method.photo
            content["photo"] = [PhotoSize(file_id="console", file_unique_id="console", width=1, height=1)]
        else:
            file = method.document
            content["document"] = Document(file_id="console", file_unique_id="console")
        message = self._bot_message(bot, method.chat_id, **content)
        if self._ours(method.chat_id):
            is_photo = isinstance(method, SendPhoto)
            path = await self._save(bot, message.message_id, file, "picture.png" if is_photo else "file")
            extra: tuple[str, ...] = ()
            if path is not None and is_photo:
                extra = tuple(_wrap("🖼 " + await self.t("The picture is saved to {path}.", path=str(path))))
            elif path is not None:  # e.g. the referral's PDF
                extra = tuple(_wrap("📄 " + await self.t("The file is saved to {path}.", path=str(path))))
            self._show(message, self._text(method.caption, self._parse_mode(bot, method)),
                       markup=method.reply_markup, extra=extra)
        return message

    def _deleted(self, method: DeleteMessage) -> None:
        if not self._ours(method.chat_id):
            return
        gone = self.messages.pop(int(method.message_id), None)
        if gone is not None:
            for number in [n for n, (mid, _b) in self.inline.items() if mid == gone.message_id]:
                del self.inline[number]
            first = clean(gone.text or gone.caption or "").split("\n", 1)[0][: WIDTH - 8]
            self.emit(INDENT + self._dim(f"✕ {first}"))

    # --- the parent's side ----------------------------------------------------------------------------

    async def feed(self, **kind: Any) -> None:
        """One update through the real Dispatcher; its replies are drawn as one batch."""
        update = Update(update_id=next(self._update_ids), **kind)
        token = _BATCH.set(object())
        self.watch.refused = None
        try:
            await self.dp.feed_update(self.bot, update)
        except Exception as exc:  # noqa: BLE001 - the error boundary answers; this is a last resort
            log.error("update failed: %s", type(exc).__name__)
            await self.say(await self.t("Something went wrong. Please try again later."))
        finally:
            _BATCH.reset(token)
        if self.watch.refused is not None:  # the window is closed: how to get there in the sandbox
            await self.say(window_hint(await self.lang(), self.watch.refused, self.clock.now(), console=True))
            self.watch.refused = None
        self._wake.set()  # what the handler wrote to the outbox goes out now

    async def send_text(self, text: str) -> None:
        message = Message(message_id=next(self._ids), date=self.now(), chat=self.chat(), from_user=self.user(),
                          text=text[:MAX_TEXT])
        await self.feed(message=message)

    async def share_contact(self, phone: str | None = None) -> None:
        phone = phone or self.phone
        self.emit(self._dim(f"» ☎ {phone}"))
        contact = Contact(phone_number=phone, first_name=self.name, user_id=self.chat_id)
        message = Message(message_id=next(self._ids), date=self.now(), chat=self.chat(), from_user=self.user(),
                          contact=contact)
        await self.feed(message=message)

    async def press(self, number: int) -> None:
        found = self.inline.get(number)
        if found is None:
            await self._no_button(f"[{number}]")
            return
        message_id, button = found
        self.emit(self._dim(f"» [{number}] {clean(button.text)}"))
        if button.callback_data is None:
            if button.url:
                self.emit(INDENT + "↗ " + clean(button.url))
            return
        message = self.messages.get(message_id)
        callback = CallbackQuery(id=f"console-{next(self._callback_ids)}", from_user=self.user(),
                                 chat_instance=str(self.chat_id), message=message, data=button.callback_data)
        await self.feed(callback_query=callback)

    async def press_key(self, letter: str) -> None:
        buttons = self._keys()
        try:
            index = [_letter(i) for i in range(len(buttons))].index(letter)
        except ValueError:
            await self._no_button(f"[{letter}]")
            return
        button: KeyboardButton = buttons[index]
        if self.keyboard is not None and self.keyboard.one_time_keyboard:
            self.keyboard = None
        if button.request_contact:
            await self.share_contact()
            return
        self.emit(self._dim(f"» [{letter}] {clean(button.text)}"))
        await self.send_text(button.text)

    def _keys(self) -> list[KeyboardButton]:
        return [b for row in self.keyboard.keyboard for b in row] if self.keyboard is not None else []

    async def _no_button(self, pressed: str) -> None:
        available = [f"[{n}]" for n in sorted(self.inline)] + [f"[{_letter(i)}]" for i in range(len(self._keys()))]
        if not available:
            await self.say(await self.t("There are no buttons to press now."))
        else:
            await self.say(await self.t("There is no button {button} now. Press one of these: {buttons}.",
                                        button=pressed, buttons=", ".join(available)))

    # --- one line of input -----------------------------------------------------------------------------

    async def handle(self, line: str) -> bool:
        """Act on one line of input; False when the demo should end."""
        line = clean(line).strip()
        if not line:
            return True
        # Presses and contacts show themselves; other lines are echoed unless typed on a terminal.
        if re.fullmatch(rf"[0-9]{{1,{MAX_PRESS_DIGITS}}}", line):
            await self.press(int(line))
            return True
        if re.fullmatch(r"[A-Za-z]", line):
            await self.press_key(line.lower())
            return True
        first = line.split()[0].lower()
        if first in ("/contact", f"/contact@{BOT_USER.username}"):
            parts = line.split(maxsplit=1)
            await self.share_contact(parts[1].strip() if len(parts) > 1 else None)
            return True
        if self.echo:
            self.emit(self._dim(f"» {line}"))
        if line.startswith("!"):
            return await self.operator(line[1:])
        if line.startswith("\\"):
            line = line[1:].strip()
            if not line:
                return True
        await self.send_text(line)
        return True

    # --- the operator's commands ---------------------------------------------------------------------

    async def operator(self, command: str) -> bool:
        words = command.split()
        name = words[0].lower() if words else ""
        args = words[1:]
        try:
            if name in ("quit", "exit", "q"):
                return False
            handler = {"help": self.op_help, "publish": self.op_publish, "sweep": self.op_sweep,
                       "advance": self.op_advance, "now": self.op_now, "mail": self.op_mail,
                       "lang": self.op_lang, "keys": self.op_keys}.get(name)
            if handler is None:
                await self.say(await self.t("Unknown demo command {command}. Send !help for the list.",
                                            command="!" + (name or "")[:40]))
                return True
            await handler(args)
        except KezekError as exc:
            await self.say(error_text(await self.lang(), exc))
        except Exception as exc:  # noqa: BLE001 - the demo goes on
            log.error("demo command %s failed: %s", name, type(exc).__name__)
            await self.say(await self.t("Something went wrong. Please try again later."))
        self._wake.set()
        return True

    async def say(self, *lines: str) -> None:
        """Operator output (not from the bot): marked with '#'."""
        out: list[str] = []
        for line in lines:
            # Wrapped as the bot's lines are (to the width less the two columns of the mark).
            out += [self._dim("# ") + text[2:] if text else self._dim("#") for text in _wrap(line, "  ")]
        self.emit(*out)

    async def usage(self, name: str) -> None:
        await self.say(await self.t("Usage: {usage}", usage=USAGE[name]))

    async def op_help(self, _args: list[str]) -> None:
        lang = await self.lang()
        lines = [gettext(lang, "Demo commands (everything else goes to the bot as a message):")]
        for syntax, msgid in HELP:
            lines.append(f"  {syntax} — {gettext(lang, msgid)}")
        await self.say(*lines)

    async def op_keys(self, _args: list[str]) -> None:
        lines = _button_rows([[f"[{n}] {clean(b.text)}" for n, (_m, b) in sorted(self.inline.items())]])
        lines += self._keyboard_lines()
        if lines:
            self.emit(*lines)
        else:
            await self.say(await self.t("There are no buttons to press now."))

    async def op_publish(self, args: list[str]) -> None:
        if len(args) != 4:
            await self.usage("publish")
            return
        kg, birth_year, language, seats = args
        result = await self.kz.publish_seats({"kindergarten": kg, "birth_year": birth_year,
                                              "language": language.lower(), "count": seats}, actor="console")
        lang = await self.lang()
        lines = [gettext(lang, "Published seats: {ids}.", ids=", ".join(map(str, result.seat_ids)))]
        if result.private:
            lines.append(gettext(lang, "A private kindergarten under the state order: the seats are open to "
                                            "every waiting child aged 3 or older in the district."))
        for offer_id, seat_id, number in result.offers:
            lines.append(gettext(lang, "Seat {seat} offered to application {number} (offer {offer}).",
                                      seat=seat_id, number=number, offer=offer_id))
        if not result.private and len(result.offers) < len(result.seat_ids):
            lines.append(gettext(lang, "Seats without an eligible application now: {count}.",
                                      count=len(result.seat_ids) - len(result.offers)))
        await self.say(*lines)

    async def op_sweep(self, _args: list[str]) -> None:
        done = await self.kz.run_sweeps()
        lang = await self.lang()
        await self.say(done_text(lang, done) or gettext(lang, "Nothing fell due."))

    async def op_advance(self, args: list[str]) -> None:
        from bot.sandbox.clock import MAX_MOVE, ClockMoveError, move_clock

        if len(args) != 1:
            await self.usage("advance")
            return
        delta = parse_duration(args[0])
        lang = await self.lang()
        if delta is None:
            await self.say(gettext(lang, "Not a duration: {value}. For example: PT3H, 1d, 2h30m.",
                                        value=args[0][:40]))
            return
        if delta > MAX_MOVE:
            await self.say(gettext(lang, "The sandbox clock moves at most {days} days at once.",
                                        days=MAX_MOVE.days))
            return
        try:
            moved = await move_clock(self.kz, self.clock, advance=delta, snapshot_hour=self.settings.snapshot_hour,
                                     digest_hour=self.settings.digest_hour)
        except ClockMoveError:
            await self.say(gettext(lang, "The sandbox clock moves at most {days} days at once.",
                                        days=MAX_MOVE.days))
            return
        lines = moved_lines(lang, self.clock.now(), moved)
        await self.say(*lines)

    async def op_now(self, _args: list[str]) -> None:
        lang = await self.lang()
        await self.say(gettext(lang, "Sandbox time: {moment}.",
                                    moment=format_datetime(lang, self.clock.now())))

    def _mails(self) -> list[Path]:
        folder = Path(self.settings.mail_dir)
        if not folder.is_dir():
            return []
        return sorted(folder.glob("*.eml"), key=lambda p: (p.stat().st_mtime, p.name))

    async def op_mail(self, args: list[str]) -> None:
        lang = await self.lang()
        if len(args) > 1 or (args and not re.fullmatch(r"[0-9]{1,6}", args[0])):
            await self.usage("mail")
            return
        mails = await asyncio.to_thread(self._mails)
        folder = str(self.settings.mail_dir)
        if args:
            index = int(args[0])
            if not 1 <= index <= len(mails):
                await self.say(gettext(lang, "There is no e-mail number {number}.", number=args[0][:10]))
                return
            mail = await asyncio.to_thread(_read_mail, mails[index - 1])
            body = mail.get_body(("plain",))
            text = body.get_content() if body is not None else ""
            lines = [f"[{index}] {clean(str(mail['To'] or ''))}: {clean(str(mail['Subject'] or ''))}", ""]
            await self.say(*lines)
            self.emit(*_wrap(clean(text).rstrip()))
            return
        if not mails:
            await self.say(gettext(lang, "No e-mails in {folder} yet.", folder=folder))
            return
        lines = [gettext(lang, "E-mails in {folder} (read one with !mail N):", folder=folder)]
        first = max(len(mails) - MAIL_LIST, 0)
        for index, path in enumerate(mails[first:], start=first + 1):
            mail = await asyncio.to_thread(_read_mail, path)
            when = mail["Date"].datetime if mail["Date"] is not None and mail["Date"].datetime else None
            stamp = f"{when.astimezone(ALMATY):%d.%m %H:%M} " if when and when.tzinfo else ""
            lines.append(f"  [{index}] {stamp}→ {clean(str(mail['To'] or ''))}: {clean(str(mail['Subject'] or ''))}")
        await self.say(*lines)

    async def op_lang(self, args: list[str]) -> None:
        if len(args) != 1 or args[0].lower() not in LANGUAGES:
            await self.usage("lang")
            return
        self.language_code = args[0].lower()
        lang = await self.lang()
        await self.say(gettext(lang, "Your Telegram app's language is now {language}.",
                                    language=language_name(lang, self.language_code)))

    # --- the run ---------------------------------------------------------------------------------------

    async def banner(self) -> None:
        lang = await self.lang()
        number = self.example.get("example") or self.example.get("number") or ""
        iin = self.example.get("example_iin") or self.example.get("iin") or ""
        await self.say(
            gettext(lang, "Kezek in the terminal: the same bot as in Telegram, for one demo parent."),
            gettext(lang, "Try it: /start and pick a language, then /link: application {number}, child's IIN "
                               "{iin}; then press the button that shares your phone number ({phone}).",
                         number=number, iin=iin, phone=self.phone),
            gettext(lang, "Numbers press the buttons under a message, letters the keyboard buttons. "
                               "!help lists the demo commands; !quit ends the demo."))
        if all(self.example.get(key) for key in ("kindergarten", "birth_year", "language")):
            command = "!publish {kindergarten} {birth_year} {language} 1".format(**self.example)
            await self.say(gettext(lang, "To make it this child's turn, publish a seat as the registry "
                                              "would: {command}", command=command))

    async def sender(self, mailer: EmailSender | None, idle: float) -> None:
        """The outbox sender over this console's Bot (and the mailer), woken at once after each
        update or demo command."""
        await outbox_loop(self.kz, self.bot, mailer, idle=idle, policy=SendPolicy(pacer=Pacer(0, 0)),
                          wake=self._wake)

    async def run(self, lines: AsyncIterator[str] | None = None) -> None:
        mailer = make_mailer(self.settings, self.clock)
        sender = asyncio.create_task(self.sender(mailer, max(min(self.settings.outbox_idle_seconds, 1.0), 0.05)),
                                     name="kezek:console-sender")
        reader = _StdinReader() if lines is None else None
        source = aiter(lines) if lines is not None else None
        try:
            await self.banner()
            while True:
                if sender.done():  # a failing sender must not go unnoticed
                    sender.result()
                if source is not None:
                    try:
                        line: str | None = await anext(source)
                    except StopAsyncIteration:
                        line = None
                else:
                    assert reader is not None
                    self._reading = True
                    try:
                        line = await reader.readline(self.prompt)
                    finally:
                        self._reading = False
                    if line is None and self.prompt:
                        self.out("")  # Ctrl+D: the shell's prompt on a line of its own
                if line is None or not await self.handle(line):
                    break
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            await self.dp.storage.close()
            await self.bot.session.close()


def _read_mail(path: Path) -> EmailMessage:
    return message_from_bytes(path.read_bytes(), policy=policy.default)


async def run_console(kz: Kezek, settings: Settings, clock: SandboxClock, *, phone: str, example: dict[str, Any],
                      lines: AsyncIterator[str] | None = None, out: Callable[[str], None] = print,
                      files_dir: Path | None = None) -> None:
    """The bot in the terminal until ``!quit`` or the end of the input.

    ``kz`` runs on ``clock`` (the sandbox clock ``!advance`` moves); ``example`` names the
    application to try (``example`` number and ``example_iin``, as ``bot.sandbox.demo.seed`` and
    ``bot.sandbox.demo.pick_example`` return them; with ``kindergarten``, ``birth_year`` and ``language``
    the banner also tells which seat to publish), whose phone is ``phone`` (``DEMO_PHONE`` when
    empty), so that sharing the contact links it. ``lines``: the input
    (stdin when None; its lines are then not echoed on a terminal); ``out``: where the screen goes
    (ANSI bold only when it is ``print`` to a terminal); ``files_dir``: where pictures the bot
    sends are saved (a ``kezek-demo`` folder in the temp directory by default)."""
    tty = out is print and sys.stdout.isatty()
    interactive = lines is None and sys.stdin.isatty()
    console = Console(kz, settings, clock, phone=phone, example=example, out=out, ansi=tty,
                      files_dir=files_dir, echo=not interactive, prompt="› " if interactive and tty else "")
    # aiogram logs every update it handled at INFO; the screen is the demo's log.
    events = logging.getLogger("aiogram.event")
    level = events.level
    events.setLevel(max(level, logging.WARNING))
    try:
        await console.run(lines)
    finally:
        events.setLevel(level)
