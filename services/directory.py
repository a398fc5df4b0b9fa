"""Reference data fed by the registry: rule profiles, districts, kindergartens, calendar days.

Every upsert validates all rows first, in turns of the event loop, and writes nothing when one is
bad (BulkRejected lists the first bad rows' index and error, and counts them all)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from services import parsing as p
from services.context import Ctx
from services.errors import DuplicateInBatch, InvalidField, KezekError, RowErrors, UnknownDistrict, UnknownProfile
from storage.models import CalendarDay, District, Kindergarten, RuleProfile
from storage.vocab import DEFAULT_WINDOW_CLOSE_MINUTE, DEFAULT_WINDOW_OPEN_MINUTE, KindergartenKind

PROFILE_FIELDS: dict[str, tuple[int, int]] = {
    "offer_windows": (1, 10),
    "showup_working_days": (1, 60),
    "stoplist_working_days": (0, 120),
    "removal_on_annulment": (1, 10),
    "docs_working_days": (1, 60),
    "docs_calendar_days": (1, 120),
    "private_min_age_years": (0, 7),
    "interleave_general_per_first": (0, 10),
}


@dataclass(frozen=True)
class KindergartenInfo:
    """What the front ends show of a kindergarten: its code and name in either language."""

    code: str
    name_ru: str
    name_kk: str
    address: str = ""

    @classmethod
    def of(cls, kg: Kindergarten) -> KindergartenInfo:
        return cls(kg.code, kg.name_ru, kg.name_kk, kg.address or "")

    def name(self, lang: str) -> str:
        return (self.name_kk if lang == "kk" else self.name_ru) or self.name_ru or self.name_kk


def _minute(row: p.Row, field: str, default: int) -> int:
    value = row.get(field)
    if value is None or value == "":
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        minute = value
    else:
        try:
            hh, mm = str(value).strip().split(":")
            minute = int(hh) * 60 + int(mm)
        except ValueError:
            raise InvalidField(field=field, reason="time") from None
    if not 0 <= minute <= 24 * 60:
        raise InvalidField(field=field, reason="time")
    return minute


async def _collect(rows: Sequence[p.Row], parse: Any) -> list[Any]:
    """Every row parsed, in turns of the event loop; ``BulkRejected`` with the first bad rows and
    their count when any is bad."""
    parsed, errors = [], RowErrors()
    async for index, row in p.in_turns(rows):
        try:
            if not isinstance(row, dict):
                raise InvalidField(field="*", reason="object")
            parsed.append(parse(row))
        except KezekError as exc:
            errors.add(index, exc)
    errors.raise_any()
    return parsed


def _no_duplicates(items: list[dict[str, Any]], key: str) -> None:
    seen: set[str] = set()
    errors = RowErrors()
    for index, item in enumerate(items):
        if item[key] in seen:
            errors.add(index, DuplicateInBatch(field=key, value=item[key]))
        seen.add(item[key])
    errors.raise_any()


def _rejected(pairs: Any) -> None:
    """``BulkRejected`` for the (index, error) pairs, the first ones kept, when there are any."""
    errors = RowErrors()
    for index, error in pairs:
        errors.add(index, error)
    errors.raise_any()


async def upsert_profiles(ctx: Ctx, rows: Sequence[p.Row]) -> int:
    def parse(row: p.Row) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": p.code(row, "code"),
            "name": p.text(row, "name", max_len=200, required=False),
            "window_open_minute": _minute(row, "window_open", DEFAULT_WINDOW_OPEN_MINUTE),
            "window_close_minute": _minute(row, "window_close", DEFAULT_WINDOW_CLOSE_MINUTE),
            "twins_together": p.boolean(row, "twins_together", default=True),
        }
        defaults = RuleProfile.__table__.c
        for name, (lo, hi) in PROFILE_FIELDS.items():
            out[name] = p.integer(row, name, lo=lo, hi=hi, default=defaults[name].default.arg)
        if out["window_open_minute"] >= out["window_close_minute"]:
            raise InvalidField(field="window_close", reason="before_open")
        return out

    items = await _collect(rows, parse)
    _no_duplicates(items, "code")
    for item in items:
        existing = (await ctx.session.execute(
            select(RuleProfile).where(RuleProfile.code == item["code"]))).scalar_one_or_none()
        if existing is None:
            ctx.session.add(RuleProfile(**item))
        else:
            for k, v in item.items():
                setattr(existing, k, v)
        ctx.audit("profile.upsert", "rule_profile", None, **item)
    return len(items)


async def upsert_districts(ctx: Ctx, rows: Sequence[p.Row]) -> int:
    items = await _collect(rows, lambda row: {
        "code": p.code(row, "code"),
        "name_ru": p.text(row, "name_ru", max_len=200),
        "name_kk": p.text(row, "name_kk", max_len=200),
        "profile": p.code(row, "profile", required=False),
    })
    _no_duplicates(items, "code")
    profiles = {r.code: r.id for r in (await ctx.session.execute(select(RuleProfile))).scalars()}
    _rejected((i, UnknownProfile(field="profile", value=it["profile"]))
              for i, it in enumerate(items) if it["profile"] and it["profile"] not in profiles)
    existing = {d.code: d for d in (await ctx.session.execute(select(District))).scalars()}
    for item in items:
        profile_code = item.pop("profile")
        profile_id = profiles[profile_code] if profile_code else None
        district = existing.get(item["code"])
        if district is None:
            ctx.session.add(District(profile_id=profile_id, **item))
        else:
            district.name_ru, district.name_kk = item["name_ru"], item["name_kk"]
            district.profile_id = profile_id
        ctx.audit("district.upsert", "district", None, code=item["code"])
    return len(items)


async def upsert_kindergartens(ctx: Ctx, rows: Sequence[p.Row]) -> int:
    def parse(row: p.Row) -> dict[str, Any]:
        langs = p.code_list(row, "languages") or ["ru", "kk"]
        if any(lang not in ("ru", "kk") for lang in langs):
            raise InvalidField(field="languages", reason="choice", options="ru, kk")
        return {
            "code": p.code(row, "code"),
            "district": p.code(row, "district"),
            "name_ru": p.text(row, "name_ru", max_len=300),
            "name_kk": p.text(row, "name_kk", max_len=300),
            "address": p.text(row, "address", max_len=300, required=False),
            "kind": p.choice(row, "kind", KindergartenKind.ALL, default=KindergartenKind.STATE),
            "languages": ",".join(langs),
        }

    items = await _collect(rows, parse)
    _no_duplicates(items, "code")
    districts = {d.code: d.id for d in (await ctx.session.execute(select(District))).scalars()}
    _rejected((i, UnknownDistrict(field="district", value=it["district"]))
              for i, it in enumerate(items) if it["district"] not in districts)
    existing = {k.code: k for k in (await ctx.session.execute(select(Kindergarten))).scalars()}
    for item in items:
        item["district_id"] = districts[item.pop("district")]
        kg = existing.get(item["code"])
        if kg is None:
            ctx.session.add(Kindergarten(**item))
        else:
            for k, v in item.items():
                setattr(kg, k, v)
        ctx.audit("kindergarten.upsert", "kindergarten", None, code=item["code"])
    return len(items)


async def set_calendar_day(ctx: Ctx, day: dt.date, working: bool, name: str = "") -> None:
    """An operator's decree: a moved day off (working=False) or a working weekend (True)."""
    existing = await ctx.session.get(CalendarDay, day)
    if existing is None:
        ctx.session.add(CalendarDay(day=day, working=working, name=name))
    else:
        existing.working, existing.name = working, name
    ctx.calendar.overrides[day] = (working, name)
    ctx.audit("calendar.set", "calendar_day", None, day=day.isoformat(), working=working, name=name)


async def remove_calendar_day(ctx: Ctx, day: dt.date) -> bool:
    existing = await ctx.session.get(CalendarDay, day)
    if existing is None:
        return False
    await ctx.session.delete(existing)
    ctx.calendar.overrides.pop(day, None)
    ctx.audit("calendar.remove", "calendar_day", None, day=day.isoformat())
    return True
