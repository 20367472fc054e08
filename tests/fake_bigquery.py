"""A tiny BigQuery REST server on 127.0.0.1 for tests: real HTTP, SQL run by in-memory SQLite.

Implements what `google-cloud-bigquery` uses for `client.query(sql).result()` and dry runs:
jobs.insert (POST .../jobs), jobs.get, jobs.getQueryResults (GET .../queries/{id}) and
jobs.query (POST .../queries). Dataset prefixes (`ds.table`) are stripped, since SQLite has
no datasets. Every request is recorded in `requests` so tests can see what the client did.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

_KINDS = {
    "SELECT": "SELECT",
    "WITH": "SELECT",
    "INSERT": "INSERT",
    "UPDATE": "UPDATE",
    "DELETE": "DELETE",
    "MERGE": "MERGE",
    "CREATE": "CREATE_TABLE",
    "DROP": "DROP_TABLE",
}


def _bq_type(values: list[Any]) -> str:
    for v in values:
        if isinstance(v, bool):
            return "BOOLEAN"
        if isinstance(v, int):
            return "INTEGER"
        if isinstance(v, float):
            return "FLOAT"
        if v is not None:
            return "STRING"
    return "STRING"


class FakeBigQuery:
    def __init__(self, dataset: str = "ds") -> None:
        self.dataset = dataset
        self.db = sqlite3.connect(":memory:", check_same_thread=False)
        self.lock = threading.Lock()
        self.jobs: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeBigQuery:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def execute(self, sql: str) -> None:
        with self.lock:
            self.db.executescript(sql)

    # --- the API -------------------------------------------------------------------------
    def _run_job(self, project: str, body: dict[str, Any]) -> dict[str, Any]:
        conf = body.get("configuration", {})
        query = conf.get("query", {}).get("query", "")
        ref = body.get("jobReference") or {}
        job_id = ref.get("jobId") or uuid.uuid4().hex
        word = re.match(r"\s*(\w+)", query)
        kind = _KINDS.get(word.group(1).upper() if word else "", "SCRIPT")
        job: dict[str, Any] = {
            "kind": "bigquery#job",
            "id": f"{project}:US.{job_id}",
            "jobReference": {"projectId": project, "jobId": job_id, "location": "US"},
            "configuration": conf,
            "status": {"state": "DONE"},
            "statistics": {"query": {"statementType": kind, "totalBytesProcessed": "0"}},
        }
        result: dict[str, Any] = {}
        if not conf.get("dryRun"):
            sql = re.sub(rf"\b{re.escape(self.dataset)}\.", "", query)  # ds.table -> table
            try:
                with self.lock:
                    cur = self.db.execute(sql)
                    rows = cur.fetchall() if cur.description else []
                    self.db.commit()
            except sqlite3.Error as exc:
                job["status"]["errorResult"] = {"reason": "invalidQuery", "message": str(exc)}
                job["status"]["errors"] = [job["status"]["errorResult"]]
            else:
                if cur.description:
                    cols = [d[0] for d in cur.description]
                    fields = [
                        {"name": c, "type": _bq_type([r[i] for r in rows]), "mode": "NULLABLE"}
                        for i, c in enumerate(cols)
                    ]
                    result = {
                        "schema": {"fields": fields},
                        "totalRows": str(len(rows)),
                        "rows": [
                            {"f": [{"v": None if v is None else str(v)} for v in r]} for r in rows
                        ],
                    }
                else:
                    result = {"numDmlAffectedRows": str(max(cur.rowcount, 0))}
                    job["statistics"]["query"]["numDmlAffectedRows"] = result["numDmlAffectedRows"]
        self.jobs[job_id] = {"job": job, "result": result}
        return job

    def _results(self, job_id: str, params: dict[str, list[str]]) -> dict[str, Any]:
        entry = self.jobs[job_id]
        out = {
            "kind": "bigquery#getQueryResultsResponse",
            "jobComplete": True,
            "jobReference": entry["job"]["jobReference"],
            **entry["result"],
        }
        if params.get("maxResults") == ["0"]:
            out.pop("rows", None)
        return out

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                url = urlparse(self.path)
                params = parse_qs(url.query)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}") if length else {}
                fake.requests.append((method, url.path, body))
                m = re.fullmatch(
                    r"/bigquery/v2/projects/([^/]+)/(jobs|queries)(?:/([^/]+))?", url.path
                )
                if not m:
                    return self._send(404, {"error": {"code": 404, "message": "not found"}})
                project, coll, ident = m.groups()
                if method == "POST" and coll == "jobs" and not ident:
                    return self._send(200, fake._run_job(project, body))
                if method == "POST" and coll == "queries" and not ident:  # jobs.query
                    job = fake._run_job(project, {"configuration": {"query": body}})
                    job_id = job["jobReference"]["jobId"]
                    return self._send(200, fake._results(job_id, {}))
                if method == "GET" and ident in fake.jobs:
                    if coll == "jobs":
                        return self._send(200, fake.jobs[ident]["job"])
                    return self._send(200, fake._results(ident, params))
                return self._send(404, {"error": {"code": 404, "message": f"no job {ident}"}})

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._route("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._route("POST")

        return Handler
