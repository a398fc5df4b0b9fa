"""Every word a parent sees comes from the catalog of the chat's language.

The bot is walked through the real Dispatcher (on the mocked Bot of tests/support/telegram.py) in
Russian and in Kazakh: the picker, the menu, /help, /link, /status with its cards and history,
/seats, the claim, /settings with its toggles and the e-mail dialogue, /unlink, stale buttons and
other messages; then every notice (bot.delivery.notices.render), its e-mail copy (render_email, the Kazakh
and the Russian section each on its own), the referral PDF, the status texts in every state and
every domain error's alert. Each text and button label is checked:

* every message id looked up for a language is translated in that language's own catalog (no
  English source text and no Kazakh→Russian fallback reaches the parent; a msgid chosen through a
  variable that never reached the catalogs is caught here);
* no Latin word outside a short allow-list (Kezek, PDF, QR, UTC, Telegram ...) and the data fed in;
* a Russian text has none of the letters Kazakh adds to the Cyrillic alphabet.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiogram.methods import (
    AnswerCallbackQuery,
    EditMessageText,
    SendDocument,
    SendMessage,
    SendPhoto,
    TelegramMethod,
)
from aiogram.types import (
    Contact,
    InlineKeyboardMarkup,
    PhotoSize,
    ReplyKeyboardMarkup,
    Sticker,
)
from babel.messages.pofile import read_po

import locales
from handlers.callbacks import StaffCallback
from locales import gettext, normalize_language, po_path, translator
from locales.errors import ERROR_SENTENCES, error_text
from locales.formats import ZONES
from locales.names import cause_text, privilege_text, status_text
from services import errors as E
from services import status as st
from services.clock import FrozenClock
from services.directory import KindergartenInfo
from services.kezek import Kezek
from services.notifications import EMAIL, TELEGRAM, Notice
from tests.support.cli import app_csv, seed, write
from tests.support.telegram import CHAT_ID, Harness
from tests.support.world import World, almaty

LANGS = ("ru", "kk")
# Latin words a parent may read in a Russian or Kazakh text: names of products and formats.
ALLOWED_LATIN = {"Kezek", "PDF", "QR", "UTC", "Telegram", "JPEG", "PNG", "HEIC", "AVIF", "WEBP", "GIF",
                 "TIFF", "BMP", "Word", "Excel"}
# Codes of the test world that the bot shows as they are (kindergarten codes).
DATA_WORDS = {"KG", "PRIV", "MED"}
KAZAKH_ONLY = set("әғқңөұүһіӘҒҚҢӨҰҮҺІ")
_LATIN_WORD = re.compile(r"(?<![\w@./-])[A-Za-z]+(?:-[A-Za-z]+)*(?![\w@])")
_TIME = re.compile(r"(?<![\d:])\d{1,2}:\d{2}(?![\d:])")
_URL_OR_ADDRESS = re.compile(r"https?://\S+|\S+@\S+|(?<!\w)/[a-z_]+")


# --- what was looked up, and what was shown ----------------------------------------------------------

def translated_ids(lang: str) -> set[Any]:
    """The msgids (a tuple for a plural) translated in ``lang``'s own catalog, fuzzy ones left out."""
    with po_path(lang).open("rb") as fh:
        catalog = read_po(fh, locale=lang)
    ids = set()
    for m in catalog:
        if not m.id or m.fuzzy:
            continue
        forms = m.string if isinstance(m.string, tuple) else (m.string,)
        if all(f and f.strip() for f in forms):
            ids.add(m.id)
    return ids


class _Recording:
    """A catalog that notes every message id asked of it."""

    def __init__(self, real: Any, lang: str, log: set[tuple[str, Any]]) -> None:
        self.real, self.lang, self.log = real, lang, log

    def gettext(self, msgid: str) -> str:
        self.log.add((self.lang, msgid))
        return self.real.gettext(msgid)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        self.log.add((self.lang, (singular, plural)))
        return self.real.ngettext(singular, plural, n)


@dataclass
class Shown:
    """Texts a parent saw, each with the language it should be in ('both': the bilingual picker)."""

    texts: list[tuple[str, str, str]] = field(default_factory=list)  # (lang, where, text)
    looked_up: set[tuple[str, Any]] = field(default_factory=set)

    def add(self, lang: str, where: str, *texts: str | None) -> None:
        for text in texts:
            if text:
                self.texts.append((lang, where, text))

    def calls(self, lang: str, where: str, calls: Iterable[TelegramMethod[Any]]) -> None:
        for call in calls:
            if isinstance(call, (SendMessage, EditMessageText)):
                self.add(lang, where, call.text)
                self.markup(lang, where, call.reply_markup)
            elif isinstance(call, AnswerCallbackQuery):
                self.add(lang, where + " (alert)", call.text)
            elif isinstance(call, (SendDocument, SendPhoto)):
                self.add(lang, where + " (caption)", call.caption)

    def markup(self, lang: str, where: str, markup: Any) -> None:
        if isinstance(markup, InlineKeyboardMarkup):
            rows = markup.inline_keyboard
        elif isinstance(markup, ReplyKeyboardMarkup):
            rows = markup.keyboard
        else:
            return
        for row in rows:
            for button in row:
                self.add(lang, where + " (button)", button.text)


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> Shown:
    record = Shown()
    for lang in LANGS:
        translator(lang)  # compiled before the wrapper, so the Kazakh fallback stays the real one
    real = translator

    def recording(lang: str | None) -> Any:
        return _Recording(real(lang), normalize_language(lang), record.looked_up)

    monkeypatch.setattr(locales, "translator", recording)
    return record


def problems_of(record: Shown, data_words: set[str] = frozenset()) -> list[str]:
    problems = []
    own = {lang: translated_ids(lang) for lang in LANGS}
    for lang, msgid in sorted(record.looked_up, key=str):
        if msgid not in own[lang]:
            problems.append(f"{lang}: not in the {lang} catalog: {msgid!r}")
    allowed = ALLOWED_LATIN | DATA_WORDS | set(data_words)
    seen = set()
    for lang, where, text in record.texts:
        if (lang, text) in seen:
            continue
        seen.add((lang, text))
        plain = _URL_OR_ADDRESS.sub(" ", text)
        latin = [w for w in _LATIN_WORD.findall(plain) if w not in allowed]
        if latin:
            problems.append(f"{lang} {where}: Latin words {latin} in {text!r}")
        if "{" in text or "}" in text:
            problems.append(f"{lang} {where}: a placeholder left in {text!r}")
        if lang in LANGS and _TIME.search(text):
            # Every message with a time of day says its zone (once); what may be read abroad (the
            # e-mail copies, the PDF) with the UTC offset.
            zone = gettext(lang, ZONES["local"]).rstrip(")")
            if zone not in text:
                problems.append(f"{lang} {where}: a time without its zone in {text!r}")
            elif where.startswith(("e-mail", "PDF")) and "UTC+5" not in text:
                problems.append(f"{lang} {where}: a time without the UTC offset in {text!r}")
        if lang == "ru":
            letters = sorted({c for c in text if c in KAZAKH_ONLY})
            if letters:
                problems.append(f"ru {where}: Kazakh letters {letters} in {text!r}")
    return problems


# --- the walk through the Dispatcher -------------------------------------------------------------------

STICKER = Sticker(file_id="s", file_unique_id="su", type="regular", width=512, height=512,
                  is_animated=False, is_video=False)
PHOTO = [PhotoSize(file_id="p", file_unique_id="pu", width=9, height=9)]


def inline(calls: list[TelegramMethod[Any]]) -> list[str]:
    """The callback data of every inline button in ``calls``."""
    found = []
    for call in calls:
        markup = getattr(call, "reply_markup", None)
        if isinstance(markup, InlineKeyboardMarkup):
            found += [b.callback_data for row in markup.inline_keyboard for b in row if b.callback_data]
    return found


async def walk_the_bot(tg: Harness, kz: Kezek, world: World, clock: FrozenClock, lang: str,
                       shown: Shown) -> None:
    async def say(where: str, expect: str = lang, **content: Any) -> list[TelegramMethod[Any]]:
        calls = await tg.send(lang, **content)
        shown.calls(expect, where, calls)
        return calls

    async def press(where: str, data: str, expect: str = lang) -> list[TelegramMethod[Any]]:
        calls = await tg.press(data, language_code=lang)
        shown.calls(expect, where, calls)
        return calls

    def menu(key: str) -> str:
        from handlers.menu import MENU

        return gettext(lang, MENU[key])

    # The picker (in both languages), the greeting, help, the menu with nothing linked.
    await say("/start", expect="both", text="/start")
    await press("language picked", f"lang:{lang}")
    await say("/help", text="/help")
    for key in ("status", "seats", "unlink", "settings", "help", "link"):
        await say(f"menu {key}", text=menu(key))
    await say("/cancel", text="/cancel")
    await say("sticker", sticker=STICKER)
    await say("photo before linking", photo=PHOTO)
    await say("unknown command", text="/frobnicate")
    await press("stale button", "seats:999999")
    await press("forged button", "garbage")

    # /settings: every toggle both ways, the language button, the e-mail dialogue.
    await say("/settings", text="/settings")
    for key in ("moves", "reminders", "open_seats"):
        for on in (1, 0, 1):
            await press(f"toggle {key}", f"ntc:{key}:{on}")
    await press("settings language", "stg:lang", expect="both")
    await press("settings e-mail", "stg:email")
    await say("sticker in the e-mail dialogue", sticker=STICKER)
    await say("bad address", text="mama at example")
    await say("address", text="mama@example.kz")
    await say("text instead of a code", text="my code is twelve")
    codes = [n for n in await _outbox(kz, "email_code")]
    code = codes[-1].payload["code"]
    await say("wrong code", text="000000" if code != "000000" else "111111")
    await say("right code", text=code)
    await say("/settings with an e-mail", text="/settings")
    await press("remove the e-mail", "stg:rmemail")
    await press("remove again", "stg:rmemail")
    await press("settings e-mail again", "stg:email")
    await press("cancel", "stg:cancel")
    await press("cancel again", "stg:cancel")

    # /link: the dialogue with a contact, and with an e-mail code.
    first, privileged, third = world.row(), world.row(privilege="first"), world.row()
    await world.apps(first, privileged, third)
    await say("/link", text="/link")
    await say("photo in /link", photo=PHOTO)
    await say("number", text=first["number"])
    await say("sticker in /link", sticker=STICKER)
    await say("iin", text=first["child_iin"])
    await say("contact", contact=Contact(phone_number=first["phone"].lstrip("+"), first_name="A", user_id=CHAT_ID))
    await say("/link again", text="/link")
    await say("number again", text=first["number"])
    await say("already linked", text=first["child_iin"])
    await say("/link the second", text="/link")
    await say("number 2", text=privileged["number"])
    await say("iin 2", text=privileged["child_iin"])
    await press("e-mail code for /link", "link:email")
    [link_code] = await _outbox(kz, "link_code")
    await say("wrong link code", text="000000" if link_code.payload["code"] != "000000" else "111111")
    await say("link code", text=link_code.payload["code"])

    # /status, history; a seat offered, the seats, the preview, the claim, the referral's PDF.
    await say("/status", text="/status")
    clock.advance(dt.timedelta(days=10))
    status_calls = await say("/status after ten days", text="/status")
    for data in inline(status_calls):
        if data.startswith("hist:"):
            await press("history", data)
    await world.publish(2, "KG1")  # offered to the privileged child and the first one
    await say("/status with an offer", text="/status")
    app_first = await _app_id(kz, first["number"])
    listing = await press("seats", f"seats:{app_first}")
    previews = [d for d in inline(listing) if d.startswith("claim:")]
    assert previews, "no seat to preview"
    preview = await press("preview", previews[0])
    await press("back to the seats", next(d for d in inline(preview) if d.startswith("seats:")))
    await press("confirm", next(d for d in inline(preview) if d.endswith(":c")))
    await press("confirm again", next(d for d in inline(preview) if d.endswith(":c")))
    # The privileged child claims a seat too: its documents are awaited.
    app_privileged = await _app_id(kz, privileged["number"])
    listing = await press("seats 2", f"seats:{app_privileged}")
    preview = await press("preview 2", next(d for d in inline(listing) if d.startswith("claim:")))
    await press("confirm 2", next(d for d in inline(preview) if d.endswith(":c")))
    cards = await say("/status with referrals", text="/status")
    for data in inline(cards):
        await press(f"card button {data.split(':')[0]}", data)
    # The kindergarten's side: an invitation, the referral from its code, the desk and its buttons.
    ref_id = await _referral_id(kz, app_first)
    invitation = await kz.invite_staff("KG1")
    await say("staff invitation", text=f"/start {invitation.token}")
    await say("staff invitation used", text=f"/start {invitation.token}")
    await say("staff opens the referral", text=f"/start {(await kz.referral_document(ref_id)).token}")
    desk = await say("/desk", text="/desk")
    await press("desk: open", inline(desk)[0])
    await press("the child has not come", StaffCallback(ref=ref_id, act="n").pack())
    await press("the child has come", StaffCallback(ref=ref_id, act="a").pack())
    await press("the child has come again", StaffCallback(ref=ref_id, act="a").pack())
    # Outside the claim window; /seats with a state-order seat of a private kindergarten.
    await world.apps(world.row())
    await world.publish(2, "PRIV")
    await say("/seats", text="/seats")
    clock.set(almaty(2026, 9, 19, 22, 0))  # a Saturday night
    await say("/seats at night", text="/seats")

    # /unlink: ask, keep, unlink.
    calls = await say("/unlink", text="/unlink")
    asks = [d for d in inline(calls) if ":ask:" in d]
    if asks:
        calls = await press("unlink choose", asks[0])
    no = [d for d in inline(calls) if ":no:" in d]
    yes = [d for d in inline(calls) if ":yes:" in d]
    await press("unlink no", no[0])
    await press("unlink yes", yes[0])
    await press("unlink yes again", yes[0])

    # Too many failed links: the lock.
    for _ in range(6):
        await say("/link to fail", text="/link")
        await say("wrong number", text="A99999")
        await say("iin to fail", text=third["child_iin"])
    await say("/link locked", text="/link")


async def _outbox(kz: Kezek, kind: str) -> list[Any]:
    from sqlalchemy import select

    from services.notices import NoticeKind
    from storage.models import OutboxMessage

    async with kz.reading() as ctx:  # (NoticeKind: a misspelt kind fails, it does not read as none)
        return list((await ctx.session.execute(
            select(OutboxMessage).where(OutboxMessage.kind == NoticeKind(kind)).order_by(OutboxMessage.id))).scalars())


async def _referral_id(kz: Kezek, application_id: int) -> int:
    from sqlalchemy import select

    from storage.models import Referral

    async with kz.reading() as ctx:
        return int((await ctx.session.execute(
            select(Referral.id).where(Referral.application_id == application_id))).scalar_one())


async def _app_id(kz: Kezek, number: str) -> int:
    from sqlalchemy import select

    from storage.models import Application

    async with kz.reading() as ctx:
        return int((await ctx.session.execute(select(Application.id).where(Application.number == number))).scalar_one())


@pytest.mark.parametrize("lang", LANGS)
async def test_every_screen_speaks_the_chats_language(tg: Harness, kz: Kezek, world: World,
                                                     clock: FrozenClock, lang: str, shown: Shown) -> None:
    await walk_the_bot(tg, kz, world, clock, lang, shown)
    assert len([t for t in shown.texts if t[0] == lang]) > 80  # the walk did show the screens
    problems = problems_of(shown)
    assert not problems, "\n".join(problems)


# --- texts rendered without the Dispatcher -------------------------------------------------------------

KG = KindergartenInfo(code="KG1", name_ru="Ясли-сад №1", name_kk="№1 бөбекжай-бақша", address="ул. Абая, 1")


def full_notice(kind: str, lang: str = "ru", channel: str = TELEGRAM) -> Notice:
    moment = "2026-09-14T19:00:00+00:00"
    return Notice(
        delivery_id=1, channel=channel, target=str(CHAT_ID) if channel == TELEGRAM else "parent@example.kz",
        lang=lang, kind=kind, application_id=5, number="A00001", child_iin_masked="23••••••••17",
        kindergarten=KG, group_name="Балапан",
        payload={"expires_at": moment, "showup_due_at": moment, "due_at": moment, "docs_due_at": moment,
                 "stoplist_until": moment, "seats": 21, "reason": "docs_rejected", "rejection": "unreadable",
                 "note": "Нет второй страницы", "code": "123456", "number": 1234, "previous": 1255,
                 "batch": True, "language": "kk", "referral_id": 7},
        extra={"birth_year": 2023, "district_ru": "Бостандыкский район", "district_kk": "Бостандық ауданы",
               "queue_number": 1234, "as_of": dt.datetime(2026, 9, 7, 4, 0, tzinfo=dt.UTC),
               "link": "https://t.me/kezek_bot?start=abc", "link_expires_at": moment})


def email_sections(text: str) -> list[str]:
    """The Kazakh and the Russian part of a plain-text e-mail copy, each with its footer line."""
    body, footer = text.split("\n-- \n")
    parts = body.split("-" * 40)
    footers = [line for line in footer.splitlines() if line.strip()]
    assert len(parts) == len(footers) == 2
    return [part + "\n" + foot for part, foot in zip(parts, footers, strict=True)]


def test_every_notice_and_its_email_copy(shown: Shown) -> None:
    from bot.delivery.notices import RENDERERS, render, render_email

    kinds = sorted(RENDERERS) + ["something_new"]
    for kind in kinds:
        for lang in LANGS:
            rendered = render(lang, full_notice(kind, lang))
            shown.add(lang, f"notice {kind}", rendered.text)
            shown.markup(lang, f"notice {kind}", rendered.markup)
        copy = render_email(full_notice(kind, channel=EMAIL))
        kk_subject, ru_subject = copy.subject.removeprefix("Kezek: ").split(" / ")
        shown.add("kk", f"e-mail subject {kind}", kk_subject)
        shown.add("ru", f"e-mail subject {kind}", ru_subject)
        kk, ru = email_sections(copy.text)
        shown.add("kk", f"e-mail {kind}", kk)
        shown.add("ru", f"e-mail {kind}", ru)
    problems = problems_of(shown)
    assert not problems, "\n".join(problems)


MOMENT = dt.datetime(2026, 12, 5, 19, 0, tzinfo=dt.UTC)


def error_of(cls: type[E.KezekError], *, with_params: bool) -> E.KezekError | None:
    """An error as a service raises it: with a value for each placeholder of its message (a moment
    for a time, a number for anything else); without them only when it has none."""
    if issubclass(cls, E.BulkRejected):
        return cls([(0, E.MissingField(field="phone"))])
    names = set(re.findall(r"\{(\w+)\}", ERROR_SENTENCES.get(cls.code, "")))
    if not with_params:
        return cls() if not names else None
    params: dict[str, Any] = {name: MOMENT if name in ("until", "due_at", "opens_at", "expired_at") else 12
                              for name in names}
    params.update(until=MOMENT, due_at=MOMENT, opens_at=MOMENT, expired_at=MOMENT, min_age=3)
    return cls(**params)


def test_every_state_forecast_and_error(shown: Shown) -> None:
    from handlers.status import forecast_text, history_text
    from handlers.views.referral_pdf import verdict_text
    from services import referral_check as rc

    today = dt.date(2026, 12, 5)
    for lang in LANGS:
        for status in ("waiting", "queued", "stop_listed", "offer_open", "referred", "admitted", "removed",
                       "withdrawn"):
            shown.add(lang, f"status {status}", status_text(lang, status),
                      status_text(lang, status, until=dt.datetime(2026, 12, 5, 19, 0, tzinfo=dt.UTC),
                                       zone="local"))
        for privilege in ("out_of_turn", "first", "none"):
            shown.add(lang, "privilege", privilege_text(lang, privilege))
        for cause in ("arrival", "referral", "returned", "privilege_dropped", "changed", "withdrawn", "other"):
            for n in (1, 2, 5, 21):
                shown.add(lang, f"cause {cause}", cause_text(lang, cause, n))
        for forecast in (st.Forecast(st.FORECAST_FIRST), st.Forecast(st.FORECAST_TOO_EARLY),
                         st.Forecast(st.FORECAST_UNKNOWN, days=21),
                         st.Forecast(st.FORECAST_ESTIMATE, advanced=21, days=21, expected=today)):
            shown.add(lang, f"forecast {forecast.kind}", forecast_text(lang, forecast),
                      forecast_text(lang, forecast, stop_listed=True))
        from bot.telegram.runner import bot_descriptions

        shown.add(lang, "the bot's description", *bot_descriptions(lang))
        shown.add(lang, "history", history_text(lang, st.HistoryView(
            application_id=1, number="A00001", state="referred", waiting=False, queue_number=None,
            since=None, moves=[], points=[])))
        for cls in E.all_error_classes():
            for exc in (error_of(cls, with_params=False), error_of(cls, with_params=True)):
                if exc is not None:
                    shown.add(lang, f"error {cls.code}", error_text(lang, exc))
        for state in (rc.REFUSED,):
            shown.add(lang, "verdict", verdict_text(lang, rc.Verdict(state=state, facts=None)))
    problems = problems_of(shown)
    assert not problems, "\n".join(problems)


async def test_the_referral_pdf(kz: Kezek, world: World, shown: Shown) -> None:
    from handlers.views.referral_pdf import referral_pdf

    row = world.row(privilege="first")
    [number] = await world.apps(row)
    pub = await world.publish(1, "KG1")
    seat = next(s for _, s, n in pub.offers if n == number)
    [ref] = await kz.claim(number, seat, confirmed_by="telegram:1")
    document = await kz.referral_document(ref.id)
    from pypdf import PdfReader

    from handlers.views.referral_pdf import VERIFY_COMMAND, VERIFY_PATH

    pages = [page.extract_text() for page in PdfReader(io.BytesIO(referral_pdf(document, ["kk", "ru"]))).pages]
    assert len(pages) == 2
    for lang, page in zip(("kk", "ru"), pages, strict=True):
        page = " ".join(page.replace("\u202f", " ").replace("\xa0", " ").split())
        # The verification command and request are typed as they are, and so is the short code.
        for literal in (document.short, VERIFY_COMMAND, VERIFY_PATH):
            page = page.replace(literal, " ")
        shown.add(lang, "PDF page", page)
    problems = problems_of(shown, {"API"})  # the verification API, named for the kindergarten
    assert not problems, "\n".join(problems)


# --- the operators' CLI ------------------------------------------------------------------------------



@pytest.mark.parametrize("lang", LANGS)
def test_the_cli_says_the_zone_of_its_deadlines(run: Any, tmp_path: Any, lang: str) -> None:
    from services.validation import make_iin

    seed(run, tmp_path)
    apps = write(tmp_path, "a.csv", app_csv([("A1", make_iin(dt.date(2023, 3, 15), 1))]))
    assert run("import", "applications", apps).exit_code == 0
    published = run("seats", "publish", "--kindergarten", "KG1", "--birth-year", "2023", "--language", "ru",
                    "--count", "1")
    assert published.exit_code == 0
    zone = gettext(lang, ZONES["local"])
    for args in (("claim", "A1", "1"), ("claim", "A1", "1", "--confirm", "parent"), ("queue", "show", "A1")):
        result = run(*args, lang=lang)
        assert result.exit_code == 0, result.output
        times = [line for line in result.output.splitlines() if _TIME.search(line)]
        assert times and all(zone in line for line in times), result.output
