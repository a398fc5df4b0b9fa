"""A realistic sandbox city for trying every flow: districts, state and private kindergartens,
applications with real-looking names and valid IINs, some privileged, some twins."""

from __future__ import annotations

import datetime as dt
import random
import secrets
from pathlib import Path
from typing import Any

from services.calendar import ALMATY
from services.deep_link import REGISTRATION_KIND
from services.kezek import Kezek
from services.validation import make_iin
from storage.private_files import private_dir, write_private

DISTRICTS = [
    ("ALM-ALT", "Алатауский район", "Алатау ауданы"),
    ("ALM-ALM", "Алмалинский район", "Алмалы ауданы"),
    ("ALM-AUE", "Ауэзовский район", "Әуезов ауданы"),
    ("ALM-BOS", "Бостандыкский район", "Бостандық ауданы"),
    ("ALM-MED", "Медеуский район", "Медеу ауданы"),
    ("ALM-NAU", "Наурызбайский район", "Наурызбай ауданы"),
]
STREETS = ["ул. Абая", "ул. Жандосова", "пр. Аль-Фараби", "ул. Тимирязева", "мкр. Самал-2",
           "ул. Розыбакиева", "мкр. Аксай-4", "ул. Толе би"]
FIRST = ["Айсулу", "Алихан", "Амина", "Арман", "Аружан", "Асылым", "Даниал", "Дамир", "Айлин", "Ерасыл",
         "Жасмин", "Зере", "Ислам", "Інжу", "Каусар", "Мирас", "Нурислам", "Томирис", "Әлинур", "Медина",
         "Софья", "Артём", "Мария", "Тимур", "Алиса", "Михаил", "Ева", "Даниил"]
LAST = ["Абенов", "Жумабаев", "Касымов", "Нурланов", "Сейткали", "Токаев", "Омаров", "Ахметов", "Иванов",
        "Ким", "Пак", "Сергеев", "Бекжанов", "Есенов", "Мухамеджанов", "Садыков"]


def write_sandbox_token(folder: Path) -> tuple[str, Path]:
    """A fresh sandbox API token, written to ``<folder>/sandbox-api-token`` (mode 0600 from the
    first byte, the folder 0700 when it is made): the token and the file."""
    token = secrets.token_urlsafe(32)
    target = private_dir(folder) / "sandbox-api-token"
    write_private(target, (token + "\n").encode())
    return token, target


def _surname(last: str, girl: bool) -> str:
    if not girl:
        return last
    if last.endswith("ов") or last.endswith("ев") or last.endswith("ин"):
        return last + "а"
    return last


async def seed(kz: Kezek, applications: int = 3000, seed: int = 7, phone: str | None = None) -> dict[str, Any]:
    rnd = random.Random(seed)
    now = kz.clock.now()
    await kz.upsert_districts([{"code": c, "name_ru": ru, "name_kk": kk} for c, ru, kk in DISTRICTS])
    kgs: list[dict[str, Any]] = []
    for code, _ru, _kk in DISTRICTS:
        for i in range(1, 5):
            kgs.append({"code": f"{code}-{i:02d}", "district": code, "name_ru": f"Ясли-сад №{i * 7 + 100}",
                        "name_kk": f"№{i * 7 + 100} бөбекжай-бақша",
                        "address": f"{rnd.choice(STREETS)}, {rnd.randint(1, 200)}",
                        "languages": rnd.choice(["ru,kk", "kk", "ru,kk"])})
        kgs.append({"code": f"{code}-P1", "district": code, "name_ru": "Частный детский сад «Балапан»",
                    "name_kk": "«Балапан» жеке балабақшасы", "address": f"{rnd.choice(STREETS)}, {rnd.randint(1, 200)}",
                    "kind": "private_state_order", "languages": "ru,kk"})
    await kz.upsert_kindergartens(kgs)
    rows: list[dict[str, Any]] = []
    n = 0
    while len(rows) < applications:
        n += 1
        district = rnd.choice(DISTRICTS)[0]
        birth = (now - dt.timedelta(days=rnd.randint(200, 6 * 365))).date()
        girl = rnd.random() < 0.5
        local_kgs = [k["code"] for k in kgs if k["district"] == district and not k["code"].endswith("P1")]
        submitted = dt.datetime.combine(birth + dt.timedelta(days=rnd.randint(10, 120)), dt.time(9), tzinfo=ALMATY) \
            + dt.timedelta(minutes=rnd.randint(0, 600))
        if submitted > now:
            submitted = now - dt.timedelta(days=1)
        twins = rnd.random() < 0.01
        base = {
            "child_name": f"{_surname(rnd.choice(LAST), girl)} {rnd.choice(FIRST)}",
            "birth_date": birth.isoformat(), "district": district,
            "language": rnd.choice(["kk", "kk", "ru"]),
            "preferred_kindergartens": rnd.sample(local_kgs, rnd.randint(1, 3)) if rnd.random() < 0.4 else [],
            "privilege": rnd.choices(["none", "first", "out_of_turn"], [92, 6, 2])[0],
            "submitted_at": submitted.isoformat(), "phone": f"+770{rnd.randint(10_000_000, 99_999_999)}",
            "email": f"parent{n}@example.kz",
        }
        rows.append(base | {"number": f"DEMO-{n:06d}", "child_iin": make_iin(birth, n, girl),
                            "twin_group": f"TW-{n}" if twins else None})
        if twins:
            n += 1
            rows.append(base | {"number": f"DEMO-{n:06d}", "child_iin": make_iin(birth, n, not girl),
                                "child_name": f"{_surname(rnd.choice(LAST), not girl)} {rnd.choice(FIRST)}",
                                "twin_group": f"TW-{n - 1}"})
    if phone:  # the tester's own phone on the first application: /link with the contact button
        rows[0]["phone"] = phone
    for i in range(0, len(rows), 5000):
        await kz.import_applications(rows[i:i + 5000])
    await kz.withhold_pending(REGISTRATION_KIND)  # made-up families: no registration e-mails
    return {"districts": len(DISTRICTS), "kindergartens": len(kgs), "applications": len(rows),
            "example": rows[0]["number"], "example_iin": rows[0]["child_iin"]}


async def pick_example(kz: Kezek, phone: str | None = None) -> dict[str, Any]:
    """The application a newcomer should link: the head of a queue (so that one published seat
    makes it "your turn"), without a privilege or a twin; with ``phone`` put on it (to link by
    the contact button). Returns its number and IIN and the seat to publish for it."""
    try:
        found = await kz.sandbox_example(phone)
    except LookupError:
        raise RuntimeError("the sandbox city has no waiting application") from None
    return {"example": found.number, "example_iin": found.child_iin, "kindergarten": found.kindergarten,
            "birth_year": found.birth_year, "language": found.language}
