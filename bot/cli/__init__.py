"""`kezek`, the operator's command line (click). main: the group, its shared state and the
entry point; the commands by topic; rows: CSV/JSON files read for `kezek import`;
operator_errors: one-line localized refusals for a bad setting or an unreachable database."""

from bot.cli.main import cli, main

__all__ = ["cli", "main"]
