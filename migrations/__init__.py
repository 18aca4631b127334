"""Alembic migrations (shipped inside the distribution so `threadwise migrate` works when installed)."""
