"""The e-mail copies of notices on a real SMTP server (aiosmtpd on loopback): a fan-out survives the
server going away mid-run and every copy arrives exactly once, as text + HTML in Kazakh and
Russian with the registry's words escaped; logging in, and what a wrong password or a refusing
server leaves behind for operators."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections import Counter
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from html import escape as html_escape
from typing import Any

import pytest
from sqlalchemy import select

from bot.delivery.notices import SUBJECTS, render_email
from bot.delivery.sender import SendPolicy, drain_once
from locales import gettext
from locales.formats import format_deadline
from services.clock import FrozenClock
from services.email import EmailContent, MailerMisconfigured, SmtpSender
from services.kezek import Kezek
from services.notifications import EMAIL, MAX_ATTEMPTS, Notice, RetryLater, Undeliverable
from storage.models import Delivery, OutboxMessage
from tests.support.delivery import SmtpServer
from tests.support.world import World, registrations_sent

ESCAPED_KG_RU = "Сад <b>&</b> «Ромашка»"
ESCAPED_KG_KK = "«Ромашка» <b>&</b> бақшасы"
KG_ADDRESS = "ул. Абая, 10 & 12"
USER, PASSWORD = "kezek", "s3cret"
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")  # loopback only
REFUSED = "parent25@refused.kz"  # an address the SMTP server refuses for good


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode()
          and auth_data.password == PASSWORD.encode())
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def auth_server(unused_tcp_port: int) -> Iterator[SmtpServer]:
    """An SMTP server that wants a login (over plain text: loopback, no certificate needed)."""
    server = SmtpServer(unused_tcp_port, authenticator=_authenticator, auth_required=True,
                        auth_require_tls=False)
    server.start()
    yield server
    server.stop()


def mailer_for(server: SmtpServer, clock: FrozenClock, **login: str) -> SmtpSender:
    return SmtpSender(clock, "127.0.0.1", server.port, "Kezek <noreply@kezek.kz>", starttls=False,
                      timeout=5, **login)


async def email_deliveries(kz: Kezek) -> list[tuple[str, str, str, str | None, dt.datetime]]:
    """(kind, address, status, last error, next attempt) of every e-mail delivery."""
    async with kz.reading() as ctx:
        rows = (await ctx.session.execute(
            select(OutboxMessage.kind, Delivery.target, Delivery.status, Delivery.last_error,
                   Delivery.next_attempt_at)
            .join(OutboxMessage, OutboxMessage.id == Delivery.outbox_id)
            .where(Delivery.channel == EMAIL).order_by(Delivery.id))).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


async def drain_until_idle(kz: Kezek, mailer: SmtpSender, batch: int = 10) -> None:
    for _ in range(100):
        if not await drain_once(kz, None, mailer, SendPolicy(batch=batch)):
            return
    raise AssertionError("the outbox never went idle")


def aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)  # SQLite reads naive UTC


def past_the_retry_time(clock: FrozenClock, rows: list[tuple[Any, ...]]) -> None:
    clock.set(max(aware(r[4]) for r in rows if r[2] == "pending") + dt.timedelta(seconds=1))


def parts(msg: EmailMessage) -> tuple[str, str]:
    body = msg
    if msg.get_content_type() == "multipart/mixed":  # the texts, then the files (a referral's PDF)
        body = next(msg.iter_parts())  # type: ignore[assignment]
        assert [a.get_content_type() for a in msg.iter_attachments()] == ["application/pdf"]
    assert body.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in body.iter_parts()] == ["text/plain", "text/html"]
    return msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()  # type: ignore[union-attr]


async def test_a_fan_out_survives_the_smtp_server_going_away(
        kz: Kezek, world: World, clock: FrozenClock, smtp_server: SmtpServer) -> None:
    await kz.upsert_kindergartens([
        {"code": "ESC", "district": "ALM-BOS", "name_ru": ESCAPED_KG_RU, "name_kk": ESCAPED_KG_KK,
         "address": KG_ADDRESS, "languages": "ru,kk"}])
    rows = [world.row() for _ in range(30)]
    rows[24]["email"] = REFUSED  # an address the server refuses for good
    await world.apps(*rows)
    await registrations_sent(kz)
    published = await world.publish(30, "ESC")
    assert len(published.offers) == 30  # 30 "your turn" notices, each with its e-mail copy
    _, seat_id, claimant = published.offers[0]
    await kz.claim(claimant, seat_id, confirmed_by="telegram:1")  # and a referral
    smtp_server.inbox.rcpt_answer["refused.kz"] = f"550 5.1.1 <{REFUSED}>: no such mailbox"
    mailer = mailer_for(smtp_server, clock)

    assert await drain_once(kz, None, mailer, SendPolicy(batch=10)) == 10  # the first ten go out ...
    assert len(smtp_server.inbox.messages) == 10
    smtp_server.stop()  # ... then the server goes away
    await drain_until_idle(kz, mailer)
    down = await email_deliveries(kz)
    assert len(down) == 31
    assert Counter(status for _, _, status, _, _ in down) == {"sent": 10, "pending": 21}  # nothing lost
    assert {err for _, _, status, err, _ in down if status == "pending"} == {
        "smtp server unreachable: SMTPConnectError"}
    assert len(smtp_server.inbox.messages) == 10

    smtp_server.start()  # back, on the same port
    assert await drain_once(kz, None, mailer) == 0  # not before the retry time
    past_the_retry_time(clock, down)
    await drain_until_idle(kz, mailer)

    done = await email_deliveries(kz)
    assert Counter(status for _, _, status, _, _ in done) == {"sent": 30, "failed": 1}
    [(_, refused_to, _, reason, _)] = [r for r in done if r[2] == "failed"]
    assert refused_to == REFUSED and "550" in (reason or "")  # the reason operators see ...
    assert REFUSED not in (reason or "") and "@refused.kz" in (reason or "")  # ... with the address masked
    got = smtp_server.inbox.messages
    assert len(got) == 30
    assert len({m["Message-ID"] for m in got}) == 30  # exactly once each
    turn = f"Kezek: {gettext('kk', 'Your turn has come')} / {gettext('ru', 'Your turn has come')}"
    referral = f"Kezek: {gettext('kk', 'Referral issued')} / {gettext('ru', 'Referral issued')}"
    expected = Counter({(r["email"], turn): 1 for r in rows if r["email"] != REFUSED})
    claimant_email = next(r["email"] for r in rows if r["number"] == claimant)
    expected[(claimant_email, referral)] += 1
    assert Counter((m["To"], m["Subject"]) for m in got) == expected

    for msg in got:
        assert msg["Date"] and msg["Message-ID"]
        # Only the referral's copy carries a file: its PDF.
        assert (msg.get_content_type() == "multipart/mixed") == (msg["Subject"] == referral)
        text, html = parts(msg)
        assert ESCAPED_KG_RU in text and ESCAPED_KG_KK in text  # both languages; plain text as is
        assert "Сад &lt;b&gt;&amp;&lt;/b&gt; «Ромашка»" in html and "«Ромашка» &lt;b&gt;&amp;&lt;/b&gt; бақшасы" in html
        assert "<b>&" not in html  # registry data never becomes markup
        assert "ул. Абая, 10 &amp; 12" in html and KG_ADDRESS in text

    [copy] = [m for m in got if m["Subject"] == referral]
    text, html = parts(copy)
    async with kz.reading() as ctx:
        payload = (await ctx.session.execute(select(OutboxMessage.payload).where(
            OutboxMessage.kind == "referral_issued"))).scalar_one()
    valid_until = dt.datetime.fromisoformat(payload["showup_due_at"])
    for lang in ("kk", "ru"):
        for label, value in ((gettext(lang, "Kindergarten"), ESCAPED_KG_RU if lang == "ru" else ESCAPED_KG_KK),
                             (gettext(lang, "Address"), KG_ADDRESS),
                             (gettext(lang, "Group"), "2023-ru"),
                             (gettext(lang, "Referral valid until"), format_deadline(lang, valid_until))):
            assert f"{label}: {value}" in text, (lang, label)
            assert label in html and html_escape(value, quote=False) in html


async def test_login_to_an_smtp_server_that_wants_one(clock: FrozenClock, auth_server: SmtpServer) -> None:
    copy = EmailContent("Kezek: test", "text", "<p>html</p>")
    await mailer_for(auth_server, clock, username=USER, password=PASSWORD).send(
        "parent@example.kz", copy, message_key="kezek-1")
    [msg] = auth_server.inbox.messages
    assert msg["Subject"] == "Kezek: test"
    # No login configured: the server says authentication is required; that is the settings' fault.
    with pytest.raises(MailerMisconfigured) as info:
        await mailer_for(auth_server, clock).send("parent@example.kz", copy, message_key="kezek-2")
    assert "530" in info.value.reason
    assert len(auth_server.inbox.messages) == 1


async def test_a_wrong_smtp_password_keeps_the_copies_until_it_is_fixed(
        kz: Kezek, world: World, clock: FrozenClock, auth_server: SmtpServer,
        caplog: pytest.LogCaptureFixture) -> None:
    row = world.row()
    await world.apps(row)
    await registrations_sent(kz)
    await world.publish(1, "KG1")
    wrong = mailer_for(auth_server, clock, username=USER, password="wrong")
    with caplog.at_level(logging.ERROR, logger="kezek.email"):
        assert await drain_once(kz, None, wrong) == 1
    [(kind, to, status, reason, _)] = rows = await email_deliveries(kz)
    assert (kind, to, status) == ("turn_came", row["email"], "pending")  # not dropped
    assert reason and "login refused" in reason and "535" in reason
    assert any("login refused" in r.getMessage() and "KEZEK_SMTP" in r.getMessage() for r in caplog.records)
    assert PASSWORD not in caplog.text and "wrong" not in caplog.text
    assert auth_server.inbox.messages == []
    # Retried, waiting longer each time, while the password stays wrong ...
    first_wait = aware(rows[0][4]) - clock.now()
    past_the_retry_time(clock, rows)
    assert await drain_once(kz, None, wrong) == 1
    [again] = await email_deliveries(kz)
    assert again[2] == "pending" and aware(again[4]) - clock.now() > first_wait
    # ... and delivered once the operator fixes it.
    past_the_retry_time(clock, [again])
    await drain_until_idle(kz, mailer_for(auth_server, clock, username=USER, password=PASSWORD))
    assert [r[2] for r in await email_deliveries(kz)] == ["sent"]
    [msg] = auth_server.inbox.messages
    assert msg["To"] == row["email"]


def a_notice() -> Notice:
    return Notice(delivery_id=9, channel=EMAIL, target="parent@example.kz", lang="ru", kind="turn_came",
                  payload={"expires_at": "2026-09-07T15:00:00"}, application_id=5, number="A00001",
                  child_iin_masked="230315*****1")


@pytest.mark.parametrize(("where", "answer", "outcome"), [
    ("rcpt", "450 4.2.1 mailbox busy, try later", RetryLater),
    ("rcpt", "550 5.1.1 no such mailbox", Undeliverable),
    ("data", "451 4.3.0 local error, try later", RetryLater),
    ("data", "554 5.7.1 message rejected as spam", Undeliverable),
])
async def test_smtp_answers_map_to_retry_or_give_up(clock: FrozenClock, smtp_server: SmtpServer,
                                                    where: str, answer: str, outcome: type[Exception]) -> None:
    if where == "rcpt":
        smtp_server.inbox.rcpt_answer["example.kz"] = answer
    else:
        smtp_server.inbox.data_answer = answer
    with pytest.raises(outcome) as info:
        await mailer_for(smtp_server, clock).send("parent@example.kz", render_email(a_notice()),
                                                   message_key="kezek-9")
    assert answer.split()[0] in str(info.value) + getattr(info.value, "reason", "")
    assert not isinstance(info.value, MailerMisconfigured)
    assert smtp_server.inbox.messages == []


async def test_a_long_outage_loses_no_copy(kz: Kezek, world: World, clock: FrozenClock,
                                           smtp_server: SmtpServer) -> None:
    row = world.row()
    await world.apps(row)
    await registrations_sent(kz)
    await world.publish(1, "KG1")
    mailer = mailer_for(smtp_server, clock)
    smtp_server.stop()
    outage_began = clock.now()
    for _ in range(MAX_ATTEMPTS * 2):  # far more tries than a delivery's limit, over hours
        assert await drain_once(kz, None, mailer) == 1
        rows = await email_deliveries(kz)
        assert [r[2] for r in rows] == ["pending"]
        past_the_retry_time(clock, rows)
    assert clock.now() - outage_began > dt.timedelta(hours=2)  # the waits grew with the outage
    smtp_server.start()
    await drain_until_idle(kz, mailer)
    assert [r[2] for r in await email_deliveries(kz)] == ["sent"]
    [msg] = smtp_server.inbox.messages
    assert msg["To"] == row["email"]


def test_the_smtp_waits_default_to_production_and_the_environment_may_change_them(
        monkeypatch: pytest.MonkeyPatch, clock: FrozenClock) -> None:
    """``KEZEK_SMTP_TIMEOUT`` and ``KEZEK_SMTP_OUTAGE_WAIT`` (services/email.py; the fault tests
    shorten them in the senders they start): unset, the production waits."""
    from services.email import OUTAGE_WAIT, SMTP_TIMEOUT

    def made() -> SmtpSender:
        return SmtpSender(clock, "127.0.0.1", 25, "noreply@kezek.kz")

    monkeypatch.delenv("KEZEK_SMTP_TIMEOUT", raising=False)
    monkeypatch.delenv("KEZEK_SMTP_OUTAGE_WAIT", raising=False)
    assert (SMTP_TIMEOUT, OUTAGE_WAIT) == (30.0, (30.0, 900.0))
    assert (made().timeout, made().outage_wait) == (30.0, (30.0, 900.0))
    monkeypatch.setenv("KEZEK_SMTP_TIMEOUT", "2.5")
    monkeypatch.setenv("KEZEK_SMTP_OUTAGE_WAIT", "10")
    assert (made().timeout, made().outage_wait) == (2.5, (10.0, 900.0))  # the most stays
    monkeypatch.setenv("KEZEK_SMTP_OUTAGE_WAIT", "3, 60")
    assert made().outage_wait == (3.0, 60.0)
    # Given to the constructor, the values win over the environment.
    given = SmtpSender(clock, "127.0.0.1", 25, "noreply@kezek.kz", timeout=5, outage_wait=(1.0, 2.0))
    assert (given.timeout, given.outage_wait) == (5, (1.0, 2.0))
    # The wait after a server-side failure follows the bounds: at least the least, growing with the outage.
    mailer = made()
    assert mailer._server_trouble("smtp server unreachable: OSError").seconds == 3.0
    clock.advance(dt.timedelta(seconds=20))
    assert mailer._server_trouble("smtp server unreachable: OSError").seconds == 20.0
    clock.advance(dt.timedelta(minutes=5))
    assert mailer._server_trouble("smtp server unreachable: OSError").seconds == 60.0
    for bad in ("0", "-1", "soon", "nan", "inf", "5,x"):
        monkeypatch.setenv("KEZEK_SMTP_OUTAGE_WAIT", bad)
        with pytest.raises(ValueError, match="KEZEK_SMTP_OUTAGE_WAIT"):
            made()
    monkeypatch.setenv("KEZEK_SMTP_OUTAGE_WAIT", "10")
    monkeypatch.setenv("KEZEK_SMTP_TIMEOUT", "0")
    with pytest.raises(ValueError, match="KEZEK_SMTP_TIMEOUT"):
        made()


# --- subjects and display names that survive folding -----------------------------

# Sender names an operator may set in KEZEK_SMTP_FROM: ASCII, one encoded word, and long ones in
# both languages that take several encoded words.
SENDER_NAMES = (
    "Kezek",
    "Кезек",
    "Kezek — Алматы",
    "Балабақша кезегі / Очередь в детсад",
    "Алматы қаласының балабақша кезегі — Kezek",
    "Электронная очередь в детские сады города Алматы",
)


def _notice_of(kind: str) -> Notice:
    return Notice(delivery_id=3, channel=EMAIL, target="parent@example.kz", lang="ru", kind=kind,
                  payload={"expires_at": "2026-09-07T15:00:00", "due_at": "2026-09-14T19:00:00",
                           "showup_due_at": "2026-09-14T19:00:00", "seats": 3, "code": "123456",
                           "number": 4, "previous": 9},
                  application_id=5, number="A00001", child_iin_masked="230315*****1")


ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


def _head(raw: bytes) -> list[str]:
    """The header lines of a raw message (ASCII: non-ASCII text travels as encoded words)."""
    return re.split(r"\r?\n\r?\n", raw.decode("ascii"), maxsplit=1)[0].splitlines()


@pytest.mark.parametrize("kind", sorted(SUBJECTS))
def test_every_subject_and_sender_name_survives_folding(kind: str) -> None:
    """Each notice's subject (Kazakh / Russian) and each sender name, in the bytes of the .eml file
    and as aiosmtplib puts them on the wire, parsed back by the standard parser: the very text,
    spaces included ("поставлено в очередь", not "поставленов очередь"); header lines of at most
    78 characters, encoded words of at most 75."""
    from email.header import decode_header, make_header
    from email.parser import BytesParser

    from aiosmtplib.email import flatten_message

    from services.email import build_message

    content = render_email(_notice_of(kind))
    kk, ru = content.subject.removeprefix("Kezek: ").split(" / ")
    assert (kk, ru) == (gettext("kk", SUBJECTS[kind]), gettext("ru", SUBJECTS[kind]))
    for name in SENDER_NAMES:
        msg = build_message(f"{name} <noreply@kezek.kz>", "parent@example.kz", content, message_key="kezek-7",
                            at=dt.datetime(2026, 9, 7, 5, tzinfo=dt.UTC))
        for raw in (bytes(msg), flatten_message(msg)):
            parsed = BytesParser(policy=policy.default).parsebytes(raw)
            assert str(parsed["Subject"]) == content.subject, raw[:600]
            [sender] = parsed["From"].addresses
            assert sender.addr_spec == "noreply@kezek.kz"
            head = _head(raw)
            assert all(len(line) <= 78 for line in head), head
            assert all(len(word) <= 75 for line in head for word in ENCODED_WORD.findall(line)), head
            # The display name as RFC 2047 decodes it (the white space between two encoded words
            # dropped) ...
            phrase = BytesParser(policy=policy.compat32).parsebytes(raw)["From"].rsplit("<", 1)[0]
            assert str(make_header(decode_header(phrase))).strip() == name, head
            # ... and as Python's address parser does; it keeps that white space (gh-128110, fixed
            # after 3.11), so it reads a name right only when the name is one encoded word.
            if len(ENCODED_WORD.findall(phrase)) <= 1:
                assert sender.display_name == name, head
