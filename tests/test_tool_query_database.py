"""query_database: SQLite read-only unless approved, and BigQuery through a fake REST server."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from agent.config import Config, DatabaseConfig
from agent.errors import ToolError
from agent.procs import ProcessGroups
from agent.tools import query_database
from agent.tools.base import ToolContext
from agent.tools.query_database import split_statements
from tests.conftest import until
from tests.fake_bigquery import FakeBigQuery


def make_ctx(root: Path, dbs: dict[str, DatabaseConfig], *, approve: bool) -> tuple:
    asks: list[tuple[str, str, dict[str, Any]]] = []

    async def emit(type_: str, **payload: Any) -> None:
        pass

    async def ask(kind: str, summary: str, detail: dict[str, Any]) -> bool:
        asks.append((kind, summary, detail))
        return approve

    config = Config()
    config.data_dir = root.parent / "data"
    config.databases = dbs
    ctx = ToolContext(
        root=root, task_id="t-1", config=config, emit=emit, procs=ProcessGroups(), ask=ask
    )
    return ctx, asks


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "create table users(id integer primary key, name text, avatar blob);"
        "insert into users(name, avatar) values ('ada', x'00ff'), ('bob', null), ('cy', null);"
    )
    conn.close()
    return path


def rows(path: Path) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("select id, name from users order by id").fetchall()
    finally:
        conn.close()


async def test_sqlite_read_as_table(tmp_path: Path, db: Path) -> None:
    ctx, asks = make_ctx(tmp_path, {"app": DatabaseConfig(path=str(db))}, approve=False)
    result = await query_database.tool.run(
        {"sql": "select id, name, avatar from users order by id"}, ctx
    )
    assert not result.is_error and asks == []
    lines = result.output.splitlines()
    assert lines[0].split(" | ")[0].strip() == "id" and "name" in lines[0]
    assert "ada" in lines[2] and "<2 bytes>" in lines[2] and "NULL" in lines[3]
    assert lines[-1] == "(3 rows)"
    assert result.data["columns"] == ["id", "name", "avatar"] and result.data["row_count"] == 3


async def test_relative_path_is_in_the_worktree_and_rows_are_capped(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "big.db")
    conn.execute("create table n(x)")
    conn.executemany("insert into n values (?)", [(i,) for i in range(500)])
    conn.commit()
    conn.close()
    ctx, _ = make_ctx(tmp_path, {"big": DatabaseConfig(path="big.db")}, approve=False)
    result = await query_database.tool.run({"sql": "select x from n", "database": "big"}, ctx)
    assert result.data["row_count"] == 200 and result.data["truncated"] is True
    assert "first 200 rows shown" in result.output


async def test_denied_write_leaves_the_database_unchanged(tmp_path: Path, db: Path) -> None:
    before = db.read_bytes()
    ctx, asks = make_ctx(tmp_path, {"app": DatabaseConfig(path=str(db))}, approve=False)
    sql = "select count(*) from users; delete from users where name = 'bob'"
    result = await query_database.tool.run({"sql": sql}, ctx)
    assert result.is_error and result.data["denied"] is True
    assert "denied by operator" in result.output
    assert [a[0] for a in asks] == ["db_write"] and asks[0][2]["sql"] == sql
    assert db.read_bytes() == before and len(rows(db)) == 3


async def test_approved_write_applies(tmp_path: Path, db: Path) -> None:
    ctx, asks = make_ctx(tmp_path, {"app": DatabaseConfig(path=str(db))}, approve=True)
    result = await query_database.tool.run(
        {"sql": "update users set name = 'bea' where id = 2"}, ctx
    )
    assert not result.is_error, result.output
    assert result.output == "1 rows affected" and result.data["wrote"] is True
    assert len(asks) == 1 and rows(db)[1] == (2, "bea")


async def test_file_creating_statements_are_refused(tmp_path: Path, db: Path) -> None:
    ctx, asks = make_ctx(tmp_path, {"app": DatabaseConfig(path=str(db))}, approve=True)
    for sql in (f"attach '{tmp_path}/other.db' as o", f"vacuum into '{tmp_path}/copy.db'"):
        with pytest.raises(ToolError, match="not allowed"):
            await query_database.tool.run({"sql": sql}, ctx)
    assert not (tmp_path / "other.db").exists() and not (tmp_path / "copy.db").exists()
    assert asks == []


async def test_unknown_database_lists_names(tmp_path: Path, db: Path) -> None:
    dbs = {"app": DatabaseConfig(path=str(db)), "wh": DatabaseConfig(kind="bigquery")}
    ctx, _ = make_ctx(tmp_path, dbs, approve=False)
    with pytest.raises(ToolError, match="unknown database 'nope'; configured: app, wh"):
        await query_database.tool.run({"sql": "select 1", "database": "nope"}, ctx)
    with pytest.raises(ToolError, match="SQLite error"):
        await query_database.tool.run({"sql": "select * from missing"}, ctx)


def test_split_statements() -> None:
    sql = "select 'a;b'; -- c;\nselect 2;\n  ;select 3"
    assert [s.strip() for s in split_statements(sql)] == [
        "select 'a;b';",
        "-- c;\nselect 2;",
        "select 3",
    ]


@pytest.fixture
def fake_bq():
    with FakeBigQuery(dataset="shop") as fake:
        fake.execute(
            "create table orders(id integer, item text, price real);"
            "insert into orders values (1, 'tea', 2.5), (2, 'cake', 4.0), (3, 'tea', 2.5);"
        )
        yield fake


def bq_config(fake: FakeBigQuery) -> dict[str, DatabaseConfig]:
    cfg = DatabaseConfig(
        kind="bigquery", project="proj", dataset="shop", api_endpoint=fake.endpoint
    )
    return {"warehouse": cfg}


async def test_bigquery_select(tmp_path: Path, fake_bq: FakeBigQuery) -> None:
    ctx, asks = make_ctx(tmp_path, bq_config(fake_bq), approve=False)
    sql = "select item, count(*) as n, sum(price) as total from shop.orders group by item order by item"
    result = await query_database.tool.run({"sql": sql}, ctx)
    assert not result.is_error, result.output
    assert result.data["columns"] == ["item", "n", "total"]
    lines = result.output.splitlines()
    assert lines[2].split(" | ") == ["cake", "1", "4.0  "] and lines[3].split(" | ")[:2] == [
        "tea ",
        "2",
    ]
    assert asks == []
    # A dry run classifies the statement, then the real job runs and its rows are fetched.
    calls = [(m, p.split("/")[5]) for m, p, _ in fake_bq.requests]
    assert calls[:2] == [("POST", "jobs"), ("POST", "jobs")] and ("GET", "queries") in calls
    dry = fake_bq.requests[0][2]["configuration"]
    assert dry["dryRun"] is True and dry["query"]["defaultDataset"]["datasetId"] == "shop"


async def test_bigquery_write_needs_approval(tmp_path: Path, fake_bq: FakeBigQuery) -> None:
    sql = "delete from shop.orders where item = 'tea'"
    ctx, asks = make_ctx(tmp_path, bq_config(fake_bq), approve=False)
    result = await query_database.tool.run({"sql": sql}, ctx)
    assert result.is_error and result.data["denied"] is True
    assert asks[0][0] == "db_write" and asks[0][2]["statement_type"] == "DELETE"
    assert fake_bq.db.execute("select count(*) from orders").fetchone() == (3,)

    ctx, asks = make_ctx(tmp_path, bq_config(fake_bq), approve=True)
    result = await query_database.tool.run({"sql": sql}, ctx)
    assert not result.is_error, result.output
    assert result.output == "2 rows affected"
    assert fake_bq.db.execute("select count(*) from orders").fetchone() == (1,)


async def test_bigquery_error_is_reported(tmp_path: Path, fake_bq: FakeBigQuery) -> None:
    ctx, _ = make_ctx(tmp_path, bq_config(fake_bq), approve=False)
    with pytest.raises(ToolError, match="BigQuery error: .*no such table"):
        await query_database.tool.run({"sql": "select * from shop.nope"}, ctx)


async def test_stop_interrupts_an_approved_write_and_nothing_is_committed(
    tmp_path: Path, db: Path
) -> None:
    """The query runs in a thread, out of reach of task cancellation: the stop (kill_all,
    what an emergency stop calls) must interrupt it, roll it back and free the database."""
    ctx, asks = make_ctx(tmp_path, {"app": DatabaseConfig(path=str(db))}, approve=True)
    ctx.config.engine.command_timeout_s = 15  # bounds a runaway, should this test fail
    sql = (
        "create table big(x); delete from users where name = 'bob'; insert into big "
        "with recursive c(x) as (select 1 union all select x + 1 from c limit 300000000) "
        "select x from c"
    )
    call = asyncio.ensure_future(query_database.tool.run({"sql": sql}, ctx))
    journal = db.with_name(db.name + "-journal")
    await until(lambda: journal.exists() and len(asks) == 1, timeout=10)  # the write runs
    await asyncio.sleep(0.2)
    await ctx.procs.kill_all()
    with pytest.raises(ToolError, match="stopped: the task was stopped"):
        await asyncio.wait_for(call, 3)
    conn = sqlite3.connect(db, timeout=0.5)  # not locked: the writer really stopped
    try:
        conn.execute("insert into users(name) values ('after')")
        conn.commit()
        tables = [r[0] for r in conn.execute("select name from sqlite_master")]
    finally:
        conn.close()
    assert tables == ["users"]  # the whole script rolled back, its DDL included
    assert [r[1] for r in rows(db)] == ["ada", "bob", "cy", "after"]


async def test_a_workspace_database_never_reaches_outside_through_links(tmp_path: Path) -> None:
    """A relative database is a project file in the worktree, where the model can leave
    links: one linked out is refused (it was read), and so is a linked side file, named
    before SQLite sees it (SQLite itself also refuses to open a linked journal)."""
    root, home = tmp_path / "wt", tmp_path / "home"
    root.mkdir()
    home.mkdir()
    conn = sqlite3.connect(home / "prod.db")
    conn.execute("create table secrets(value text)")
    conn.execute("insert into secrets values ('PROD-SECRET')")
    conn.commit()
    conn.close()
    os.symlink(home / "prod.db", root / "prod.db")
    (home / "victim.txt").write_text("the operator's file\n")
    conn = sqlite3.connect(root / "dev.db")
    conn.execute("create table t(x)")
    conn.commit()
    conn.close()
    os.symlink(home / "victim.txt", root / "dev.db-journal")
    dbs = {"prod": DatabaseConfig(path="prod.db"), "dev": DatabaseConfig(path="dev.db")}
    ctx, asks = make_ctx(root, dbs, approve=True)
    with pytest.raises(ToolError, match="leads outside the workspace") as exc:
        await query_database.tool.run({"sql": "select value from secrets", "database": "prod"}, ctx)
    assert "PROD-SECRET" not in str(exc.value)
    with pytest.raises(ToolError, match="dev.db-journal is not a regular file"):
        await query_database.tool.run({"sql": "insert into t values (1)", "database": "dev"}, ctx)
    assert (home / "victim.txt").read_text() == "the operator's file\n"
