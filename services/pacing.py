"""Pacing the sends to a channel's limits: at most ``rate`` sends in any window overall and
``per_key_rate`` to one recipient, and a pause for everyone when the channel says "too many
requests" (Telegram's 429 with ``retry_after``).

A sliding window rather than a bucket: Telegram counts messages per second, and a bucket that
lets a burst through right after a quiet second would exceed that. A small margin keeps the
arrival times at the server (which jitter by a few milliseconds) inside the limit too.

This paces real sends, so it keeps the event loop's monotonic time, not the domain clock."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable


class _Window:
    """Reserves send times so that at most ``capacity`` fall in any ``period`` seconds. Each slot
    is a one-item list: a send that woke up late writes its real time back, so that the sends
    reserved after it keep their distance from when it really went out."""

    __slots__ = ("capacity", "period", "slots")

    def __init__(self, rate: float, margin: float) -> None:
        self.capacity = max(1, math.floor(rate))
        self.period = self.capacity / rate * (1 + margin)
        self.slots: deque[list[float]] = deque()

    def reserve(self, now: float, not_before: float = 0.0) -> list[float]:
        at = max(now, not_before, self.slots[-1][0] if self.slots else 0.0)
        if len(self.slots) >= self.capacity:
            at = max(at, self.slots[-self.capacity][0] + self.period)
        slot = [at]
        self.slots.append(slot)
        while len(self.slots) > self.capacity:
            self.slots.popleft()
        return slot

    def idle_since(self, now: float) -> bool:
        return not self.slots or self.slots[-1][0] + self.period <= now


class Pacer:
    """``async with pacer.slot(key): send(...)`` around each send; ``pacer.hold(seconds)`` on a
    flood answer. A rate of 0 lifts that limit (benchmarks against a stand-in).

    A send's place in the window is moved to when it *finished*: the server saw it somewhere
    between its start and its answer, so the next sends keep their distance from the latest time
    it could have arrived. This is exact as long as fewer sends are in flight than the rate
    (the sender's concurrency of 8 against Telegram's 30)."""

    MAX_KEYS = 10_000  # recipients remembered before the idle ones are forgotten

    def __init__(self, rate: float = 30.0, per_key_rate: float = 1.0, *, margin: float = 0.02,
                 time: Callable[[], float] | None = None,
                 sleep: Callable[[float], Awaitable[None]] | None = None) -> None:
        self._time = time or (lambda: asyncio.get_running_loop().time())
        self._sleep = sleep or asyncio.sleep
        self._margin = margin
        self._overall = _Window(rate, margin) if rate > 0 else None
        self._per_key_rate = per_key_rate
        self._keys: dict[str, _Window] = {}
        self._resume_at = 0.0
        self.holds = 0

    @property
    def limited(self) -> bool:
        return self._overall is not None or self._per_key_rate > 0

    def hold(self, seconds: float) -> None:
        """Nobody sends for ``seconds`` from now (Telegram's ``retry_after``)."""
        self._resume_at = max(self._resume_at, self._time() + max(seconds, 0.0))
        self.holds += 1

    @contextlib.asynccontextmanager
    async def slot(self, key: str) -> AsyncIterator[None]:
        slots = await self.wait(key)
        try:
            yield
        finally:
            now = self._time()
            for slot in slots:
                slot[0] = max(slot[0], now)

    async def wait(self, key: str) -> list[list[float]]:
        """Wait for the next send to ``key``; the slots it took (see ``slot``)."""
        taken = []
        if self._per_key_rate > 0:
            window = self._keys.get(key)
            if window is None:
                if len(self._keys) >= self.MAX_KEYS:
                    self._forget_idle()
                window = self._keys[key] = _Window(self._per_key_rate, self._margin)
            taken.append(window.reserve(self._time()))
            await self._sleep_until(taken[-1])
        while True:
            now = self._time()
            slot = (self._overall.reserve(now, self._resume_at) if self._overall is not None
                    else [max(now, self._resume_at)])
            await self._sleep_until(slot)
            if self._time() >= self._resume_at:  # a hold that came while we slept: wait it out
                return taken + [slot]

    def _forget_idle(self) -> None:
        now = self._time()
        for key in [k for k, w in self._keys.items() if w.idle_since(now)]:
            del self._keys[key]

    async def _sleep_until(self, slot: list[float]) -> None:
        delay = slot[0] - self._time()
        if delay > 0:
            await self._sleep(delay)
        slot[0] = max(slot[0], self._time())  # when it really goes
