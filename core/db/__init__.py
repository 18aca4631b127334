"""Persistence: typed ORM models, engine/session factories, repositories and migrations."""
