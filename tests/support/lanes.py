"""The fast lane: files whose tests start processes (bots, senders, a private PostgreSQL, a fresh
virtual environment), kill them, or play long random sequences are marked ``slow`` (tests/conftest.py),
so that ``pytest -m "not slow"`` is the quick loop of the README. CI runs everything.
tests/project/test_fast_lane.py checks that every name here is a file."""

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

# Paths under tests/.
SLOW_FILES = frozenset({
    "bot/api/test_api_schemathesis.py",
    "bot/bench/test_bench_dispatch.py", "bot/bench/test_bench_load.py", "bot/bench/test_bench_memory.py",
    "bot/cli/test_first_run.py",
    "bot/delivery/test_sender_crash.py", "bot/delivery/test_sender_sigkill.py",
    "bot/sandbox/test_demo.py", "bot/sandbox/test_sandbox_clock_shared.py",
    "bot/telegram/test_fsm_restart.py", "bot/telegram/test_webhook.py",
    "bot/web/test_public_page_browser.py",
    "e2e/test_bot_e2e.py", "e2e/test_desk_walk.py", "e2e/test_e2e_walk.py", "e2e/test_fault_database.py",
    "e2e/test_fault_instance_kill.py", "e2e/test_fault_smtp.py",
    "handlers/test_fuzz.py",
    "project/test_deploy.py", "project/test_wheel.py",
    "services/test_properties.py",
})


def is_slow(path: Path) -> bool:
    """Whether the test file at ``path`` is in the slow lane."""
    return path.resolve().relative_to(TESTS).as_posix() in SLOW_FILES
