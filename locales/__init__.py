"""The message catalogs of Kezek (``<lang>/LC_MESSAGES/kezek.po``), shipped as package data so that
an installed wheel carries them; ``bot.i18n`` finds them through this package (see README.md here)."""
