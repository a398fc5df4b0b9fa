"""The public referral page in a real browser: headless Chromium (the system's package, which
.ci/run installs) at a phone's 360×740, in both languages, for a valid and a forged code. Each
screenshot is kept as a test artefact (``$KEZEK_TEST_ARTIFACTS``, else ``test-artifacts/``) and
asserted on: the verdict's colour is drawn, and the rendered text is the page's in that language."""

from __future__ import annotations

import asyncio
import html
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy
import pytest
from aiohttp.test_utils import TestServer
from PIL import Image

from bot.config import Settings
from bot.web.page import make_page_app
from locales import gettext
from services.kezek import Kezek
from tests.support import ROOT
from tests.support.world import World

pytestmark = pytest.mark.skipif(shutil.which("chromium") is None and not Path("/usr/bin/chromium").exists(),
                                reason="Chromium is not installed (.ci/run installs it)")

WIDTH, HEIGHT = 360, 740
TONES = {"ok": (0xE7, 0xF6, 0xEC), "bad": (0xFD, 0xE8, 0xE8)}  # bot/web/templates/page.css


def artefacts() -> Path:
    folder = Path(os.environ.get("KEZEK_TEST_ARTIFACTS") or ROOT / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def chromium(url: str, lang: str, *args: str) -> str:
    """Run headless Chromium on ``url`` with the browser's language ``lang``; its stdout."""
    browser = shutil.which("chromium") or "/usr/bin/chromium"
    with tempfile.TemporaryDirectory() as profile:
        proc = await asyncio.create_subprocess_exec(
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--hide-scrollbars", f"--user-data-dir={profile}", f"--lang={lang}",
            f"--accept-lang={lang}", f"--window-size={WIDTH},{HEIGHT}", *args, url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


def visible_text(dom: str) -> str:
    dom = re.sub(r"<style>.*?</style>", " ", dom, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", dom)).split())


def share_of(image: Image.Image, colour: tuple[int, int, int]) -> float:
    """The share of the pixels drawn in ``colour`` (within 3 of each channel)."""
    pixels = numpy.asarray(image.convert("RGB"), dtype=numpy.int16)
    return float((numpy.abs(pixels - numpy.array(colour)).max(axis=2) <= 3).mean())


@pytest.mark.parametrize("lang", ["kk", "ru"])
async def test_a_phone_sees_the_verdict_in_its_language(kz: Kezek, world: World, lang: str) -> None:
    [number] = await world.apps(world.row())
    published = await world.publish()
    seat = next(s for _, s, n in published.offers if n == number)
    [ref] = await kz.claim(number, seat, confirmed_by="telegram:1")
    document = await kz.referral_document(ref.id)
    token = document.token
    server = TestServer(make_page_app(kz, Settings(page_rate=1000)), host="127.0.0.1")
    await server.start_server()
    try:
        for code, tone, headline in ((token, "ok", "Genuine referral: valid"),
                                     (token[:-2] + "zz", "bad", "Not a genuine referral")):
            url = str(server.make_url(f"/r/{code}"))
            shot = artefacts() / f"page-{tone}-{lang}.png"
            shot.unlink(missing_ok=True)
            dom = await chromium(url, lang, "--dump-dom")
            seen = visible_text(dom)
            assert gettext(lang, headline) in seen, seen
            assert f'<html lang="{lang}">' in dom
            # No English on the screen: the only Latin words are the service's name and the data
            # (the registry's group name, "2023-ru" in this world).
            words = seen.replace(document.facts.group_name, "")
            assert set(re.findall(r"[A-Za-z]{2,}", words)) <= {"Kezek", "QR"}, seen
            await chromium(url, lang, f"--screenshot={shot}")
            with Image.open(shot) as image:
                assert image.size == (WIDTH, HEIGHT)
                # The verdict's box is drawn in its colour, wide enough to read on the phone.
                assert share_of(image, TONES[tone]) > 0.03, shot
                other = TONES["bad" if tone == "ok" else "ok"]
                assert share_of(image, other) < 0.001, shot
    finally:
        await server.close()


async def test_kezek_run_serves_the_page_and_logs_no_code(world: World, db_url: str, tmp_path: Path) -> None:
    """With KEZEK_PUBLIC_URL set, `kezek run` serves the page on KEZEK_PAGE_PORT; its log names the
    route, never the code."""
    import socket

    import aiohttp

    from tests.support.standin import START_UP, BotProcess

    [number] = await world.apps(world.row())
    published = await world.publish()
    seat = next(s for _, s, n in published.offers if n == number)
    [ref] = await world.kz.claim(number, seat, confirmed_by="telegram:1")
    token = (await world.kz.referral_document(ref.id)).token
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = await BotProcess(tmp_path / "run.log", db_url, {
        "KEZEK_PUBLIC_URL": f"http://127.0.0.1:{port}", "KEZEK_PAGE_PORT": str(port), "KEZEK_LOG_LEVEL": "DEBUG"},
        args=["--now", world.clock.now().isoformat()],
        command=("run", "--no-bot", "--no-api", "--no-scheduler", "--no-senders")).start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_UP
        async with aiohttp.ClientSession() as http:
            while True:
                assert process.alive() is None, process.alive()
                assert loop.time() < deadline, process.log()
                try:
                    async with http.get(f"http://127.0.0.1:{port}/r/{token}",
                                        headers={"Accept-Language": "kk"}) as resp:
                        body = await resp.text()
                        break
                except aiohttp.ClientConnectorError:
                    await asyncio.sleep(0.1)
            assert resp.status == 200 and gettext("kk", "Genuine referral: valid") in visible_text(body)
            async with http.get(f"http://127.0.0.1:{port}/r?code={token}x") as resp:
                assert gettext("ru", "Not a genuine referral") in visible_text(await resp.text())
    finally:
        code = await process.stop()
    log = process.log(1_000_000)
    assert code == 0, log[-3000:]
    assert "/r/{code}" in log and token not in log and token[:12] not in log
