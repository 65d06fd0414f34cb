"""One projection's DuckDB file: its tables, its checkpoints, its rejects, its snapshot.

The checkpoint lives in the same file and the same transaction as the rows it describes, so a
crash at any point leaves both consistent and the projection resumes at checkpoint + 1 with an
exactly-once effect. A Store is used by one thread at a time for writes; readers take cursors.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import duckdb
import pyarrow as pa

from events.core.meta import Meta
from events.core.registry import Event
from projections.runtime.arrow_batches import execute_with, from_rows

log = logging.getLogger(__name__)

SYSTEM_DDL = [
    """CREATE TABLE IF NOT EXISTS _checkpoints (
        projection VARCHAR NOT NULL,       -- projection name
        stream VARCHAR NOT NULL,           -- JetStream stream name
        seq BIGINT NOT NULL,               -- last stream seq applied (or rejected) in this file
        PRIMARY KEY (projection, stream)
    )""",
    """CREATE TABLE IF NOT EXISTS _rejects (
        stream VARCHAR NOT NULL,           -- stream of the undecodable message
        seq BIGINT NOT NULL,               -- its stream seq
        subject VARCHAR NOT NULL,          -- its subject
        error VARCHAR NOT NULL,            -- why it could not be decoded, naming the field path
        payload BLOB,                      -- the payload as stored, secret-looking values redacted
        "at" TIMESTAMPTZ NOT NULL,         -- its JetStream time
        PRIMARY KEY (stream, seq)
    )""",
]
_TS = pa.timestamp("us", tz="UTC")
_REJECTS_SCHEMA = pa.schema([
    ("stream", pa.string()), ("seq", pa.int64()), ("subject", pa.string()),
    ("error", pa.string()), ("payload", pa.binary()), ("at", _TS),
])

Reject = tuple[str, int, str, str, bytes, Any]  # stream, seq, subject, error, payload, at
Batch = list[tuple[Meta, Event]]


def file_path(directory: Path, name: str, kind: str = "") -> Path:
    """`<name>.duckdb`, `<name>.snapshot.duckdb`, `<name>.next.duckdb`, `<name>.prev.duckdb`."""
    return Path(directory) / (f"{name}.{kind}.duckdb" if kind else f"{name}.duckdb")


def remove_file(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".wal")):
        p.unlink(missing_ok=True)


class Store:
    def __init__(self, path: Path | str, module: ModuleType, *, confine: bool = False) -> None:
        self.path = Path(path) if str(path) != ":memory:" else None
        self.confine = confine and self.path is not None
        self.module = module
        self.name: str = module.NAME
        self.con: duckdb.DuckDBPyConnection | None = None
        self.rejects = 0
        # Serialises batch commits with snapshots so a snapshot always falls between batches.
        self.lock = threading.Lock()

    def open(self) -> Store:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(self.path) if self.path else ":memory:")
        con.execute("SET GLOBAL TimeZone = 'UTC'")
        for stmt in (*SYSTEM_DDL, *self.module.DDL):
            con.execute(stmt)
        self.catalog = con.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
        self.rejects = con.execute("SELECT count(*) FROM _rejects").fetchone()[0]  # type: ignore[index]
        if self.confine:
            # Readers' SQL runs on cursors of this database: files outside the projections folder
            # stay out of reach (read_csv('/etc/...')), snapshots inside it keep working.
            assert self.path is not None
            con.execute("SET allowed_directories = $dirs", {"dirs": [f"{self.path.parent.resolve()}/"]})
            con.execute("SET enable_external_access = false")
        self.con = con
        log.info("projection %s opened %s", self.name, self.path or ":memory:")
        return self

    def close(self) -> None:
        with self.lock:
            con, self.con = self.con, None
            if con is not None:
                con.close()
                log.info("projection %s closed %s", self.name, self.path or ":memory:")

    def connection(self) -> duckdb.DuckDBPyConnection:
        if self.con is None:
            raise RuntimeError(f"projection {self.name} is not open")
        return self.con

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection of its own for one reader, safe to use from another thread."""
        return self.connection().cursor()

    def checkpoints(self) -> dict[str, int]:
        rows = self.connection().execute(
            "SELECT stream, seq FROM _checkpoints WHERE projection = ?", [self.name]
        ).fetchall()
        return {stream: int(seq) for stream, seq in rows}

    def commit(self, batch: Batch, rejects: Sequence[Reject], checkpoints: dict[str, int]) -> None:
        """Apply, record rejects and move the checkpoints in one transaction, or not at all."""
        with self.lock:
            con = self.connection()
            con.begin()
            try:
                if batch:
                    self.module.apply(con, batch)
                if rejects:
                    self._insert_rejects(con, rejects)
                for stream, seq in checkpoints.items():
                    con.execute(
                        "INSERT OR REPLACE INTO _checkpoints VALUES (?, ?, ?)", [self.name, stream, seq]
                    )
                con.commit()
            except BaseException:
                con.rollback()
                raise
            self.rejects += len(rejects)

    @staticmethod
    def _insert_rejects(con: duckdb.DuckDBPyConnection, rejects: Sequence[Reject]) -> None:
        execute_with(
            con, "_rejects_batch", from_rows(rejects, _REJECTS_SCHEMA),
            "INSERT OR REPLACE INTO _rejects SELECT * FROM _rejects_batch",
        )

    def snapshot(self, dest: Path) -> Path:
        """Copy the whole database into `dest` between two batches, then rename it into place.

        The rename is atomic, so a reader that has the previous snapshot open keeps reading it
        and a new reader finds either the old or the new file, never a partial one.
        """
        dest = Path(dest)
        tmp = dest.with_name(f"{dest.name}.tmp-{os.getpid()}")
        remove_file(tmp)
        with self.lock:
            con = self.connection()
            con.execute(f"ATTACH '{_quote(tmp)}' AS _snapshot")
            try:
                con.execute(f'COPY FROM DATABASE "{self.catalog}" TO _snapshot')
            finally:
                con.execute("DETACH _snapshot")
        os.replace(tmp, dest)
        return dest


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")
