"""The verifiable referral's token and its check: signed tokens that refuse every
alteration, the key (configured, or made once and kept in the database), the verdicts a
kindergarten gets as the clock moves (valid, admitted, annulled, expired, refused), and the two
ways to ask: ``kezek referrals verify`` and ``GET /api/v1/referrals/verify``."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.config import Settings
from services import signing
from services.clock import FrozenClock
from services.kezek import Kezek
from services.referral_check import verdict_as_dict
from services.signing import MAX_TOKEN_CHARS, Signer, TokenError
from storage.db import Database
from storage.models import SigningKey
from tests.support.api import AUTH, KK, api_client, call
from tests.support.world import World, almaty

KEY = b"k" * 32
NOW = almaty(2026, 9, 7, 10, 0)
TOKEN_CHARS = re.compile(r"[A-Za-z0-9_-]+")


# --- the token ------------------------------------------------------------------------------------

def reason(signer: Signer, token: Any, purpose: str = "referral") -> str:
    with pytest.raises(TokenError) as refused:
        signer.verify(purpose, token, now=NOW)
    return refused.value.reason


def test_a_token_is_short_url_safe_and_says_what_it_was_made_for() -> None:
    signer = Signer(KEY)
    for ident in (1, 127, 128, 40_000, 2**63 - 1):
        token = signer.sign("referral", ident)
        assert TOKEN_CHARS.fullmatch(token) and len(token) <= 36
        claims = signer.verify("referral", token, now=NOW)
        assert (claims.purpose, claims.id, claims.expires_at) == ("referral", ident, None)
    assert len(signer.sign("referral", 12_345)) == 27  # fits a QR code of version 2


def test_a_deep_link_token_with_an_expiry_fits_telegrams_start_parameter() -> None:
    signer = Signer(KEY)
    expires = NOW + dt.timedelta(days=14)
    token = signer.sign("link", 10**12, expires_at=expires)
    assert len(token) <= 64 and TOKEN_CHARS.fullmatch(token)  # Telegram's /start parameter
    assert signer.verify("link", token, now=expires - dt.timedelta(seconds=1)).expires_at == expires
    with pytest.raises(TokenError) as late:
        signer.verify("link", token, now=expires)
    assert late.value.reason == "expired"


def test_every_changed_character_and_every_cut_is_refused() -> None:
    signer = Signer(KEY)
    token = signer.sign("referral", 4242)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for i, char in enumerate(token):
        for other in alphabet:
            if other != char:
                altered = token[:i] + other + token[i + 1:]
                assert reason(signer, altered) in ("bad_signature", "malformed"), (i, other)
    for cut in range(len(token)):
        assert reason(signer, token[:cut]) in ("bad_signature", "malformed"), cut
    assert reason(signer, token + "A") in ("bad_signature", "malformed")
    assert reason(signer, token + "==") == "malformed"  # no padding, no other alphabet


def test_another_key_or_another_purpose_is_refused() -> None:
    ours, theirs = Signer(KEY), Signer(b"t" * 32)
    assert reason(ours, theirs.sign("referral", 7)) == "bad_signature"
    # A genuine link token is no referral, even for the same row id.
    assert reason(ours, ours.sign("link", 7, expires_at=NOW + dt.timedelta(days=1))) == "wrong_purpose"
    assert reason(ours, ours.sign("referral", 7), "link") == "wrong_purpose"


def test_a_referral_has_one_token_only() -> None:
    """Even under our key, a second spelling of the same id (an overlong varint) is refused: the
    token a kindergarten sees is the one the referral was printed with."""
    signer = Signer(KEY)
    payload = bytes((0x10, signing.PURPOSES["referral"], 0x85, 0x00))  # id 5, in two bytes
    overlong = signing._b64encode(payload + signer._mac("referral", payload))
    assert reason(signer, overlong) == "malformed"
    assert signer.verify("referral", signer.sign("referral", 5), now=NOW).id == 5


def test_garbage_is_refused_as_malformed() -> None:
    signer = Signer(KEY)
    for junk in ("", " ", "AQ", "../../etc/passwd", "токен", "A" * (MAX_TOKEN_CHARS + 1), None, 12, b"AQEM"):
        assert reason(signer, junk) == "malformed", junk


def test_short_keys_are_refused_and_the_key_is_never_shown() -> None:
    with pytest.raises(ValueError):
        Signer(b"short")
    assert "kkkk" not in repr(Signer(KEY))
    with pytest.raises(ValueError) as bad:
        Settings(_env_file=None, signing_key="too short")  # type: ignore[call-arg]
    assert "too short" not in str(bad.value)  # the bad value is not echoed
    settings = Settings(_env_file=None, signing_key="s" * 40)  # type: ignore[call-arg]
    assert "s" * 40 not in repr(settings) and settings.signing_key_bytes() == b"s" * 40
    assert Settings(_env_file=None).signing_key_bytes() is None  # type: ignore[call-arg]


def test_the_fingerprint_in_a_log_line_does_not_give_the_token_away() -> None:
    token = Signer(KEY).sign("referral", 99)
    assert token not in signing.fingerprint(token) and token[:8] not in signing.fingerprint(token)


# --- the key --------------------------------------------------------------------------------------

async def test_without_a_configured_key_every_instance_shares_the_databases(db: Database, clock: FrozenClock) -> None:
    first, second = Kezek(db, clock), Kezek(db, clock)
    token = (await first.signer()).sign("referral", 5)
    (await second.signer()).verify("referral", token, now=clock.now())  # another process agrees
    async with first.reading() as ctx:
        rows = (await ctx.session.execute(select(SigningKey))).scalars().all()
    assert len(rows) == 1  # made once
    configured = Kezek(db, clock, signing_key=b"c" * 32)
    with pytest.raises(TokenError):
        (await configured.signer()).verify("referral", token, now=clock.now())


# --- verdicts -------------------------------------------------------------------------------------

async def referral(world: World, **row: Any) -> tuple[Any, dict[str, Any]]:
    data = world.row(**row)
    [number] = await world.apps(data)
    pub = await world.publish(1)
    seat = next(s for _, s, n in pub.offers if n == number)
    [ref] = await world.kz.claim(number, seat, confirmed_by="telegram:1")
    return ref, data


async def token_of(kz: Kezek, referral_id: int) -> str:
    return (await kz.referral_document(referral_id)).token


async def test_a_genuine_referral_is_valid_until_its_deadline(kz: Kezek, world: World, clock: FrozenClock) -> None:
    ref, row = await referral(world)
    token = await token_of(kz, ref.id)
    verdict = await kz.verify_referral(token)
    assert (verdict.state, verdict.genuine, verdict.valid) == ("valid", True, True)
    facts = verdict.facts
    assert facts is not None and facts.referral_id == ref.id and facts.application == row["number"]
    assert facts.kindergarten.code == "KG1" and facts.kindergarten.address == "ул. Тимирязева, 1"
    assert (facts.group_language, facts.birth_year) == ("ru", 2023)
    assert facts.valid_until == almaty(2026, 9, 15, 0, 0)
    # What the door needs, never the full IIN, the phone or the e-mail address.
    body = json.dumps(verdict_as_dict(verdict), ensure_ascii=False)
    assert facts.child_iin_masked in body and row["child_iin"][-2:] == facts.child_iin_masked[-2:]
    for secret in (row["child_iin"], row["phone"], row["email"], row["child_name"]):
        assert secret not in body
    clock.set(almaty(2026, 9, 14, 23, 59, 59))
    assert (await kz.verify_referral(token)).state == "valid"  # the last second still counts
    assert (await kz.verify_referral(" " + token + "\n")).state == "valid"  # as pasted


async def test_admitted_means_used(kz: Kezek, world: World, clock: FrozenClock) -> None:
    ref, _ = await referral(world)
    token = await token_of(kz, ref.id)
    clock.advance(days=1)
    await kz.admit(ref.id)
    verdict = await kz.verify_referral(token)
    assert (verdict.state, verdict.genuine, verdict.valid) == ("admitted", True, False)
    assert verdict.facts is not None and verdict.facts.closed_at == clock.now()


async def test_past_the_deadline_it_is_expired_then_annulled(kz: Kezek, world: World, clock: FrozenClock) -> None:
    ref, _ = await referral(world)
    token = await token_of(kz, ref.id)
    clock.set(almaty(2026, 9, 15, 0, 0))  # the show-up deadline passed; the sweep has not run yet
    assert (await kz.verify_referral(token)).state == "expired"
    await kz.run_sweeps()
    verdict = await kz.verify_referral(token)
    assert verdict.state == "annulled" and verdict.facts is not None
    assert verdict.facts.annul_reason == "no_show"


async def test_a_privilege_referral_whose_documents_are_late_is_expired(kz: Kezek, world: World,
                                                                      clock: FrozenClock) -> None:
    ref, _ = await referral(world, privilege="first")
    token = await token_of(kz, ref.id)
    verdict = await kz.verify_referral(token)
    assert verdict.state == "valid" and verdict.facts is not None and verdict.facts.docs_state == "pending"
    assert ref.docs_due_at is not None
    clock.set(ref.docs_due_at)
    assert (await kz.verify_referral(token)).state == "expired"


async def test_refused_tokens_get_one_answer_and_a_log_line_without_the_token(
        kz: Kezek, world: World, caplog: pytest.LogCaptureFixture) -> None:
    ref, row = await referral(world)
    token = await token_of(kz, ref.id)
    signer = await kz.signer()
    forged = [
        token[:-1] + ("A" if token[-1] != "A" else "B"),  # one character changed
        token[:20],  # cut
        Signer(b"x" * 32).sign("referral", ref.id),  # another key
        signer.sign("link", ref.id, expires_at=NOW + dt.timedelta(days=1)),  # another purpose
        signer.sign("referral", ref.id + 1000),  # genuine signature, no such referral
        "",
    ]
    caplog.set_level(logging.WARNING, logger="kezek.referrals")
    answers = [verdict_as_dict(await kz.verify_referral(t)) for t in forged]
    assert all(a == {"state": "refused", "genuine": False, "valid": False, "referral": None} for a in answers)
    assert len([r for r in caplog.records if "refused" in r.getMessage()]) == len(forged)
    logged = caplog.text
    for bad in forged[:5]:
        assert bad not in logged
    for reason_ in ("bad_signature", "malformed", "wrong_purpose", "no such referral"):
        assert reason_ in logged
    assert row["child_iin"] not in logged


# --- the CLI --------------------------------------------------------------------------------------

@pytest.fixture
def cli_referral(tmp_path: Path) -> tuple[Any, str]:
    """A CLI database with one referral (id 1) for application A1; (run, database url)."""
    from services.validation import make_iin
    from tests.support.cli import app_csv, cli_on, seed, write

    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    run = cli_on(url)
    assert run("db", "upgrade").exit_code == 0
    seed(run, tmp_path)
    iin = make_iin(dt.date(2023, 3, 15), 1)
    assert run("import", "applications", write(tmp_path, "a.csv", app_csv([("A1", iin)]))).exit_code == 0
    assert run("seats", "publish", "--kindergarten", "KG1", "--birth-year", "2023", "--language", "ru",
               "--count", "1").exit_code == 0
    claimed = run("claim", "A1", "1", "--confirm", "parent")
    assert claimed.exit_code == 0, claimed.output
    return run, url


def cli_token(run: Any, tmp_path: Path) -> str:
    """The token as a kindergarten gets it: from the QR code of the PDF the CLI writes."""
    from tests.support.documents import qr_tokens

    out = tmp_path / "referral.pdf"
    written = run("referrals", "pdf", "1", "--out", str(out))
    assert written.exit_code == 0, written.output
    assert str(out) in written.output
    token, same = qr_tokens(out.read_bytes())  # a page in Kazakh, a page in Russian
    assert token == same
    return token


def test_cli_verify_says_genuine_and_valid_and_exits_0(cli_referral: tuple[Any, str], tmp_path: Path) -> None:
    run, _ = cli_referral
    token = cli_token(run, tmp_path)
    ru = run("referrals", "verify", token)
    assert ru.exit_code == 0, ru.output
    assert "Подлинное направление № 1" in ru.output and "ребёнка можно зачислить" in ru.output
    assert "A1" in ru.output and "Ясли-сад №1" in ru.output and "ул. Абая, 1" in ru.output
    kk = run("referrals", "verify", token, lang="kk")
    assert kk.exit_code == 0 and "№1 жолдама түпнұсқа" in kk.output and "№1 бөбекжай-бақша" in kk.output
    as_json = run("referrals", "verify", "--json", token)
    body = json.loads(as_json.output)
    assert as_json.exit_code == 0 and body["state"] == "valid" and body["referral"]["application"] == "A1"
    assert body["referral"]["valid_until"] == "2026-09-15T00:00:00+05:00"
    unknown = run("referrals", "pdf", "42", "--out", str(tmp_path / "none.pdf"))
    assert unknown.exit_code == 1 and not (tmp_path / "none.pdf").exists() and "Traceback" not in unknown.output


def test_cli_verify_refuses_an_altered_token_and_exits_1(cli_referral: tuple[Any, str], tmp_path: Path) -> None:
    run, _ = cli_referral
    token = cli_token(run, tmp_path)
    altered = token[:5] + ("a" if token[5] != "a" else "b") + token[6:]
    for lang, words in (("ru", "не подтверждает подлинное направление"), ("kk", "түпнұсқа жолдамасын растамайды")):
        refused = run("referrals", "verify", altered, lang=lang)
        assert refused.exit_code == 1 and words in refused.output and "Traceback" not in refused.output
        assert "A1" not in refused.output  # nothing about any referral


def test_cli_verify_exit_codes_follow_the_referral(cli_referral: tuple[Any, str], tmp_path: Path) -> None:
    run, _ = cli_referral
    token = cli_token(run, tmp_path)
    late = run("referrals", "verify", token, now="2026-09-15T00:00:00+05:00")  # deadline passed, not swept
    assert late.exit_code == 5 and "больше не действует" in late.output
    assert run("referrals", "admit", "1", now="2026-09-08T10:00:00+05:00").exit_code == 0
    used = run("referrals", "verify", token, now="2026-09-08T11:00:00+05:00", lang="kk")
    assert used.exit_code == 3 and "пайдаланылып қойған" in used.output


def test_cli_verify_an_annulled_referral_exits_4(cli_referral: tuple[Any, str], tmp_path: Path) -> None:
    run, _ = cli_referral
    token = cli_token(run, tmp_path)
    assert run("sweep", now="2026-09-16T10:00:00+05:00").exit_code == 0
    annulled = run("referrals", "verify", token, now="2026-09-16T10:00:00+05:00")
    assert annulled.exit_code == 4 and "аннулировано" in annulled.output


# --- the API --------------------------------------------------------------------------------------

async def test_api_verify(kz: Kezek, world: World, clock: FrozenClock) -> None:
    ref, row = await referral(world)
    token = await token_of(kz, ref.id)
    async with api_client(kz) as client:
        body = await call(client, "GET", "/referrals/verify", params={"token": token}, status=200)
        assert (body["state"], body["genuine"], body["valid"]) == ("valid", True, True)
        assert body["referral"]["id"] == ref.id and body["referral"]["application"] == row["number"]
        assert body["referral"]["kindergarten"]["code"] == "KG1"
        assert "Подлинное направление" in body["message"]
        assert row["child_iin"] not in json.dumps(body, ensure_ascii=False)

        kk = await call(client, "GET", "/referrals/verify", params={"token": token[:-2]}, headers=KK, status=200)
        assert kk["state"] == "refused" and kk["referral"] is None and "түпнұсқа" in kk["message"]

        # The same bearer token as the rest of /api/v1.
        await call(client, "GET", "/referrals/verify", params={"token": token}, headers={}, status=401)
        await call(client, "GET", "/referrals/verify", params={"token": token},
                   headers={"Authorization": "Bearer " + "w" * 40}, status=401)
        missing = await call(client, "GET", "/referrals/verify", status=422)
        assert missing["error"] == "missing_field" and missing["errors"][0]["field"] == "token"

        await kz.admit(ref.id)
        used = await call(client, "GET", "/referrals/verify", params={"token": token}, headers=AUTH, status=200)
        assert used["state"] == "admitted" and used["valid"] is False and used["referral"]["status"] == "admitted"


async def test_api_answers_are_in_almaty_time(kz: Kezek, world: World) -> None:
    ref, _ = await referral(world)
    async with api_client(kz) as client:
        body = await call(client, "GET", "/referrals/verify", params={"token": await token_of(kz, ref.id)},
                          status=200)
    assert body["referral"]["issued_at"] == almaty(2026, 9, 7, 10, 0).isoformat()
    assert body["referral"]["valid_until"] == "2026-09-15T00:00:00+05:00"


# --- rotating the key -------------------------------------------------------------------------------

def test_a_previous_key_still_verifies_and_new_tokens_use_the_new_key() -> None:
    old, new = b"o" * 32, b"n" * 32
    made_before = Signer(old).sign("referral", 7)
    rotated = Signer(new, previous=[old])
    assert rotated.verify("referral", made_before, now=NOW).id == 7
    made_after = rotated.sign("referral", 8)
    assert Signer(new).verify("referral", made_after, now=NOW).id == 8  # signed with the new key
    assert reason(Signer(old), made_after) == "bad_signature"
    assert reason(Signer(new), made_before) == "bad_signature"  # once the old key is dropped
    assert reason(Signer(new, previous=[b"x" * 32]), made_before) == "bad_signature"
    with pytest.raises(ValueError):
        Signer(new, previous=[b"short"])


def test_the_previous_key_setting_needs_the_new_one_and_is_never_shown() -> None:
    with pytest.raises(ValueError) as bad:
        Settings(_env_file=None, signing_key_previous="p" * 40)  # type: ignore[call-arg]
    assert "p" * 40 not in str(bad.value) and "KEZEK_SIGNING_KEY" in str(bad.value)
    settings = Settings(_env_file=None, signing_key="s" * 40, signing_key_previous="p" * 40)  # type: ignore[call-arg]
    assert settings.previous_signing_keys() == (b"p" * 40,) and "p" * 40 not in repr(settings)
    assert Settings(_env_file=None, signing_key="s" * 40).previous_signing_keys() == ()  # type: ignore[call-arg]


def test_cli_verify_across_a_key_rotation(cli_referral: tuple[Any, str], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A referral printed under the old key is still genuine after the rotation while the old key is
    KEZEK_SIGNING_KEY_PREVIOUS, and refused once it is dropped."""
    from bot.config import get_settings

    run, _ = cli_referral
    old, new = "old-key-" + "o" * 32, "new-key-" + "n" * 32

    def setenv(name: str, value: str | None) -> None:  # (the CLI reads the settings once a process)
        if value is None:
            monkeypatch.delenv(name)
        else:
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    setenv("KEZEK_SIGNING_KEY", old)
    printed = cli_token(run, tmp_path)
    setenv("KEZEK_SIGNING_KEY", new)
    assert run("referrals", "verify", printed).exit_code == 1  # the new key alone refuses it
    setenv("KEZEK_SIGNING_KEY_PREVIOUS", old)
    kept = run("referrals", "verify", printed)
    assert kept.exit_code == 0 and "Подлинное направление № 1" in kept.output, kept.output
    reprinted = cli_token(run, tmp_path)  # a PDF made now carries a token under the new key
    assert reprinted != printed
    setenv("KEZEK_SIGNING_KEY_PREVIOUS", None)
    assert run("referrals", "verify", reprinted).exit_code == 0
    assert run("referrals", "verify", printed).exit_code == 1
    monkeypatch.undo()
    get_settings.cache_clear()  # (the next test reads the settings without these keys)


def test_short_codes_name_their_row_under_their_key_only() -> None:
    new, old = b"n" * 32, b"o" * 32
    for ident in (1, 7, 123456, 2**63 - 1):
        code = Signer(old).short_code("referral", ident)
        ident_text, mac = code.split("-", 1)
        assert signing.normalise_short(code.lower().replace("-", " ")) == f"{ident_text}-{mac.replace('-', '')}"
        assert Signer(new, [old]).verify_short("referral", code) == ident  # a rotated key still reads it
        with pytest.raises(TokenError):
            Signer(new).verify_short("referral", code)  # another key
        with pytest.raises(TokenError):
            Signer(old).verify_short("link", code)  # made for another purpose
    for junk in ("", "-", "12", "abc-DEFG-HJKM", "1-UUUU-UUUU", "1" * 40 + "-ABCD-EFGH", None, 12):
        assert signing.normalise_short(junk) is None, junk
