"""Schema versioning: a version table and ordered migrations, so old ledgers open in new releases."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.orm import Session

from migrator.errors import ConfigError
from state.models import Base, SchemaVersion

CURRENT_VERSION = 5


def _container_source_path_and_role(session: Session) -> None:
    session.execute(text("ALTER TABLE container ADD COLUMN source_path TEXT DEFAULT '[]' NOT NULL"))
    session.execute(text("ALTER TABLE container ADD COLUMN role VARCHAR(40) DEFAULT '' NOT NULL"))


def _item_dest_mtime(session: Session) -> None:
    session.execute(text("ALTER TABLE item ADD COLUMN dest_mtime FLOAT"))


def _leases_and_heartbeats(session: Session) -> None:
    session.execute(text("ALTER TABLE item ADD COLUMN lease_expires_at TIMESTAMP"))
    session.execute(text("ALTER TABLE run ADD COLUMN heartbeat_at TIMESTAMP"))
    session.execute(text("ALTER TABLE run ADD COLUMN items_done INTEGER DEFAULT 0 NOT NULL"))
    session.execute(text("CREATE INDEX ix_item_state_id ON item (state, id)"))
    if session.get_bind().dialect.name == "postgresql":  # SQLite never enforced the length
        session.execute(text("ALTER TABLE run ALTER COLUMN status TYPE VARCHAR(40)"))  # "completed_with_failures" did not fit


def _item_listed(session: Session) -> None:
    session.execute(text("ALTER TABLE item ADD COLUMN listed TEXT"))


# version -> function that upgrades a ledger from version-1 to version.
MIGRATIONS: dict[int, Callable[[Session], None]] = {2: _container_source_path_and_role, 3: _item_dest_mtime, 4: _leases_and_heartbeats, 5: _item_listed}


def ensure_schema(engine: Engine) -> int:
    if engine.dialect.name != "postgresql":
        return _ensure_schema(engine)
    # Workers starting together on one empty database must not create or upgrade it twice.
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(7030)"))
        connection.commit()
        try:
            return _ensure_schema(engine)
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(7030)"))
            connection.commit()


def _ensure_schema(engine: Engine) -> int:
    tables = set(inspect(engine).get_table_names())
    if "schema_version" not in tables:
        if tables & {"run", "item", "event"}:
            raise ConfigError(
                "the ledger database holds tables but no schema version",
                hint="point --ledger at a migrator ledger or an empty database",
            )
        Base.metadata.create_all(engine)
        with Session(engine) as session, session.begin():
            session.add(SchemaVersion(version=CURRENT_VERSION))
        return CURRENT_VERSION
    with Session(engine) as session, session.begin():
        version = session.scalar(select(SchemaVersion.version).order_by(SchemaVersion.version.desc()).limit(1)) or 0
        if version > CURRENT_VERSION:
            raise ConfigError(
                f"the ledger has schema version {version}, this migrator knows up to {CURRENT_VERSION}",
                hint="upgrade migrator before using this ledger",
            )
        for step in range(version + 1, CURRENT_VERSION + 1):
            MIGRATIONS[step](session)
            session.add(SchemaVersion(version=step))
    return CURRENT_VERSION
