"""PostgreSQL, the system of record: connection URLs, schema migrations (Alembic) and their runner."""
