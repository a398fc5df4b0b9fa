"""The parent's chat for the privilege documents: the real Dispatcher with a real aiohttp session
against the Bot API stand-in (getFile and its file server), and a folder store of the test's own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot.bench.standin import TOKEN, BotApiStandIn
from bot.telegram.app import build_dispatcher
from services.doc_storage import FolderDocumentStore
from services.kezek import Kezek
from tests.support.documents import Chat


@pytest.fixture
async def api() -> AsyncIterator[BotApiStandIn]:
    async with BotApiStandIn() as stand_in:
        yield stand_in


@pytest.fixture
async def bot(api: BotApiStandIn) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(api.base_url), timeout=10)
    bot = Bot(TOKEN, session=session)
    yield bot
    await session.close()


@pytest.fixture
def store(kz: Kezek, tmp_path: Path) -> FolderDocumentStore:
    kz.document_store = FolderDocumentStore(tmp_path / "documents")
    return kz.document_store


@pytest.fixture
def dp(kz: Kezek, store: FolderDocumentStore) -> Dispatcher:
    return build_dispatcher(kz)


@pytest.fixture
def chat(dp: Dispatcher, bot: Bot, api: BotApiStandIn) -> Chat:
    return Chat(dp, bot, api)
