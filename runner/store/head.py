"""The schema revision this version of the code is written for (no imports: `status` compares
it with the database's own revision before deciding whether to load Alembic at all)."""

HEAD_REVISION = "0007"
"""The newest migration this version ships (tests/test_migrations.py checks it is Alembic's
head)."""
