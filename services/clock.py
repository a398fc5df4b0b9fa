"""The one source of time. Production uses SystemClock; tests move a FrozenClock; the sandbox runs a
SandboxClock (time that flows, and that an integrator may set or move forward)."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

UTC = dt.UTC


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


class SandboxClock:
    """The sandbox's test clock: it ticks with real time from a moment that can be set, and can be
    moved forward (never back: what happened stays in the past). ``kezek demo`` and the sandbox
    API share one per process; ``bot.sandbox.clock.move_clock`` moves it and runs what fell due, and
    keeps its ``offset`` in the sandbox's database, where every other process on it reads it."""

    def __init__(self, at: dt.datetime | None = None, *, real: Clock | None = None) -> None:
        self._real = real or SystemClock()
        self._offset = dt.timedelta(0)
        if at is not None:
            self.set(at)

    def now(self) -> dt.datetime:
        return self._real.now() + self._offset

    def set(self, at: dt.datetime) -> dt.datetime:
        if at.tzinfo is None:
            raise ValueError("SandboxClock needs an aware datetime")
        self._offset = at.astimezone(UTC) - self._real.now()
        return self.now()

    def advance(self, delta: dt.timedelta) -> dt.datetime:
        if delta < dt.timedelta(0):
            raise ValueError("the sandbox clock only moves forward")
        self._offset += delta
        return self.now()

    @property
    def offset(self) -> dt.timedelta:
        """How far this clock is ahead of real time (behind, when negative)."""
        return self._offset

    @classmethod
    def at_offset(cls, offset: dt.timedelta, *, real: Clock | None = None) -> SandboxClock:
        """The clock ``offset`` ahead of real time (as kept in a sandbox's database)."""
        clock = cls(real=real)
        clock._offset = offset
        return clock

    def follow(self, offset: dt.timedelta) -> bool:
        """Take ``offset`` (the same sandbox's clock, moved by another process) when it is ahead of
        this one; never back. True when the clock moved."""
        if offset <= self._offset:
            return False
        self._offset = offset
        return True

