"""Settings from the environment or a ``.env`` file (prefix ``KEZEK_``)."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Telegram's rule for setWebhook's secret_token (sent back in X-Telegram-Bot-Api-Secret-Token).
WEBHOOK_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")


class Settings(BaseSettings):
    # hide_input_in_errors: a bad value of a secret (a short KEZEK_SIGNING_KEY) is not echoed.
    model_config = SettingsConfigDict(env_prefix="KEZEK_", env_file=".env", extra="ignore",
                                      hide_input_in_errors=True)

    # The embedded default: an SQLite file in ./data. PostgreSQL: postgresql://user@host/db
    database_url: str = "sqlite:///data/kezek.sqlite3"
    # Language of operator output (CLI): ru or kk.
    lang: str = "ru"
    # How much `kezek run` and `kezek demo` log: DEBUG, INFO, WARNING, ERROR or CRITICAL. At every
    # level personal data stays out (bot/logsafe.py): bound SQL values are hidden, the drivers'
    # value-carrying debug lines are off, and IINs, phones, e-mails, codes and tokens are masked.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # Where e-mails go when no SMTP server is configured (.eml files).
    mail_dir: Path = Path("data/mail")
    # Where the privilege documents parents send in the chat are kept (services/doc_storage.py):
    # a folder every bot instance, the API and the CLI can read (a shared one when scaled out).
    documents_dir: Path = Path("data/documents")
    # Each such file is decoded in a worker process killed after this many seconds (the file is
    # then refused as too complex); at most document_check_workers at once (services/doc_check.py).
    document_check_seconds: Annotated[float, Field(gt=0, le=300)] = 10.0
    document_check_workers: Annotated[int, Field(ge=1, le=16)] = 2
    # Sandbox mode (KEZEK_SANDBOX=1): a test clock that the sandbox API can move
    # (/api/v1/sandbox/clock); absent otherwise.
    sandbox: bool = False
    # The Telegram bot token from @BotFather (KEZEK_BOT_TOKEN); `kezek run` refuses to start without it.
    bot_token: str = ""
    # The Bot API server: Telegram's, a local Bot API server, or a test stand-in.
    bot_api_url: str = "https://api.telegram.org"

    # --- scale-out (ARCHITECTURE.md, bot/deploy/README.md) -------------------------------------------------
    # Redis (redis://host:6379/0): FSM storage, event isolation and the shared throttle.
    # Empty: in-memory FSM and throttle (one process only).
    redis_url: str = ""
    # Webhook mode: the public base URL Telegram posts to (https://bot.example.kz); the webhook is
    # webhook_url + webhook_path. Empty: long polling.
    webhook_url: str = ""
    webhook_path: str = "/telegram/webhook"
    # Required with webhook_url: 1-256 characters of A-Z, a-z, 0-9, _ and -.
    webhook_secret: str = ""
    # Where the webhook server listens (behind the TLS-terminating proxy / load balancer).
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 8080

    # --- throttling: at most throttle_rate updates per chat per throttle_per_seconds window -------
    # (0 turns throttling off). The window is a plain fixed window, so a chat may send a burst of up
    # to throttle_rate updates at once.
    throttle_rate: int = 20
    throttle_per_seconds: float = 60.0

    # --- notices ------------------------------------------------------------------------------
    # SMTP for the e-mail copies; empty smtp_host: e-mails are written to mail_dir as .eml files.
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_from: str = "Kezek <noreply@kezek.local>"
    # STARTTLS on a plain port (587); smtp_tls: TLS from the start (465).
    smtp_starttls: bool = True
    smtp_tls: bool = False
    # How long the outbox sender waits when nothing was due, and how often the sweeps run.
    outbox_idle_seconds: float = 1.0
    sweep_seconds: float = 30.0
    # Telegram's limits (https://core.telegram.org/bots/faq#broadcasting-to-users): at most
    # telegram_rate messages a second overall and telegram_chat_rate a second to one chat
    # (0 lifts a limit, for benchmarks against a stand-in); send_concurrency sends in flight at once.
    telegram_rate: Annotated[float, Field(ge=0)] = 30.0
    telegram_chat_rate: Annotated[float, Field(ge=0)] = 1.0
    send_concurrency: Annotated[int, Field(ge=1, le=256)] = 8
    # A sender leases the deliveries it is about to send for this long and renews the lease every
    # third of it while it holds them; if it dies, another sender (or the same one restarted)
    # takes them up at most this long after its last renewal (at least 5).
    outbox_lease_seconds: float = 15.0
    # Asia/Almaty hours: the nightly queue-number snapshot, and the opt-in "your number moved" digest.
    snapshot_hour: Annotated[int, Field(ge=0, le=23)] = 0
    digest_hour: Annotated[int, Field(ge=0, le=23)] = 10

    # --- the registry HTTP API (/api/v1) ---------------------------------------------------------
    # The bearer token registry systems send (Authorization: Bearer <token>); empty: the API
    # refuses every request but /api/v1/health. At least 32 characters when set.
    api_token: str = ""
    api_host: str = "127.0.0.1"
    api_port: Annotated[int, Field(ge=1, le=65535)] = 8081
    # Largest request body accepted (bytes): a list of 10,000 applications is about 4 MB.
    api_max_body_bytes: Annotated[int, Field(ge=1024)] = 16 * 1024 * 1024
    # Most rows (array items) one request may carry: more get 413 too_many_rows before any row is
    # checked (the OpenAPI document's maxItems). A bigger load: several requests, or `kezek import`.
    api_max_rows: Annotated[int, Field(ge=1, le=1_000_000)] = 5000

    # --- the public referral page (bot/web: what the referral's QR code opens) ---------------------
    # The https base the public reaches Kezek's page on, behind the reverse proxy
    # (https://kezek.example.kz; http only for localhost): the QR code of a referral PDF opens
    # <public_url>/r/<code>, and `kezek run` serves that page on page_host:page_port. Empty: no
    # page; the QR code holds the bare code, which the registry checks.
    public_url: str = ""
    page_host: str = "127.0.0.1"
    page_port: Annotated[int, Field(ge=1, le=65535)] = 8082
    # Checks one client (one address) may make on the page a minute; more get a "try again" page.
    page_rate: Annotated[int, Field(ge=1, le=10_000)] = 30

    # --- signed tokens (the referral's QR code; services/signing.py) -------------------------------
    # The HMAC key (at least 32 characters, e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))').
    # Empty: a random key made once and kept in the database, which every instance and the CLI
    # share. Set it to keep the key out of the database; changing it refuses every token made
    # under the old key. A SecretStr: never shown by repr() or in a log line.
    signing_key: SecretStr = SecretStr("")
    # Rotating the key: put the old one here (KEZEK_SIGNING_KEY_PREVIOUS) and the new one in
    # KEZEK_SIGNING_KEY. New tokens are signed with the new key; tokens made under the old one
    # still verify (the referrals already printed, the links already mailed) until this is emptied,
    # after the longest token life (14 days). Only with KEZEK_SIGNING_KEY set.
    signing_key_previous: SecretStr = SecretStr("")

    # The bot's username (without @) for the deep links of registration e-mails
    # (https://t.me/<username>?start=<token>). Empty: asked from Telegram (getMe) by the senders'
    # bot; a process with neither sends those e-mails without the link (they say to use /link).
    bot_username: str = ""

    # Telegram user ids of the operators (KEZEK_ADMIN_IDS=1,2,3).
    admin_ids: Annotated[list[int], NoDecode] = []

    @field_validator("public_url")
    @classmethod
    def _public_base(cls, value: str) -> str:
        return public_base(value)

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_name(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [int(part) for part in value.replace(";", ",").split(",") if part.strip()]
        if isinstance(value, int):
            return [value]
        return value

    @field_validator("signing_key", "signing_key_previous")
    @classmethod
    def _signing_key_length(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if secret and not 32 <= len(secret.encode("utf-8")) <= 512:
            raise ValueError("KEZEK_SIGNING_KEY and KEZEK_SIGNING_KEY_PREVIOUS must be empty or 32 to 512 bytes long")
        return value

    @model_validator(mode="after")
    def _previous_needs_a_key(self) -> Settings:
        if self.signing_key_previous.get_secret_value() and not self.signing_key.get_secret_value():
            raise ValueError("KEZEK_SIGNING_KEY_PREVIOUS is set without KEZEK_SIGNING_KEY: set the new key too")
        return self

    def signing_key_bytes(self) -> bytes | None:
        """The configured signing key, or None: the database's key is used."""
        return self.signing_key.get_secret_value().encode("utf-8") or None

    def previous_signing_keys(self) -> tuple[bytes, ...]:
        """Keys whose tokens still verify (``signing_key_previous``), none when it is empty."""
        previous = self.signing_key_previous.get_secret_value().encode("utf-8")
        return (previous,) if previous else ()

    def sqlite_path(self) -> Path | None:
        for prefix in ("sqlite:///", "sqlite+aiosqlite:///"):
            if self.database_url.startswith(prefix):
                return Path(self.database_url[len(prefix):])
        return None

    @property
    def webhook_mode(self) -> bool:
        return bool(self.webhook_url.strip())

    def webhook_problem(self) -> str | None:
        """Why webhook mode cannot start (a short English reason for logs), or None when it can
        (or when webhook mode is off)."""
        if not self.webhook_mode:
            return None
        if not self.webhook_url.strip().lower().startswith("https://"):
            return "KEZEK_WEBHOOK_URL must start with https://"
        if not self.webhook_path.startswith("/"):
            return "KEZEK_WEBHOOK_PATH must start with /"
        if not WEBHOOK_SECRET_RE.fullmatch(self.webhook_secret):
            return "KEZEK_WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ and -"
        return None

    def webhook_full_url(self) -> str:
        return self.webhook_url.strip().rstrip("/") + self.webhook_path


def public_base(value: str) -> str:
    """``KEZEK_PUBLIC_URL`` checked: empty, or an https base without a query or fragment (http only
    for localhost, a sandbox on one machine); given back without the trailing slash."""
    text = value.strip()
    if not text:
        return ""
    parts = urlsplit(text)
    local = parts.scheme == "http" and (parts.hostname or "") in ("localhost", "127.0.0.1", "::1")
    if (parts.scheme != "https" and not local) or not parts.netloc or parts.query or parts.fragment \
            or "@" in parts.netloc or any(c.isspace() for c in text):
        raise ValueError("an https base address")
    return text.rstrip("/")


@lru_cache
def get_settings() -> Settings:
    return Settings()
