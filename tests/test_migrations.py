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


def test_pdfs_stored_before_processing_get_their_job(database_url: str) -> None:
    from datetime import datetime, timezone

    from alembic import command
    from sqlalchemy import insert, select

    from patientpdf.db.migrate import alembic_config
    from patientpdf.db.schema import accounts, jobs, patients, pdfs

    database = Database(database_url)
    try:
        with database.engine.begin() as conn:
            config = alembic_config(database_url)
            config.attributes["connection"] = conn
            command.upgrade(config, "0002")
        now = datetime.now(timezone.utc)
        with database.engine.begin() as conn:
            conn.execute(insert(accounts).values(id=1, name="a", created_at=now))
            conn.execute(insert(patients).values(id=1, account_id=1, name="p", additional_variables={}, created_at=now))
            row = {"account_id": 1, "patient_id": 1, "filename": "a.pdf", "size": 1, "sha256": "0" * 64, "content_type": "application/pdf"}
            row |= {"page_count": 1, "repaired": False, "active_content": [], "created_at": now}
            for pdf_id in ("pdf_a", "pdf_b"):
                conn.execute(insert(pdfs).values(id=pdf_id, storage_key=pdf_id, **row))
        upgrade(database_url)
        with database.engine.connect() as conn:
            queued = conn.execute(select(jobs.c.kind, jobs.c.subject, jobs.c.account_id, jobs.c.status, jobs.c.payload)).all()
    finally:
        database.dispose()
    assert sorted(queued) == [("process_pdf", "pdf_a", 1, "queued", {}), ("process_pdf", "pdf_b", 1, "queued", {})]
