"""``python -m bot.cli``: the same as the ``kezek`` command."""

from bot.cli.main import main

main()
