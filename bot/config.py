"""Settings from the environment or a ``.env`` file (prefix ``KEZEK_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KEZEK_", env_file=".env", extra="ignore")

    # The embedded default: an SQLite file in ./data. PostgreSQL: postgresql://user@host/db
    database_url: str = "sqlite:///data/kezek.sqlite3"
    # Language of operator output (CLI): ru or kk.
    lang: str = "ru"
    # Where e-mails go when no SMTP server is configured (.eml files).
    mail_dir: Path = Path("data/mail")
    sandbox: bool = False
    # The Telegram bot token from @BotFather (KEZEK_BOT_TOKEN); `kezek run` refuses to start without it.
    bot_token: str = ""
    # The Bot API server: Telegram's, a local Bot API server, or a test stand-in.
    bot_api_url: str = "https://api.telegram.org"

    def sqlite_path(self) -> Path | None:
        for prefix in ("sqlite:///", "sqlite+aiosqlite:///"):
            if self.database_url.startswith(prefix):
                return Path(self.database_url[len(prefix):])
        return None


@lru_cache
def get_settings() -> Settings:
    return Settings()
