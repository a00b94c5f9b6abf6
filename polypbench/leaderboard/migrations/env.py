"""Alembic environment: runs on the engine that :func:`polypbench.leaderboard.db.upgrade` passes in.

Concurrent upgrades serialize: SQLite by ``BEGIN IMMEDIATE``, PostgreSQL by a transaction-level advisory lock; the
second one then finds the schema current and does nothing.
"""

from __future__ import annotations

from alembic import context

from polypbench.leaderboard.db import Base

LOCK_ID = 7_461_013  # any constant: the advisory lock of polypbench leaderboard migrations

engine = context.config.attributes["engine"]
with engine.execution_options(immediate=True).connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({LOCK_ID})")
        context.run_migrations()
