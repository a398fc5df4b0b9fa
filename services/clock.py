"""The one source of time. Production uses SystemClock; tests and the sandbox move a FrozenClock."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

UTC = dt.timezone.utc


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """An aware datetime in UTC."""
        ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC)


class FrozenClock:
    """A clock that stands still until told to move (tests, sandbox test clock)."""

    def __init__(self, at: dt.datetime) -> None:
        self.set(at)

    def now(self) -> dt.datetime:
        return self._at

    def set(self, at: dt.datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime")
        self._at = at.astimezone(UTC)

    def advance(self, delta: dt.timedelta | None = None, **kw: float) -> dt.datetime:
        self._at = self._at + (delta if delta is not None else dt.timedelta(**kw))
        return self._at
