"""aiogram routers (the Telegram front, see issue 3). Handlers only parse, call services and render."""
