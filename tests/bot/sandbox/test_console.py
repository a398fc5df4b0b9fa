"""``kezek demo --console`` (bot/sandbox/console.py): the real Dispatcher in a terminal, driven by scripted
lines through one full flow in each language, plus the inputs that must not break it.

The city is ``bot.sandbox.demo.seed``'s, tiny; the parent's phone is on its first application. The console
runs on a sandbox clock standing on the ``clock`` fixture (Monday 7 September 2026, 10:00 in Almaty,
inside the claim window); the outbox sender runs in the background and the script waits for what it
sends with a bounded poll."""

from __future__ import annotations

import asyncio
import builtins
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.config import Settings
from bot.sandbox.console import CHAT_ID, DEMO_PHONE, run_console
from bot.sandbox.demo import seed
from bot.sandbox.terminal import html_to_text, parse_duration
from handlers.start import LANGUAGE_LABELS
from locales import gettext
from locales.errors import error_text
from locales.formats import format_datetime, format_deadline, format_number, zone_text
from services.clock import FrozenClock, SandboxClock
from services.errors import InvalidField, UnknownKindergarten
from services.kezek import Kezek
from services.validation import mask_iin
from storage.db import Database
from storage.models import Delivery
from tests.support.telegram import HINT, SORRY
from tests.support.world import almaty

NO_BUTTONS = "There are no buttons to press now."
NO_SUCH_BUTTON = "There is no button {button} now. Press one of these: {buttons}."


def flat(text: str) -> str:
    """Whitespace collapsed: the console wraps long lines at 80 columns."""
    return " ".join(text.split())


class Screen:
    """What the console printed (its ``out``), with the helpers a script needs to press buttons."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.marks: dict[str, int] = {}  # name -> where the output of a marked line starts

    def __call__(self, line: str) -> None:
        self.lines.append(line)

    @property
    def text(self) -> str:
        return self.since(0)

    def mark(self) -> int:
        return len(self.lines)

    def since(self, mark: int, end: int | None = None) -> str:
        # Operator lines are marked with '#', on each line when wrapped.
        return flat("\n".join(re.sub(r"^#", "", line) for line in self.lines[mark:end]))

    def has(self, fragment: str, since: int = 0) -> bool:
        return flat(fragment) in self.since(since)

    def marked(self, name: str, line: str | Callable[[], str]) -> Callable[[], str]:
        """A script item: remembers where its output starts, then gives ``line`` (or its result)."""
        def go() -> str:
            self.marks[name] = self.mark()
            return line() if callable(line) else line
        return go

    def section(self, name: str) -> str:
        """The output of a marked line, up to the next marked one."""
        names = list(self.marks)
        following = names[names.index(name) + 1:]
        return self.since(self.marks[name], self.marks[following[0]] if following else None)

    def button(self, label: str) -> str:
        """The number or letter of the latest button shown with ``label``."""
        for line in reversed(self.lines):
            found = re.findall(r"\[(\w+)\] ([^\[]+?)(?=\s{3}\[|\s*$| ↗)", line)
            for key, text in found:
                if text.strip() == label:
                    return key
        raise AssertionError(f"no button {label!r} on the screen:\n" + "\n".join(self.lines[-40:]))

    async def until(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        """Wait for the background sender: poll every 20 ms, at most ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if loop.time() > deadline:
                raise AssertionError("nothing arrived; the screen:\n" + "\n".join(self.lines[-40:]))
            await asyncio.sleep(0.02)


@pytest.fixture
def sandbox(clock: FrozenClock) -> SandboxClock:
    # Standing on the fixture's moment (the real time under it is frozen): no test depends on timing.
    return SandboxClock(real=clock)


@pytest.fixture
def kzs(db: Database, sandbox: SandboxClock) -> Kezek:
    """The service facade on the sandbox clock (the one ``!advance`` moves)."""
    return Kezek(db, sandbox)


@pytest.fixture
async def city(kzs: Kezek) -> dict[str, Any]:
    return await seed(kzs, applications=24, phone=DEMO_PHONE)


def settings_for(tmp_path: Path, lang: str = "ru") -> Settings:
    return Settings(mail_dir=tmp_path / "mail", lang=lang)


async def scripted(items: list[Any]) -> AsyncIterator[str]:
    """Lines for the console; a callable item is called (and awaited) when its turn comes and
    yields what it returns (None: nothing)."""
    for item in items:
        if callable(item):
            value = item()
            if asyncio.iscoroutine(value):
                value = await value
            if value is None:
                continue
            item = value
        yield item


# --- the whole walk, in each language ---------------------------------------------------------------

@pytest.mark.parametrize("lang", ["ru", "kk"])
async def test_a_parent_walks_every_step_in_the_console(kzs: Kezek, city: dict[str, Any], sandbox: SandboxClock,
                                                        tmp_path: Path, lang: str) -> None:
    number, iin = city["example"], city["example_iin"]
    view = await kzs.queue_view(number)
    assert view.number is not None and view.state == "waiting"
    # A seat in the child's district and birth year, in the language of the application, enough of
    # them for everyone ahead of it too; a preferred kindergarten if the application names one.
    kindergarten = view.preferred[0] if view.preferred else f"{view.district.code}-01"
    publish = (f"!publish {kindergarten} {view.application.birth_year} {view.application.language} "
               f"{view.number}")

    def t(msgid: str, **params: Any) -> str:
        return gettext(lang, msgid, **params)

    screen = Screen()
    mark = screen.marked

    async def after_publish() -> str:
        await screen.until(lambda: screen.has(t("Choose a seat"), since=screen.marks["publish"]))
        return screen.button(t("Choose a seat"))

    lines = scripted([
        # A Kazakh speaker's Telegram app set to Kazakh; the Russian one stays on the default.
        *(["!lang kk"] if lang == "kk" else []),
        "/start",
        lambda: screen.button(LANGUAGE_LABELS[lang]),
        "/link",
        number,
        iin,
        lambda: screen.button(t("Share my phone number")),
        mark("status", "/status"),
        mark("history", lambda: screen.button(t("History"))),
        mark("publish", publish),
        after_publish,
        mark("seats", "1"),  # the first seat of the list
        lambda: screen.button(t("Confirm")),
        "!quit",
        "/status",  # never read: the demo has ended
    ])
    # What bot.sandbox.demo.pick_example adds: the seat to publish, which the banner then suggests.
    example = {**city, "kindergarten": kindergarten, "birth_year": view.application.birth_year,
               "language": view.application.language}
    await run_console(kzs, settings_for(tmp_path), sandbox, phone=DEMO_PHONE, example=example, lines=lines,
                      out=screen, files_dir=tmp_path / "files")

    # The banner tells how to try it.
    assert screen.lines[0].startswith("#") and screen.has(number) and screen.has(iin)
    assert screen.has(f"!publish {kindergarten} {view.application.birth_year} {view.application.language} 1")
    # /start: the picker in both languages; then the greeting in the chosen one, with the main menu.
    assert screen.has(gettext("ru", "Please choose a language:"))
    assert screen.has(gettext("kk", "Please choose a language:"))
    assert screen.has(t("Welcome to Kezek! Here you can follow your child's place in the kindergarten queue and "
                        "get notices about seats. Use the menu below."))
    assert screen.button(t("My queue status")).isalpha()  # a keyboard button: pressed by letter
    # /link by the contact button.
    assert screen.has(t("Enter the child's IIN (12 digits)."))
    assert screen.has(f"» ☎ {DEMO_PHONE}")
    assert screen.has(t("Done! Application {number} (child's IIN {iin}) is now linked to this chat.",
                        number=number, iin=mask_iin(iin)))
    # /status: the number in the queue.
    status = screen.section("status")
    assert flat(t("Queue number: {number}", number=format_number(lang, view.number))) in status
    # History: the moves, and the chart as a picture saved to the demo folder.
    [chart] = (tmp_path / "files").glob("*.png")
    assert chart.read_bytes().startswith(b"\x89PNG")
    assert flat(t("The picture is saved to {path}.", path=str(chart))) in screen.section("history")
    # The registry publishes; the "your turn" notice arrives from the outbox with its button.
    published = screen.section("publish")
    assert prefix(t("Published seats: {ids}.", ids="\0")) in published
    assert prefix(t("Seat {seat} offered to application {number} (offer {offer}).", seat="\0", number=number,
                    offer="0")) in published
    application = t("application {number} (child's IIN {iin})", number=number, iin=mask_iin(iin))
    assert flat(t("Your turn has come! A seat at {kindergarten} is offered to {application}. Claim it by "
                  "{until}, or it goes to everyone.", kindergarten=view_kindergarten_name(city, kindergarten, lang),
                  application=application,
                  until=format_deadline(lang, almaty(2026, 9, 7, 20, 0), zone="local"))) in published
    # Seats → preview → confirm → the referral.
    claimed = screen.since(screen.marks["seats"])
    assert flat(t("Confirm the claim?")) in claimed
    assert flat(t("Referral issued.")) in claimed  # the button's answer
    assert flat(t("Referral issued for application {number}: {kindergarten}.", number=number,
                  kindergarten=view_kindergarten_name(city, kindergarten, lang))) in claimed
    after = await kzs.queue_view(number)
    assert after.state == "referred" and after.referral is not None
    assert after.referral.confirmed_by == f"telegram:{CHAT_ID}"
    # Nothing broke, and the line after !quit was never read.
    assert not screen.has(t(SORRY))
    assert screen.text.count("» /status") == 1
    # An 80-column terminal (a path too long for a line gets a line of its own).
    assert all(len(line) <= 80 or line.strip().startswith(str(tmp_path)) for line in screen.lines), \
        max(screen.lines, key=len)
    # Personal data: the full IIN appears only where the parent typed it and in the banner (which
    # says what to type); every card, notice and button shows it masked.
    assert all(line.startswith(("#", "» ")) for line in screen.lines if iin in line)
    assert [line for line in screen.lines if line.startswith("» ") and iin in line] == [f"» {iin}"]


def prefix(text: str) -> str:
    """A translated message up to its first parameter (given as NUL)."""
    return flat(text.split("\0")[0])


def view_kindergarten_name(city: dict[str, Any], code: str, lang: str) -> str:
    """The seeded kindergarten's name (bot.sandbox.demo: state kindergarten i of a district is №(7i + 100))."""
    i = int(code.rsplit("-", 1)[1])
    return f"Ясли-сад №{i * 7 + 100}" if lang == "ru" else f"№{i * 7 + 100} бөбекжай-бақша"


# --- what must not break it ----------------------------------------------------------------------

@pytest.mark.parametrize("lang", ["ru", "kk"])
async def test_bad_numbers_unknown_commands_and_junk_get_a_clear_answer(
        kzs: Kezek, city: dict[str, Any], sandbox: SandboxClock, tmp_path: Path, lang: str) -> None:
    def t(msgid: str, **params: Any) -> str:
        return gettext(lang, msgid, **params)

    screen = Screen()
    mark = screen.marked
    before = await kzs.queue_view(city["example"])
    lines = scripted([
        f"!lang {lang}",
        mark("nothing", "7"),           # no buttons at all yet
        mark("no key", "q"),
        "/start",
        mark("out of range", "9"),      # the picker has [1] and [2]
        mark("zero", "0"),
        mark("letter", "x"),            # no keyboard under the input field yet
        mark("superscript", "²"),       # a digit to Python, not a button number: text for the bot
        mark("unknown", "!frobnicate"),
        mark("bare", "!"),
        mark("usage", "!publish"),
        mark("unknown kg", f"!publish NOPE {before.application.birth_year} kk 1"),
        mark("bad year", f"!publish {before.district.code}-01 soon kk 1"),
        mark("duration", "!advance soon"),
        mark("negative", "!advance -1d"),
        mark("too far", "!advance 400d"),
        mark("no mail", "!mail 5"),
        mark("lang", "!lang en"),
        mark("escape", "\x1b[31mjunk\x07"),
        mark("literal", "\\5"),
        "",
        mark("long", "я" * 5000),
        mark("contact", "/contact"),    # a contact outside the link dialogue
        mark("help", "!help"),
        mark("now", "!now"),
        mark("sweep", "!sweep"),
        mark("keys", "!keys"),
        # The bot still works: pick the language.
        "/start",
        lambda: screen.button(LANGUAGE_LABELS[lang]),
    ])  # ... and the input ends without !quit
    await run_console(kzs, settings_for(tmp_path, lang), sandbox, phone=DEMO_PHONE, example=city, lines=lines,
                      out=screen, files_dir=tmp_path / "files")

    at = screen.section

    assert flat(t(NO_BUTTONS)) in at("nothing")
    assert flat(t(NO_BUTTONS)) in at("no key")
    assert flat(t(NO_SUCH_BUTTON, button="[9]", buttons="[1], [2]")) in at("out of range")
    assert flat(t(NO_SUCH_BUTTON, button="[0]", buttons="[1], [2]")) in at("zero")
    assert flat(t(HINT)) in at("superscript")
    assert flat(t(NO_SUCH_BUTTON, button="[x]", buttons="[1], [2]")) in at("letter")
    assert flat(t("Unknown demo command {command}. Send !help for the list.", command="!frobnicate")) in at("unknown")
    assert flat(t("Unknown demo command {command}. Send !help for the list.", command="!")) in at("bare")
    assert flat(t("Usage: {usage}", usage="!publish KG BIRTH_YEAR ru|kk COUNT")) in at("usage")
    assert flat(error_text(lang, UnknownKindergarten(field="kindergarten", value="NOPE"))) in at("unknown kg")
    assert flat(error_text(lang, InvalidField(field="birth_year", reason="integer"))) in at("bad year")
    for name, value in (("duration", "soon"), ("negative", "-1d")):
        assert flat(t("Not a duration: {value}. For example: PT3H, 1d, 2h30m.", value=value)) in at(name)
    assert flat(t("The sandbox clock moves at most {days} days at once.", days=366)) in at("too far")
    assert flat(t("There is no e-mail number {number}.", number="5")) in at("no mail")
    assert flat(t("Usage: {usage}", usage="!lang ru|kk")) in at("lang")
    # Junk text goes to the bot, which answers with its hint; control characters never reach the screen.
    for name in ("escape", "literal", "long"):
        assert flat(t(HINT)) in at(name), name
    assert not any("\x1b" in line or "\x07" in line for line in screen.lines)
    assert flat(t("Demo commands (everything else goes to the bot as a message):")) in at("help")
    assert flat(t("Sandbox time: {moment}.", moment=format_datetime(lang, almaty(2026, 9, 7, 10, 0)))) in at("now")
    assert flat(t("Nothing fell due.")) in at("sweep")
    assert "[1] Қазақша" in at("keys") and "[2] Русский" in at("keys")  # Kazakh first
    # The bot still answers, nothing crashed, nothing changed in the registry.
    assert screen.has(t("Welcome to Kezek! Here you can follow your child's place in the kindergarten queue and "
                        "get notices about seats. Use the menu below."), since=screen.marks["keys"])
    assert not screen.has(t(SORRY))
    after = await kzs.queue_view(city["example"])
    assert (after.number, after.state) == (before.number, before.state)
    assert await kzs.status_cards(CHAT_ID) == []
    assert sandbox.now() == almaty(2026, 9, 7, 10, 0)  # the refused moves did not move the clock


async def test_the_clock_moves_and_deadlines_fire(kzs: Kezek, city: dict[str, Any], sandbox: SandboxClock,
                                                  tmp_path: Path) -> None:
    """``!advance`` moves the sandbox clock and runs what fell due; ``!mail`` lists the copies."""
    number = city["example"]
    view = await kzs.queue_view(number)
    screen = Screen()
    mail = tmp_path / "mail"

    async def copy_sent() -> None:
        await screen.until(lambda: any(mail.glob("*.eml")))

    lines = scripted([
        f"!publish {view.district.code}-01 {view.application.birth_year} kk {view.number}",
        copy_sent,          # the e-mail copy of "your turn", from the background sender
        "!advance PT12H",   # 22:00: the offer's window closed at 20:00
        "!now",
        "!mail",
        "!mail 1",
        "!quit",
    ])
    await run_console(kzs, settings_for(tmp_path), sandbox, phone=DEMO_PHONE, example=city, lines=lines,
                      out=screen, files_dir=tmp_path / "files")
    assert sandbox.now() == almaty(2026, 9, 7, 22, 0)
    assert screen.has(gettext("ru", "The sandbox clock is now at {moment}.",
                                   moment=format_datetime("ru", almaty(2026, 9, 7, 22, 0))))
    assert screen.has(gettext("ru", "offers expired"))
    assert (await kzs.queue_view(number)).state != "offered"
    # The e-mail copy of "your turn" (sent to the application's address) is listed and readable.
    assert screen.has(gettext("ru", "E-mails in {folder} (read one with !mail N):",
                                   folder=str(tmp_path / "mail")))
    assert screen.has(number, since=screen.lines.index("» !mail 1"))
    assert not screen.has(gettext("ru", SORRY))


async def test_notices_to_other_chats_are_not_shown(kzs: Kezek, city: dict[str, Any], sandbox: SandboxClock,
                                                   tmp_path: Path) -> None:
    """The console's sender drains the whole outbox; what it sends to other chats (a parent on
    real Telegram using the same database) is not drawn."""
    example = await kzs.queue_view(city["example"])
    other = None
    for n in range(2, city["applications"] + 1):
        view = await kzs.queue_view(f"DEMO-{n:06d}")
        if view.number == 1 and (view.district.code, view.application.birth_year) != (
                example.district.code, example.application.birth_year) and not view.application.twin_group:
            other = view
            break
    assert other is not None
    app = other.application
    await kzs.link_by_contact(555, app.number, app.child_iin, app.phone, 555, 555)
    kindergarten = other.preferred[0] if other.preferred else f"{other.district.code}-01"

    async def delivered() -> None:
        async def sent() -> bool:
            async with kzs.reading(with_calendar=False) as ctx:
                rows = (await ctx.session.execute(select(Delivery.status).where(
                    Delivery.channel == "telegram", Delivery.target == "555"))).scalars().all()
            return rows == ["sent"]

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not await sent():
            assert loop.time() < deadline, "the notice to the other chat was not sent"
            await asyncio.sleep(0.02)

    screen = Screen()
    lines = scripted([f"!publish {kindergarten} {app.birth_year} kk 1", delivered, "!quit"])
    await run_console(kzs, settings_for(tmp_path), sandbox, phone=DEMO_PHONE, example=city, lines=lines,
                      out=screen, files_dir=tmp_path / "files")
    assert not any(line.startswith("Kezek") for line in screen.lines)  # the demo parent got nothing
    assert all(line.startswith("#") for line in screen.lines if app.number in line)  # the registry's lines


async def test_reads_stdin_until_the_end(kzs: Kezek, city: dict[str, Any], sandbox: SandboxClock,
                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``lines`` the console reads stdin (on a thread); the end of the input ends it."""
    typed = iter(["/start", "1"])  # [1] Қазақша

    def fake_input(prompt: str = "") -> str:
        try:
            return next(typed)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr(builtins, "input", fake_input)
    screen = Screen()
    await asyncio.wait_for(run_console(kzs, settings_for(tmp_path), sandbox, phone=DEMO_PHONE, example=city,
                                       out=screen, files_dir=tmp_path / "files"), 60)
    assert screen.has("» /start")
    assert screen.has(gettext("kk", "Language: {language}", language="Қазақша"))


# --- pieces ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "minutes"), [
    ("PT3H", 180), ("pt90m", 90), ("P1D", 24 * 60), ("P1DT2H30M", 26 * 60 + 30), ("P1W", 7 * 24 * 60),
    ("1d", 24 * 60), ("2h30m", 150), ("90m", 90), ("2 h 5 m", 125), ("45s", 0.75),
])
def test_durations(text: str, minutes: float) -> None:
    delta = parse_duration(text)
    assert delta is not None and delta.total_seconds() == minutes * 60


@pytest.mark.parametrize("text", ["", "P", "PT", "P1DT", "soon", "-1d", "1x", "0h", "PT0S", "1d soon", "3"])
def test_not_durations(text: str) -> None:
    assert parse_duration(text) is None


def test_html_is_drawn_as_text() -> None:
    source = 'Seat <b>7</b> at <a href="https://example.kz/a?b=1&amp;c=2">the map</a> &lt;ok&gt;'
    assert html_to_text(source) == "Seat 7 at the map (https://example.kz/a?b=1&c=2) <ok>"
    assert html_to_text("<b>bold</b>", ansi=True) == "\x1b[1mbold\x1b[22m"


# --- the claim window closed: when it opens and how to get there ---------------

@pytest.mark.parametrize("lang", ["ru", "kk"])
async def test_a_claim_refused_in_the_evening_says_when_the_window_opens_and_how_to_move_the_clock(
        kzs: Kezek, city: dict[str, Any], sandbox: SandboxClock, clock: FrozenClock, tmp_path: Path,
        lang: str) -> None:
    number, iin = city["example"], city["example_iin"]
    view = await kzs.queue_view(number)
    kindergarten = view.preferred[0] if view.preferred else f"{view.district.code}-01"
    publish = (f"!publish {kindergarten} {view.application.birth_year} {view.application.language} "
               f"{view.number}")

    def t(msgid: str, **params: Any) -> str:
        return gettext(lang, msgid, **params)

    screen = Screen()
    mark = screen.marked

    async def after_publish() -> str:
        await screen.until(lambda: screen.has(t("Choose a seat"), since=screen.marks["publish"]))
        return screen.button(t("Choose a seat"))

    def evening() -> None:
        clock.set(almaty(2026, 9, 7, 21, 0))  # Monday evening: the window closed at 20:00

    lines = scripted([
        *(["!lang kk"] if lang == "kk" else []),
        "/start",
        lambda: screen.button(LANGUAGE_LABELS[lang]),
        "/link",
        number,
        iin,
        lambda: screen.button(t("Share my phone number")),
        evening,
        mark("publish", publish),
        after_publish,
        mark("seats", "1"),
        "!quit",
    ])
    await run_console(kzs, settings_for(tmp_path), sandbox, phone=DEMO_PHONE, example=city, lines=lines,
                      out=screen, files_dir=tmp_path / "files")
    refused = flat(screen.section("seats").replace("┃", ""))  # (an alert's lines are marked)
    opens = almaty(2026, 9, 8, 9, 0)  # Tuesday 9:00
    assert flat(t("A seat can be claimed only during the claim window of a working day. "
                  "The next window opens: {opens_at}.",
                  opens_at=format_datetime(lang, opens, zone="local"))) in refused
    # ... and the console says how to get there without waiting: 12 hours ahead.
    assert flat(t("The claim window opens {moment}. In the sandbox, move the clock there: {command}",
                  moment=format_datetime(lang, opens, zone="local"), command="!advance 12h")) in refused
    assert zone_text(lang, "local") in refused
    assert not screen.has(t(SORRY))
