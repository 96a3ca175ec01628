"""The schema's history: an upgraded database is a fresh one with the user's rows in it.

A database made by release 5c99734 (tests/fixtures, made by that release's own
code: see make_release_fixtures.py) is loaded, opened by this batchtui (which
runs the steps it lacks), and compared with a database this batchtui makes
from nothing: every row of the dump must still be there, and the tables,
columns, indexes, foreign keys (and on PostgreSQL the constraints, sequences,
grants, guard functions and triggers) must be the same. Then the models must
match that schema, so that a model changed without a migration step (or a
step without its model change) fails here and not on a user's database.
"""

from __future__ import annotations

import ast
import itertools
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from peewee import ForeignKeyField, IntegerField
from playhouse.migrate import SchemaMigrator, migrate

from batchtui import db as dbmod
from batchtui import identity, migrations
from batchtui import models as m
from batchtui.errors import UserError
from batchtui.migrations import v2_pg_guards

from .pgserver import create_database, find_bin

RELEASE = "5c99734"
FIXTURES = Path(__file__).parent / "fixtures"
SQLITE_DUMP = FIXTURES / f"release-{RELEASE}-sqlite.sql"
POSTGRES_DUMP = FIXTURES / f"release-{RELEASE}-postgres.sql"
ROOT = Path(__file__).resolve().parent.parent

_names = itertools.count(1)


def _pg_database(admin_url: str, what: str) -> str:
    return create_database(admin_url, f"bt_migr_{os.getpid()}_{what}_{next(_names)}")


def _open_and_close(url: str, steps=None) -> None:
    """open_database(url) runs the migrations (or the given steps); the connection is not kept."""
    db = dbmod.open_database(url, migrate=steps is None)
    if steps is not None:
        migrations.migrate_schema(db, steps)
    db.close()


# -- loading the release's dumps ---------------------------------------------------------


def load_sqlite_release(path: Path) -> str:
    conn = sqlite3.connect(path)
    conn.executescript(SQLITE_DUMP.read_text())
    conn.close()
    return f"sqlite:///{path}"


def load_postgres_release(admin_url: str) -> str:
    """A new database holding the release's dump, loaded by psql as pg_dump meant it."""
    psql = find_bin("psql")
    if psql is None:
        pytest.skip("psql not found")
    url = _pg_database(admin_url, "release")
    # Roles are the cluster's, not the dump's: made here as migration 2 made them, for its GRANTs.
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(v2_pg_guards.CREATE_ROLES)
    proc = subprocess.run([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", str(POSTGRES_DUMP)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return url


# -- what a database holds ---------------------------------------------------------------


def sqlite_rows(path: Path) -> dict[str, tuple[list[str], list[tuple]]]:
    """Every row of every table: {table: (columns, rows sorted)}."""
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        out = {}
        for table in tables:
            columns = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
            out[table] = (columns, _sorted(conn.execute(f'SELECT * FROM "{table}"').fetchall()))
        return out
    finally:
        conn.close()


def sqlite_select(path: Path, table: str, columns: list[str]) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return _sorted(conn.execute(f'SELECT {", ".join(_quote(c) for c in columns)} FROM "{table}"').fetchall())
    finally:
        conn.close()


def postgres_rows(url: str) -> dict[str, tuple[list[str], list[tuple]]]:
    with psycopg.connect(url) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        out = {}
        for table in tables:
            columns = [r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
                "AND table_name = %s ORDER BY ordinal_position", (table,))]
            out[table] = (columns, _sorted(conn.execute(f'SELECT * FROM "{table}"').fetchall()))
        return out


def postgres_select(url: str, table: str, columns: list[str]) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return _sorted(conn.execute(f'SELECT {", ".join(_quote(c) for c in columns)} FROM "{table}"').fetchall())


def _sorted(rows) -> list[tuple]:
    return sorted((tuple(r) for r in rows), key=repr)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sqlite_schema(path: Path) -> dict:
    """Tables, columns, indexes, foreign keys and the CREATE text SQLite keeps, by name."""
    conn = sqlite3.connect(path)
    try:
        master = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
        index_sql = {n: s or "" for kind, n, _, s in master if kind == "index"}
        schema: dict = {"objects": sorted((t, n, tbl) for t, n, tbl, _ in master)}
        for kind, name, _, sql in master:
            schema[f"{kind} {name}: CREATE text"] = sql
            if kind != "table":
                continue
            # cid, name, type, notnull, default, pk, hidden
            schema[f"table {name}: columns"] = conn.execute(f'PRAGMA table_xinfo("{name}")').fetchall()
            schema[f"table {name}: foreign keys"] = sorted(
                conn.execute(f'PRAGMA foreign_key_list("{name}")').fetchall())
            for _, index, unique, origin, partial in conn.execute(f'PRAGMA index_list("{name}")').fetchall():
                where = index_sql[index].split(" WHERE ", 1)[1] if partial else None
                # seqno, cid, name (None: an expression), desc, collation, key column
                keys = conn.execute(f'PRAGMA index_xinfo("{index}")').fetchall()
                schema[f"index {index}"] = {"table": name, "unique": unique, "origin": origin,
                                            "where": where, "keys": keys}
        schema["version"] = conn.execute("SELECT version FROM batchtui_schema").fetchall()
        return schema
    finally:
        conn.close()


#: What is compared on PostgreSQL: {what: (query, how many leading values name a row)}.
PG_CATALOG = {
    "table": ("SELECT tablename FROM pg_tables WHERE schemaname = 'public'", 1),
    "column": ("""
        SELECT table_name, column_name, data_type, character_maximum_length, numeric_precision,
               is_nullable, column_default,
               ROW_NUMBER() OVER (PARTITION BY table_name ORDER BY ordinal_position)
        FROM information_schema.columns WHERE table_schema = 'public'""", 2),
    "index": ("SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'", 2),
    "constraint": ("""
        SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid)
        FROM pg_constraint WHERE connamespace = 'public'::regnamespace""", 2),
    "sequence": ("""
        SELECT sequencename, data_type::text, start_value, min_value, max_value, increment_by, cycle, cache_size
        FROM pg_sequences WHERE schemaname = 'public'""", 1),
    "sequence owner": ("""
        SELECT s.relname, t.relname, a.attname FROM pg_depend d
        JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
        JOIN pg_class t ON t.oid = d.refobjid
        JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
        WHERE d.deptype = 'a' AND s.relnamespace = 'public'::regnamespace""", 1),
    "grants": ("""
        SELECT c.relname, c.relkind, ARRAY(SELECT a::text FROM unnest(c.relacl) a ORDER BY 1)
        FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'S', 'v')""", 1),
    "function": ("""
        SELECT proname || '(' || pg_get_function_identity_arguments(oid) || ')', pg_get_functiondef(oid),
               proacl::text
        FROM pg_proc WHERE pronamespace = 'public'::regnamespace""", 1),
    "trigger": ("""
        SELECT c.relname, t.tgname, t.tgenabled, pg_get_triggerdef(t.oid) FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid
        WHERE NOT t.tgisinternal AND c.relnamespace = 'public'::regnamespace""", 2),
    "role": ("SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'batchtui\\_%'", 1),
    "version": ("SELECT version FROM batchtui_schema", 0),
}


def postgres_schema(url: str) -> dict:
    """The catalog rows of PG_CATALOG, each under its kind and name ("index batch_job.batch_job_due")."""
    schema: dict = {}
    with psycopg.connect(url) as conn:
        for what, (sql, key) in PG_CATALOG.items():
            for row in conn.execute(sql).fetchall():
                schema.setdefault(" ".join([what, ".".join(map(str, row[:key]))]).strip(), []).append(row)
    return schema


def assert_same_schema(upgraded: dict, fresh: dict) -> None:
    differ = [key for key in sorted(set(upgraded) | set(fresh)) if upgraded.get(key) != fresh.get(key)]
    assert not differ, "the upgraded database differs from a fresh one:\n" + "\n".join(
        f"{key}:\n  upgraded: {upgraded.get(key)!r}\n  fresh:    {fresh.get(key)!r}" for key in differ[:10])


def assert_every_row_kept(before: dict, select) -> None:
    """Each table of the dump still holds exactly its rows (read by the dump's columns).

    But batchtui_schema: its one row is the version, which an upgrade changes (the schema comparison checks it).
    """
    assert all(rows for _, rows in before.values()), "the fixture should have rows in every table"
    for table, (columns, rows) in before.items():
        if table == "batchtui_schema":
            continue
        after = select(table, columns)
        assert after == rows, f"{table}: {len(rows)} rows in the dump, {len(after)} after the upgrade, or changed"


# -- an upgraded database is a fresh one with the user's rows --------------------------------


def test_release_sqlite_database_upgrades_to_the_fresh_schema_with_every_row(tmp_path):
    path = tmp_path / "release.db"
    url = load_sqlite_release(path)
    before = sqlite_rows(path)
    _open_and_close(url)
    assert_every_row_kept(before, lambda table, columns: sqlite_select(path, table, columns))

    fresh = tmp_path / "fresh.db"
    _open_and_close(f"sqlite:///{fresh}")
    assert_same_schema(sqlite_schema(path), sqlite_schema(fresh))


@pytest.mark.postgres
def test_release_postgres_database_upgrades_to_the_fresh_schema_with_every_row(pg_admin_url):
    url = load_postgres_release(pg_admin_url)
    before = postgres_rows(url)
    _open_and_close(url)
    assert_every_row_kept(before, lambda table, columns: postgres_select(url, table, columns))

    fresh = _pg_database(pg_admin_url, "fresh")
    _open_and_close(fresh)
    assert_same_schema(postgres_schema(url), postgres_schema(fresh))


# -- a later step written with playhouse.migrate ----------------------------------------------


def _step_4(db, migrator) -> None:
    """Not part of the history: a NOT NULL column on batch_job, the parent of most tables.

    SQLite before 3.53 adds the NOT NULL by rebuilding the table (copy, DROP,
    rename): with foreign keys on, that DROP would delete every task, run,
    attempt and alert setting of every job.
    """
    migrate(
        migrator.add_column("batch_job", "timeout", IntegerField(default=0)),
        migrator.add_index("batch_job", ("timeout",), False),
    )


LATER = [*migrations.MIGRATIONS, (migrations.SCHEMA_VERSION + 1, _step_4)]


def test_a_later_step_with_playhouse_migrate_keeps_every_row_on_sqlite(tmp_path):
    path = tmp_path / "release.db"
    url = load_sqlite_release(path)
    before = sqlite_rows(path)
    db = dbmod.open_database(url, migrate=False)
    assert type(SchemaMigrator.from_database(db)).__name__ == "SqliteMigrator"
    db.connect()  # the connection the migration switches foreign keys off on, and on again
    migrations.migrate_schema(db, LATER)
    assert db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1, "foreign keys are on again"
    db.close()
    assert_every_row_kept(before, lambda table, columns: sqlite_select(path, table, columns))
    assert sqlite_select(path, "batch_job", ["timeout"]) == [(0,)] * len(before["batch_job"][1])

    fresh = tmp_path / "fresh.db"
    _open_and_close(f"sqlite:///{fresh}", LATER)
    assert_same_schema(sqlite_schema(path), sqlite_schema(fresh))
    assert sqlite_schema(path)["version"] == [(LATER[-1][0],)]


@pytest.mark.postgres
def test_a_later_step_with_playhouse_migrate_keeps_every_row_on_postgres(pg_admin_url):
    url = load_postgres_release(pg_admin_url)
    before = postgres_rows(url)
    db = dbmod.open_database(url, migrate=False)
    assert type(SchemaMigrator.from_database(db)).__name__ == "PostgresqlMigrator"
    migrations.migrate_schema(db, LATER)
    db.close()
    assert_every_row_kept(before, lambda table, columns: postgres_select(url, table, columns))
    assert postgres_select(url, "batch_job", ["timeout"]) == [(0,)] * len(before["batch_job"][1])

    fresh = _pg_database(pg_admin_url, "fresh")
    _open_and_close(fresh, LATER)
    assert_same_schema(postgres_schema(url), postgres_schema(fresh))


def test_a_step_that_breaks_a_foreign_key_on_sqlite_is_rolled_back(tmp_path):
    """Foreign keys are off while steps run on SQLite; a step that orphans a row must not commit."""
    path = tmp_path / "release.db"
    url = load_sqlite_release(path)
    before = sqlite_rows(path)

    def orphan_tasks(db, migrator) -> None:
        db.execute_sql("DELETE FROM batch_job WHERE id = (SELECT MIN(job_id) FROM batch_task)")

    db = dbmod.open_database(url, migrate=False)
    with pytest.raises(RuntimeError, match=r"the schema upgrade broke \d+ foreign keys: \w+ row \d+ -> batch_job"):
        migrations.migrate_schema(db, [*migrations.MIGRATIONS, (migrations.SCHEMA_VERSION + 1, orphan_tasks)])
    db.close()
    assert sqlite_rows(path) == before


# -- the models agree with the history ------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_url(request, tmp_path):
    """A database this batchtui made from nothing (migrated), SQLite or PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/fresh.db"
    else:
        url = _pg_database(request.getfixturevalue("pg_admin_url"), "fresh")
    _open_and_close(url)
    return url


def test_every_model_field_has_its_column_and_every_column_its_field(fresh_url):
    db = dbmod.open_database(fresh_url, migrate=False)
    try:
        tables = {model._meta.table_name: model for model in m.ALL_MODELS}
        assert set(db.get_tables()) - {"batchtui_schema", "sqlite_sequence"} == set(tables)
        for table, model in tables.items():
            columns = {c.name: c for c in db.get_columns(table)}
            fields = {f.column_name: f for f in model._meta.sorted_fields}
            assert set(columns) == set(fields), f"{table}: columns without a field or fields without a column"
            for name, field in fields.items():
                assert columns[name].null == field.null, f"{table}.{name}: null {columns[name].null} in the schema"
                assert columns[name].primary_key == field.primary_key, f"{table}.{name}: primary key"
            keys = {(fk.column, fk.dest_table, fk.dest_column) for fk in db.get_foreign_keys(table)}
            assert keys == {(f.column_name, f.rel_model._meta.table_name, f.rel_field.column_name)
                            for f in fields.values() if isinstance(f, ForeignKeyField)}, f"{table}: foreign keys"
            indexes = {i.name: i for i in db.get_indexes(table)}
            for index in model._meta.fields_to_index():
                wanted = [f.column_name for f in index._expressions]
                found = indexes.get(index._name)
                assert found is not None, f"{table}: the model's index {index._name} is missing"
                assert (found.columns, found.unique) == (wanted, index._unique), f"index {index._name}"
    finally:
        db.close()


def _autoincrement_tables(path) -> dict[str, bool]:
    """{table: whether its id is AUTOINCREMENT} for every table with an integer id."""
    conn = sqlite3.connect(path)
    try:
        out = {}
        for name, sql in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"):
            keys = [r for r in conn.execute(f'PRAGMA table_info("{name}")') if r[5]]
            if [(k[1], k[2]) for k in keys] == [("id", "INTEGER")]:
                out[name] = "AUTOINCREMENT" in sql
        return out
    finally:
        conn.close()


def test_on_sqlite_every_integer_id_is_autoincrement_in_the_history_and_the_models(tmp_path):
    """Step 6 (issue 16): an id is never given twice, not even a deleted row's; the models say the same."""
    from peewee import SqliteDatabase

    fresh = tmp_path / "fresh.db"
    _open_and_close(f"sqlite:///{fresh}")
    release = tmp_path / "release.db"
    _open_and_close(load_sqlite_release(release))
    made = tmp_path / "models.db"
    models_db = SqliteDatabase(str(made))
    with models_db.bind_ctx(m.ALL_MODELS):
        models_db.create_tables(m.ALL_MODELS)
    models_db.close()
    expected = {model._meta.table_name: True for model in m.ALL_MODELS
                if isinstance(model._meta.primary_key, m.IdField)}
    assert len(expected) == 10  # step 8 adds job_audit
    for path in (fresh, release, made):
        assert _autoincrement_tables(path) == expected, path.name


def test_an_upgraded_sqlite_database_gives_no_deleted_row_its_id_again(tmp_path):
    """The release's newest rows deleted after the upgrade: new rows take ids after them all the same."""
    path = tmp_path / "release.db"
    url = load_sqlite_release(path)
    before = {t: max(r[0] for r in rows) for t, (cols, rows) in sqlite_rows(path).items()
              if cols and cols[0] == "id" and rows and isinstance(rows[0][0], int)}
    _open_and_close(url)
    conn = sqlite3.connect(path)
    try:
        assert dict(conn.execute("SELECT name, seq FROM sqlite_sequence")) == before
        newest = before["batch_job"]
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("DELETE FROM batch_job WHERE id = ?", (newest,))
        conn.execute("INSERT INTO batch_job (description, company_id, scheduled_start, time_zone, status, priority, "
                     "recurrence_text, created_by, run_by, created, modified, version, run_count) "
                     "VALUES ('new', 'DAT', '2026-01-01', 'UTC', 0, 1, '', 'ops', 'ops', '2026-01-01', "
                     "'2026-01-01', 1, 0)")
        assert conn.execute("SELECT MAX(id) FROM batch_job").fetchone()[0] == newest + 1
        conn.commit()
    finally:
        conn.close()


def test_an_upgraded_recurring_job_counts_the_runs_it_made_towards_end_after(tmp_path):
    """Step 6: "End after N" counts runs (issue 16); a job that recurs has made run_count of them."""
    path = tmp_path / "release.db"
    _open_and_close(load_sqlite_release(path))
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT recurrence IS NOT NULL, run_count, recurrence_runs FROM batch_job").fetchall()
    finally:
        conn.close()
    assert any(recurs and runs for recurs, runs, _ in rows) and any(not recurs and runs for recurs, runs, _ in rows)
    assert all(counted == (runs if recurs else 0) for recurs, runs, counted in rows)


def test_a_fresh_database_holds_the_rows_5c99734_seeded_and_no_others(fresh_url):
    """The schema comparison sees no rows: the Empty batch group and the default company are checked here."""
    db = dbmod.open_database(fresh_url, migrate=False)
    with db.connection_context():
        rows = {table: db.execute_sql(f"SELECT * FROM {table}").fetchall() for table in db.get_tables()}
    db.close()
    assert rows == {table: [] for table in rows} | {
        "batch_group": [("", "Empty batch group", 0)],
        "company": [("DAT", "Default company")],
        "batchtui_schema": [(migrations.SCHEMA_VERSION,)],
    }


# -- versions -----------------------------------------------------------------------------


def _set_version(url: str, version: int) -> None:
    db = dbmod.open_database(url, migrate=False)
    with db.connection_context():
        db.execute_sql(f"UPDATE batchtui_schema SET version = {int(version)}")
    db.close()


def test_a_database_newer_than_this_batchtui_is_refused(fresh_url):
    newer = migrations.SCHEMA_VERSION + 1
    _set_version(fresh_url, newer)
    with pytest.raises(UserError, match=rf"^the database has schema version {newer}, newer than this "
                                        rf"batchtui \({migrations.SCHEMA_VERSION}\): upgrade batchtui$"):
        dbmod.open_database(fresh_url)
    db = dbmod.open_database(fresh_url, migrate=False)
    with db.connection_context():
        assert db.execute_sql("SELECT version FROM batchtui_schema").fetchall() == [(newer,)]
    db.close()


class _Statements(logging.Handler):
    """The statements peewee runs (its query log), to see that nothing is written."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.sql: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, tuple):
            self.sql.append(record.msg[0])


def test_a_current_database_is_only_read(fresh_url):
    db = dbmod.open_database(fresh_url, migrate=False)
    log, logger = _Statements(), logging.getLogger("peewee")
    level = logger.level
    logger.addHandler(log)
    logger.setLevel(logging.DEBUG)
    try:
        migrations.migrate_schema(db)
    finally:
        logger.removeHandler(log)
        logger.setLevel(level)
        db.close()
    assert log.sql, "the version was read"
    assert [s for s in log.sql if not s.lstrip().upper().startswith("SELECT")] == []


# -- what the history may depend on -----------------------------------------------------------


def test_the_history_imports_neither_the_models_nor_the_vocabulary():
    """A step that read the models or a status enum would change when they do."""
    for path in sorted((ROOT / "batchtui" / "migrations").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names = [f"{node.module or ''}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                assert "models" not in name and "vocabulary" not in name, f"{path.name} imports {name}"


def test_identity_names_the_roles_that_migration_2_creates():
    assert identity.ROLES == v2_pg_guards.ROLES
    assert (identity.OPERATOR_ROLE, identity.MANAGER_ROLE, identity.SERVER_ROLE) == v2_pg_guards.ROLES


def test_identity_does_not_import_the_database_module():
    """identity <-> db was an import cycle; identity needs only the models' database proxy."""
    code = "import sys, batchtui.identity; print('batchtui.db' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.strip() == "False", proc.stderr
