"""The Telegram Bot API 10.1 as data (`api.json`, see README.md) and checks against it."""
