"""The fast lane (README, Development: ``pytest -m "not slow"``) leaves out exactly the files named
in ``tests/support/lanes.py``'s SLOW_FILES: a moved, renamed or removed file must not silently put a
slow test back into the quick loop (or leave a stale name behind)."""

from pathlib import Path

from tests.support.lanes import SLOW_FILES, TESTS, is_slow


def test_every_slow_file_exists() -> None:
    assert sorted(name for name in SLOW_FILES if not (TESTS / name).is_file()) == []


def test_the_fast_lane_itself_is_not_slow(request) -> None:
    assert request.node.get_closest_marker("slow") is None
    assert not is_slow(Path(__file__))
