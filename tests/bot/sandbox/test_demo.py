"""The sandbox city seeds cleanly and every flow can start from it."""

from bot.sandbox.demo import seed


async def test_demo_city_is_valid_and_playable(kz) -> None:
    summary = await seed(kz, applications=400)
    assert summary["applications"] >= 400
    stats = await kz.stats()
    assert stats["applications"]["queued"] == summary["applications"]
    view = await kz.queue_view(summary["example"])
    assert view.number is not None and view.number >= 1
    # a state kindergarten's seats find someone of that birth year in a seeded district
    pub = await kz.publish_seats({"kindergarten": "ALM-BOS-01", "birth_year": view.application.birth_year,
                                  "language": "kk", "count": 3})
    assert pub.seat_ids


async def serving(port: int) -> bool:
    """Whether the sandbox API answers /api/v1/health on ``port``."""
    import aiohttp

    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/api/v1/health") as resp:
            return resp.status == 200
    except aiohttp.ClientError:
        return False


async def test_kezek_demo_keeps_its_files_to_its_owner(tmp_path, monkeypatch) -> None:
    """`kezek demo` under the loosest umask (0o000): the data folder 0700, the SQLite database and
    its -wal/-shm 0600, the sandbox API token 0600."""
    import asyncio
    import os
    import socket
    import stat

    import pytest

    from tests.support.standin import START_UP, BotProcess

    if os.name != "posix":
        pytest.skip("POSIX permissions")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tmp_path / "data"
    old = os.umask(0)  # (inherited by the process started now)
    try:
        demo = await BotProcess(tmp_path / "demo.log", f"sqlite:///{data / 'kezek.sqlite3'}", {
            "KEZEK_MAIL_DIR": str(data / "mail"), "KEZEK_API_PORT": str(port), "KEZEK_BOT_TOKEN": "",
            "KEZEK_OUTBOX_IDLE_SECONDS": "0.2"}, command=("demo", "--applications", "40")).start()
    finally:
        os.umask(old)
    token = data / "sandbox-api-token"
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_UP  # (start-up: imports, migrations, a city; slow on a busy box)
        while not (token.exists() and await serving(port)):  # (stopped only once it serves)
            assert demo.alive() is None, demo.alive()
            assert loop.time() < deadline, demo.log()
            await asyncio.sleep(0.1)
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in data.iterdir()}
    finally:
        code = await demo.stop()
    assert code == 0, demo.log()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert {name: mode for name, mode in modes.items() if mode != (0o700 if (data / name).is_dir() else 0o600)} == {}
    assert {"kezek.sqlite3", "kezek.sqlite3-wal", "kezek.sqlite3-shm", "sandbox-api-token"} <= set(modes)


async def test_kezek_demo_and_a_second_terminal_share_the_sandbox_clock(tmp_path) -> None:
    """A first run of the demo: `kezek demo` runs on the sandbox clock; the clock is moved three days
    by the API's clock route (as `!advance 3d` does in the console); a seat published from a second
    terminal with `kezek seats publish` (as the README says) is offered at the sandbox's moment, so
    the demo's sweeps do not close it seconds after "your turn"."""
    import asyncio
    import datetime as dt
    import re
    import socket
    import sqlite3
    import sys

    import aiohttp

    from services.calendar import ALMATY
    from tests.support import ROOT
    from tests.support.standin import START_UP, BotProcess

    day = (dt.datetime.now(ALMATY) + dt.timedelta(days=14)).date()
    day += dt.timedelta(days=(7 - day.weekday()) % 7)  # a Monday, 10:00 in Almaty: the window is open
    start = dt.datetime.combine(day, dt.time(10, 0), tzinfo=ALMATY)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tmp_path / "data"
    url = f"sqlite:///{data / 'kezek.sqlite3'}"
    demo = await BotProcess(tmp_path / "demo.log", url, {
        "KEZEK_MAIL_DIR": str(data / "mail"), "KEZEK_API_PORT": str(port), "KEZEK_BOT_TOKEN": "",
        "KEZEK_OUTBOX_IDLE_SECONDS": "0.2", "KEZEK_SWEEP_SECONDS": "1"},
        args=["--now", start.isoformat()], command=("demo", "--applications", "40")).start()
    token_file = data / "sandbox-api-token"
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_UP  # (start-up: imports, migrations, a city; slow on a busy box)
        while not (token_file.exists() and await serving(port)):
            assert demo.alive() is None, demo.alive()
            assert loop.time() < deadline, demo.log()
            await asyncio.sleep(0.1)
        headers = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            async with http.post(f"{api}/sandbox/clock", json={"advance": "P3D"}) as resp:
                assert resp.status == 200, await resp.text()
            hint = re.search(r"--kindergarten (\S+) --birth-year (\d+) --language (\w+)", demo.log())
            assert hint, demo.log()
            second = await asyncio.create_subprocess_exec(
                sys.executable, "-c", "from bot.cli.main import main; main()", "--db", url, "--lang", "ru",
                "seats", "publish", "--kindergarten", hint[1], "--birth-year", hint[2], "--language", hint[3],
                "--count", "1", cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(second.communicate(), 120)
            assert second.returncode == 0, err.decode()
            assert "DEMO-" in out.decode()  # the example's turn came
            async with http.get(f"{api}/sandbox/clock") as resp:
                sandbox_now = dt.datetime.fromisoformat((await resp.json())["now"])
        with sqlite3.connect(data / "kezek.sqlite3") as conn:
            made, expires, status = conn.execute("SELECT made_at, expires_at, status FROM offers").fetchone()
        made_at = dt.datetime.fromisoformat(made).replace(tzinfo=dt.UTC)
        expires_at = dt.datetime.fromisoformat(expires).replace(tzinfo=dt.UTC)
        # Offered at the sandbox's moment (Thursday), not on real time weeks earlier: it is open
        # after the sandbox's now, and the demo's sweeps leave it open.
        assert abs(made_at - (start + dt.timedelta(days=3))) < dt.timedelta(minutes=10), made_at
        assert expires_at > sandbox_now and status == "open"
    finally:
        code = await demo.stop()
    assert code == 0, demo.log()
