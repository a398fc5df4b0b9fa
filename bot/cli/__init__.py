"""`kezek`, the operator's command line (click). main: the group, its shared state and the
entry point; the commands by topic; rows: CSV/JSON files read for `kezek import`;
operator_errors: one-line localized refusals for a bad setting or an unreachable database."""

from bot.cli.base import cli
from bot.cli.main import main  # (which registers every command on cli)

__all__ = ["cli", "main"]
