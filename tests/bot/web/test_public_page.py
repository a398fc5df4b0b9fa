"""The public referral page (bot/web/page.py), as a phone opens it from the QR code: every state in
both languages, forged and cut codes, the rate limit, the headers, and nothing of the child beyond
the initials."""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.config import Settings, public_base
from bot.web.page import PageLimiter, make_page_app
from locales import gettext
from locales.formats import format_deadline
from services.clock import FrozenClock
from services.kezek import Kezek
from services.referral_check import check_address
from tests.support.world import World

KG_RU, KG_KK = "Ясли-сад «Акбота»", "«Ақбота» бөбекжай-бақшасы"


@pytest.fixture
async def page(kz: Kezek) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(make_page_app(kz, Settings(page_rate=1000)))) as client:
        yield client


async def referral(world: World, **row: Any) -> tuple[Any, dict[str, Any], str]:
    await world.kz.upsert_kindergartens([
        {"code": "AQB", "district": "ALM-BOS", "name_ru": KG_RU, "name_kk": KG_KK,
         "address": "Алматы, Әуезов көшесі, 12", "languages": "ru,kk"}])
    data = world.row(**row)
    data["child_name"] = "Абенова Айсулу Ерлановна"
    [number] = await world.apps(data)
    published = await world.publish(1, "AQB", language="kk")
    seat = next(s for _, s, n in published.offers if n == number)
    [ref] = await world.kz.claim(number, seat, confirmed_by="telegram:1")
    document = await world.kz.referral_document(ref.id)
    return ref, data, document.token


def text_of(body: str) -> str:
    """The page's visible words: tags dropped, entities read, spaces joined."""
    body = re.sub(r"<style>.*?</style>", " ", body, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def plain(text: str) -> str:
    """Spaces as ``text_of`` leaves them (Babel writes narrow no-break spaces)."""
    return " ".join(text.split())


async def get(client: TestClient, path: str, lang: str = "ru", **headers: str) -> tuple[int, str, Any]:
    async with client.get(path, headers={"Accept-Language": lang, **headers}) as resp:
        return resp.status, await resp.text(), resp.headers


async def test_a_valid_referral_shows_what_the_door_needs_and_nothing_more(
        page: TestClient, world: World) -> None:
    ref, row, token = await referral(world)
    facts = (await world.kz.referral_document(ref.id)).facts
    for lang, kg in (("ru", KG_RU), ("kk", KG_KK)):
        status, body, headers = await get(page, f"/r/{token}", lang)
        seen = text_of(body)
        assert status == 200 and headers["Content-Language"] == lang
        assert gettext(lang, "Genuine referral: valid") in seen
        assert plain(format_deadline(lang, facts.valid_until, zone="local")) in seen  # time and zone
        assert kg in seen and "2023" in seen and "А. А. Е." in seen
        assert gettext(lang, "Language of the group") in seen
        # Nothing that names the child or the family: not the IIN (whole or masked), the name, the
        # application number, the phone or the e-mail.
        for secret in (row["child_iin"], facts.child_iin_masked, "Абенова", "Айсулу", row["number"],
                       row["phone"], row["email"]):
            assert secret not in body, secret


async def test_the_language_follows_the_browser_and_the_switch(page: TestClient, world: World) -> None:
    _ref, _row, token = await referral(world)
    _, body, _ = await get(page, f"/r/{token}", "kk-KZ,kk;q=0.9,ru;q=0.8")
    assert gettext("kk", "Genuine referral: valid") in text_of(body)
    assert '<html lang="kk">' in body
    _, body, _ = await get(page, f"/r/{token}?lang=ru", "kk")
    assert gettext("ru", "Genuine referral: valid") in text_of(body)
    # The switch leads to the same code in the other language; Kazakh first.
    links = re.findall(r'<nav>(.*?)</nav>', body)[0]
    assert links.index("Қазақша") < links.index("Русский") and 'href="?lang=kk"' in links


@pytest.mark.parametrize("lang", ["ru", "kk"])
async def test_admitted_annulled_and_expired_referrals_say_so(
        page: TestClient, world: World, clock: FrozenClock, lang: str) -> None:
    first, _row, used = await referral(world)
    await world.kz.admit(first.id)
    _, body, _ = await get(page, f"/r/{used}", lang)
    assert gettext(lang, "Genuine referral: already used") in text_of(body)

    second, _row, late = await referral(world)
    clock.set(second.showup_due_at + dt.timedelta(minutes=1))  # the deadline passed, no sweep yet
    _, body, _ = await get(page, f"/r/{late}", lang)
    assert gettext(lang, "Genuine referral: expired") in text_of(body)
    await world.kz.run_sweeps()  # ... and now annulled
    _, body, _ = await get(page, f"/r/{late}", lang)
    assert gettext(lang, "Genuine referral: annulled") in text_of(body)


async def test_forged_cut_unknown_and_huge_codes_get_one_clear_page(page: TestClient, world: World) -> None:
    _ref, _row, token = await referral(world)
    changed = token[:-1] + ("A" if token[-1] != "A" else "B")
    for code in (changed, token[:-3], "hello", "A" * 5000, "%00%ff", "../../etc/passwd"):
        status, body, headers = await get(page, f"/r/{code}", "kk")
        assert status in (200, 404), (code, status)
        seen = text_of(body)
        assert "Traceback" not in body and headers["Content-Security-Policy"].startswith("default-src 'none'")
        if status == 200:
            assert gettext("kk", "Not a genuine referral") in seen, code
            assert gettext("kk", "Genuine referral: valid") not in seen
    # A code typed into the form: the same answers.
    _, body, _ = await get(page, f"/r?code={token}", "ru")
    assert gettext("ru", "Genuine referral: valid") in text_of(body)
    _, body, _ = await get(page, "/r?code=nonsense", "ru")
    assert gettext("ru", "Not a genuine referral") in text_of(body)
    _, body, _ = await get(page, "/r", "kk")
    assert gettext("kk", "The verification code from the referral:") in text_of(body)


async def test_unknown_paths_and_methods_get_a_page_not_aiohttp_text(page: TestClient) -> None:
    status, body, headers = await get(page, "/nothing/here", "kk")
    assert status == 404 and "<html" in body and headers["X-Content-Type-Options"] == "nosniff"
    assert gettext("kk", "There is no such page. Scan the QR code of the referral again.") in text_of(body)
    async with page.post("/r/abc", data=b"x") as resp:
        assert resp.status == 405 and "<html" in await resp.text()


async def test_every_answer_carries_the_security_headers(page: TestClient, world: World) -> None:
    _ref, _row, token = await referral(world)
    for path in (f"/r/{token}", "/r", "/r/forged"):
        _, body, headers = await get(page, path)
        csp = headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors 'none'" in csp
        assert headers["Referrer-Policy"] == "no-referrer" and headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Cache-Control"] == "no-store" and headers["X-Frame-Options"] == "DENY"
        assert "<script" not in body  # no script at all: the CSP would refuse one anyway


async def test_a_client_checking_too_often_is_told_to_wait_and_others_are_not(kz: Kezek, world: World) -> None:
    _ref, _row, token = await referral(world)
    moment = [0.0]
    limiter = PageLimiter(3, now=lambda: moment[0])
    async with TestClient(TestServer(make_page_app(kz, Settings(), limiter=limiter))) as client:
        for _ in range(3):
            assert (await get(client, f"/r/{token}"))[0] == 200
        status, body, _ = await get(client, f"/r/{token}", "kk")
        assert status == 429
        assert gettext("kk", "Too many checks from this device. Please try again in a minute.") in text_of(body)
        assert gettext("kk", "Genuine referral: valid") not in text_of(body)
        # Behind the reverse proxy (a loopback peer), each client counts by its X-Real-IP.
        assert (await get(client, f"/r/{token}", **{"X-Real-IP": "203.0.113.7"}))[0] == 200
        moment[0] += 61  # a minute later
        assert (await get(client, f"/r/{token}"))[0] == 200


def test_the_limiter_keeps_bounded_memory() -> None:
    limiter = PageLimiter(5, clients=100)
    for n in range(10_000):
        limiter.allow_now(f"10.0.{n // 256}.{n % 256}")
    assert len(limiter._seen) == 100


def test_the_public_url_must_be_an_https_base() -> None:
    assert public_base(" https://kezek.example.kz/ ") == "https://kezek.example.kz"
    assert public_base("http://127.0.0.1:8082") == "http://127.0.0.1:8082"
    assert public_base("") == ""
    for wrong in ("kezek.example.kz", "http://kezek.example.kz", "https://kezek.example.kz/?a=1",
                  "https://user@kezek.example.kz", "ftp://x", "https://"):
        with pytest.raises(ValueError):
            public_base(wrong)
    assert check_address("https://kezek.example.kz", "TOKEN") == "https://kezek.example.kz/r/TOKEN"


async def test_a_genuine_code_offers_the_staff_the_bot_and_a_forged_one_does_not(kz: Kezek, world: World) -> None:
    from bot.delivery.deeplinks import BotUsername

    _ref, _row, token = await referral(world)
    app = make_page_app(kz, Settings(page_rate=1000), username=BotUsername("kezek_test_bot"))
    async with TestClient(TestServer(app)) as client:
        _, body, _ = await get(client, f"/r/{token}", "kk")
        assert f'href="https://t.me/kezek_test_bot?start={token}"' in body
        assert gettext("kk", "Open in Telegram") in text_of(body)
        _, body, _ = await get(client, f"/r/{token[:-6]}AAAAAA", "kk")
        assert "t.me" not in body
    async with TestClient(TestServer(make_page_app(kz, Settings(page_rate=1000)))) as client:
        _, body, _ = await get(client, f"/r/{token}")  # the bot's name unknown: no link
        assert "t.me" not in body


async def test_the_short_code_typed_from_the_paper_opens_the_same_page(kz: Kezek, world: World) -> None:
    from bot.delivery.deeplinks import BotUsername

    ref, _row, token = await referral(world)
    short = (await kz.referral_document(ref.id)).short
    app = make_page_app(kz, Settings(page_rate=1000), username=BotUsername("kezek_test_bot"))
    async with TestClient(TestServer(app)) as client:
        for typed in (short, short.lower().replace("-", " "), short.replace("-", "")):
            _, body, _ = await get(client, f"/r?code={quote(typed)}", "kk")
            assert gettext("kk", "Genuine referral: valid") in text_of(body), typed
            # The staff's link carries the full token whichever code was typed.
            assert f'href="https://t.me/kezek_test_bot?start={token}"' in body
        _, body, _ = await get(client, f"/r/{short}", "ru")
        assert gettext("ru", "Genuine referral: valid") in text_of(body)
        ident, mac = short.split("-", 1)
        _, body, _ = await get(client, f"/r/{int(ident) + 1}-{mac}", "ru")
        assert gettext("ru", "Not a genuine referral") in text_of(body)


async def test_with_redis_two_instances_share_one_limit_per_client(kz: Kezek, world: World) -> None:
    """Several `kezek run` instances behind nginx: a client's checks count once across them (the
    test's Redis, keys under a prefix of their own); with Redis away, each process counts alone."""
    import uuid

    from bot.web.page import RedisPageLimiter
    from tests.support.databases import redis_client

    redis = await redis_client()
    prefix = f"kezek-test-{uuid.uuid4().hex[:8]}"
    _ref, _row, token = await referral(world)
    try:
        apps = [make_page_app(kz, Settings(), limiter=RedisPageLimiter(redis, 3, prefix=prefix)) for _ in range(2)]
        async with TestClient(TestServer(apps[0])) as one, TestClient(TestServer(apps[1])) as two:
            statuses = [(await get(client, f"/r/{token}"))[0] for client in (one, two, one, two)]
            assert statuses == [200, 200, 200, 429]
            other = {"X-Real-IP": "203.0.113.9"}  # another client behind the same proxy
            assert (await get(two, f"/r/{token}", **other))[0] == 200
    finally:
        keys = [k async for k in redis.scan_iter(f"{prefix}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()

    from redis.asyncio import Redis

    away = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)  # nothing listens there
    limiter = RedisPageLimiter(away, 2, prefix=prefix)
    try:
        async with TestClient(TestServer(make_page_app(kz, Settings(), limiter=limiter))) as client:
            assert [(await get(client, f"/r/{token}"))[0] for _ in range(3)] == [200, 200, 429]
    finally:
        await away.aclose()
