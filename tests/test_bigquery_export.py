"""The BigQuery export: the real engine and the real `google-cloud-bigquery` client against
the fake BigQuery REST server on loopback (tests/fake_bigquery.py)."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest

from agent import audit, secrets
from agent.export import sources
from agent.models.scripted import ScriptedModel
from tests.conftest import until
from tests.fake_bigquery import FakeBigQuery

READ = {"tool_calls": [{"name": "read_file", "input": {"path": "app.py"}}]}


@pytest.fixture
def fake() -> Any:
    with FakeBigQuery(dataset="team") as server:
        yield server


def export_config(config: Any, endpoint: str, **overrides: Any) -> Any:
    """`config` with the export on, quick to retry (the real defaults are minutes)."""
    cfg = copy.deepcopy(config)
    bq = cfg.bigquery
    bq.project, bq.dataset, bq.api_endpoint = "proj", "team", endpoint
    bq.interval_s, bq.retry_base_s, bq.retry_max_s, bq.timeout_s = 0.05, 0.05, 0.4, 5.0
    for key, value in overrides.items():
        setattr(bq, key, value)
    return cfg


def scripted(*scripts: dict[str, Any]) -> Any:
    return lambda spec: ScriptedModel(list(scripts))


async def pending(engine: Any) -> int:
    return int((await engine.export_status())["pending"])


async def local_count(engine: Any, table: str) -> int:
    return int((await engine.store.fetch(f"SELECT COUNT(*) AS n FROM {table}"))[0]["n"])


def insert_bodies(fake: FakeBigQuery, table: str) -> list[dict[str, Any]]:
    return [b for m, p, b in fake.requests if p.endswith(f"/tables/{table}/insertAll")]


def assert_each_once(fake: FakeBigQuery, table: str) -> list[dict[str, Any]]:
    rows = fake.rows(table)
    ids = [r["row_id"] for r in rows]
    assert len(ids) == len(set(ids)), f"duplicated rows in {table}"
    return rows


# -- what goes, and how ------------------------------------------------------------------------
async def test_records_go_to_bigquery_in_batches_with_their_tables_made(
    engine_factory: Any, config: Any, fake: FakeBigQuery, repo: Path
) -> None:
    cfg = export_config(config, fake.endpoint, batch_rows=200)
    engine = await engine_factory(scripted({"match": ".", "turns": [READ]}), cfg)
    task_id = await engine.submit("look at app.py", repo, approve="auto")
    assert (await engine.wait(task_id))["state"] == "succeeded"
    for i in range(450):
        await audit.append(engine.store, "operator", "note", None, {"i": i})
    await engine.store.add_usage(task_id, "claude-sonnet-4-6",
                                 {"input_tokens": 1200, "output_tokens": 80, "cost_usd": 0.0048})
    await engine.store.add_learnings(task_id, [("pattern", "run the tests before the commit")])
    engine.exporter.wake()

    audits = await local_count(engine, "audit")
    await until(lambda: len(fake.rows("audit")) == audits and fake.rows("tasks")
                and fake.rows("usage") and fake.rows("learnings"), timeout=30)  # fmt: skip
    # Datasets and tables made by the client from the sources' schemas.
    assert "team" in fake.datasets
    assert set(fake.tables) == {"audit", "tasks", "usage", "learnings"}  # made when rows come
    fields = {f["name"]: f for f in fake.tables["tasks"]["schema"]["fields"]}
    assert fields["row_id"]["mode"] == "REQUIRED" and fields["cost_usd"]["type"] == "FLOAT"
    # Batches of at most batch_rows, each row once, with its insertId = row_id.
    bodies = insert_bodies(fake, "audit")
    assert len(bodies) >= 3 and max(len(b["rows"]) for b in bodies) <= 200
    assert all(r["insertId"] == r["json"]["row_id"] for b in bodies for r in b["rows"])
    rows = assert_each_once(fake, "audit")
    assert sorted(r["audit_id"] for r in rows) == list(range(1, audits + 1))
    task = [r for r in assert_each_once(fake, "tasks") if r["task_id"] == task_id]
    assert len(task) == 1 and task[0]["state"] == "succeeded" and task[0]["steps"] == 1
    usage = [r for r in fake.rows("usage") if r["task_id"] == task_id and r["input_tokens"] == 1200]
    assert usage and usage[0]["cost_usd"] == pytest.approx(0.0048)
    learned = [r for r in fake.rows("learnings") if r["text"] == "run the tests before the commit"]
    assert learned and learned[0]["task_id"] == task_id and learned[0]["state"] == "active"
    # Every row says where it came from.
    machine = await engine.store.get_setting("export.machine_id")
    assert {r["machine_id"] for r in rows} == {machine}
    assert all(r["origin"] and "@" in r["origin"] for r in rows)
    await until(lambda: _drained(engine), timeout=20)
    status = await engine.export_status()
    assert status["pending"] == 0 and status["lag_s"] == 0 and status["last_sent_at"]


async def test_outbox_drains_after_bigquery_fails_for_a_while_and_nothing_is_duplicated(
    engine_factory: Any, config: Any, fake: FakeBigQuery
) -> None:
    fake.outage(503, "backendError")
    engine = await engine_factory(None, export_config(config, fake.endpoint, batch_rows=50))
    for i in range(120):
        await audit.append(engine.store, "operator", "note", None, {"i": i})
    engine.exporter.wake()
    # Queued, not lost; the error is the API's own, and the exporter backs off.
    await until(lambda: engine.exporter.failures >= 3, timeout=20)
    status = await engine.export_status()
    assert status["pending"] >= 120 and status["lag_s"] > 0
    assert status["last_error"].startswith("audit: 503 backendError: Error encountered")
    assert fake.ops.count("datasets.get") >= 3 and fake.rows("audit") == []

    fake.recover()
    await until(lambda: _drained(engine), timeout=20)
    rows = assert_each_once(fake, "audit")
    assert sorted(r["audit_id"] for r in rows) == list(range(1, 121))
    assert engine.exporter.failures == 0
    status = await engine.export_status()
    assert status["pending"] == 0 and status["lag_s"] == 0
    assert status["last_sent_at"] > status["last_error_at"]  # the error is shown as past


async def _drained(engine: Any) -> bool:
    return await pending(engine) == 0


async def test_backoff_grows_while_bigquery_keeps_failing(
    engine_factory: Any, config: Any, fake: FakeBigQuery
) -> None:
    fake.outage(503)
    cfg = export_config(config, fake.endpoint, retry_base_s=0.2, retry_max_s=0.8)
    engine = await engine_factory(None, cfg)
    await audit.append(engine.store, "operator", "note", None, {})
    engine.exporter.wake()
    seen: list[float] = []
    started = time.monotonic()
    while len(seen) < 5 and time.monotonic() - started < 20:
        n = fake.ops.count("datasets.get")  # each attempt starts by checking the dataset
        if n > len(seen):
            seen.append(time.monotonic())
        await asyncio.sleep(0.01)
    gaps = [b - a for a, b in zip(seen, seen[1:], strict=False)]
    assert len(gaps) >= 4, gaps
    assert gaps[0] >= 0.2 * 0.75 - 0.02 and gaps[1] >= 0.4 * 0.75 - 0.02  # doubling
    assert all(g <= 0.8 + 0.5 for g in gaps)  # capped at retry_max_s (plus a tick)


async def test_unreachable_bigquery_then_up(engine_factory: Any, config: Any) -> None:
    port = FakeBigQuery.free_port()
    engine = await engine_factory(None, export_config(config, f"http://127.0.0.1:{port}"))
    await engine.store.add_learnings(None, [("pattern", "pin the toolchain")])
    engine.exporter.wake()
    await until(lambda: engine.exporter.failures >= 2, timeout=20)
    status = await engine.export_status()
    assert status["pending"] >= 1 and "Connection" in status["last_error"]
    with FakeBigQuery(dataset="team", port=port) as late:
        await until(lambda: late.rows("learnings"), timeout=20)
        await until(lambda: _drained(engine), timeout=20)
        assert [r["text"] for r in late.rows("learnings")] == ["pin the toolchain"]


async def test_a_lost_answer_is_retried_with_the_same_insert_ids_and_stored_once(
    engine_factory: Any, config: Any, fake: FakeBigQuery
) -> None:
    fake.lose_responses(1)  # BigQuery stores the batch, but the answer never arrives
    engine = await engine_factory(None, export_config(config, fake.endpoint))
    for i in range(30):
        await audit.append(engine.store, "operator", "note", None, {"i": i})
    engine.exporter.wake()
    await until(lambda: len(fake.rows("audit")) == 30, timeout=20)
    await until(lambda: _drained(engine), timeout=20)
    sent = [r["insertId"] for b in insert_bodies(fake, "audit") for r in b["rows"]]
    assert len(sent) > len(set(sent))  # the batch was sent again...
    assert fake.deduplicated >= 30  # ...and BigQuery dropped the repeats by insertId
    assert len(assert_each_once(fake, "audit")) == 30


async def test_a_row_bigquery_rejects_is_set_aside_and_the_rest_go(
    engine_factory: Any, config: Any, fake: FakeBigQuery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new source is one registration; a row of it BigQuery refuses (a wrong type) is
    kept aside with the reason, and does not hold back the rows after it."""
    notes = sources.Source(
        "notes", (sources.Column("n", "INTEGER"), sources.Column("body")),
        sources.appended("SELECT * FROM notes WHERE id > ? ORDER BY id LIMIT ?",
                         lambda r: {"n": r["n"], "body": r["body"]}, table="notes"),
    )  # fmt: skip
    monkeypatch.setitem(sources.SOURCES, "notes", notes)
    engine = await engine_factory(None, export_config(config, fake.endpoint))
    await engine.store.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, ts REAL, n, body)")
    for n in (1, "two", 3):
        await engine.store.execute("INSERT INTO notes (ts, n, body) VALUES (?, ?, ?)",
                                   [time.time(), n, f"note {n}"])  # fmt: skip
    engine.exporter.wake()
    await until(lambda: len(fake.rows("notes")) == 2, timeout=20)
    await until(lambda: _drained(engine), timeout=20)
    assert sorted(r["n"] for r in fake.rows("notes")) == [1, 3]
    status = await engine.export_status()
    assert status["rejected"] == 1 and status["pending"] == 0
    assert "invalid: Cannot convert value to integer" in status["last_error"]
    kept = await engine.store.fetch("SELECT rejected FROM export_outbox WHERE rejected IS NOT NULL")
    assert "Cannot convert value to integer" in kept[0]["rejected"]


async def test_no_secret_leaves_in_any_row(
    engine_factory: Any, config: Any, fake: FakeBigQuery, temp_keyring: Any
) -> None:
    """Records that hold a secret (written past the engine's own redaction) go out redacted;
    so does a secret stored after its row was queued."""
    secrets.set_secret("db_password", "hunter2-correct-horse")
    fake.outage()  # rows wait in the outbox while the next secret is stored
    engine = await engine_factory(None, export_config(config, fake.endpoint))
    store = engine.store
    await audit.append(store, "operator", "login", None, {"password": "hunter2-correct-horse"})
    await store.add_learnings(None, [("pattern", "the deploy key is dk-live-88ae1f00c0ffee")])
    await store.add_usage(None, "model hunter2-correct-horse", {"input_tokens": 1})
    await until(lambda: pending(engine), timeout=10)
    await until(lambda: _queued(engine, "learnings"), timeout=10)
    secrets.set_secret("deploy_key", "dk-live-88ae1f00c0ffee")
    await engine.safety.refresh_secrets()
    fake.recover()
    await until(lambda: fake.rows("learnings") and fake.rows("usage"), timeout=20)
    await until(lambda: _drained(engine), timeout=20)
    sent = json.dumps([b for _, p, b in fake.requests if p.endswith("/insertAll")])
    assert "hunter2-correct-horse" not in sent and "dk-live-88ae1f00c0ffee" not in sent
    assert "[REDACTED" in sent
    texts = {r["text"] for r in fake.rows("learnings")}  # versions: redacted, every one
    assert len(texts) == 1 and texts.pop().startswith("the deploy key is [REDACTED:")
    # The outbox itself never held the first secret either.
    queued = await store.fetch("SELECT row FROM export_outbox")
    assert not any("hunter2-correct-horse" in r["row"] for r in queued)


# Issue 10's job runs, as its migration makes them (IF NOT EXISTS: once that migration is in
# the store, the store's own table is used).
IMPROVE_RUNS = """CREATE TABLE IF NOT EXISTS improve_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL, trigger TEXT NOT NULL,
    scheduled_for REAL, engine_id TEXT, workspace TEXT, started_at REAL NOT NULL,
    finished_at REAL, outcome TEXT, error TEXT, report TEXT,
    produced TEXT NOT NULL DEFAULT '{}')"""


async def test_scheduled_runs_go_once_finished_and_redacted(
    engine_factory: Any, config: Any, fake: FakeBigQuery, temp_keyring: Any
) -> None:
    secrets.set_secret("db_password", "hunter2-correct-horse")
    engine = await engine_factory(None, export_config(config, fake.endpoint))
    store = engine.store
    await store.execute(IMPROVE_RUNS)
    now = time.time()
    add = ("INSERT INTO improve_runs (job, trigger, scheduled_for, started_at, finished_at, "
           "outcome, error, report) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")  # fmt: skip
    await store.execute(add, ["daily", "schedule", now - 60, now - 50, now - 40, "ok", None,
                              "3 insights; db password hunter2-correct-horse seen in a log"])
    await store.execute(add, ["weekly", "manual", None, now - 5, None, None, None, None])
    engine.exporter.wake()
    await until(lambda: fake.rows("schedule_runs"), timeout=20)
    await until(lambda: _drained(engine), timeout=20)
    rows = assert_each_once(fake, "schedule_runs")
    assert [(r["job"], r["trigger"], r["outcome"]) for r in rows] == [("daily", "schedule", "ok")]
    assert "3 insights" in rows[0]["detail"] and "hunter2-correct-horse" not in rows[0]["detail"]
    # The weekly run finishes (failed): it goes too, and the daily one is not sent again.
    await store.execute("UPDATE improve_runs SET finished_at = ?, outcome = 'failed', "
                        "error = 'model unreachable' WHERE job = 'weekly'", [time.time()])
    engine.exporter.wake()
    await until(lambda: len(fake.rows("schedule_runs")) == 2, timeout=20)
    await until(lambda: _drained(engine), timeout=20)
    rows = assert_each_once(fake, "schedule_runs")
    weekly = [r for r in rows if r["job"] == "weekly"]
    assert weekly[0]["outcome"] == "failed" and weekly[0]["error"] == "model unreachable"


async def _queued(engine: Any, source: str) -> bool:
    rows = await engine.store.fetch("SELECT 1 FROM export_outbox WHERE source = ?", [source])
    return bool(rows)


async def test_a_task_never_waits_on_bigquery(
    engine_factory: Any, config: Any, fake: FakeBigQuery, repo: Path
) -> None:
    """BigQuery hangs (requests wait a minute): tasks run and end as fast as ever, the
    export waits in its own thread, and closing the engine does not wait for it."""
    fake.hang()
    cfg = export_config(config, fake.endpoint, timeout_s=60.0)
    engine = await engine_factory(scripted({"match": ".", "turns": [READ, READ]}), cfg)
    await audit.append(engine.store, "operator", "note", None, {})
    engine.exporter.wake()
    await until(lambda: fake.ops, timeout=10)  # the exporter is stuck in a request now
    started = time.monotonic()
    ids = [await engine.submit(f"look at app.py {i}", repo, approve="auto") for i in range(3)]
    for task_id in ids:
        assert (await asyncio.wait_for(engine.wait(task_id), 30))["state"] == "succeeded"
    took = time.monotonic() - started
    assert took < 20, took
    assert await pending(engine) >= 1  # still queued: nothing lost, nothing waited for
    closing = time.monotonic()
    await engine.close()
    assert time.monotonic() - closing < 5
    fake.release()


async def test_one_engine_per_store_exports(
    engine_factory: Any, config: Any, fake: FakeBigQuery
) -> None:
    cfg = export_config(config, fake.endpoint)
    first = await engine_factory(None, cfg)
    second = await engine_factory(None, cfg)
    await audit.append(first.store, "operator", "note", None, {})
    first.exporter.wake()
    second.exporter.wake()
    await until(lambda: fake.rows("audit"), timeout=20)
    ticking = [e for e in (first, second) if e.exporter.ticks]
    assert len(ticking) == 1
    holder = (await first.store.get_setting("export.lease"))["engine"]
    assert holder == ticking[0].engine_id
    # Its engine closes: the other takes over.
    await ticking[0].close()
    other = second if ticking[0] is first else first
    await audit.append(other.store, "operator", "after", None, {})
    other.exporter.wake()
    await until(lambda: len(fake.rows("audit")) == 2, timeout=20)
    assert len(assert_each_once(fake, "audit")) == 2


async def test_real_credentials_from_the_keyring(
    engine_factory: Any, config: Any, temp_keyring: Any
) -> None:
    """A service-account key stored in the keyring: the client signs a JWT with it, trades
    it for a token at the key's token endpoint, and every API call carries the token."""
    with FakeBigQuery(dataset="team", require_auth=True) as fake:
        key = fake.service_account("proj")
        secrets.set_secret("bigquery_credentials", json.dumps(key))
        engine = await engine_factory(None, export_config(config, fake.endpoint))
        await audit.append(engine.store, "operator", "note", None, {})
        engine.exporter.wake()
        await until(lambda: fake.rows("audit"), timeout=20)
        assert "token" in fake.ops
        auths = {h.get("authorization") for h in fake.headers}
        assert auths and all(a and a[7:] in fake.tokens for a in auths)
        # Without it, BigQuery says 401 and the export says why.
        secrets.delete_secret("bigquery_credentials")
        await engine.close()  # (one exporter per store: the next engine takes over)
    with FakeBigQuery(dataset="team", require_auth=True) as locked:
        other = await engine_factory(None, export_config(config, locked.endpoint))
        await audit.append(other.store, "operator", "again", None, {})
        other.exporter.wake()
        await until(lambda: other.exporter.last_error, timeout=20)
        # (A 401 makes the client refresh its credentials; anonymous ones cannot be.)
        assert "credentials" in other.exporter.last_error.lower()
        assert "\n" not in other.exporter.last_error


# -- teammates ---------------------------------------------------------------------------------
async def test_a_teammates_learnings_are_pulled_in_marked_with_their_origin(
    engine_factory: Any, tmp_path: Path, fake: FakeBigQuery, repo: Path
) -> None:
    from agent.config import load_config

    def machine(name: str, origin: str) -> Any:
        cfg = load_config(tmp_path / name)
        cfg.engine.heartbeat_s = 0.5
        return export_config(cfg, fake.endpoint, origin=origin)

    alice = await engine_factory(None, machine("alice", "alice@laptop"))
    seen: list[str] = []

    def bob_model(spec: str) -> Any:
        class Recording(ScriptedModel):
            async def complete(self, *, messages: list[dict[str, Any]], **kw: Any) -> Any:
                seen.append(json.dumps(messages))
                return await super().complete(messages=messages, **kw)

        return Recording([{"match": ".", "turns": [READ]}])

    bob = await engine_factory(bob_model, machine("bob", "bob@desk"))
    lesson = "vendor the schema before migrating"
    await alice.store.add_learnings(None, [("pattern", lesson)])
    alice.exporter.wake()

    async def bobs(text: str) -> list[dict[str, Any]]:
        return [i for i in await bob.learnings() if i["text"] == text]

    theirs = await until(lambda: bobs(lesson), timeout=20)  # pulled in the background
    assert len(theirs) == 1 and theirs[0]["origin"] == "alice@laptop"
    assert theirs[0]["origins"] == ["alice@laptop"] and theirs[0]["task_ids"] == []
    hers = [i for i in await alice.learnings() if i["text"] == lesson]
    assert hers[0]["origin"] is None  # her own
    assert await bob.exporter.pull() == 0  # the same version is not pulled twice

    # Bob's agent is given it like its own lessons.
    task_id = await bob.submit("migrating the schema", repo, approve="auto")
    assert (await bob.wait(task_id))["state"] == "succeeded"
    assert any(lesson in s for s in seen)

    # It is never exported back as Bob's.
    await bob.store.add_learnings(task_id, [("improvement", "bob's own lesson")])
    bob.exporter.wake()
    await until(lambda: any(r["text"] == "bob's own lesson" for r in fake.rows("learnings")),
                timeout=20)  # fmt: skip
    by_origin = {(r["origin"], r["text"]) for r in fake.rows("learnings")}
    assert by_origin == {("alice@laptop", "vendor the schema before migrating"),
                         ("bob@desk", "bob's own lesson")}  # fmt: skip

    # Alice retires it (a newer version says so): it leaves Bob's store too.
    retired = dict(next(r for r in fake.rows("learnings") if r["origin"] == "alice@laptop"))
    retired.update(row_id=retired["row_id"] + "-retired", state="retired",
                   sent_at=retired["sent_at"] + 1_000_000)
    fake.insert_all("proj", "team", "learnings", {"rows": [{"json": {
        **{k: v for k, v in retired.items() if v is not None},
        "recorded_at": retired["recorded_at"] / 1e6, "created_at": retired["created_at"] / 1e6,
        "sent_at": retired["sent_at"] / 1e6}}]})  # fmt: skip
    async def gone() -> bool:
        return not await bobs(lesson)

    await until(gone, timeout=20)


async def test_the_cli_learnings_listing_shows_a_teammates_origin(
    engine_factory: Any, config: Any, fake: FakeBigQuery
) -> None:
    from agent.export import pull
    from tests.conftest import cli

    engine = await engine_factory(None, config)
    row = {"row_id": "m2:learnings:7@x", "machine_id": "m2", "origin": "carol@ci",
           "learning_key": "m2:7", "category": "pattern", "text": "cache the wheels",
           "created_at": time.time(), "sent_at": time.time(), "state": "active"}  # fmt: skip
    assert await pull.store_pulled(engine.store, [row], engine.safety.redact) == 1
    await engine.close()
    # `learnings --json` is the seed's {"patterns", ...}; each learning's record is --stats.
    listed = await asyncio.to_thread(cli, "learnings", "--stats", "--json")
    assert listed.returncode == 0, listed.stderr
    items = json.loads(listed.stdout)
    assert [(i["text"], i["origin"]) for i in items] == [("cache the wheels", "carol@ci")]
    plain = await asyncio.to_thread(cli, "learnings")
    assert "cache the wheels" in plain.stdout and "carol@ci" in plain.stdout


# -- off by default ----------------------------------------------------------------------------
async def test_off_by_default(engine_factory: Any, config: Any) -> None:
    engine = await engine_factory(None, config)
    assert config.bigquery.enabled is False and engine.exporter is None
    assert (await engine.health())["export"] == {"enabled": False}


def test_the_bigquery_client_is_imported_only_when_used(tmp_path: Path, fake: FakeBigQuery) -> None:
    """An engine with the export on starts without the (heavy) client: it is imported in
    the exporter's thread, when the first batch goes."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = (
        "import asyncio, sys, time\n"
        "from agent import audit\n"
        "from agent.config import load_config\n"
        "from agent.engine import Engine\n"
        "async def main():\n"
        "    from pathlib import Path\n"
        f"    cfg = load_config(Path({str(tmp_path / 'd')!r}))\n"
        f"    cfg.bigquery.project, cfg.bigquery.dataset = 'proj', 'team'\n"
        f"    cfg.bigquery.api_endpoint = {fake.endpoint!r}\n"
        "    engine = await Engine.open(cfg, role='test')\n"
        "    print('google.cloud.bigquery' in sys.modules)\n"
        "    await audit.append(engine.store, 'operator', 'note', None, {})\n"
        "    engine.exporter.wake()\n"
        "    deadline = time.monotonic() + 60\n"
        "    while engine.exporter.last_sent_at is None and time.monotonic() < deadline:\n"
        "        await asyncio.sleep(0.05)\n"
        "    print('google.cloud.bigquery' in sys.modules)\n"
        "    await engine.close()\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]


def test_the_config_section_is_checked(tmp_path: Path) -> None:
    from tests.conftest import cli

    data = tmp_path / "d"
    data.mkdir()
    (data / "config.toml").write_text('[bigquery]\nproject = "p"\ndataset = "d"\ninterval_s = 0\n')
    result = cli("--data-dir", str(data), "tasks")
    assert result.returncode == 2 and "bigquery.interval_s" in result.stderr
    (data / "config.toml").write_text('[bigquery]\nprojekt = "p"\n')
    result = cli("--data-dir", str(data), "tasks")
    assert result.returncode == 2 and "bigquery.projekt" in result.stderr


def test_a_learnings_measured_effect_goes_in_its_columns() -> None:
    """A record as issue 10's `learning_stats()` gives it: its rates and the number of tasks
    given it in their columns (BigQuery types), the rest as JSON in `effect`."""
    item = {"id": 7, "text": "run the tests first", "category": "pattern", "source_task": "t1",
            "state": "active", "uses": 4, "success_with": 0.8, "success_without": 0.5,
            "tasks_with": 5, "effect": 0.3, "confidence": {"level": 0.95, "low": 0.1},
            "given_to": [{"task_id": "t9", "state": "succeeded", "outcome": "success"}]}
    row = sources.learning_row("m1", item)
    assert row["learning_key"] == "m1:7" and row["task_id"] == "t1"
    assert row["given_to"] == 5 and row["success_with"] == 0.8 and row["success_without"] == 0.5
    extra = json.loads(row["effect"])
    assert extra["effect"] == 0.3 and extra["confidence"]["low"] == 0.1
    assert extra["given_to"][0]["task_id"] == "t9"  # the recent tasks, kept as detail
    plain = sources.learning_row("m1", {"id": 8, "text": "x", "category": "pattern"})
    assert plain["given_to"] is None and plain["effect"] is None and plain["uses"] == 0
