"""aiogram routers (the Telegram front, ARCHITECTURE.md). Handlers only parse, call services and render."""
