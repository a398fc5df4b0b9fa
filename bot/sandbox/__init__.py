"""The sandbox (KEZEK_SANDBOX=1, `kezek demo`): its test clock kept in the database (clock), the
demo city (demo) and the bot in a terminal (console)."""
