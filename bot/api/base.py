"""The API's shared ground: what its application carries (aiohttp ``AppKey``s), its fixed numbers,
and ``ApiError``, an error of the HTTP layer."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from bot.config import Settings
from services.clock import SandboxClock
from services.kezek import Kezek

log = logging.getLogger("kezek.api")

API_PREFIX = "/api/v1"
MIN_TOKEN_LENGTH = 32
# Brute force: this many wrong tokens from one address within the window lock it out for a while.
FAILED_LIMIT = 20
FAILED_WINDOW = 60.0
LOCKOUT = 300.0

PUBLIC_ROUTES = frozenset({"health", "openapi"})  # SECURITY.md: nothing else without the token

KZ = web.AppKey("kezek", Kezek)
SETTINGS = web.AppKey("settings", Settings)
SANDBOX_CLOCK = web.AppKey("sandbox_clock", SandboxClock)
SANDBOX_LOCK = web.AppKey("sandbox_lock", asyncio.Lock)


class ApiError(Exception):
    """An error of the HTTP layer (not of the domain): status, code, message params, headers."""

    def __init__(self, status: int, code: str, *, headers: dict[str, str] | None = None, **params: Any) -> None:
        super().__init__(code)
        self.status, self.code, self.headers, self.params = status, code, headers or {}, params
