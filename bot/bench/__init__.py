"""Benchmarks, the load driver and the Bot API stand-in: development tools, kept out of the wheel
(pyproject.toml excludes ``bot.bench``). ``kezek bench`` from a checkout: ``bot/bench/cli.py``."""
