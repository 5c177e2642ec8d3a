"""The migrations build exactly the tables of db/schema.py, on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from patientpdf.db.engine import Database
from patientpdf.db.migrate import upgrade
from patientpdf.db.schema import SEARCH_TABLE, metadata


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'm.db'}"
    return str(request.getfixturevalue("postgres").new_schema())


def test_migrations_match_the_schema_and_run_twice(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)  # already at head: nothing to do, no error
    engine = create_engine(Database(database_url).url)
    try:
        with engine.connect() as conn:
            # the search index is per database (FTS5 and its shadow tables, or tsvector), outside the metadata
            outside = {"include_name": lambda name, kind, _parent: not (kind == "table" and str(name).startswith(SEARCH_TABLE))}
            differences = compare_metadata(MigrationContext.configure(conn, opts=outside), metadata)
    finally:
        engine.dispose()
    assert differences == []
