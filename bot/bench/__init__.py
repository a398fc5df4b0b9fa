"""Benchmarks, the load driver and the Bot API stand-in: development tools, kept out of the wheel
(pyproject.toml excludes ``bot.bench``). ``kezek bench`` from a checkout: ``bot/bench/cli.py``."""

from pathlib import Path

# The checkout these modules are in: the processes the benchmarks start import their code from here
# (first on their path), not from wherever the ``kezek`` package is installed.
CHECKOUT = Path(__file__).resolve().parents[2]

# The verdict of a benchmark against the echo bot needs the echo measured before and after Kezek to
# agree within this share (the larger over the smaller, in rate or CPU per update); else the
# machine's other load moved between them: "machine busy", no verdict, and this exit status.
ECHO_TOLERANCE = 0.15
NO_VERDICT_EXIT = 3
