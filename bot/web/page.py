"""The public referral page: what a phone camera opens from the QR code of a referral PDF.

``GET /r/<code>`` (and ``GET /r?code=<code>``, the form for a code typed from the paper) shows, in
Kazakh or Russian (``?lang=``, else the browser's ``Accept-Language``, with a switch), whether the
referral is genuine and its state (valid, admitted, annulled, expired), the kindergarten, the
group, its language and birth year, the show-up deadline with its time zone, and the child's
initials — nothing more: no IIN, no application number, no name. A forged, altered, cut or unknown
code gets the same clear page ("not a genuine referral"); the reason goes to the log with the
code's fingerprint, never the code (``services.referral_check``).

Bounded: a code longer than ``MAX_CODE`` is refused without a look-up; each client (its address;
behind the reverse proxy, ``X-Real-IP``) may check ``page_rate`` codes a minute, counted for every
instance in Redis when it is configured (``RedisPageLimiter``), else in the process
(``PageLimiter``). Every answer carries a strict Content-Security-Policy (no script at all,
the one inline stylesheet by its hash), ``Referrer-Policy: no-referrer`` (the code in the address
goes nowhere else), ``nosniff``, no framing and ``Cache-Control: no-store``. The access log names
the route, never the code.

Served by ``kezek run`` on ``page_host:page_port`` when ``KEZEK_PUBLIC_URL`` is set
(``serve_page``); bot/deploy/nginx.conf passes ``/r`` to it."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import jinja2
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from bot.api.errors import request_language
from bot.config import Settings
from bot.delivery.deeplinks import BotUsername
from handlers.start import LANGUAGE_LABELS, PICKER_ORDER
from locales import LANGUAGES, N_, gettext
from locales.formats import format_date, format_deadline
from locales.names import language_name
from services import referral_check as rc
from services.deep_link import deep_link
from services.kezek import Kezek

log = logging.getLogger("kezek.page")

PREFIX = rc.PAGE_PATH
MAX_CODE = 200  # a referral code is 27 characters; anything much longer is not one
# The page's own words (the template shows them translated; here, so that pybabel extracts them).
WORDS = {
    "title": N_("Referral check"),
    "code": N_("The verification code from the referral:"),
    "check": N_("Check"),
    "footer": N_("Kezek: the electronic queue to kindergartens"),
    "staff": N_("For the kindergarten's staff: the referral in full, and the child's arrival recorded in one tap."),
    "open": N_("Open in Telegram"),
}

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
STYLE = (Path(__file__).with_name("templates") / "page.css").read_text(encoding="utf-8")
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
SECURITY_HEADERS = {
    "Content-Security-Policy": (f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; img-src 'self' data:; "
                                "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}


# --- who is asking, and how often --------------------------------------------------------------

def client_of(request: web.BaseRequest) -> str:
    """The client's address: the connection's, or ``X-Real-IP`` when the connection comes from the
    reverse proxy (a loopback or private address: nginx on the same host or network)."""
    remote = request.remote or "unknown"
    forwarded = request.headers.get("X-Real-IP", "").strip()
    try:
        peer = ipaddress.ip_address(remote)
        if forwarded and (peer.is_loopback or peer.is_private):
            return str(ipaddress.ip_address(forwarded))
    except ValueError:
        pass
    return remote


class PageLimiter:
    """At most ``rate`` checks a minute per client (a sliding window of their moments), for at most
    ``clients`` clients at once (the longest idle forgotten first): bounded memory."""

    def __init__(self, rate: int, *, window: float = 60.0, clients: int = 10_000,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.window, self.clients, self.now = rate, window, clients, now
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    async def allow(self, client: str) -> bool:
        return self.allow_now(client)

    async def close(self) -> None:
        self._seen.clear()

    def allow_now(self, client: str) -> bool:
        now = self.now()
        moments = self._seen.pop(client, None) or deque(maxlen=self.rate)
        while moments and moments[0] <= now - self.window:
            moments.popleft()
        allowed = len(moments) < self.rate
        if allowed:
            moments.append(now)
        self._seen[client] = moments  # (the most recent last)
        while len(self._seen) > self.clients:
            self._seen.popitem(last=False)
        return allowed


class RedisPageLimiter:
    """The same limit shared by every instance (KEZEK_REDIS_URL): at most ``rate`` checks per
    client in each minute of wall-clock time, ``<prefix>:page:<client>:<minute>`` counted with INCR
    and dropped by Redis after two minutes. Redis away: the process's own ``PageLimiter`` stands
    in (one warning), and Redis is tried again on the next check."""

    def __init__(self, redis: Any, rate: int, *, prefix: str = "kezek", window: int = 60,
                 now: Callable[[], float] = time.time, owns_client: bool = False) -> None:
        self.redis, self.rate, self.prefix, self.window, self.now = redis, rate, prefix, window, now
        self.fallback = PageLimiter(rate, window=window)
        self._owns_client = owns_client
        self._warned = False

    @classmethod
    def from_url(cls, url: str, rate: int, prefix: str = "kezek") -> RedisPageLimiter:
        from redis.asyncio import Redis

        return cls(Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2), rate, prefix=prefix,
                   owns_client=True)

    async def allow(self, client: str) -> bool:
        key = f"{self.prefix}:page:{client}:{int(self.now() // self.window)}"
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, self.window * 2)
                count, _ = await pipe.execute()
        except Exception as exc:  # noqa: BLE001 - Redis away: this process's count stands in
            if not self._warned:
                self._warned = True
                log.warning("the page's shared limit is unavailable (%s): counting in this process",
                            type(exc).__name__)
            return self.fallback.allow_now(client)
        self._warned = False
        return int(count) <= self.rate

    async def close(self) -> None:
        if self._owns_client:
            await self.redis.aclose()


class Limiter(Protocol):
    async def allow(self, client: str) -> bool: ...

    async def close(self) -> None: ...


# --- the page ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class PageState:
    """One verdict as the page shows it: a tone for the colour, a headline and a sentence."""

    tone: str  # ok | used | bad
    headline: str
    sentence: str


def page_state(lang: str, verdict: rc.Verdict) -> PageState:
    facts = verdict.facts
    if verdict.state == rc.REFUSED or facts is None:
        return PageState("bad", gettext(lang, "Not a genuine referral"),
                         gettext(lang, "This code is not a genuine Kezek referral: it is forged, altered or "
                                       "incomplete. Do not admit the child on it; ask the parent for the "
                                       "referral from the Kezek bot or the e-mail."))
    if verdict.state == rc.VALID:
        return PageState("ok", gettext(lang, "Genuine referral: valid"),
                         gettext(lang, "The child may be admitted to this kindergarten until {due}.",
                                 due=format_deadline(lang, facts.valid_until, zone="local")))
    if verdict.state == rc.ADMITTED:
        return PageState("used", gettext(lang, "Genuine referral: already used"),
                         gettext(lang, "The child was admitted on {date}.",
                                 date=format_date(lang, facts.closed_at or facts.issued_at)))
    if verdict.state == rc.ANNULLED:
        return PageState("bad", gettext(lang, "Genuine referral: annulled"),
                         gettext(lang, "It was annulled on {date}. The child cannot be admitted on it.",
                                 date=format_date(lang, facts.closed_at or facts.valid_until)))
    return PageState("bad", gettext(lang, "Genuine referral: expired"),
                     gettext(lang, "Its deadline passed ({due}). The child cannot be admitted on it.",
                             due=format_deadline(lang, facts.valid_until, zone="local")))


def page_rows(lang: str, facts: rc.ReferralFacts) -> list[tuple[str, str]]:
    """What the page tells of a genuine referral: no more than a kindergarten needs at the door."""
    return [
        (gettext(lang, "Kindergarten"), facts.kindergarten.name(lang)),
        (gettext(lang, "Group"), facts.group_name or "—"),
        (gettext(lang, "Language of the group"), language_name(lang, facts.group_language)),
        (gettext(lang, "Children born in"), str(facts.birth_year)),
        (gettext(lang, "Referral valid until"), format_deadline(lang, facts.valid_until, zone="local")),
        (gettext(lang, "Child's initials"), facts.child_initials or "—"),
    ]


def _language(request: web.Request) -> str:
    chosen = request.query.get("lang", "")
    return chosen if chosen in LANGUAGES else request_language(request)


def _render(request: web.Request, lang: str, status: int = 200, **context: Any) -> web.Response:
    typed = request.query.get("code", "")
    keep = f"code={quote(typed[:MAX_CODE], safe='')}&" if typed else ""  # (a typed code stays on a switch)
    # (the bot's language picker: each language under its own name, Kazakh first)
    switch = [(LANGUAGE_LABELS[code], f"?{keep}lang={code}", code, code == lang) for code in PICKER_ORDER]
    html = _TEMPLATES.get_template("page.html").render(
        lang=lang, style=STYLE, switch=switch, words={k: gettext(lang, v) for k, v in WORDS.items()},
        form_action=PREFIX, **context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8",
                        headers={"Content-Language": lang})


async def _check(request: web.Request, code: str) -> web.Response:
    lang = _language(request)
    if not await request.app[LIMITER].allow(client_of(request)):
        return _render(request, lang, 429, state=None, rows=[], staff_link=None, message=gettext(
            lang, "Too many checks from this device. Please try again in a minute."))
    if len(code) > MAX_CODE:
        verdict = rc.Verdict(rc.REFUSED)
    else:
        verdict = await request.app[KZ].verify_referral(code)
    rows = page_rows(lang, verdict.facts) if verdict.facts is not None else []
    staff_link = None
    if verdict.genuine:  # the staff of its kindergarten see it in full in the bot (handlers/staff.py)
        try:
            name = await request.app[USERNAME].get()
        except Exception:  # noqa: BLE001 - getMe failed: the page goes without the link this time
            name = None
        if name and verdict.facts is not None:  # (the full token, whichever code was typed)
            token = rc.referral_token(await request.app[KZ].signer(), verdict.facts.referral_id)
            staff_link = deep_link(name, token)
    return _render(request, lang, state=page_state(lang, verdict), rows=rows, message=None, staff_link=staff_link)


async def by_path(request: web.Request) -> web.Response:
    return await _check(request, request.match_info["code"])


async def by_form(request: web.Request) -> web.Response:
    code = request.query.get("code", "").strip()
    if code:
        return await _check(request, code)
    return _render(request, _language(request), state=None, rows=[], message=None, staff_link=None)


def route_name(request: web.BaseRequest) -> str:
    """The route's pattern (``/r/{code}``), never the path with its code."""
    route = request.match_info.route.resource if isinstance(request, web.Request) else None
    return route.canonical if route is not None else "unmatched"


@web.middleware
async def headers_middleware(request: web.Request,
                             handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """The security headers on every answer; a page, not aiohttp's text, for an unknown path; a
    crash is logged by its type and answered with a plain page (no traceback reaches the browser)."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        lang = _language(request)
        message = gettext(lang, "There is no such page. Scan the QR code of the referral again.") \
            if exc.status == 404 else gettext(lang, "This request cannot be answered.")
        response = _render(request, lang, exc.status if exc.status >= 400 else 400, state=None, rows=[],
                           message=message, staff_link=None)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - the page answers; the log has the kind of fault
        log.error("page %s failed: %s", route_name(request), type(exc).__name__)
        lang = _language(request)
        response = _render(request, lang, 500, state=None, rows=[], staff_link=None, message=gettext(
            lang, "The check is not available right now. Please try again in a few minutes."))
    response.headers.update(SECURITY_HEADERS)
    return response


class PageAccessLogger(AbstractAccessLogger):
    """One line a request with the route's pattern, never the code in the path or the query, nor
    the client's address."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("page %s %s %s %.1f ms", request.method, route_name(request), response.status,
                         time * 1000)


KZ = web.AppKey("kz", Kezek)
LIMITER = web.AppKey("limiter", Limiter)
USERNAME = web.AppKey("username", BotUsername)


def make_page_app(kz: Kezek, settings: Settings, *, limiter: Limiter | None = None,
                  username: BotUsername | None = None) -> web.Application:
    """The page's application. ``username``: the bot's, for the staff's "Open in Telegram" link
    (KEZEK_BOT_USERNAME; else the bot's getMe once a bot is attached; without either, no link)."""
    app = web.Application(middlewares=[headers_middleware], client_max_size=4096)
    app[KZ] = kz
    if limiter is None:
        limiter = (RedisPageLimiter.from_url(settings.redis_url, settings.page_rate) if settings.redis_url
                   else PageLimiter(settings.page_rate))
    app[LIMITER] = limiter
    app.on_cleanup.append(lambda _app: limiter.close())
    app[USERNAME] = username or BotUsername(settings.bot_username)
    app.router.add_get(PREFIX, by_form)
    app.router.add_get(f"{PREFIX}/", by_form)
    app.router.add_get(f"{PREFIX}/{{code}}", by_path)
    return app


async def serve_page(kz: Kezek, settings: Settings) -> None:
    """Serve the page on ``settings.page_host:page_port`` until cancelled."""
    username = BotUsername(settings.bot_username)
    bot = None
    if username.known is None and settings.bot_token.strip():
        from bot.telegram.runner import make_bot

        bot = make_bot(settings)
        username.attach(bot)
    runner = web.AppRunner(make_page_app(kz, settings, username=username), handle_signals=False,
                           access_log_class=PageAccessLogger, shutdown_timeout=5)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.page_host, settings.page_port).start()
        log.info("referral page on http://%s:%s%s (public: %s%s)", settings.page_host, settings.page_port,
                 PREFIX, settings.public_url, PREFIX)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        if bot is not None:
            await bot.session.close()

