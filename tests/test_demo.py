"""The sandbox city seeds cleanly and every flow can start from it."""

from bot.demo import seed


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
    its -wal/-shm 0600, the sandbox API token 0600 (issue 16, item 7)."""
    import asyncio
    import os
    import socket
    import stat

    import pytest

    from tests.standin import BotProcess

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
        deadline = loop.time() + 60
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
