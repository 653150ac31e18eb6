"""Alembic migrations of the pushrelay schema, applied by :func:`pushrelay.db.upgrade`."""
