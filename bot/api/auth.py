"""The bearer token: compared in constant time; repeated wrong tokens from one address lock it out
for a while (429). Public routes: health and the OpenAPI document only (SECURITY.md)."""

from __future__ import annotations

import hmac
import math
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.api.base import FAILED_LIMIT, FAILED_WINDOW, LOCKOUT, PUBLIC_ROUTES, SETTINGS, ApiError, log

# --- auth ----------------------------------------------------------------------------------------

class AuthGuard:
    """Wrong tokens per client address in a sliding window; an address past the limit is locked out.
    In memory (one process); bounded: the least recently failing addresses are forgotten first."""

    def __init__(self, limit: int = FAILED_LIMIT, window: float = FAILED_WINDOW, lockout: float = LOCKOUT,
                 *, clock: Callable[[], float] = time.monotonic, max_addresses: int = 10_000) -> None:
        self.limit, self.window, self.lockout, self.clock = limit, window, lockout, clock
        self.max_addresses = max_addresses
        self._failures: OrderedDict[str, list[float]] = OrderedDict()
        self._locked: dict[str, float] = {}

    def locked_for(self, address: str) -> float:
        """Seconds this address stays locked out (0: not locked)."""
        until = self._locked.get(address)
        if until is None:
            return 0.0
        left = until - self.clock()
        if left <= 0:
            del self._locked[address]
            return 0.0
        return left

    def failed(self, address: str) -> None:
        now = self.clock()
        times = [t for t in self._failures.pop(address, []) if now - t < self.window]
        times.append(now)
        if len(times) >= self.limit:
            self._locked[address] = now + self.lockout
            times = []
            log.warning("API: %d wrong tokens within %.0f s from one address; locked out for %.0f s",
                        self.limit, self.window, self.lockout)
        if times:
            self._failures[address] = times
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)
        if len(self._locked) > self.max_addresses:
            for key in [k for k, until in self._locked.items() if until <= now]:
                del self._locked[key]


GUARD = web.AppKey("guard", AuthGuard)

_BEARER = re.compile(r"Bearer[ \t]+([^\s]+)[ \t]*", re.IGNORECASE)
_CHALLENGE = 'Bearer realm="kezek"'


@web.middleware
async def auth_middleware(request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    if request.match_info.http_exception is not None or request.match_info.route.name in PUBLIC_ROUTES:
        return await handler(request)  # 404 / 405 / public
    token = request.app[SETTINGS].api_token
    if not token:
        raise ApiError(403, "api_not_configured")
    guard = request.app[GUARD]
    address = request.remote or "unknown"
    left = guard.locked_for(address)
    if left:
        raise ApiError(429, "too_many_attempts", headers={"Retry-After": str(math.ceil(left))})
    match = _BEARER.fullmatch(request.headers.get("Authorization", ""))
    if match is None:
        raise ApiError(401, "unauthorized", headers={"WWW-Authenticate": _CHALLENGE})
    if not hmac.compare_digest(match.group(1).encode("utf-8", "surrogateescape"), token.encode()):
        guard.failed(address)
        raise ApiError(401, "unauthorized",
                       headers={"WWW-Authenticate": _CHALLENGE + ', error="invalid_token"'})
    return await handler(request)
