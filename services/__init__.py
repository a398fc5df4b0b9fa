"""The domain of Kezek. Never imports aiogram; time comes from an injected Clock."""
