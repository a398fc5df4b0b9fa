"""The claim flow of the load benchmark (``kezek bench load``, phase ``claim``) and of the fault
scenario ``tests/e2e/test_fault_instance_kill.py``.

* **Seats and offers** are made through the service layer while the database is prepared
  (``publish_offers``): seats of the bench kindergarten for the first ``count`` parents in queue
  order (one seat each), on the bench's frozen clock (Monday 7 September 2026, 10:00 Almaty: a
  working day, inside the 09:00-20:00 window; the offers live until 20:00). The ``kezek run``
  instances get the same moment with ``kezek --now`` (a ``FrozenClock``; not the sandbox's
  ticking clock), so the window stays open for them whatever the real time is.
* **The alerts** ("your turn has come", with the "Seats" button) are sent by the real outbox
  sender (``bot.delivery.sender.drain_once``) from the benchmark's process to the Bot API stand-in, which
  keeps each chat's alert (``TimingStandIn.alerts``). The instances run without senders.
* **A claiming parent** then plays three button presses as webhook updates, each built from the
  reply markup the bot actually sent (never forged): ``seats`` (the alert's button → the list of
  seats), ``preview`` (the seat's button in that list → the preview, edited in place) and
  ``confirm`` (the preview's "Confirm" → "Referral issued ...", edited in place).
* **The check** (``check_claims``): from the database, every claiming parent's application has
  exactly one referral and is referred, no seat has two referrals, and as many seats are taken as
  referrals exist.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.bench.load import TimingStandIn
    from services.kezek import Kezek

CLAIM_STEPS = ("seats", "preview", "confirm")
KINDERGARTEN = "BENCH-KG"
BIRTH_YEAR = 2023
PUBLICATION = 500  # seats per publication (the registry's limit)

# One step of a parent's script: builds the next update from what the bot sent (None: the button
# to press is not there).
Step = Callable[["TimingStandIn", int, str], "dict[str, Any] | None"]


def claimer_count(parents: int, share: float) -> int:
    """How many of ``parents`` claim a seat (the first ones in queue order)."""
    if share <= 0 or parents <= 0:
        return 0
    return max(1, min(parents, int(parents * share)))


async def publish_offers(kz: Kezek, count: int) -> int:
    """Publish ``count`` seats of the bench kindergarten (group 2023, Russian): each is offered to
    the next waiting parent in queue order. Returns the number of offers made."""
    made = 0
    left = count
    while left > 0:
        n = min(PUBLICATION, left)
        result = await kz.publish_seats({"kindergarten": KINDERGARTEN, "birth_year": BIRTH_YEAR,
                                         "language": "ru", "count": n})
        made += len(result.offers)
        left -= n
    return made


async def send_alerts(kz: Kezek, api: TimingStandIn, *, concurrency: int = 32) -> int:
    """Route the outbox and send every Telegram notice due (the "your turn" alerts) to the stand-in
    with the real sender, unpaced; the stand-in keeps them in ``alerts``. Returns how many were
    sent (e-mail copies stay in the outbox: no mailer here)."""
    from aiogram import Bot

    from bot.bench.standin import TOKEN
    from bot.delivery.sender import SendPolicy, drain_once
    from bot.telegram.runner import make_session
    from services.pacing import Pacer

    bot = Bot(TOKEN, session=make_session(api.base_url))
    policy = SendPolicy(batch=max(100, concurrency * 8), concurrency=concurrency, pacer=Pacer(0.0, 0.0))
    before = len(api.alerts)
    api.collecting = True
    try:
        while await kz.route_notices(limit=5000):
            pass
        while await drain_once(kz, bot, None, policy):
            pass
    finally:
        api.collecting = False
        await bot.session.close()
    return len(api.alerts) - before


# --- the parent's presses ---------------------------------------------------------------------------

def button_data(message: dict[str, Any] | None, prefix: str, suffix: str = "") -> str | None:
    """The callback data of the first inline button of ``message`` starting with ``prefix`` (and
    ending with ``suffix``)."""
    if not message:
        return None
    for row in (message.get("reply_markup") or {}).get("inline_keyboard") or []:
        for button in row:
            data = button.get("callback_data") or ""
            if data.startswith(prefix) and data.endswith(suffix):
                return str(data)
    return None


def _press(api: TimingStandIn, chat: int, lang: str, message: dict[str, Any] | None,
           prefix: str, suffix: str = "") -> dict[str, Any] | None:
    data = button_data(message, prefix, suffix)
    if data is None or message is None:
        return None
    update = api.press(chat, data, message, language_code=lang, deliver=False)
    api.callback_chats[update["callback_query"]["id"]] = chat
    return update


def step_seats(api: TimingStandIn, chat: int, lang: str) -> dict[str, Any] | None:
    """The "Seats" button of the chat's "your turn has come" alert."""
    return _press(api, chat, lang, api.alerts.get(chat), "seats:")


def step_preview(api: TimingStandIn, chat: int, lang: str) -> dict[str, Any] | None:
    """The first seat's button in the list the bot just sent."""
    return _press(api, chat, lang, api.replies.get(chat), "claim:", ":p")


def step_confirm(api: TimingStandIn, chat: int, lang: str) -> dict[str, Any] | None:
    """"Confirm" under the preview the bot just showed."""
    return _press(api, chat, lang, api.replies.get(chat), "claim:", ":c")


STEP_FUNCTIONS: dict[str, Step] = {"seats": step_seats, "preview": step_preview, "confirm": step_confirm}


def claim_script() -> list[tuple[str, Step]]:
    return [(kind, STEP_FUNCTIONS[kind]) for kind in CLAIM_STEPS]


@functools.lru_cache(maxsize=4)
def issued_pattern(lang: str) -> re.Pattern[str]:
    """The first line of the confirm's reply in ``lang`` ("Referral issued for application {number}:
    {kindergarten}."), any number and kindergarten."""
    from locales import gettext

    n, k = "\x00", "\x01"
    line = gettext(lang, "Referral issued for application {number}: {kindergarten}.", number=n, kindergarten=k)
    return re.compile(re.escape(line).replace(n, r"\S+").replace(k, ".+"))


def is_issued(lang: str, text: str | None) -> bool:
    return bool(text) and issued_pattern(lang).match(str(text).split("\n", 1)[0]) is not None


# --- the database check -----------------------------------------------------------------------------

async def check_claims(db_url: str, chats: Sequence[int]) -> dict[str, Any]:
    """From the database: the referrals of the applications linked to ``chats`` (the claiming
    parents) and the seats of every referral. ``ok``: each of them has exactly one issued referral
    and is referred, no seat has two referrals, and the taken seats match the referrals."""
    from sqlalchemy import func, select

    from storage.db import Database
    from storage.models import Application, ChatLink, Referral, Seat
    from storage.vocab import AppStatus, SeatStatus

    db = Database(db_url)
    try:
        async with db.engine.connect() as conn:
            per_app: dict[int, int] = {}
            referred = 0
            for start in range(0, len(chats), 5000):
                part = list(chats[start:start + 5000])
                apps = (await conn.execute(select(ChatLink.application_id, Application.status)
                                           .join(Application, Application.id == ChatLink.application_id)
                                           .where(ChatLink.chat_id.in_(part)))).all()
                for app_id, status in apps:
                    per_app[app_id] = 0
                    referred += status == AppStatus.REFERRED
                counts = (await conn.execute(select(Referral.application_id, func.count())
                                             .where(Referral.application_id.in_([a for a, _ in apps]))
                                             .group_by(Referral.application_id))).all()
                for app_id, n in counts:
                    per_app[app_id] = int(n)
            seats_twice = (await conn.execute(select(func.count()).select_from(
                select(Referral.seat_id).group_by(Referral.seat_id).having(func.count() > 1).subquery()))).scalar_one()
            referrals = (await conn.execute(select(func.count()).select_from(Referral))).scalar_one()
            taken = (await conn.execute(select(func.count()).select_from(Seat)
                                        .where(Seat.status == SeatStatus.TAKEN))).scalar_one()
    finally:
        await db.dispose()
    once = sum(1 for n in per_app.values() if n == 1)
    out = {"claimers": len(chats), "linked_applications": len(per_app), "with_one_referral": once,
           "without_referral": sum(1 for n in per_app.values() if n == 0),
           "with_several_referrals": sum(1 for n in per_app.values() if n > 1), "referred": referred,
           "referrals": int(referrals), "seats_taken": int(taken), "seats_with_two_referrals": int(seats_twice)}
    out["ok"] = bool(len(per_app) == len(chats) and once == len(chats) and referred == len(chats)
                     and seats_twice == 0 and taken == referrals)
    return out


def bench_now() -> dt.datetime:
    from bot.bench.queue import BENCH_NOW

    return BENCH_NOW
