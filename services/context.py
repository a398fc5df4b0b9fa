"""The unit of work every service function runs in: one session, one instant, one actor.

Audit entries and outbox notices are buffered here and written by ``flush()`` just before the
commit, in the same transaction as the change (the transactional outbox). Duplicate dedupe keys
are ignored by the database, so an idempotent sweep that runs twice writes a notice once."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Insert, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.calendar import WorkingCalendar
from services.notices import NoticeKind, Payload, outbox_row
from storage.models import AuditEntry, CalendarDay, District, OutboxMessage, RuleProfile

DEFAULT_PROFILE_CODE = "default"
# The fields of a rule profile that are rules (RULES.md, "Rule profile"): every column of the model
# but its identity. ``Ctx.profile`` loads them all; a hot read that needs the profile selects these
# (``services.reads.profile``), so a column added to ``RuleProfile`` reaches both with no edit.
RULE_FIELDS: tuple[str, ...] = tuple(c.key for c in RuleProfile.__table__.columns
                                     if c.key not in ("id", "code", "name"))


def profile_id_of(district_id: Any) -> Any:
    """SQL: the id of the rule profile a district follows, its own else the default one (RULES.md,
    "Rule profile"); NULL when neither exists. ``district_id``: a value, or a column of the outer
    query (of an alias, when that query reads ``districts`` itself). ``Ctx.profile`` and the hot
    reads (``services.reads``) both take the rule from here."""
    # (each subquery reads its own table even where the outer query holds that table too)
    own = select(District.profile_id).where(District.id == district_id).correlate_except(District)
    default = select(RuleProfile.id).where(RuleProfile.code == DEFAULT_PROFILE_CODE).correlate(None)
    return func.coalesce(own.scalar_subquery(), default.scalar_subquery())


@dataclass
class Ctx:
    session: AsyncSession
    now: dt.datetime
    _calendar: WorkingCalendar | None
    actor: str = "system"
    _profiles: dict[int | None, RuleProfile] = field(default_factory=dict)
    _audit: list[dict[str, Any]] = field(default_factory=list)
    _outbox: list[dict[str, Any]] = field(default_factory=list)

    @property
    def dialect(self) -> str:
        return self.session.bind.dialect.name if self.session.bind is not None else "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @property
    def calendar(self) -> WorkingCalendar:
        if self._calendar is None:
            raise RuntimeError("this unit of work was opened without the calendar (with_calendar=False)")
        return self._calendar

    @classmethod
    async def open(cls, session: AsyncSession, now: dt.datetime, actor: str = "system", *,
                   with_calendar: bool = True) -> Ctx:
        calendar = None
        if with_calendar:
            rows = (await session.execute(select(CalendarDay))).scalars().all()
            calendar = WorkingCalendar({r.day: (r.working, r.name) for r in rows})
        return cls(session=session, now=now, _calendar=calendar, actor=actor)

    async def profile(self, district_id: int) -> RuleProfile:
        if district_id not in self._profiles:
            # The district's own profile if it has one, else the default, in one query.
            prof = (await self.session.execute(
                select(RuleProfile).where(RuleProfile.id == profile_id_of(district_id))
            )).scalar_one_or_none()
            if prof is None:  # a database without the seeded default row
                prof = RuleProfile(code=DEFAULT_PROFILE_CODE, name="Default")
                self.session.add(prof)
                await self.session.flush()
            self._profiles[district_id] = prof
        return self._profiles[district_id]

    def audit(self, action: str, entity: str, entity_id: int | None = None, **data: Any) -> None:
        self._audit.append({
            "at": self.now, "actor": self.actor, "action": action, "entity": entity,
            "entity_id": entity_id, "data": data,
        })

    def notify(self, kind: NoticeKind, application_id: int | None, dedupe_key: str,
               payload: Payload | None = None) -> None:
        """Write a notice with this change (``services.notices``: ``TypeError`` for a kind that
        is not a ``NoticeKind`` or a payload that is not the kind's)."""
        self._outbox.append(outbox_row(kind, application_id, dedupe_key, payload, self.now))

    async def insert_ignore(self, model: type, rows: list[dict[str, Any]], key: str | list[str]) -> None:
        """Insert the rows whose unique ``key`` (a column or the columns of a unique constraint)
        is not taken yet; the others are left as they are."""
        if not rows:
            return
        table = model.__table__  # type: ignore[attr-defined]
        keys = [key] if isinstance(key, str) else key
        stmt: Insert
        if self.dialect == "postgresql":
            stmt = pg_insert(table).on_conflict_do_nothing(index_elements=keys)
        elif self.dialect == "sqlite":
            stmt = sqlite_insert(table).on_conflict_do_nothing(index_elements=keys)
        else:  # pragma: no cover - other dialects are not supported
            stmt = insert(table)
        for i in range(0, len(rows), 2000):
            await self.session.execute(stmt, rows[i:i + 2000])

    async def flush(self) -> None:
        await self.session.flush()
        if self._audit:
            for i in range(0, len(self._audit), 2000):
                await self.session.execute(insert(AuditEntry), self._audit[i:i + 2000])
            self._audit.clear()
        if self._outbox:
            await self.insert_ignore(OutboxMessage, self._outbox, "dedupe_key")
            self._outbox.clear()
