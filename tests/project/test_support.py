"""The shared test support itself (tests/support): its builders must not make data the service
refuses at random."""

from __future__ import annotations

from typing import Any, cast

from services.validation import iin_check_digit
from tests.support.world import World


def test_the_world_never_gives_two_children_one_iin() -> None:
    """``make_iin`` skips a serial whose check digit is invalid to the next one, so serials 30 and
    31 made one IIN: two "different" children, and a concurrent import refused one of them
    (ChildAlreadyQueued) depending on timing."""
    world = World(cast(Any, None), cast(Any, None))
    iins = [world.row()["child_iin"] for _ in range(2000)]
    assert len(set(iins)) == len(iins)
    assert all(iin_check_digit(iin[:11]) == int(iin[11]) for iin in iins)
