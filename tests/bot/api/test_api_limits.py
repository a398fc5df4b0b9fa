"""Big bodies on the registry API: a 4 MB ``[{},{},...]`` used to take 30 s, a
240 MB error body and 3.7 GB, and froze the bot and the API. Now a list has at most
``KEZEK_API_MAX_ROWS`` items (counted before any is checked: 413 too_many_rows), an answer lists
the first 50 errors and counts them all, and rows are checked in chunks that let other requests
through. No timing asserts: the sizes, the counts, the memory peak, and which answer comes first."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from services.kezek import Kezek
from tests.support.api import AUTH, KK, api_client, conforms, counts, documented_schema

EMPTY_ROWS_4MB = b"[" + b",".join([b"{}"] * 1_400_000) + b"]"  # 4.2 MB, like the report
LIST_ROUTES = ("/districts", "/kindergartens", "/applications", "/calendar/days")


async def post(client: TestClient, path: str, data: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    resp = await client.post("/api/v1" + path, data=data, headers={**(headers or AUTH),
                                                                   "Content-Type": "application/json"})
    return resp.status, await resp.read()


async def test_a_4mb_list_of_empty_objects_is_refused_by_its_row_count_in_bounded_memory(kz: Kezek) -> None:
    assert len(EMPTY_ROWS_4MB) > 4_000_000
    before = await counts(kz)
    async with api_client(kz) as client:  # the defaults: 16 MiB bodies, 5,000 rows
        tracemalloc.start()
        try:
            status, raw = await post(client, "/applications", EMPTY_ROWS_4MB)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert status == 413
        assert len(raw) < 1000, len(raw)
        body = json.loads(raw)
        conforms(body, documented_schema("POST", "/applications", 413))
        assert body["error"] == "too_many_rows" and body["details"] == {"max": 5000}
        assert "5\xa0000" in body["message"] or "5 000" in body["message"], body["message"]
        # the body itself (and its text) is held once or twice; never a million parsed objects
        assert peak < 64 * 1024 * 1024, f"{peak / 2**20:.0f} MiB"
        for path in LIST_ROUTES:
            status, raw = await post(client, path, EMPTY_ROWS_4MB, KK)
            assert (status, json.loads(raw)["error"]) == (413, "too_many_rows"), path
            assert json.loads(raw)["message"] != body["message"]  # in Kazakh
    assert await counts(kz) == before


async def test_errors_are_capped_at_50_and_counted(kz: Kezek) -> None:
    before = await counts(kz)
    rows = b"[" + b",".join([b"{}"] * 20_000) + b"]"
    async with api_client(kz, api_max_rows=20_000) as client:
        for path in LIST_ROUTES:
            status, raw = await post(client, path, rows)
            assert status == 422, (path, raw[:300])
            assert len(raw) < 20_000, (path, len(raw))
            body = json.loads(raw)
            conforms(body, documented_schema("POST", path, 422))
            assert body["error"] == "bulk_rejected" and body["error_count"] == 20_000
            assert [e["index"] for e in body["errors"]] == list(range(50))
            assert {e["reason"] for e in body["errors"]} == {"missing_field"}
            assert "20\xa0000" in body["message"] or "20 000" in body["message"], body["message"]
        # one bad row among good ones: named, counted once
        status, raw = await post(client, "/districts", json.dumps(
            [{"code": f"D{n}", "name_ru": "x", "name_kk": "y"} for n in range(3000)]
            + [{"code": "D-bad", "name_ru": True, "name_kk": "y"}]).encode())
        body = json.loads(raw)
        assert status == 422 and body["error_count"] == 1
        assert [(e["index"], e["field"]) for e in body["errors"]] == [(3000, "name_ru")]
    assert await counts(kz) == before


async def test_the_api_answers_others_while_it_checks_a_big_list(kz: Kezek, monkeypatch: pytest.MonkeyPatch) -> None:
    """/health is answered while the rows of a big load are being checked, not before nor after."""
    from services import queue
    from tests.support.api import app_row, load_directory

    total = 20_000
    checked = [0]
    started = asyncio.Event()
    parse = queue.parse_application

    def counting(row: Any, now: Any) -> Any:
        checked[0] += 1
        started.set()
        return parse(row, now)

    monkeypatch.setattr(queue, "parse_application", counting)
    rows = json.dumps([app_row(n, child_iin="230315500001") for n in range(total)]).encode()  # bad checksums
    async with api_client(kz, api_max_rows=total, api_max_body_bytes=32 * 1024 * 1024) as client:
        await load_directory(client)
        task = asyncio.create_task(post(client, "/applications", rows))
        await asyncio.wait_for(started.wait(), 60)  # the rows are being checked
        resp = await asyncio.wait_for(client.get("/api/v1/health"), 30)
        assert resp.status == 200
        at_health = checked[0]
        status, raw = await asyncio.wait_for(task, 120)
    assert 0 < at_health < total, at_health
    assert status == 422 and json.loads(raw)["error_count"] == total


@pytest.mark.parametrize("path, body", [
    ("/seats", {"kindergarten": "KG1", "birth_year": 2023, "language": "ru", "count": 1, "pad": "x" * 70_000}),
    ("/referrals/1/documents", {"decision": "accepted", "pad": ["x"] * 20_000}),
])
async def test_a_single_object_body_is_small(kz: Kezek, path: str, body: dict[str, Any]) -> None:
    async with api_client(kz) as client:
        status, raw = await post(client, path, json.dumps(body).encode())
    assert status == 413
    answer = json.loads(raw)
    assert answer["error"] == "body_too_large" and answer["details"] == {"max": 65536}


async def test_the_document_states_the_row_limit(kz: Kezek) -> None:
    async with api_client(kz, api_max_rows=1234) as client:
        doc = await (await client.get("/api/v1/openapi.json")).json()
        for path in LIST_ROUTES:
            schema = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
            assert schema["maxItems"] == 1234, path
        status, raw = await post(client, "/districts", json.dumps(
            [{"code": f"D{n}", "name_ru": "x", "name_kk": "y"} for n in range(1235)]).encode())
        assert (status, json.loads(raw)["details"]) == (413, {"max": 1234})
        status, raw = await post(client, "/districts", json.dumps(
            [{"code": f"D{n}", "name_ru": "x", "name_kk": "y"} for n in range(1234)]).encode())
        assert (status, json.loads(raw)) == (200, {"upserted": 1234})
