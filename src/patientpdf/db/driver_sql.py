"""Plain SQL on the driver's own cursor, for the few statements every upload runs.

SQLAlchemy Core adds about 0.1 ms of CPU to each statement it runs (measured on the 2-core
development VM: `exec_driver_sql("select 1")` 95 µs, the same on the sqlite3 cursor 4 µs),
and an upload runs about a dozen: its admission reads, then the row, job, audit record and
savepoint of its group commit. Those run here, inside the caller's SQLAlchemy transaction
(same connection, same transaction), with values adapted as the Core column types would
adapt them (`schema.UtcDateTime`, `JSON`, `Boolean`), so both ways of writing a row read
back alike. Everything else keeps using Core.

SQL is written once, with `?` placeholders; PostgreSQL's driver gets them as `%s`.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from functools import cache
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError


def is_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


@cache
def _for_postgres(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


def execute(conn: Connection, sql: str, params: tuple[Any, ...] = ()) -> Any:
    """Run `sql` in the connection's transaction; the driver's cursor, to fetch from. As Core
    would: the driver's errors are raised as SQLAlchemy's (IntegrityError, OperationalError,
    ...) and a lost connection is invalidated; the engine's `before/after_cursor_execute`
    listeners (tracing, tests counting statements) see the statement, at no cost without any."""
    dbapi_connection = conn.connection.dbapi_connection
    assert dbapi_connection is not None  # a connection inside a transaction is open
    cursor = dbapi_connection.cursor()
    statement = _for_postgres(sql) if is_postgres(conn) else sql
    dispatch = conn.dispatch
    if dispatch.before_cursor_execute:
        dispatch.before_cursor_execute(conn, cursor, statement, params, None, False)
    try:
        cursor.execute(statement, params)
    except conn.dialect.loaded_dbapi.Error as exc:
        invalidated = conn.dialect.is_disconnect(exc, dbapi_connection, cursor)
        error = DBAPIError.instance(
            statement, params, exc, conn.dialect.loaded_dbapi.Error,
            hide_parameters=conn.engine.hide_parameters, connection_invalidated=invalidated, dialect=conn.dialect,
        )  # fmt: skip
        if invalidated:
            conn.invalidate(error)
        raise error from exc
    if dispatch.after_cursor_execute:
        dispatch.after_cursor_execute(conn, cursor, statement, params, None, False)
    return cursor


def timestamp(conn: Connection, moment: datetime) -> Any:
    """An aware datetime as `UtcDateTime` stores it: naive UTC; on SQLite, the text SQLAlchemy writes."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass an aware UTC datetime")
    naive = moment.astimezone(timezone.utc).replace(tzinfo=None)
    if is_postgres(conn):
        return naive
    return naive.strftime("%Y-%m-%d %H:%M:%S.%f")


def read_timestamp(value: Any) -> datetime | None:
    """A `UtcDateTime` column's raw value (text on SQLite, naive on PostgreSQL) as aware UTC."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.replace(tzinfo=timezone.utc)


def json_value(conn: Connection, value: Any) -> Any:
    """A value for a `JSON` column (json type on PostgreSQL, text on SQLite)."""
    if is_postgres(conn):
        from psycopg.types.json import Json

        return Json(value)
    return json.dumps(value)


def read_json(value: Any) -> Any:
    """A `JSON` column's raw value (text on SQLite; PostgreSQL's driver has parsed it)."""
    return json.loads(value) if isinstance(value, str) else value


class Savepoint:
    """SAVEPOINT / RELEASE / ROLLBACK TO on the driver: a group commit's piece, isolated."""

    def __init__(self, conn: Connection, name: str = "piece") -> None:
        self.conn, self.name = conn, name

    def __enter__(self) -> Savepoint:
        execute(self.conn, f"SAVEPOINT {self.name}")
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if exc_type is None:
            execute(self.conn, f"RELEASE SAVEPOINT {self.name}")
            return
        if self.conn.invalidated or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
            return  # the connection is gone: the piece's own error says so, and the transaction fails
        try:
            execute(self.conn, f"ROLLBACK TO SAVEPOINT {self.name}")
            execute(self.conn, f"RELEASE SAVEPOINT {self.name}")
        except DBAPIError:
            return  # the piece's own error goes on; the next statement meets the broken transaction
