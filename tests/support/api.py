"""The registry HTTP API under test: its settings with a token, a client on aiohttp's test server or
the real server on loopback, one request checked against the OpenAPI document, and the directory
and application rows a registry posts."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.api.auth import AuthGuard
from bot.api.openapi import openapi
from bot.api.server import make_api_app, serve_api
from bot.config import Settings
from services.clock import SandboxClock
from services.kezek import Kezek
from services.validation import make_iin
from storage.models import Base
from tests.support.world import almaty

TOKEN = "registry-token-" + "x" * 32
AUTH = {"Authorization": f"Bearer {TOKEN}"}
KK = {**AUTH, "Accept-Language": "kk"}


def make_settings(**kw: Any) -> Settings:
    """The settings from ``kw`` only (no environment, no .env), with the registry's token."""
    kw.setdefault("api_token", TOKEN)
    return Settings(_env_file=None, **kw)  # type: ignore[call-arg]


@asynccontextmanager
async def api_client(kz: Kezek, *, sandbox_clock: SandboxClock | None = None, guard: AuthGuard | None = None,
                     **settings: Any) -> AsyncIterator[TestClient]:
    """A client of the API application on aiohttp's test server."""
    app = make_api_app(kz, make_settings(**settings), sandbox_clock=sandbox_clock, guard=guard)
    async with TestClient(TestServer(app)) as client:
        yield client


async def serving(kz: Kezek, port: int, **settings: Any) -> asyncio.Task[None]:
    """serve_api on loopback (the real server, as ``kezek run`` starts it), once /health answers (a
    deadline of 10 s); the task serving it."""
    import aiohttp

    task = asyncio.create_task(serve_api(kz, make_settings(api_port=port, **settings)))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(f"http://127.0.0.1:{port}/api/v1/health") as resp:
                    if resp.status == 200:
                        return task
            except aiohttp.ClientConnectionError:
                pass
            assert loop.time() < deadline, "the API did not start"
            await asyncio.sleep(0.02)


async def counts(kz: Kezek) -> dict[str, int]:
    """Rows in every table: nothing may change on an error."""
    out = {}
    async with kz.reading(with_calendar=False) as ctx:
        for table in Base.metadata.sorted_tables:
            out[table.name] = (await ctx.session.execute(select(func.count()).select_from(table))).scalar_one()
    return out


# --- the OpenAPI document -----------------------------------------------------------------------------

DOC = openapi()


def documented_schema(method: str, path: str, status: int) -> dict[str, Any]:
    """The schema the OpenAPI document gives for this answer (an error body for a route or method
    it does not list); fails when the document does not list the status at all."""
    for template, ops in DOC["paths"].items():
        if re.fullmatch(re.sub(r"\\{[^}]+\\}", ".+", re.escape(template)), path) and method.lower() in ops:
            answer = ops[method.lower()]["responses"].get(str(status))
            assert answer is not None, f"{method} {path} answered {status}: not in the OpenAPI document"
            if "$ref" in answer:
                answer = DOC["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]]
            return answer["content"]["application/json"]["schema"]
    return {"$ref": "#/components/schemas/Error"}


def conforms(body: Any, schema: dict[str, Any]) -> None:
    from jsonschema import Draft202012Validator

    root = {**schema, "components": DOC["components"]}
    Draft202012Validator(root, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(body)


async def call(client: TestClient, method: str, path: str, *, status: int, headers: dict[str, str] | None = None,
               **kw: Any) -> Any:
    """One request; the answer must be JSON, have ``status`` and match the OpenAPI document."""
    resp = await client.request(method, "/api/v1" + path, headers=AUTH if headers is None else headers, **kw)
    assert resp.content_type == "application/json", (resp.status, await resp.text())
    body = await resp.json()
    assert resp.status == status, body
    conforms(body, documented_schema(method, path, status))
    return body


# --- what a registry posts ------------------------------------------------------------------------------

def district_rows() -> list[dict[str, Any]]:
    return [{"code": "ALM-BOS", "name_ru": "Бостандыкский район", "name_kk": "Бостандық ауданы"},
            {"code": "ALM-MED", "name_ru": "Медеуский район", "name_kk": "Медеу ауданы"}]


def kindergarten_rows() -> list[dict[str, Any]]:
    return [{"code": "KG1", "district": "ALM-BOS", "name_ru": "Ясли-сад №1", "name_kk": "№1 бөбекжай-бақша",
             "address": "ул. Тимирязева, 1", "languages": ["ru", "kk"]},
            {"code": "PRIV", "district": "ALM-BOS", "name_ru": "Частный сад", "name_kk": "Жеке балабақша",
             "kind": "private_state_order"}]


async def load_directory(api: TestClient) -> None:
    """The districts and kindergartens above, posted."""
    assert await call(api, "POST", "/districts", json=district_rows(), status=200) == {"upserted": 2}
    assert await call(api, "POST", "/kindergartens", json=kindergarten_rows(), status=200) == {"upserted": 2}


def app_row(n: int, **kw: Any) -> dict[str, Any]:
    """Application ``n`` as the registry posts it."""
    birth = dt.date(2023, 3, 15)
    return {"number": f"A{n:05d}", "child_iin": make_iin(birth, n * 10), "child_name": f"Ребёнок {n}",
            "birth_date": birth.isoformat(), "district": "ALM-BOS", "language": "ru",
            "preferred_kindergartens": [], "privilege": "none",
            "submitted_at": (almaty(2024, 1, 1, 9, 0) + dt.timedelta(minutes=n)).isoformat(),
            "phone": f"+7701{n:07d}", "email": f"parent{n}@example.kz", **kw}
