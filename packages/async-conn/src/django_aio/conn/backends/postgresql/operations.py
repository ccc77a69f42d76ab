"""Django's PostgreSQL operations, pointing at our compilers (Note [Compiled query cache])."""

from __future__ import annotations

from django.db.backends.postgresql.operations import DatabaseOperations as PostgreSQLOperations

__all__ = ["DatabaseOperations"]


class DatabaseOperations(PostgreSQLOperations):
    """Django's PostgreSQL ``DatabaseOperations`` with django_aio's compiler module."""

    compiler_module = "django_aio.conn.backends.postgresql.compiler"
