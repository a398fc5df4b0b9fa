"""The registry HTTP API (bot/api/server.py) through aiohttp's test client, on SQLite and PostgreSQL:
every endpoint with good input; every kind of bad input gets a clear JSON error and writes
nothing (row counts of every table before and after); the sandbox clock walks an offer past 20:00
and a referral past its show-up deadline."""

from __future__ import annotations

import datetime as dt
import logging
import types
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

import bot.api.routes as api_module
from bot.api.auth import AuthGuard
from bot.api.errors import request_language
from bot.api.openapi import openapi
from bot.api.server import make_api_app, serve_api
from bot.sandbox.clock import parse_iso_duration as parse_duration
from services.calendar import ALMATY
from services.clock import FrozenClock, SandboxClock
from services.kezek import Kezek
from storage.db import Database
from tests.support.api import (
    AUTH,
    DOC,
    KK,
    TOKEN,
    api_client,
    app_row,
    call,
    conforms,
    counts,
    district_rows,
    kindergarten_rows,
    load_directory,
    make_settings,
    serving,
)
from tests.support.world import World, almaty, registrations_sent


@pytest.fixture
async def api(kz: Kezek) -> AsyncIterator[TestClient]:
    async with api_client(kz, api_max_body_bytes=64 * 1024) as client:
        yield client


# --- the service routes, auth and the document ---------------------------------------------------

async def test_health_needs_no_token_and_checks_the_database(api: TestClient, kz: Kezek, tmp_path) -> None:
    assert await call(api, "GET", "/health", status=200, headers={}) == {"status": "ok", "database": "ok"}
    broken = Kezek(Database(f"sqlite:///{tmp_path}/no/such/dir/kezek.sqlite3"), kz.clock)
    async with api_client(broken) as client:
        body = await call(client, "GET", "/health", status=503, headers={})
    assert body["status"] == "unavailable"
    await broken.db.dispose()


async def test_openapi_is_valid_public_and_lists_exactly_the_routes(kz: Kezek) -> None:
    from openapi_spec_validator import validate

    doc = openapi()
    validate(doc)
    clock = SandboxClock(almaty(2026, 9, 7, 10, 0), real=FrozenClock(almaty(2026, 9, 7, 10, 0)))
    app = make_api_app(kz, make_settings(sandbox=True), sandbox_clock=clock)
    routes = {(r.method.lower(), r.resource.canonical.removeprefix("/api/v1"))  # type: ignore[union-attr]
              for r in app.router.routes()}
    documented = {(m, path) for path, ops in doc["paths"].items() for m in ops}
    assert routes == documented
    async with api_client(kz) as client:
        served = await call(client, "GET", "/openapi.json", status=200, headers={})
    assert served == openapi(max_rows=5000, birth_years=(2018, 2026))  # the server's limits and clock
    schemas = served["components"]["schemas"]
    assert schemas["SeatsRequest"]["properties"]["birth_year"] | {"minimum": 2018, "maximum": 2026} == \
        schemas["SeatsRequest"]["properties"]["birth_year"]
    assert served["paths"]["/applications"]["post"]["requestBody"]["content"]["application/json"]["schema"][
        "maxItems"] == 5000
    assert served["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert served["paths"]["/health"]["get"]["security"] == []


async def test_missing_malformed_and_wrong_tokens_get_401(api: TestClient, kz: Kezek) -> None:
    before = await counts(kz)
    for headers in ({}, {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"},
                    {"Authorization": "Bearer"}, {"Authorization": "Bearer "}):
        resp = await api.post("/api/v1/districts", json=district_rows(), headers=headers)
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await resp.json())["error"] == "unauthorized"
    resp = await api.post("/api/v1/districts", json=district_rows(),
                          headers={"Authorization": "Bearer " + TOKEN[:-1] + "y", "Accept-Language": "kk"})
    assert resp.status == 401
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    assert resp.headers["Content-Language"] == "kk"
    assert await counts(kz) == before
    # the scheme is case-insensitive (RFC 7235)
    assert await call(api, "POST", "/districts", json=district_rows(), status=200,
                      headers={"Authorization": f"bearer {TOKEN}"}) == {"upserted": 2}


async def test_no_configured_token_refuses_all_but_the_public_routes(kz: Kezek) -> None:
    async with api_client(kz, api_token="") as client:
        body = await call(client, "GET", "/stats", status=403)
        assert body["error"] == "api_not_configured"
        await call(client, "POST", "/districts", json=district_rows(), status=403, headers={})
        await call(client, "GET", "/health", status=200, headers={})
        await call(client, "GET", "/openapi.json", status=200, headers={})
        await call(client, "GET", "/metrics", status=403, headers={})
    with pytest.raises(ValueError, match="at least 32"):
        make_api_app(kz, make_settings(api_token="short"))


async def test_metrics_need_the_token_like_every_route_but_health_and_openapi(api: TestClient) -> None:
    """SECURITY.md: only /health and /openapi.json are public."""
    for headers in ({}, {"Authorization": "Bearer " + "w" * 40}):
        resp = await api.get("/api/v1/metrics", headers=headers)
        assert resp.status == 401 and (await resp.json())["error"] == "unauthorized"
    resp = await api.get("/api/v1/metrics", headers=AUTH)
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
    assert "kezek_database_up" in await resp.text()
    public = {path for path, ops in DOC["paths"].items() if ops.get("get", {}).get("security") == []}
    assert public == {"/health", "/openapi.json"}


async def test_brute_force_locks_the_address_out_for_a_while(kz: Kezek) -> None:
    now = [1000.0]
    guard = AuthGuard(limit=20, window=60, lockout=300, clock=lambda: now[0])
    wrong = {"Authorization": "Bearer " + "w" * 40}
    async with api_client(kz, guard=guard) as client:
        for _ in range(19):
            await call(client, "GET", "/stats", status=401, headers=wrong)
        await call(client, "GET", "/stats", status=200)  # the right token still works
        await call(client, "GET", "/stats", status=401, headers=wrong)  # the 20th wrong one
        resp = await client.get("/api/v1/stats", headers=AUTH)
        assert resp.status == 429
        assert (await resp.json())["error"] == "too_many_attempts"
        assert 0 < int(resp.headers["Retry-After"]) <= 300
        await call(client, "GET", "/health", status=200, headers={})  # public routes stay open
        now[0] += 301
        await call(client, "GET", "/stats", status=200)
        # failures spread wider than the window never lock anyone out
        for _ in range(30):
            now[0] += 4
            await call(client, "GET", "/stats", status=401, headers=wrong)
        await call(client, "GET", "/stats", status=200)


async def test_unknown_routes_and_wrong_methods_answer_json(api: TestClient) -> None:
    body = await call(api, "GET", "/nothing/here", status=404)
    assert body["error"] == "not_found" and body["message"]
    await call(api, "GET", "/nothing/here", status=404, headers={})
    resp = await api.get("/api/v1/districts", headers=AUTH)
    assert resp.status == 405 and resp.content_type == "application/json"
    assert (await resp.json())["error"] == "method_not_allowed"
    assert "POST" in resp.headers["Allow"]
    await call(api, "DELETE", "/applications/A1", status=405)
    await call(api, "POST", "/sandbox/clock", json={"advance": "PT1H"}, status=404)


def test_accept_language() -> None:
    def lang(header: str) -> str:
        return request_language(types.SimpleNamespace(headers={"Accept-Language": header}))  # type: ignore[arg-type]

    assert lang("") == "ru"
    assert lang("kk") == "kk"
    assert lang("kk-KZ,ru;q=0.8") == "kk"
    assert lang("ru;q=0.5, kk;q=0.9") == "kk"
    assert lang("en-US,en;q=0.9") == "ru"
    assert lang("en, kz;q=0.3") == "kk"
    assert lang("kk;q=0") == "ru"


# --- registry loads --------------------------------------------------------------------------------

async def test_loads_and_the_status_of_an_application(api: TestClient, kz: Kezek) -> None:
    await load_directory(api)
    rows = [app_row(1), app_row(2, preferred_kindergartens=["KG1"]), app_row(3, privilege="first")]
    assert await call(api, "POST", "/applications", json=rows, status=200) == \
        {"created": 3, "updated": 0, "unchanged": 0}
    rows[0]["child_name"] = "Ребёнок Первый"
    assert await call(api, "POST", "/applications", json=rows, status=200) == \
        {"created": 0, "updated": 1, "unchanged": 2}
    # a district renamed: an upsert by code
    renamed = [{**district_rows()[0], "name_ru": "Бостандыкский р-н"}]
    assert await call(api, "POST", "/districts", json=renamed, status=200) == {"upserted": 1}

    status = await call(api, "GET", "/applications/A00002", status=200)
    assert status["number"] == "A00002"
    assert (status["status"], status["state"]) == ("queued", "waiting")
    assert (status["district"], status["birth_year"]) == ("ALM-BOS", 2023)
    assert status["queue_number"] == 3  # the first-priority A00003 is ahead
    assert status["preferred_kindergartens"] == ["KG1"]
    assert status["offers"] == [] and status["referral"] is None and status["referrals"] == []
    # Almaty time of that moment: UTC+6 until March 2024
    assert status["submitted_at"] == "2024-01-01T09:02:00+06:00"
    assert "child_iin" not in status and "phone" not in status  # no personal data in a status

    # numbers are codes, which may hold a slash
    assert await call(api, "POST", "/applications", json=[app_row(9, number="2024/0009")], status=200) == \
        {"created": 1, "updated": 0, "unchanged": 0}
    for path in ("/applications/2024/0009", "/applications/2024%2F0009"):
        assert (await call(api, "GET", path, status=200))["number"] == "2024/0009"
    for odd in ("NOPE", "A%00B", "%D0%90", "x" * 300, "A00002%20", "A00002;drop"):
        assert (await call(api, "GET", f"/applications/{odd}", status=404))["error"] == "application_not_found"
    body = await call(api, "GET", "/applications/NOPE", status=404)
    assert body["error"] == "application_not_found"
    kk = await call(api, "GET", "/applications/NOPE", status=404, headers=KK)
    assert kk["message"] != body["message"]


async def test_empty_lists_write_nothing_and_answer_zero(api: TestClient, kz: Kezek) -> None:
    before = await counts(kz)
    assert await call(api, "POST", "/districts", json=[], status=200) == {"upserted": 0}
    assert await call(api, "POST", "/applications", json=[], status=200) == \
        {"created": 0, "updated": 0, "unchanged": 0}
    assert await counts(kz) == before


BAD_APPLICATIONS = {
    # the API takes what its OpenAPI document says: a list is a JSON array, a date a string
    "wrong types": ([app_row(1, child_name={"first": "A"}), app_row(2, preferred_kindergartens="KG1;KG1"),
                     app_row(3, birth_date=20230315), app_row(4, preferred_kindergartens=["KG1", "KG1"]),
                     app_row(5, birth_date="2023-02-30")],
                    [(0, "child_name", "invalid_field", "type"), (1, "preferred_kindergartens", "invalid_field",
                                                                   "type"),
                     (2, "birth_date", "invalid_field", "type"),
                     (3, "preferred_kindergartens", "invalid_field", "duplicates"),
                     (4, "birth_date", "invalid_field", "date")]),
    "unknown district": ([app_row(1), app_row(2, district="NOWHERE")],
                         [(1, "district", "unknown_district", None)]),
    "invalid IIN": ([app_row(1, child_iin="230315500001"), app_row(2, child_iin="12345")],
                    [(0, "child_iin", "invalid_iin", "checksum"), (1, "child_iin", "invalid_iin", "format")]),
    "duplicate numbers": ([app_row(1), app_row(2), {**app_row(3), "number": "A00001"}],
                          [(2, "number", "duplicate_in_batch", None)]),
    "missing field and not an object": ([app_row(1, phone=None), ["not", "an", "object"], None],
                                        [(0, "phone", "missing_field", None), (1, "*", "invalid_field", "object"),
                                         (2, "*", "invalid_field", "object")]),
    "bad phone and e-mail": ([app_row(1, phone="12345"), app_row(2, email="nobody")],
                             [(0, "phone", "invalid_phone", None), (1, "email", "invalid_email", None)]),
    "unknown preferred kindergarten": ([app_row(1, preferred_kindergartens=["KG9"])],
                                       [(0, "preferred_kindergartens", "unknown_kindergarten", None)]),
}


@pytest.mark.parametrize("case", list(BAD_APPLICATIONS))
async def test_bad_applications_are_refused_whole(api: TestClient, kz: Kezek, case: str) -> None:
    await load_directory(api)
    rows, expected = BAD_APPLICATIONS[case]
    before = await counts(kz)
    body = await call(api, "POST", "/applications", json=rows, status=422)
    assert body["error"] == "bulk_rejected"
    assert [(e["index"], e["field"], e["reason"], e.get("detail")) for e in body["errors"]] == expected
    assert all(e["message"] for e in body["errors"])
    kk = await call(api, "POST", "/applications", json=rows, status=422, headers=KK)
    assert [e["message"] for e in kk["errors"]] != [e["message"] for e in body["errors"]]
    assert kk["message"] != body["message"]
    assert await counts(kz) == before


async def test_the_messages_are_localized(api: TestClient) -> None:
    await load_directory(api)
    body = await call(api, "POST", "/applications", json=[app_row(1, district="NOWHERE")], status=422)
    assert body["message"] == "Загрузка отклонена, ничего не сохранено: ошибка в 1 записи."
    assert body["errors"][0]["message"] == "Район с кодом «NOWHERE» не найден."
    kk = await call(api, "POST", "/applications", json=[app_row(1, district="NOWHERE")], status=422, headers=KK)
    assert kk["message"] == "Жүктеу қабылданбады, ештеңе сақталмады: 1 жазбада қате бар."
    assert kk["errors"][0]["message"] == "«NOWHERE» коды бар аудан табылмады."
    kk = await call(api, "POST", "/applications", json=[app_row(1, child_iin="12345")], status=422, headers=KK)
    assert kk["errors"][0]["message"] == "ЖСН 12 цифрдан тұруы тиіс."


async def test_bad_bodies_of_every_kind(api: TestClient, kz: Kezek) -> None:
    await load_directory(api)
    before = await counts(kz)
    for path in ("/districts", "/kindergartens", "/applications", "/calendar/days"):
        for raw in (b"{not json", b"", b"  ", b"[1, 2", b"[NaN]", b"[Infinity]", b"\xff\xfe[]",
                    "[\"\udc80\"]".encode("utf-8", "surrogatepass"), b'[{"name_ru": "\\ud800"}]'):
            body = await call(api, "POST", path, data=raw, status=400,
                              headers={**AUTH, "Content-Type": "application/json"})
            assert body["error"] == "bad_json"
        for wrong in (b'{"code": "X"}', b'"text"', b"3", b"null", b"true"):
            body = await call(api, "POST", path, data=wrong, status=422)
            assert body["error"] == "not_array"
    body = await call(api, "POST", "/seats", json=[{"kindergarten": "KG1"}], status=422)
    assert body["error"] == "not_object"
    deep = b"[" * 100_000 + b"]" * 100_000
    async with api_client(kz, api_max_body_bytes=1024 * 1024) as client:
        assert (await call(client, "POST", "/applications", data=deep, status=400))["error"] == "bad_json"
    assert await counts(kz) == before


async def test_a_body_over_the_limit_gets_413(api: TestClient, kz: Kezek) -> None:
    await load_directory(api)
    before = await counts(kz)
    rows = [app_row(n) for n in range(1, 400)]  # well over 64 KiB
    body = await call(api, "POST", "/applications", json=rows, status=413)
    assert body["error"] == "body_too_large"
    assert "65" in body["message"]  # 65 536, formatted
    assert await counts(kz) == before
    async with api_client(kz, api_max_body_bytes=1024 * 1024) as client:  # the same rows fit a larger limit
        await call(client, "POST", "/applications", json=rows, status=200)


async def test_bad_directory_rows(api: TestClient, kz: Kezek) -> None:
    before = await counts(kz)
    body = await call(api, "POST", "/districts", status=422, json=[
        district_rows()[0], {"code": "bad code!", "name_ru": "x", "name_kk": "y"}, {"code": "D3", "name_ru": "x"},
        district_rows()[0]])
    assert [(e["index"], e["field"], e["reason"]) for e in body["errors"]] == [
        (1, "code", "invalid_field"), (2, "name_kk", "missing_field")]
    body = await call(api, "POST", "/districts", status=422, json=[district_rows()[0], district_rows()[0]])
    assert [(e["index"], e["reason"]) for e in body["errors"]] == [(1, "duplicate_in_batch")]
    body = await call(api, "POST", "/kindergartens", json=kindergarten_rows(), status=422)
    assert {e["reason"] for e in body["errors"]} == {"unknown_district"}
    body = await call(api, "POST", "/districts", json=[{**district_rows()[0], "profile": "nope"}], status=422)
    assert body["errors"][0]["reason"] == "unknown_profile"
    assert await counts(kz) == before


# --- seats, referrals, documents, calendar ----------------------------------------------------------

async def test_publishing_seats_answers_with_the_offers(api: TestClient, kz: Kezek, world: World) -> None:
    a, b, c = await world.apps(world.row(), world.row(), world.row())
    body = await call(api, "POST", "/seats", status=200,
                      json={"kindergarten": "KG1", "birth_year": 2023, "language": "ru", "count": 2})
    assert len(body["seats"]) == 2 and body["private"] is False
    assert [o["application"] for o in body["offers"]] == [a, b]
    offer = body["offers"][0]
    assert (offer["kindergarten"], offer["birth_year"], offer["language"], offer["status"]) == \
        ("KG1", 2023, "ru", "open")
    assert offer["expires_at"] == "2026-09-07T20:00:00+05:00"
    status = await call(api, "GET", f"/applications/{a}", status=200)
    assert status["state"] == "offer_open" and status["offers"][0]["id"] == offer["id"]
    # an offer does not take a child out of the queue; a referral does
    assert (await call(api, "GET", f"/applications/{c}", status=200))["queue_number"] == 3
    # a private kindergarten under the state order: open seats, no offers
    body = await call(api, "POST", "/seats", status=200,
                      json={"kindergarten": "PRIV", "birth_year": 2023, "language": "kk", "count": 1})
    assert body["private"] is True and body["offers"] == []


@pytest.mark.parametrize("seat, field, reason", [
    ({"kindergarten": "NOPE", "birth_year": 2023, "language": "ru", "count": 1}, "kindergarten",
     "unknown_kindergarten"),
    ({"kindergarten": "KG1", "birth_year": 2023, "language": "ru", "count": 0}, "count", "invalid_field"),
    ({"kindergarten": "KG1", "birth_year": 2023, "language": "en", "count": 1}, "language", "invalid_field"),
    ({"kindergarten": "KG1", "birth_year": True, "language": "ru", "count": 1}, "birth_year", "invalid_field"),
    ({"kindergarten": "KG1", "birth_year": 1990, "language": "ru", "count": 1}, "birth_year", "invalid_field"),
    ({"kindergarten": "KG1", "language": "ru", "count": 1}, "birth_year", "missing_field"),
    ({"kindergarten": "KG1", "birth_year": 2023, "language": "ru", "count": "many"}, "count", "invalid_field"),
])
async def test_bad_seats(api: TestClient, kz: Kezek, world: World, seat: dict[str, Any], field: str,
                         reason: str) -> None:
    await world.apps(world.row())
    before = await counts(kz)
    body = await call(api, "POST", "/seats", json=seat, status=422)
    (error,) = body["errors"]
    assert (error["index"], error["field"], error["reason"]) == (None, field, reason)
    assert await counts(kz) == before


async def claim_first(api: TestClient, kz: Kezek, number: str) -> int:
    body = await call(api, "POST", "/seats", status=200,
                      json={"kindergarten": "KG1", "birth_year": 2023, "language": "ru", "count": 1})
    (offer,) = body["offers"]
    assert offer["application"] == number
    (ref,) = await kz.claim(number, offer["seat_id"], confirmed_by="telegram:42")
    return ref.id


async def test_admission(api: TestClient, kz: Kezek, world: World) -> None:
    (a,) = await world.apps(world.row())
    ref_id = await claim_first(api, kz, a)
    status = await call(api, "GET", f"/applications/{a}", status=200)
    assert status["state"] == "referred" and status["queue_number"] is None
    assert status["referral"]["id"] == ref_id
    assert status["referral"]["showup_due_at"] == "2026-09-15T00:00:00+05:00"
    body = await call(api, "POST", f"/referrals/{ref_id}/admission", status=200)
    assert body["referral"]["status"] == "admitted" and body["referral"]["application"] == a
    assert (await call(api, "GET", f"/applications/{a}", status=200))["state"] == "admitted"
    before = await counts(kz)
    again = await call(api, "POST", f"/referrals/{ref_id}/admission", status=409)
    assert again["error"] == "referral_not_active" and again["details"] == {"status": "admitted"}
    for bad in ("999999", "abc", "1e3", "-1", "99999999999999999999999", "٣"):
        assert (await call(api, "POST", f"/referrals/{bad}/admission", status=404))["error"] == "referral_not_found"
    assert await counts(kz) == before


async def test_admission_after_the_deadline_is_refused(api: TestClient, kz: Kezek, world: World,
                                                       clock: FrozenClock) -> None:
    (a,) = await world.apps(world.row())
    ref_id = await claim_first(api, kz, a)
    clock.set(almaty(2026, 9, 15, 9, 0))
    before = await counts(kz)
    body = await call(api, "POST", f"/referrals/{ref_id}/admission", status=409)
    assert body["error"] == "showup_deadline_passed" and "due_at" in body["details"]
    assert await counts(kz) == before


async def test_privilege_documents(api: TestClient, kz: Kezek, world: World) -> None:
    a, b, c = await world.apps(world.row(privilege="first"), world.row(privilege="out_of_turn"), world.row())
    ref_b = await claim_first(api, kz, b)  # out-of-turn first
    ref_a = await claim_first(api, kz, a)
    ref_c = await claim_first(api, kz, c)
    status = await call(api, "GET", f"/applications/{a}", status=200)
    assert status["referral"]["docs_state"] == "pending" and status["referral"]["docs_due_at"]
    # admission waits for the documents
    assert (await call(api, "POST", f"/referrals/{ref_a}/admission", status=409))["error"] == "documents_pending"
    before = await counts(kz)
    for bad, reason in (({"decision": "maybe"}, "invalid_field"), ({}, "missing_field"),
                        ({"decision": True}, "invalid_field")):
        body = await call(api, "POST", f"/referrals/{ref_a}/documents", json=bad, status=422)
        assert (body["errors"][0]["field"], body["errors"][0]["reason"]) == ("decision", reason)
    assert (await call(api, "POST", f"/referrals/{ref_c}/documents", json={"decision": "accepted"},
                       status=409))["error"] == "documents_not_pending"
    assert await counts(kz) == before

    body = await call(api, "POST", f"/referrals/{ref_a}/documents", json={"decision": "accepted"}, status=200)
    assert (body["referral"]["status"], body["referral"]["docs_state"]) == ("issued", "accepted")
    await call(api, "POST", f"/referrals/{ref_a}/admission", status=200)

    body = await call(api, "POST", f"/referrals/{ref_b}/documents", json={"decision": "rejected"}, status=200)
    assert (body["referral"]["status"], body["referral"]["annul_reason"]) == ("annulled", "docs_rejected")
    status = await call(api, "GET", f"/applications/{b}", status=200)
    assert (status["state"], status["privilege"], status["referral"]) == ("offer_open", "none", None)
    assert status["referrals"][0]["id"] == ref_b  # its seat came back and was offered to it again


async def test_calendar_days(api: TestClient, kz: Kezek) -> None:
    days = [{"day": "2026-09-08", "working": False, "name": "Перенесённый выходной"},
            {"day": "2026-09-12", "working": True}]
    assert await call(api, "POST", "/calendar/days", json=days, status=200) == {"days": 2}
    async with kz.reading() as ctx:
        assert not ctx.calendar.is_working_day(dt.date(2026, 9, 8))
        assert ctx.calendar.is_working_day(dt.date(2026, 9, 12))
        assert ctx.calendar.holiday_name(dt.date(2026, 9, 8)) == "Перенесённый выходной"
    before = await counts(kz)
    body = await call(api, "POST", "/calendar/days", status=422, json=[
        {"day": "2026-09-09", "working": False}, {"day": "2026-02-30", "working": False},
        {"day": "2026-09-10"}, {"day": "2026-09-09", "working": True}, {"day": "2026-09-11", "working": "perhaps"},
        "2026-09-14", {"day": "2026-09-15", "working": "false"}, {"day": "2026-09-16", "working": True, "name": None}])
    assert [(e["index"], e["field"], e["reason"]) for e in body["errors"]] == [
        (1, "day", "invalid_field"), (2, "working", "missing_field"),
        (4, "working", "invalid_field"), (5, "*", "invalid_field"), (6, "working", "invalid_field"),
        (7, "name", "invalid_field")]
    # a day twice: found once every day is well-formed
    body = await call(api, "POST", "/calendar/days", status=422, json=[
        {"day": "2026-09-09", "working": False}, {"day": "2026-09-09", "working": True}])
    assert [(e["index"], e["field"], e["reason"]) for e in body["errors"]] == [(1, "day", "duplicate_in_batch")]
    assert await counts(kz) == before
    async with kz.reading() as ctx:
        assert ctx.calendar.is_working_day(dt.date(2026, 9, 9))


async def test_stats_and_outbox(api: TestClient, kz: Kezek, world: World) -> None:
    (a,) = await world.apps(world.row())
    await registrations_sent(kz)
    await claim_first(api, kz, a)
    stats = await call(api, "GET", "/stats", status=200)
    assert stats["applications"] == {"referred": 1}
    assert stats["seats"] == {"taken": 1} and stats["referrals"] == {"issued": 1}
    assert stats["offers"] == {"claimed": 1}
    assert stats["backlog"]["outbox_pending"] == stats["outbox"]["pending"] == 2  # turn came, referral
    await kz.route_notices()
    stats = await call(api, "GET", "/stats", status=200)
    assert stats["backlog"]["outbox_pending"] == 0
    assert stats["backlog"]["deliveries"]["email"]["due_now"] == 2
    report = await call(api, "GET", "/outbox", status=200)
    assert report["deliveries"]["email"]["pending"] == 2
    assert report["failed_latest"] == [] and report["blocked_chats"] == 0


async def test_an_unexpected_failure_is_a_bare_500_logged_without_personal_data(
        api: TestClient, kz: Kezek, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    async def boom(*args: Any, **kw: Any) -> Any:
        raise RuntimeError("child 230315500001, phone +77011234567")

    monkeypatch.setattr(kz, "stats", boom)
    monkeypatch.setattr(kz, "import_applications", boom)
    with caplog.at_level(logging.INFO, logger="kezek.api"):
        body = await call(api, "GET", "/stats", status=500)
        assert body["error"] == "internal" and "230315500001" not in str(body)
        await call(api, "POST", "/applications", json=[app_row(1)], status=500)
    text = caplog.text
    assert "RuntimeError" in text and "/api/v1/stats" in text
    assert "230315500001" not in text and "+7701" not in text and "Traceback" not in text


# --- the sandbox ------------------------------------------------------------------------------------

def test_parse_duration() -> None:
    assert parse_duration("PT3H") == dt.timedelta(hours=3)
    assert parse_duration("P5D") == dt.timedelta(days=5)
    assert parse_duration("P1DT2H3M4S") == dt.timedelta(days=1, hours=2, minutes=3, seconds=4)
    assert parse_duration("pt90s") == dt.timedelta(seconds=90)
    assert parse_duration("PT0S") == dt.timedelta(0)
    assert parse_duration("P1W") == dt.timedelta(days=7)
    for bad in ("", "P", "PT", "3H", "-PT3H", "P1Y", "PT1.5H", "P1H", "PT3H ago", "P1DT", "PT-1H"):
        with pytest.raises(ValueError):
            parse_duration(bad)


async def test_sandbox_routes_are_absent_outside_the_sandbox(kz: Kezek) -> None:
    clock = SandboxClock(almaty(2026, 9, 7, 10, 0), real=FrozenClock(almaty(2026, 9, 7, 10, 0)))
    for settings, sandbox_clock in (({"sandbox": False}, clock), ({"sandbox": True}, None)):
        async with api_client(kz, sandbox_clock=sandbox_clock, **settings) as client:
            await call(client, "GET", "/sandbox/clock", status=404)
            await call(client, "POST", "/sandbox/clock", json={"advance": "PT1H"}, status=404)
    assert "/sandbox/clock" in openapi()["paths"]  # documented as sandbox-only


@pytest.fixture
def sandbox_clock() -> SandboxClock:
    start = almaty(2026, 9, 7, 10, 0)  # Monday, inside the claim window
    return SandboxClock(start, real=FrozenClock(start))  # real time stands still in tests


@pytest.fixture
async def sandbox(db: Database, sandbox_clock: SandboxClock) -> AsyncIterator[tuple[TestClient, Kezek, World]]:
    kz = Kezek(db, sandbox_clock)
    world = await World(kz, sandbox_clock).setup()  # type: ignore[arg-type]
    async with api_client(kz, sandbox_clock=sandbox_clock, sandbox=True) as client:
        yield client, kz, world


async def test_sandbox_clock_input_is_checked(sandbox: tuple[TestClient, Kezek, World],
                                              sandbox_clock: SandboxClock,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    client, kz, _ = sandbox
    moves: list[tuple[Any, Any]] = []

    async def move_clock(kz_: Kezek, clock: SandboxClock, *, advance: dt.timedelta | None = None,
                         to: dt.datetime | None = None, **kw: Any) -> dict[str, Any]:
        assert kz_ is kz and clock is sandbox_clock
        assert kw == {"snapshot_hour": 0, "digest_hour": 10}
        moves.append((advance, to))
        return {"now": clock.now().isoformat(), "sweeps": []}

    # The API's part only (bot.sandbox.clock.move_clock is tested with the walks below).
    monkeypatch.setattr(api_module, "move_clock", move_clock)
    assert await call(client, "GET", "/sandbox/clock", status=200) == {"now": "2026-09-07T10:00:00+05:00"}
    await call(client, "GET", "/sandbox/clock", status=401, headers={})
    before = await counts(kz)
    for body, field, detail in (
            ({"advance": "-PT3H"}, "advance", "negative"), ({"advance": "3 hours"}, "advance", "duration"),
            ({"advance": "P400D"}, "advance", "range"), ({"advance": 3}, "advance", "type"),
            ({"set": "2026-09-07T09:59:00+05:00"}, "set", "past"), ({"set": "2026-09-08T10:00:00"}, "set", "timezone"),
            ({"set": "tomorrow"}, "set", "datetime"), ({"set": "2028-01-01T00:00:00+05:00"}, "set", "range"),
            ({"advance": "PT1H", "set": "2026-09-08T10:00:00+05:00"}, "set", "exclusive"),
            ({}, "advance", None)):
        answer = await call(client, "POST", "/sandbox/clock", json=body, status=422)
        (error,) = answer["errors"]
        assert (error["field"], error.get("detail")) == (field, detail), body
    await call(client, "POST", "/sandbox/clock", json=["PT1H"], status=422)
    assert moves == [] and await counts(kz) == before
    await call(client, "POST", "/sandbox/clock", json={"advance": "PT3H"}, status=200)
    await call(client, "POST", "/sandbox/clock", json={"set": "2026-09-08T19:59:00+05:00"}, status=200)
    assert moves == [(dt.timedelta(hours=3), None), (None, almaty(2026, 9, 8, 19, 59))]


async def test_sandbox_an_offer_passes_at_20_00_and_the_seat_opens(sandbox: tuple[TestClient, Kezek, World]) -> None:
    client, kz, world = sandbox
    a, b = await world.apps(world.row(), world.row())
    body = await call(client, "POST", "/seats", status=200,
                      json={"kindergarten": "KG1", "birth_year": 2023, "language": "ru", "count": 1})
    assert [o["application"] for o in body["offers"]] == [a]
    seat_id = body["seats"][0]
    moved = await call(client, "POST", "/sandbox/clock", json={"advance": "PT9H59M"}, status=200)
    assert moved["now"].startswith("2026-09-07T19:59")
    assert (await call(client, "GET", f"/applications/{a}", status=200))["state"] == "offer_open"
    moved = await call(client, "POST", "/sandbox/clock", json={"advance": "PT2M"}, status=200)
    assert "sweeps" in moved
    assert (await call(client, "GET", "/sandbox/clock", status=200))["now"].startswith("2026-09-07T20:01")
    status = await call(client, "GET", f"/applications/{a}", status=200)
    assert (status["state"], status["offers"], status["queue_number"]) == ("waiting", [], 1)
    stats = await call(client, "GET", "/stats", status=200)
    assert stats["offers"] == {"expired": 1} and stats["seats"] == {"open": 1}
    # open to the others of the birth year (claimed in the next window)
    await call(client, "POST", "/sandbox/clock", json={"set": "2026-09-08T09:00:00+05:00"}, status=200)
    (ref,) = await kz.claim(b, seat_id, confirmed_by="telegram:2")
    assert ref.via == "open"
    assert (await call(client, "GET", f"/applications/{b}", status=200))["referral"]["via"] == "open"


async def test_sandbox_a_referral_walks_to_annulment(sandbox: tuple[TestClient, Kezek, World]) -> None:
    client, kz, world = sandbox
    a, b = await world.apps(world.row(), world.row())
    body = await call(client, "POST", "/seats", status=200,
                      json={"kindergarten": "KG1", "birth_year": 2023, "language": "ru", "count": 1})
    (offer,) = body["offers"]
    (ref,) = await kz.claim(a, offer["seat_id"], confirmed_by="telegram:1")
    status = await call(client, "GET", f"/applications/{a}", status=200)
    assert status["state"] == "referred"
    # 5 working days after Monday 7 Sep: the end of Monday 14 Sep
    assert status["referral"]["showup_due_at"] == "2026-09-15T00:00:00+05:00"
    await call(client, "POST", "/sandbox/clock", json={"set": "2026-09-14T23:59:00+05:00"}, status=200)
    assert (await call(client, "GET", f"/applications/{a}", status=200))["state"] == "referred"
    await call(client, "POST", "/sandbox/clock", json={"advance": "PT2M"}, status=200)
    status = await call(client, "GET", f"/applications/{a}", status=200)
    assert (status["status"], status["state"], status["referral"]) == ("queued", "stop_listed", None)
    (annulled,) = status["referrals"]
    assert (annulled["id"], annulled["status"], annulled["annul_reason"]) == (ref.id, "annulled", "no_show")
    assert annulled["closed_at"] == "2026-09-15T00:00:00+05:00"
    # dated Tuesday 15 Sep; 10 working days after it: the end of Tuesday 29 Sep
    assert status["stoplist_until"] == "2026-09-30T00:00:00+05:00"
    assert (status["queue_number"], status["missed_referrals"]) == (1, 1)
    # the seat went back to the pool and on to the next in line
    assert (await call(client, "GET", f"/applications/{b}", status=200))["state"] == "offer_open"
    before = await counts(kz)
    assert (await call(client, "POST", f"/referrals/{ref.id}/admission", status=409))["error"] == \
        "referral_not_active"
    assert await counts(kz) == before


def test_datetimes_are_rendered_in_almaty_time() -> None:
    from bot.api.bodies import json_response

    resp = json_response({"at": dt.datetime(2026, 9, 7, 15, 0, tzinfo=dt.UTC), "day": dt.date(2026, 9, 7)})
    assert resp.text == '{"at": "2026-09-07T20:00:00+05:00", "day": "2026-09-07"}'
    assert ALMATY.key == "Asia/Almaty"


async def test_serve_api_listens_until_cancelled(kz: Kezek, unused_tcp_port: int,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    import asyncio

    import aiohttp

    caplog.set_level(logging.INFO, logger="aiohttp.access")
    task = asyncio.create_task(serve_api(kz, make_settings(api_port=unused_tcp_port)))
    url = f"http://127.0.0.1:{unused_tcp_port}/api/v1"
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(f"{url}/health") as resp:
                    assert (resp.status, await resp.json()) == (200, {"status": "ok", "database": "ok"})
                    break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.02)
        else:
            pytest.fail("the API did not start")
        async with session.get(f"{url}/stats", headers=AUTH) as resp:
            assert resp.status == 200
        async with session.get(f"{url}/applications/Z98765", headers=AUTH) as resp:
            assert resp.status == 404
        # the access log names routes, not the numbers in their paths, nor the client's address
        access = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
        assert any(line.startswith("GET /api/v1/applications/{number} 404") for line in access), access
        assert not any("Z98765" in line or "127.0.0.1" in line for line in access)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(aiohttp.ClientConnectionError):
            async with session.get(f"{url}/health"):
                pass


# --- strict types ----------------------------------------------------------------

@pytest.mark.parametrize("path, rows, field", [
    ("/districts", [{"code": True, "name_ru": True, "name_kk": "x"}], "code"),
    ("/districts", [{"code": "D1", "name_ru": False, "name_kk": "x"}], "name_ru"),
    ("/kindergartens", [{"code": "K1", "district": True, "name_ru": "x", "name_kk": "y"}], "district"),
    ("/kindergartens", [{"code": "K1", "district": "ALM-BOS", "name_ru": "x", "name_kk": "y",
                         "languages": [True]}], "languages"),
    ("/calendar/days", [{"day": "2026-09-08", "working": False, "name": True}], "name"),
])
async def test_a_json_boolean_is_never_a_string(api: TestClient, kz: Kezek, path: str, rows: list[Any],
                                                field: str) -> None:
    await load_directory(api)
    before = await counts(kz)
    body = await call(api, "POST", path, json=rows, status=422)
    assert [(e["index"], e["field"], e["reason"]) for e in body["errors"]][:1] == [(0, field, "invalid_field")]
    assert await counts(kz) == before


async def test_a_json_boolean_is_not_a_kindergarten_code_for_seats(api: TestClient, kz: Kezek,
                                                                   world: World) -> None:
    before = await counts(kz)
    body = await call(api, "POST", "/seats", status=422,
                      json={"kindergarten": True, "birth_year": 2023, "language": "ru", "count": 1})
    assert [(e["field"], e["reason"]) for e in body["errors"]] == [("kindergarten", "invalid_field")]
    assert await counts(kz) == before


def test_the_field_parsers_refuse_booleans_for_text_and_codes() -> None:
    from services import parsing as p
    from services.errors import InvalidField

    for parse in (lambda r: p.text(r, "f", max_len=10), lambda r: p.code(r, "f"), lambda r: p.code_list(r, "f")):
        for value in (True, False, [True]):
            with pytest.raises(InvalidField) as caught:
                parse({"f": value})
            assert caught.value.params["field"] == "f"
    assert p.text({"f": 12}, "f", max_len=10) == "12"  # a number in a JSON file is still text


# --- malformed HTTP ----------------------------------------------------------------

async def _raw_exchange(port: int, data: bytes) -> bytes:
    import asyncio

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)  # the server closes after an error
    finally:
        writer.close()


async def test_a_header_with_a_nul_byte_gets_the_json_error_and_one_clean_log_line(
        kz: Kezek, unused_tcp_port: int, caplog: pytest.LogCaptureFixture) -> None:
    import asyncio
    import json

    caplog.set_level(logging.DEBUG)
    task = await serving(kz, unused_tcp_port)
    try:
        raw = await _raw_exchange(unused_tcp_port, b"GET /api/v1/stats HTTP/1.1\r\nHost: x\r\n"
                                                    b"Authorization: Bearer FAKE-SECRET-abc123\x00\r\n\r\n")
        head, _, payload = raw.partition(b"\r\n\r\n")
        assert head.split(b"\r\n")[0].split(b" ")[1] == b"400", raw
        assert b"application/json" in head.lower(), raw
        body = json.loads(payload)
        assert body["error"] == "bad_request" and body["message"], body
        conforms(body, {"$ref": "#/components/schemas/Error"})
        assert b"FAKE-SECRET" not in raw
        # the API still answers
        raw = await _raw_exchange(unused_tcp_port,
                                  b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 200"), raw
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    text = caplog.text
    assert "FAKE-SECRET" not in text and "Traceback" not in text, text
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records if r.exc_info]
    assert sum("malformed" in r.getMessage() for r in caplog.records) == 1, text


# --- the document and the server agree ----------------------------------------------

PROBES: list[Any] = [None, True, False, 0, 2**63, 1.5, "", " ", "A1", "a b", "x" * 41, "x" * 301, "a\x00b", "ru",
                     "kk,ru", "false", "2026-09-08", "08.09.2026", "2026-02-30", "P", "PT", "PT3H", "P1W",
                     "230315500001", [], ["ru"], ["ru", "ru"], [True], ["KG1"] * 21, {}, "other"]


@pytest.mark.parametrize("name, base", [
    ("District", district_rows()[0]), ("Kindergarten", kindergarten_rows()[0]), ("Application", app_row(1)),
    ("CalendarDay", {"day": "2026-09-08", "working": False, "name": "x"}),
    ("SeatsRequest", {"kindergarten": "KG1", "birth_year": 2023, "language": "ru", "count": 1}),
    ("DocumentsDecision", {"decision": "rejected", "reason": "other", "note": "x"}),
])
def test_a_body_fits_the_document_exactly_when_the_server_takes_its_shape(name: str, base: dict[str, Any]) -> None:
    """Every field of every request body, set to each probe (or left out): the OpenAPI document's
    schema and the server's check (bot.api.schemas) give the same verdict."""
    from jsonschema import Draft202012Validator

    from bot.api import schemas as api_schemas

    model = {**api_schemas.ARRAY_BODIES, **api_schemas.OBJECT_BODIES}[name]
    validator = Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": DOC["components"]})
    assert validator.is_valid(base) and api_schemas.row_error(model, base) is None
    for field in set(base) | set(model.model_fields):
        for probe in [*PROBES, "missing"]:
            body = {k: v for k, v in base.items() if k != field} | ({} if probe == "missing" else {field: probe})
            server = api_schemas.row_error(model, body)
            assert validator.is_valid(body) == (server is None), (field, probe, server and server.params)


async def test_the_clock_refuses_what_the_document_refuses(sandbox: tuple[TestClient, Kezek, World],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import re as re_

    client, _, _ = sandbox
    pattern = DOC["components"]["schemas"]["ClockMove"]["oneOf"][0]["properties"]["advance"]["pattern"]
    for raw in ("P", "PT", "P1W", "pt3h", "P1DT", " PT3H"):
        assert not re_.search(pattern, raw), raw
        body = await call(client, "POST", "/sandbox/clock", json={"advance": raw}, status=422)
        assert (body["errors"][0]["field"], body["errors"][0]["detail"]) == ("advance", "duration"), raw
    assert re_.search(pattern, "P1DT30M") and re_.search(pattern, "PT0S")
