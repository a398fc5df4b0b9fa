"""The ``kezek`` entry point: the group (bot/cli/base.py) with every topic's commands registered
(importing a topic module adds its commands), and ``kezek bench`` where it exists."""

from __future__ import annotations

from bot.cli import documents, operations, registry, sandbox, seats, serve, staff  # noqa: F401 - each registers its commands
from bot.cli.base import cli


def _add_bench() -> None:
    """``kezek bench`` from a checkout: the benchmarks are not in the wheel (pyproject.toml)."""
    import importlib.util

    if importlib.util.find_spec("bot.bench") is None:
        return
    from bot.bench.cli import bench

    cli.add_command(bench)


_add_bench()


def main() -> None:
    from bot.cli.operator_errors import quiet_closed_loop_deliveries

    quiet_closed_loop_deliveries()
    cli(prog_name="kezek")


if __name__ == "__main__":
    main()
