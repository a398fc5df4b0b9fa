"""The Telegram front: the aiogram Dispatcher and its middlewares (app), polling or webhook
(runner, webhook), the per-chat gate and the Redis-down fallbacks (gate, degraded), the throttle
and the FSM storage."""
