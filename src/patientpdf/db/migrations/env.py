from alembic import context
from sqlalchemy import Connection, create_engine

from patientpdf.db.schema import metadata

config = context.config
connection = config.attributes.get("connection")


def run(conn: Connection) -> None:
    context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    run(connection)
else:
    with create_engine(config.attributes["database_url"]).connect() as conn:
        run(conn)
