"""Benchmarks, the load driver and the Bot API stand-in: development tools, kept out of the wheel
(pyproject.toml excludes ``bot.bench``). ``kezek bench`` from a checkout: ``bot/bench/cli.py``."""

from pathlib import Path

# The checkout these modules are in: the processes the benchmarks start import their code from here
# (first on their path), not from wherever the ``kezek`` package is installed.
CHECKOUT = Path(__file__).resolve().parents[2]
