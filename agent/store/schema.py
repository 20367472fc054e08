"""Versioned migrations. Append a new entry to MIGRATIONS; never edit a shipped one."""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: the initial schema
    """
    CREATE TABLE tasks (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        workspace TEXT NOT NULL,
        state TEXT NOT NULL,
        approve_mode TEXT NOT NULL DEFAULT 'ask',
        model TEXT NOT NULL DEFAULT '',
        engine_id TEXT,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        updated_at REAL NOT NULL,
        steps INTEGER NOT NULL DEFAULT 0,
        tokens INTEGER NOT NULL DEFAULT 0,
        cost_usd REAL NOT NULL DEFAULT 0,
        branch TEXT,
        worktree TEXT,
        base_commit TEXT,
        summary TEXT,
        error TEXT,
        changes TEXT NOT NULL DEFAULT '[]',
        options TEXT NOT NULL DEFAULT '{}',
        kind TEXT NOT NULL DEFAULT 'task'
    );
    CREATE INDEX tasks_state_created ON tasks(state, created_at DESC);
    CREATE INDEX tasks_created ON tasks(created_at DESC);

    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        task_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        ts REAL NOT NULL,
        type TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX events_task_seq ON events(task_id, seq);

    CREATE TABLE approvals (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        summary TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}',
        risk TEXT NOT NULL DEFAULT 'medium',
        state TEXT NOT NULL DEFAULT 'pending',
        decided_by TEXT,
        reason TEXT,
        created_at REAL NOT NULL,
        decided_at REAL,
        timeout_at REAL
    );
    CREATE INDEX approvals_state ON approvals(state, created_at);

    CREATE TABLE learnings (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id TEXT,
        category TEXT NOT NULL,
        text TEXT NOT NULL,
        created_at REAL NOT NULL,
        uses INTEGER NOT NULL DEFAULT 0
    );

    CREATE TABLE commands (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        task_id TEXT,
        payload TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL,
        taken_by TEXT,
        taken_at REAL
    );

    CREATE TABLE engines (
        id TEXT PRIMARY KEY,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        role TEXT NOT NULL,
        started_at REAL NOT NULL,
        heartbeat REAL NOT NULL
    );

    CREATE TABLE usage (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id TEXT,
        ts REAL NOT NULL,
        model TEXT NOT NULL,
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        cache_creation_input_tokens INTEGER NOT NULL,
        cache_read_input_tokens INTEGER NOT NULL,
        cost_usd REAL NOT NULL
    );
    CREATE INDEX usage_ts ON usage(ts);

    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);

    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        task_id TEXT,
        detail TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    """,
    # 2: a task's event numbers are unique. Two processes once numbered the same task
    # (a live engine taken for dead): such a task is renumbered in the order its events
    # were stored, so none is lost and none shares a number.
    """
    UPDATE events SET seq = (
        SELECT COUNT(*) FROM events AS e WHERE e.task_id = events.task_id AND e.id <= events.id
    ) WHERE task_id IN (SELECT task_id FROM events GROUP BY task_id, seq HAVING COUNT(*) > 1);
    DROP INDEX events_task_seq;
    CREATE UNIQUE INDEX events_task_seq ON events(task_id, seq);
    """,
    # 3: the BigQuery export (agent/export). The outbox holds rows made from the store's
    # records (redacted) until BigQuery has them: a row is unique per (source, row_key), so
    # gathering twice queues it once; sent rows stay a day, then go. Cursors and digests
    # say what has been gathered already. learning_origins marks learnings pulled from a
    # teammate's machine (they are never exported back).
    """
    CREATE TABLE export_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        source TEXT NOT NULL,
        row_key TEXT NOT NULL,
        row TEXT NOT NULL,
        record_ts REAL NOT NULL,
        created_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        sent_at REAL,
        rejected TEXT,
        UNIQUE (source, row_key)
    );
    CREATE INDEX export_outbox_pending ON export_outbox(sent_at, rejected, id);
    CREATE TABLE export_cursors (source TEXT PRIMARY KEY, cursor TEXT NOT NULL);
    CREATE TABLE export_digests (
        source TEXT NOT NULL,
        key TEXT NOT NULL,
        digest TEXT NOT NULL,
        PRIMARY KEY (source, key)
    ) WITHOUT ROWID;
    CREATE TABLE learning_origins (
        learning_id INTEGER PRIMARY KEY,
        origin TEXT NOT NULL,
        machine_id TEXT NOT NULL,
        remote_key TEXT NOT NULL UNIQUE,
        remote_row TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}',
        pulled_at REAL NOT NULL
    );
    """,
    # 4: self-improvement (agent/improve/): each job run (scheduled, caught up or by hand),
    # the insights it computed and the proposals waiting for the operator. A scheduled
    # run is claimed by inserting its (job, due time): of several daemons on one store,
    # one insert wins.
    """
    CREATE TABLE improve_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job TEXT NOT NULL,
        trigger TEXT NOT NULL,
        scheduled_for REAL,
        engine_id TEXT,
        workspace TEXT,
        started_at REAL NOT NULL,
        finished_at REAL,
        outcome TEXT,
        error TEXT,
        report TEXT,
        produced TEXT NOT NULL DEFAULT '{}'
    );
    CREATE UNIQUE INDEX improve_runs_due ON improve_runs(job, scheduled_for);
    CREATE INDEX improve_runs_started ON improve_runs(started_at DESC);

    CREATE TABLE insights (
        id TEXT PRIMARY KEY,
        run_id INTEGER,
        kind TEXT NOT NULL,
        summary TEXT NOT NULL,
        evidence TEXT NOT NULL DEFAULT '[]',
        data TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL
    );
    CREATE INDEX insights_created ON insights(created_at DESC);

    CREATE TABLE proposals (
        id TEXT PRIMARY KEY,
        run_id INTEGER,
        source TEXT NOT NULL,
        title TEXT NOT NULL,
        task TEXT NOT NULL,
        rationale TEXT NOT NULL DEFAULT '',
        impact TEXT NOT NULL DEFAULT '',
        effort TEXT NOT NULL DEFAULT '',
        evidence TEXT NOT NULL DEFAULT '[]',
        workspace TEXT,
        state TEXT NOT NULL DEFAULT 'pending',
        created_at REAL NOT NULL,
        decided_by TEXT,
        decided_at REAL,
        task_id TEXT,
        started_at REAL,
        started_by TEXT
    );
    CREATE INDEX proposals_state ON proposals(state, created_at);
    """,
    # 5: learnings with provenance and a measured effect (agent/learnings/). A `lessons`
    # row is one piece of advice however many tasks taught it in whatever words: each
    # teaching stays a `learnings` row (its task, its own words) pointing at its lesson.
    # `lesson_uses` holds, per task, the lessons that were relevant to it and whether it
    # was given them; `task_learnings` whether the task was a holdout (given none).
    # Existing learnings become one lesson per distinct text and category.
    """
    CREATE TABLE lessons (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        category TEXT NOT NULL,
        text TEXT NOT NULL,
        workspace TEXT,
        source_task TEXT,
        origin TEXT NOT NULL DEFAULT 'local',
        state TEXT NOT NULL DEFAULT 'active',
        pinned INTEGER NOT NULL DEFAULT 0,
        reason TEXT NOT NULL DEFAULT '',
        changed_by TEXT NOT NULL DEFAULT '',
        edited INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        last_taught_at REAL NOT NULL,
        changed_at REAL NOT NULL,
        restored_at REAL
    );
    CREATE INDEX lessons_changed ON lessons(changed_at);
    CREATE INDEX lessons_kind ON lessons(category, workspace);
    ALTER TABLE learnings ADD COLUMN lesson_id INTEGER;
    CREATE INDEX learnings_lesson ON learnings(lesson_id);
    CREATE TABLE lesson_uses (
        lesson_id INTEGER NOT NULL,
        task_id TEXT NOT NULL,
        given INTEGER NOT NULL,
        score REAL NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        PRIMARY KEY (lesson_id, task_id)
    );
    CREATE INDEX lesson_uses_task ON lesson_uses(task_id);
    CREATE TABLE task_learnings (
        task_id TEXT PRIMARY KEY,
        workspace TEXT NOT NULL,
        holdout INTEGER NOT NULL,
        created_at REAL NOT NULL
    );
    INSERT INTO lessons (category, text, workspace, source_task, created_at, last_taught_at,
                         changed_at)
        SELECT l.category, l.text, (SELECT t.workspace FROM tasks AS t WHERE t.id = l.task_id),
               l.task_id, g.first_at, g.last_at, g.last_at
        FROM (SELECT MIN(id) AS first_id, MIN(created_at) AS first_at,
                     MAX(created_at) AS last_at
              FROM learnings GROUP BY category, text) AS g
        JOIN learnings AS l ON l.id = g.first_id ORDER BY g.first_id;
    CREATE INDEX lessons_text ON lessons(category, text);
    UPDATE learnings SET lesson_id = (
        SELECT s.id FROM lessons AS s WHERE s.category = learnings.category
        AND s.text = learnings.text
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
