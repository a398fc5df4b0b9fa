"""The fast lane (README, Development: ``pytest -m "not slow"``) leaves out exactly the files named
in ``tests/conftest.py``'s SLOW_FILES: a renamed or removed file must not silently put a slow test
back into the quick loop (or leave a stale name behind)."""

from pathlib import Path

from tests.conftest import SLOW_FILES

TESTS = Path(__file__).resolve().parents[1]


def test_every_slow_file_exists() -> None:
    assert sorted(name for name in SLOW_FILES if len(list(TESTS.rglob(name))) != 1) == []


def test_the_fast_lane_itself_is_not_slow(request) -> None:
    assert request.node.get_closest_marker("slow") is None
    assert Path(__file__).name not in SLOW_FILES
