"""A small Bot API stand-in (aiohttp on 127.0.0.1, a free port) for tests and benchmarks that run
the bot as a real process or with a real ``AiohttpSession``.

Like Telegram it can refuse: ``rate`` / ``chat_rate`` enforce messages per second overall and per
chat over a sliding second (429 with ``retry_after`` beyond), ``blocked`` chats get 403, and
``faults`` scripts the next answers to a chat's sendMessage or sendDocument (``"429"``, ``"500"``,
``"timeout"``, ``"403"``, ``"400"``). ``accepted`` lists the (chat, text) of every message it took
(a document's caption as its text);
``refusals`` counts what it refused and why. ``python -m bot.bench.standin`` runs one on its own (for
``kezek bench outbox``), with ``GET /_stats`` for the counts.

It answers getMe, long-polls getUpdates (``offset``/``timeout``; 409 while a webhook is set, like
Telegram), and answers sendMessage, editMessageText, editMessageReplyMarkup, answerCallbackQuery,
sendPhoto and sendDocument (multipart uploads: the file name and bytes are recorded),
setWebhook / deleteWebhook / getWebhookInfo, setMyCommands and deleteMessage, and getFile for the
files the test put in with ``add_file`` (their bytes are served at ``/file/bot<token>/<file_path>``
like Telegram's file server; files over 20 MB are refused like Telegram refuses them to bots). Any other method is
answered ``true`` and recorded too. Every call is kept in ``calls`` with its parameters (JSON fields
such as ``reply_markup`` decoded).

The test plays the parent with ``send_text``, ``send_contact``, ``send_photo``, ``send_document``
and ``press`` (updates for
getUpdates, or, with ``deliver=False``, just built for a webhook POST), and waits for the bot with
``wait_for(method, predicate, timeout=...)``: the next matching call since the last thing the
parent did.

    async with BotApiStandIn() as api:
        env["KEZEK_BOT_API_URL"] = api.base_url
        ...
        api.send_text(CHAT, "/start")
        picker = await api.wait_for("sendMessage", lambda c: c.buttons())
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import signal
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web

TOKEN = "123:ABC"
BOT_USER: dict[str, Any] = {"id": 123, "is_bot": True, "first_name": "Kezek", "username": "kezek_bot"}
WAIT = 20.0  # default seconds to wait for the bot to react
MAX_LONG_POLL = 2.0  # getUpdates is held at most this long
BOT_FILE_LIMIT = 20 * 1024 * 1024  # getFile refuses bigger files ("file is too big")


@dataclass
class Upload:
    filename: str
    content: bytes
    content_type: str = ""


@dataclass
class Call:
    """One Bot API call: ``params`` (uploads as ``Upload`` in place of their ``attach://`` name)
    and the ``result`` the stand-in answered."""

    method: str
    params: dict[str, Any]
    result: Any = None
    index: int = 0

    @property
    def text(self) -> str | None:
        return self.params.get("text")

    @property
    def chat_id(self) -> int | None:
        value = self.params.get("chat_id")
        return int(value) if value is not None else None

    def buttons(self) -> list[dict[str, Any]]:
        """The inline buttons of ``reply_markup`` (reply-keyboard buttons too), row by row."""
        markup = self.params.get("reply_markup") or {}
        rows = markup.get("inline_keyboard") or markup.get("keyboard") or []
        return [b for row in rows for b in row]

    def button(self, text: str) -> dict[str, Any]:
        return next(b for b in self.buttons() if b.get("text") == text)


class BotApiError(AssertionError):
    """The stand-in was stopped or the watched bot died while a test waited."""


def _decode(value: str) -> Any:
    if value[:1] in "[{":
        with contextlib.suppress(ValueError):
            return json.loads(value)
    return value


@dataclass
class BotApiStandIn:
    token: str = TOKEN
    bot_user: dict[str, Any] = field(default_factory=lambda: dict(BOT_USER))
    host: str = "127.0.0.1"
    port: int = 0
    rate: float = 0.0  # sendMessage per second overall (0: no limit)
    chat_rate: float = 0.0  # sendMessage per second to one chat (0: no limit)
    timeout_delay: float = 5.0  # how long a scripted "timeout" holds the request
    keep_calls: bool = True  # False for benchmarks: only counts and ``accepted`` are kept

    def __post_init__(self) -> None:
        self.updates: list[dict[str, Any]] = []
        self.calls: list[Call] = []
        self.webhook: dict[str, Any] = {}  # url, secret_token, allowed_updates while set
        self.base_url = ""
        self.closing = False
        self._cursor = 0
        self._changed = asyncio.Condition()
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.accepted: list[tuple[int, str]] = []
        self.refusals: Counter[str] = Counter()
        self.blocked: set[int] = set()
        self.faults: dict[int, list[str]] = {}
        self._recent: deque[float] = deque()
        self._recent_chat: dict[int, deque[float]] = {}
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.files: dict[str, tuple[str, bytes]] = {}  # file_id -> (file_path, bytes)
        self.downloads: list[str] = []  # the file paths fetched from /file/

    # --- life cycle --------------------------------------------------------------------------------
    async def start(self) -> Self:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self.handle)
        app.router.add_get("/_stats", self.stats_handler)
        app.router.add_get("/file/bot{token}/{path:.+}", self.file_handler)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://{self.host}:{port}"
        return self

    async def close(self) -> None:
        self.closing = True
        await self._notify()
        if self._runner is not None:
            await asyncio.wait_for(self._runner.cleanup(), 15)
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    # --- the parent's side ------------------------------------------------------------------------
    def user(self, chat_id: int, language_code: str | None = "ru", first_name: str = "Айгерим") -> dict[str, Any]:
        user: dict[str, Any] = {"id": chat_id, "is_bot": False, "first_name": first_name}
        if language_code is not None:
            user["language_code"] = language_code
        return user

    def _chat(self, chat_id: int) -> dict[str, Any]:
        return {"id": chat_id, "type": "private", "first_name": "Айгерим"}

    def queue(self, deliver: bool = True, **update: Any) -> dict[str, Any]:
        """An update with the next ``update_id``; queued for getUpdates unless ``deliver`` is
        False (then only built, e.g. to POST it to a webhook). Later waits look at calls from here on."""
        full = {"update_id": next(self._update_ids), **update}
        self._cursor = len(self.calls)
        if deliver:
            self.updates.append(full)
            asyncio.get_running_loop().create_task(self._notify())
        return full

    def message(self, chat_id: int, language_code: str | None = "ru", **content: Any) -> dict[str, Any]:
        return {"message_id": next(self._message_ids), "date": int(time.time()), "chat": self._chat(chat_id),
                "from": self.user(chat_id, language_code), **content}

    def send_text(self, chat_id: int, text: str, *, language_code: str | None = "ru",
                  deliver: bool = True) -> dict[str, Any]:
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            length = len(text.split()[0])
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        return self.queue(deliver, message=self.message(chat_id, language_code, **content))

    def send_contact(self, chat_id: int, phone_number: str, user_id: int | None, *,
                     first_name: str = "Айгерим", language_code: str | None = "ru",
                     deliver: bool = True) -> dict[str, Any]:
        contact: dict[str, Any] = {"phone_number": phone_number, "first_name": first_name}
        if user_id is not None:
            contact["user_id"] = user_id
        return self.queue(deliver, message=self.message(chat_id, language_code, contact=contact))

    def press(self, chat_id: int, data: str, message: Call | dict[str, Any] | None = None, *,
              language_code: str | None = "ru", deliver: bool = True) -> dict[str, Any]:
        """A press on an inline button with ``data``, under ``message``: a recorded call of the
        bot (its result is the message), a message dict, or a placeholder message."""
        if isinstance(message, Call):
            message = message.result if isinstance(message.result, dict) else None
        if message is None:
            message = {"message_id": next(self._message_ids), "date": int(time.time()),
                       "chat": self._chat(chat_id), "from": self.bot_user, "text": "…"}
        callback = {"id": f"cb{next(self._update_ids)}", "from": self.user(chat_id, language_code),
                    "chat_instance": f"ci{chat_id}", "data": data, "message": message}
        return self.queue(deliver, callback_query=callback)

    def add_file(self, content: bytes, *, size: int | None = None) -> dict[str, Any]:
        """Keep ``content`` as a file Telegram holds; returns its ``file_id``, ``file_unique_id``
        and ``file_size`` (``size`` overrides the reported size, e.g. to claim a huge file)."""
        n = len(self.files) + 1
        file_id = f"file{n}-{len(content)}"
        self.files[file_id] = (f"documents/file_{n}.bin", content)
        return {"file_id": file_id, "file_unique_id": f"u{n}",
                "file_size": len(content) if size is None else size}

    def send_photo(self, chat_id: int, content: bytes, width: int, height: int, *,
                   caption: str | None = None, language_code: str | None = "ru",
                   deliver: bool = True) -> dict[str, Any]:
        """A photo message: Telegram's sizes (two thumbnails, then ``content`` as the largest)."""
        sizes = [{**self.add_file(content[:64] + b"thumb"), "width": max(1, width // 16),
                  "height": max(1, height // 16)},
                 {**self.add_file(content[:64] + b"small"), "width": max(1, width // 4),
                  "height": max(1, height // 4)},
                 {**self.add_file(content), "width": width, "height": height}]
        extra = {"caption": caption} if caption else {}
        return self.queue(deliver, message=self.message(chat_id, language_code, photo=sizes, **extra))

    def send_document(self, chat_id: int, content: bytes, file_name: str, mime_type: str | None = None, *,
                      size: int | None = None, language_code: str | None = "ru",
                      deliver: bool = True) -> dict[str, Any]:
        document: dict[str, Any] = {**self.add_file(content, size=size), "file_name": file_name}
        if mime_type:
            document["mime_type"] = mime_type
        return self.queue(deliver, message=self.message(chat_id, language_code, document=document))

    async def file_handler(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        path = request.match_info["path"]
        found = next((content for p, content in self.files.values() if p == path), None)
        if found is None:
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        self.downloads.append(path)
        return web.Response(body=found, content_type="application/octet-stream")

    # --- waiting for the bot ----------------------------------------------------------------------
    def sent(self, method: str = "sendMessage") -> list[Call]:
        return [c for c in self.calls if c.method.lower() == method.lower()]

    def mark(self) -> int:
        """The position after the calls so far (for ``wait_for(..., since=...)``)."""
        return len(self.calls)

    def find(self, method: str, predicate: Callable[[Call], Any] | None = None,
             since: int | None = None) -> Call | None:
        start = self._cursor if since is None else since
        for call in self.calls[start:]:
            if call.method.lower() == method.lower() and (predicate is None or predicate(call)):
                return call
        return None

    async def wait_for(self, method: str, predicate: Callable[[Call], Any] | None = None, *,
                       timeout: float = WAIT, since: int | None = None,
                       alive: Callable[[], str | None] | None = None) -> Call:
        """The first call of ``method`` matching ``predicate`` since the last update the parent
        sent (or since ``since``); ``TimeoutError`` after ``timeout`` seconds. ``alive`` returns a
        reason to stop waiting early (e.g. the bot process died), raised as ``BotApiError``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = self.find(method, predicate, since)
            if found is not None:
                return found
            reason = alive() if alive is not None else None
            if reason:
                raise BotApiError(f"no {method}: {reason}")
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"no {method} within {timeout} s")
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), min(left, 0.2))

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # --- the bot's side ---------------------------------------------------------------------------
    async def _params(self, request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return dict(request.query)
        if request.content_type == "application/json":
            # (as Telegram: a JSON-serialised field may come as JSON text inside the JSON body)
            return {k: _decode(v) if isinstance(v, str) else v for k, v in (await request.json()).items()}
        params: dict[str, Any] = {}
        uploads: dict[str, Upload] = {}
        for key, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                uploads[key] = Upload(value.filename, value.file.read(), value.content_type)
            else:
                params[key] = _decode(str(value))
        for key, value in list(params.items()):
            if isinstance(value, str) and value.startswith("attach://") and value[9:] in uploads:
                params[key] = uploads.pop(value[9:])
        params.update(uploads)  # a file given directly under its field name
        return params

    async def handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"},
                                     status=401)
        method = request.match_info["method"]
        params = await self._params(request)
        call = Call(method, params, index=len(self.calls))
        if self.keep_calls:
            self.calls.append(call)
        try:
            refused = await self._refusal(method.lower(), params)
            call.result = refused if refused is not None else await self._answer(method.lower(), params)
        finally:
            if self.keep_calls:
                await self._notify()
        if isinstance(call.result, web.Response):
            return call.result
        return web.json_response({"ok": True, "result": call.result})

    # --- refusing, like Telegram ------------------------------------------------------------------
    @staticmethod
    def _error(code: int, description: str, **parameters: Any) -> web.Response:
        body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
        if parameters:
            body["parameters"] = parameters
        return web.json_response(body, status=code)

    def _too_many(self, window: deque[float], limit: float, now: float) -> int | None:
        """Seconds to wait when one more message now would exceed ``limit`` in a sliding second."""
        while window and window[0] <= now - 1.0:
            window.popleft()
        if limit and len(window) >= max(1, math.floor(limit)):
            return max(1, math.ceil(window[0] + 1.0 - now))
        return None

    async def _refusal(self, method: str, params: dict[str, Any]) -> web.Response | None:
        if method not in ("sendmessage", "senddocument") or "chat_id" not in params:
            return None
        chat_id = int(params["chat_id"])
        script = self.faults.get(chat_id)
        fault = script.pop(0) if script else None
        if fault == "timeout":
            self.refusals["timeout"] += 1
            await asyncio.sleep(self.timeout_delay)  # the client gives up first
            return self._error(504, "Gateway Timeout")
        if fault in ("500", "502"):
            self.refusals[fault] += 1
            return self._error(int(fault), "Internal Server Error" if fault == "500" else "Bad Gateway")
        if fault == "400":
            self.refusals["400"] += 1
            return self._error(400, "Bad Request: chat not found")
        if fault == "403" or chat_id in self.blocked:
            self.refusals["403"] += 1
            return self._error(403, "Forbidden: bot was blocked by the user")
        now = time.monotonic()
        chat_window = self._recent_chat.setdefault(chat_id, deque())
        wait = 1 if fault == "429" else (self._too_many(self._recent, self.rate, now)
                                         or self._too_many(chat_window, self.chat_rate, now))
        if wait is not None:
            self.refusals["429"] += 1
            return self._error(429, f"Too Many Requests: retry after {wait}", retry_after=wait)
        self._recent.append(now)
        chat_window.append(now)
        if len(self._recent_chat) > 50_000:
            self._recent_chat = {c: w for c, w in self._recent_chat.items() if w and w[-1] > now - 1.0}
        self.accepted.append((chat_id, str(params.get("text", params.get("caption", "")))))
        self.first_at = self.first_at or now
        self.last_at = now
        return None

    def stats(self) -> dict[str, Any]:
        per_message = Counter(self.accepted)
        span = (self.last_at - self.first_at) if self.first_at is not None and self.last_at is not None else 0.0
        return {"accepted": len(self.accepted), "distinct": len(per_message),
                "twice": sum(1 for n in per_message.values() if n > 1),
                "refused": dict(self.refusals), "span_seconds": round(span, 3),
                "rate": round((len(self.accepted) - 1) / span, 2) if span > 0 else None}

    async def stats_handler(self, _request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    def _sent_message(self, params: dict[str, Any], **content: Any) -> dict[str, Any]:
        message = {"message_id": next(self._message_ids), "date": int(time.time()),
                   "chat": {"id": int(params["chat_id"]), "type": "private"}, "from": self.bot_user,
                   **content}
        if params.get("reply_markup") and "inline_keyboard" in params["reply_markup"]:
            message["reply_markup"] = params["reply_markup"]
        return message

    async def _answer(self, method: str, params: dict[str, Any]) -> Any:
        if method == "getupdates":
            if self.webhook:
                return web.json_response({"ok": False, "error_code": 409, "description":
                                          "Conflict: can't use getUpdates method while webhook is active; "
                                          "use deleteWebhook to delete the webhook first"}, status=409)
            return await self._get_updates(params)
        answer = _ANSWERS.get(method)
        if answer is None:  # answerCallbackQuery, setMyCommands, deleteMessage, sendChatAction, ...
            return True
        return answer(self, params)

    def _get_me(self, _params: dict[str, Any]) -> Any:
        return self.bot_user

    def _send_message(self, params: dict[str, Any]) -> Any:
        return self._sent_message(params, text=params.get("text", ""))

    def _edit_message(self, params: dict[str, Any]) -> Any:
        if "inline_message_id" in params:
            return True
        content = {"text": params["text"]} if "text" in params else {"text": "…"}
        message = self._sent_message(params, **content)
        message["message_id"] = int(params.get("message_id") or message["message_id"])
        message["edit_date"] = int(time.time())
        return message

    @staticmethod
    def _caption(params: dict[str, Any]) -> dict[str, Any]:
        return {"caption": params["caption"]} if "caption" in params else {}

    def _send_photo(self, params: dict[str, Any]) -> Any:
        photo = params.get("photo")
        size = len(photo.content) if isinstance(photo, Upload) else 0
        return self._sent_message(params, photo=[{"file_id": f"photo{len(self.calls)}",
                                                  "file_unique_id": f"p{len(self.calls)}",
                                                  "width": 800, "height": 600, "file_size": size}],
                                  **self._caption(params))

    def _send_document(self, params: dict[str, Any]) -> Any:
        document = params.get("document")
        doc: dict[str, Any] = {"file_id": f"doc{len(self.calls)}", "file_unique_id": f"d{len(self.calls)}"}
        if isinstance(document, Upload):
            doc.update(file_name=document.filename, file_size=len(document.content))
        return self._sent_message(params, document=doc, **self._caption(params))

    def _get_file(self, params: dict[str, Any]) -> Any:
        file_id = str(params.get("file_id", ""))
        if file_id not in self.files:
            return self._error(400, "Bad Request: invalid file_id")
        path, content = self.files[file_id]
        if len(content) > BOT_FILE_LIMIT:
            return self._error(400, "Bad Request: file is too big")
        return {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_size": len(content),
                "file_path": path}

    def _set_webhook(self, params: dict[str, Any]) -> Any:
        self.webhook = {"url": params.get("url", ""), "secret_token": params.get("secret_token"),
                        "allowed_updates": params.get("allowed_updates")}
        if params.get("drop_pending_updates") in (True, "true", "True"):
            self.updates.clear()
        return True

    def _delete_webhook(self, params: dict[str, Any]) -> Any:
        self.webhook = {}
        if params.get("drop_pending_updates") in (True, "true", "True"):
            self.updates.clear()
        return True

    def _get_webhook_info(self, _params: dict[str, Any]) -> Any:
        info: dict[str, Any] = {"url": self.webhook.get("url", ""), "has_custom_certificate": False,
                                "pending_update_count": len(self.updates)}
        if self.webhook.get("allowed_updates"):
            info["allowed_updates"] = self.webhook["allowed_updates"]
        return info

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        if offset:
            # Telegram forgets updates below a confirmed offset.
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        timeout = min(float(params.get("timeout") or 0), MAX_LONG_POLL)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            ready = [u for u in self.updates if u["update_id"] >= offset]
            left = deadline - loop.time()
            if ready or left <= 0 or self.closing:
                return ready
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), left)


# The answer to each Bot API method the stand-in knows, by its lower-cased name (getUpdates apart:
# ``_answer``); any other method answers True.
_ANSWERS: dict[str, Callable[[BotApiStandIn, dict[str, Any]], Any]] = {
    "getme": BotApiStandIn._get_me,
    "sendmessage": BotApiStandIn._send_message,
    "editmessagetext": BotApiStandIn._edit_message,
    "editmessagereplymarkup": BotApiStandIn._edit_message,
    "sendphoto": BotApiStandIn._send_photo,
    "senddocument": BotApiStandIn._send_document,
    "getfile": BotApiStandIn._get_file,
    "setwebhook": BotApiStandIn._set_webhook,
    "deletewebhook": BotApiStandIn._delete_webhook,
    "getwebhookinfo": BotApiStandIn._get_webhook_info,
}


async def _serve(args: argparse.Namespace) -> None:
    api = BotApiStandIn(token=args.token, port=args.port, rate=args.rate, chat_rate=args.chat_rate,
                        keep_calls=False)
    await api.start()
    print(api.base_url, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await api.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="A Bot API stand-in on loopback (prints its base URL).")
    parser.add_argument("--token", default=TOKEN)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0.0, help="messages per second overall (0: no limit)")
    parser.add_argument("--chat-rate", type=float, default=0.0, help="messages per second per chat (0: no limit)")
    asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
