"""A BigQuery REST server on 127.0.0.1 for tests: real HTTP, tables kept in in-memory SQLite.

What `google-cloud-bigquery` uses, answered as the real API answers (bodies, status codes,
error shapes: `{"error": {"code", "message", "errors": [{"reason", ...}], "status"}}`):
- datasets.get / datasets.insert (409 `duplicate` when it exists);
- tables.get / tables.insert / tables.patch (a schema may only gain NULLABLE columns);
- tabledata.insertAll: rows checked against the schema (unknown field, missing required
  field, a value of the wrong type: reason `invalid`, and every other row of the request
  `stopped`, nothing stored, unless skipInvalidRows); insertIds de-duplicated (the real
  service does it best-effort for about a minute; here always, and counted);
- jobs.insert / jobs.get / jobs.getQueryResults / jobs.query / jobs.cancel: the SQL runs on
  SQLite (dataset and project prefixes and backticks stripped; named @parameters bound;
  TIMESTAMPs as int64 microseconds when the client asks, as it does), dry runs classify;
- an OAuth token endpoint (`/token`) for service-account keys: the signed JWT is verified
  against the key `service_account()` made, and with `require_auth` every API call needs
  the token it issued (401 `required` otherwise).

Trouble on demand: `outage()` ... `recover()` fails requests for a while (503
`backendError` by default), `fail_next(n)`, `lose_responses(n)` (rows stored, then a 503:
the client cannot know), `hang()` ... `release()`; a fake made on a fixed `port` but not
started yet is a BigQuery that cannot be reached. Every request is kept in `requests`
((method, path, body)) and `ops` (the API method's name).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import sqlite3
import threading
import time
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
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
           404: "NOT_FOUND", 409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED",
           500: "INTERNAL", 503: "UNAVAILABLE"}  # fmt: skip
_MESSAGES = {
    "backendError": "Error encountered during execution. Retrying may solve the problem.",
    "internalError": "An internal error occurred and the request could not be completed.",
    "rateLimitExceeded": "Exceeded rate limits: too many api requests per user per method for "
                         "this user_method. For more information, see "
                         "https://cloud.google.com/bigquery/docs/troubleshoot-quotas",
    "accessDenied": "Access Denied: BigQuery BigQuery: Permission denied while getting Drive "
                    "credentials.",
}  # fmt: skip
_SQL_TYPES = {"STRING": "TEXT", "JSON": "TEXT", "INTEGER": "INTEGER", "INT64": "INTEGER",
              "FLOAT": "REAL", "FLOAT64": "REAL", "NUMERIC": "REAL", "BOOLEAN": "INTEGER",
              "BOOL": "INTEGER", "TIMESTAMP": "INTEGER", "DATETIME": "TEXT", "DATE": "TEXT"}  # fmt: skip
_LOGIN = ("Request is missing required authentication credential. Expected OAuth 2 access "
          "token, login cookie or other valid authentication credential. See "
          "https://developers.google.com/identity/sign-in/web/devconsole-project.")  # fmt: skip


def api_error(code: int, reason: str, message: str | None = None, **extra: str) -> dict[str, Any]:
    """The real API's error body."""
    message = message or _MESSAGES.get(reason, reason)
    return {"error": {"code": code, "message": message,
                      "errors": [{"message": message, "domain": "global", "reason": reason,
                                  **extra}],
                      "status": _STATUS.get(code, "UNKNOWN")}}  # fmt: skip


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str | None = None, **extra: str) -> None:
        super().__init__(message or reason)
        self.code, self.body = code, api_error(code, reason, message, **extra)


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


def to_micros(value: Any) -> int:
    """A TIMESTAMP as BigQuery accepts it (seconds since the epoch, or text) -> microseconds."""
    if isinstance(value, bool):
        raise ValueError("bool")
    if isinstance(value, int | float):
        return int(round(float(value) * 1_000_000))
    text = str(value).strip().replace(" UTC", "+00:00")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    moment = dt.datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(round(moment.timestamp() * 1_000_000))


def _coerce(kind: str, value: Any) -> Any:
    """A JSON value for a column of `kind`, as stored; ValueError as BigQuery refuses."""
    kind = kind.upper()
    if kind in ("INTEGER", "INT64"):
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError("Cannot convert value to integer.")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError("Cannot convert value to integer.") from None
    if kind in ("FLOAT", "FLOAT64", "NUMERIC"):
        if isinstance(value, bool):
            raise ValueError("Cannot convert value to floating point.")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError("Cannot convert value to floating point.") from None
    if kind in ("BOOLEAN", "BOOL"):
        if isinstance(value, bool):
            return int(value)
        if str(value).lower() in ("true", "false"):
            return int(str(value).lower() == "true")
        raise ValueError("Cannot convert value to boolean.")
    if kind == "TIMESTAMP":
        try:
            return to_micros(value)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"Could not parse '{value}' as a timestamp. Required format is "
                             "YYYY-MM-DD HH:MM[:SS[.SSSSSS]] or YYYY/MM/DD HH:MM[:SS[.SSSSSS]]"
                             ) from None  # fmt: skip
    if not isinstance(value, str):
        raise ValueError("This field: value is not a string.")  # BigQuery's own odd wording
    return value


class FakeBigQuery:
    def __init__(self, dataset: str = "ds", *, port: int = 0, require_auth: bool = False) -> None:
        self.dataset = dataset
        self.port = port
        self.require_auth = require_auth
        self.db = sqlite3.connect(":memory:", check_same_thread=False)
        self.lock = threading.RLock()
        self.jobs: dict[str, dict[str, Any]] = {}
        self.datasets: dict[str, dict[str, Any]] = {}
        self.tables: dict[str, dict[str, Any]] = {}  # table id -> resource (one namespace)
        self.insert_ids: dict[str, set[str]] = {}
        self.deduplicated = 0  # rows dropped because their insertId was seen before
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.ops: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.tokens: set[str] = set()
        self.token_errors: list[str] = []
        self._keys: dict[str, Any] = {}  # client_email -> public key
        # trouble
        self._outage: tuple[int, str, str | None] | None = None
        self._fail: list[tuple[int, str, str | None]] = []
        self._lose = 0
        self._release = threading.Event()
        self._release.set()
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        port = self.server.server_address[1] if self.server else self.port
        return f"http://127.0.0.1:{port}"

    def start(self) -> FakeBigQuery:
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        return self

    def close(self) -> None:
        self._release.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self) -> FakeBigQuery:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def free_port() -> int:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    # -- trouble ---------------------------------------------------------------------------
    def outage(self, status: int = 503, reason: str = "backendError", only: str | None = None
               ) -> None:  # fmt: skip
        """Fail every request (or every `only` operation) until `recover()`."""
        self._outage = (status, reason, only)

    def recover(self) -> None:
        self._outage = None

    def fail_next(self, n: int, status: int = 503, reason: str = "backendError",
                  only: str | None = None) -> None:  # fmt: skip
        self._fail += [(status, reason, only)] * n

    def lose_responses(self, n: int) -> None:
        """The next n insertAll requests store their rows, then answer 503."""
        self._lose += n

    def hang(self) -> None:
        """Requests wait (up to 60 s) until `release()`."""
        self._release.clear()

    def release(self) -> None:
        self._release.set()

    # -- helpers for tests -----------------------------------------------------------------
    def execute(self, sql: str) -> None:
        with self.lock:
            self.db.executescript(sql)

    def rows(self, table: str) -> list[dict[str, Any]]:
        with self.lock:
            if table not in self.tables:
                return []
            cur = self.db.execute(f'SELECT * FROM "{table}"')
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    def service_account(self, project: str = "proj") -> dict[str, Any]:
        """A service-account key (a fresh RSA key) whose token endpoint is this server."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()  # fmt: skip
        email = f"exporter-{secrets.token_hex(3)}@{project}.iam.gserviceaccount.com"
        self._keys[email] = key.public_key()
        return {"type": "service_account", "project_id": project,
                "private_key_id": secrets.token_hex(20), "private_key": pem,
                "client_email": email, "client_id": str(secrets.randbelow(10**20)),
                "token_uri": f"{self.endpoint}/token",
                "auth_uri": "https://accounts.google.com/o/oauth2/auth"}  # fmt: skip

    # -- the API ---------------------------------------------------------------------------
    def _trouble(self, op: str) -> None:
        if self._outage and self._outage[2] in (None, op):
            status, reason, _ = self._outage
            raise ApiError(status, reason)
        for i, (status, reason, only) in enumerate(self._fail):
            if only in (None, op):
                del self._fail[i]
                raise ApiError(status, reason)

    def _dataset(self, project: str, dataset: str) -> dict[str, Any]:
        found = self.datasets.get(dataset)
        if found is None:
            raise ApiError(404, "notFound", f"Not found: Dataset {project}:{dataset}")
        return found

    def _table(self, project: str, dataset: str, table: str) -> dict[str, Any]:
        self._dataset(project, dataset)
        found = self.tables.get(table)
        if found is None:
            raise ApiError(404, "notFound", f"Not found: Table {project}:{dataset}.{table}")
        return found

    def dataset_insert(self, project: str, body: dict[str, Any]) -> dict[str, Any]:
        ref = body.get("datasetReference") or {}
        name = ref.get("datasetId") or ""
        if not re.fullmatch(r"[A-Za-z0-9_]{1,1024}", name):
            raise ApiError(400, "invalid", f"Invalid dataset ID \"{name}\". Dataset IDs must be "
                           "alphanumeric (plus underscores) and must be at most 1024 characters "
                           "long.")  # fmt: skip
        if name in self.datasets:
            raise ApiError(409, "duplicate", f"Already Exists: Dataset {project}:{name}")
        now = str(int(time.time() * 1000))
        self.datasets[name] = {
            "kind": "bigquery#dataset", "id": f"{project}:{name}", "etag": uuid.uuid4().hex,
            "datasetReference": {"projectId": project, "datasetId": name},
            "location": body.get("location") or "US", "creationTime": now,
            "lastModifiedTime": now, "type": "DEFAULT"}  # fmt: skip
        return self.datasets[name]

    def _check_schema(self, fields: list[dict[str, Any]]) -> None:
        names = set()
        for f in fields:
            name, kind = f.get("name", ""), str(f.get("type", "")).upper()
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,299}", name):
                raise ApiError(400, "invalid", f"Invalid field name \"{name}\".")
            if kind not in _SQL_TYPES:
                raise ApiError(400, "invalid", f"Invalid value for type: {kind} is not a valid "
                               "value")  # fmt: skip
            if name.lower() in names:
                raise ApiError(400, "invalid", f"Field {name} already exists in schema")
            names.add(name.lower())

    def table_insert(self, project: str, dataset: str, body: dict[str, Any]) -> dict[str, Any]:
        self._dataset(project, dataset)
        name = (body.get("tableReference") or {}).get("tableId") or ""
        if name in self.tables:
            raise ApiError(409, "duplicate", f"Already Exists: Table {project}:{dataset}.{name}")
        fields = (body.get("schema") or {}).get("fields") or []
        self._check_schema(fields)
        cols = ", ".join(f'"{f["name"]}" {_SQL_TYPES[f["type"].upper()]}' for f in fields)
        self.db.execute(f'CREATE TABLE "{name}" ({cols or "_empty TEXT"})')
        now = str(int(time.time() * 1000))
        self.tables[name] = {
            "kind": "bigquery#table", "id": f"{project}:{dataset}.{name}",
            "etag": uuid.uuid4().hex, "type": "TABLE", "location": "US",
            "tableReference": {"projectId": project, "datasetId": dataset, "tableId": name},
            "schema": {"fields": [{"mode": "NULLABLE", **f} for f in fields]},
            "creationTime": now, "lastModifiedTime": now, "numRows": "0"}  # fmt: skip
        self.insert_ids[name] = set()
        return self.tables[name]

    def table_patch(self, project: str, dataset: str, name: str, body: dict[str, Any]
                    ) -> dict[str, Any]:  # fmt: skip
        table = self._table(project, dataset, name)
        if "schema" in body:
            old = {f["name"]: f for f in table["schema"]["fields"]}
            new = body["schema"].get("fields") or []
            self._check_schema(new)
            names = {f["name"] for f in new}
            gone = [n for n in old if n not in names]
            if gone:
                raise ApiError(400, "invalid", f"Provided Schema does not match Table "
                               f"{project}:{dataset}.{name}. Field {gone[0]} is missing in new "
                               "schema")  # fmt: skip
            for f in new:
                was = old.get(f["name"])
                if was is not None and was["type"].upper() != f["type"].upper():
                    raise ApiError(400, "invalid", f"Provided Schema does not match Table "
                                   f"{project}:{dataset}.{name}. Field {f['name']} has changed "
                                   f"type from {was['type']} to {f['type']}")  # fmt: skip
                if was is None:
                    if (f.get("mode") or "NULLABLE").upper() == "REQUIRED":
                        raise ApiError(400, "invalid", f"Provided Schema does not match Table "
                                       f"{project}:{dataset}.{name}. Cannot add required fields "
                                       "to an existing schema. (field: " + f["name"] + ")")  # fmt: skip
                    self.db.execute(f'ALTER TABLE "{name}" ADD COLUMN "{f["name"]}" '
                                    f'{_SQL_TYPES[f["type"].upper()]}')  # fmt: skip
            table["schema"] = {"fields": [{"mode": "NULLABLE", **f} for f in new]}
        table["etag"] = uuid.uuid4().hex
        table["lastModifiedTime"] = str(int(time.time() * 1000))
        return table

    def insert_all(self, project: str, dataset: str, name: str, body: dict[str, Any]
                   ) -> dict[str, Any]:  # fmt: skip
        table = self._table(project, dataset, name)
        fields = {f["name"]: f for f in table["schema"]["fields"]}
        skip_invalid = bool(body.get("skipInvalidRows"))
        ignore_unknown = bool(body.get("ignoreUnknownValues"))
        rows = body.get("rows") or []
        if not rows:
            raise ApiError(400, "invalid", "No rows present in the request.")
        good: list[tuple[int, str | None, dict[str, Any]]] = []
        errors: dict[int, list[dict[str, str]]] = {}
        for index, item in enumerate(rows):
            data = item.get("json")
            if not isinstance(data, dict):
                errors[index] = [{"reason": "invalid", "location": "", "debugInfo": "",
                                  "message": "Row is not a JSON object."}]  # fmt: skip
                continue
            problems, values = [], {}
            for key, value in data.items():
                field = fields.get(key)
                if field is None:
                    if not ignore_unknown:
                        problems.append((key, f"no such field: {key}."))
                    continue
                if value is None:
                    continue
                try:
                    values[key] = _coerce(field["type"], value)
                except ValueError as exc:
                    problems.append((key, str(exc)))
            for fname, field in fields.items():
                if (field.get("mode") or "").upper() == "REQUIRED" and data.get(fname) is None:
                    problems.append((fname, f"Missing required field: {fname}."))
            if problems:
                errors[index] = [{"reason": "invalid", "location": where, "debugInfo": "",
                                  "message": message} for where, message in problems]  # fmt: skip
            else:
                good.append((index, item.get("insertId"), values))
        if errors and not skip_invalid:
            out = [{"index": i, "errors": errors[i]} for i in sorted(errors)]
            out += [{"index": i, "errors": [{"reason": "stopped", "location": "",
                                             "debugInfo": "", "message": ""}]}
                    for i, _, _ in good]  # fmt: skip
            return {"kind": "bigquery#tableDataInsertAllResponse",
                    "insertErrors": sorted(out, key=lambda e: e["index"])}  # fmt: skip
        seen = self.insert_ids.setdefault(name, set())
        for _, insert_id, values in good:
            if insert_id and insert_id in seen:
                self.deduplicated += 1
                continue
            if insert_id:
                seen.add(insert_id)
            cols = list(values)
            marks = ", ".join("?" for _ in cols)
            names = ", ".join(f'"{c}"' for c in cols)
            self.db.execute(f'INSERT INTO "{name}" ({names}) VALUES ({marks})',
                            [values[c] for c in cols])  # fmt: skip
        self.db.commit()
        answer: dict[str, Any] = {"kind": "bigquery#tableDataInsertAllResponse"}
        if errors:
            answer["insertErrors"] = [{"index": i, "errors": errors[i]} for i in sorted(errors)]
        return answer

    def _types(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for table in self.tables.values():
            for f in table["schema"]["fields"]:
                out.setdefault(f["name"], f["type"].upper())
        return out

    def _sql(self, query: str, project: str) -> str:
        sql = re.sub(r"`([^`]+)`", lambda m: m.group(1).split(".")[-1], query)
        return re.sub(rf"(?<![\w.])(?:[\w-]+\.)?{re.escape(self.dataset)}\.", "", sql)

    @staticmethod
    def _params(conf: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for p in conf.get("queryParameters") or []:
            kind = p["parameterType"]["type"].upper()
            value = (p.get("parameterValue") or {}).get("value")
            if value is not None:
                value = _coerce("STRING" if kind in ("STRING", "DATE", "DATETIME") else kind,
                                value)  # fmt: skip
            out[p["name"]] = value
        return out

    def _run_job(self, project: str, body: dict[str, Any]) -> dict[str, Any]:
        conf = body.get("configuration", {})
        qconf = conf.get("query", {})
        query = qconf.get("query", "")
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
            sql = self._sql(query, project)
            try:
                with self.lock:
                    cur = self.db.execute(sql, self._params(qconf))
                    rows = cur.fetchall() if cur.description else []
                    self.db.commit()
            except (sqlite3.Error, ValueError) as exc:
                missing = re.match(r"no such table: (\w+)", str(exc))
                if missing:
                    err = {"reason": "notFound", "message": f"Not found: Table {project}:"
                           f"{self.dataset}.{missing.group(1)} was not found in location US "
                           f"({exc})"}  # fmt: skip
                else:
                    err = {"reason": "invalidQuery", "message": str(exc)}
                job["status"]["errorResult"] = err
                job["status"]["errors"] = [err]
            else:
                if cur.description:
                    types = self._types()
                    cols = [d[0] for d in cur.description]
                    fields = [
                        {"name": c, "type": types.get(c) or _bq_type([r[i] for r in rows]),
                         "mode": "NULLABLE"}
                        for i, c in enumerate(cols)
                    ]  # fmt: skip
                    result = {"schema": {"fields": fields}, "totalRows": str(len(rows)),
                              "raw": rows}  # fmt: skip
                else:
                    result = {"numDmlAffectedRows": str(max(cur.rowcount, 0))}
                    job["statistics"]["query"]["numDmlAffectedRows"] = result["numDmlAffectedRows"]
        self.jobs[job_id] = {"job": job, "result": result}
        return job

    def _results(self, job_id: str, int64_ts: bool, no_rows: bool) -> dict[str, Any]:
        entry = self.jobs[job_id]
        result = dict(entry["result"])
        raw = result.pop("raw", None)
        out = {"kind": "bigquery#getQueryResultsResponse", "jobComplete": True,
               "jobReference": entry["job"]["jobReference"], **result}  # fmt: skip
        if raw is not None and not no_rows:
            kinds = [f["type"] for f in result["schema"]["fields"]]
            out["rows"] = [{"f": [{"v": _cell(v, k, int64_ts)} for v, k in zip(r, kinds,
                                                                               strict=True)]}
                           for r in raw]  # fmt: skip
        return out

    # -- auth ------------------------------------------------------------------------------
    def token(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        import jwt

        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            return 400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"}
        assertion = (form.get("assertion") or [""])[0]
        try:
            claims = jwt.decode(assertion, options={"verify_signature": False})
            key = self._keys[claims["iss"]]
            # The audience is always Google's token endpoint, wherever the key says to post.
            jwt.decode(assertion, key, algorithms=["RS256"],
                       audience="https://oauth2.googleapis.com/token")
        except Exception as exc:
            self.token_errors.append(repr(exc))
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        if "bigquery" not in str(claims.get("scope", "")):
            return 400, {"error": "invalid_scope", "error_description": "Invalid OAuth scope"}
        token = f"ya29.fake-{secrets.token_hex(16)}"
        self.tokens.add(token)
        return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    # -- routing ---------------------------------------------------------------------------
    def dispatch(self, method: str, path: str, params: dict[str, list[str]], body: Any,
                 headers: dict[str, str]) -> tuple[int, Any]:  # fmt: skip
        prefix = "/bigquery/v2/projects/"
        if not path.startswith(prefix):
            raise ApiError(404, "notFound", f"Not found: URL {path}")
        parts = path[len(prefix):].split("/")
        project, rest = parts[0], parts[1:]
        op = _op(method, rest)
        self.ops.append(op)
        if self.require_auth:
            auth = headers.get("authorization", "")
            if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
                raise ApiError(401, "required", _LOGIN, location="Authorization",
                               locationType="header")  # fmt: skip
        self._release.wait(60)
        self._trouble(op)
        with self.lock:
            if op == "datasets.insert":
                return 200, self.dataset_insert(project, body)
            if op == "datasets.get":
                return 200, self._dataset(project, rest[1])
            if op == "tables.insert":
                return 200, self.table_insert(project, rest[1], body)
            if op == "tables.get":
                return 200, self._table(project, rest[1], rest[3])
            if op == "tables.patch":
                return 200, self.table_patch(project, rest[1], rest[3], body)
            if op == "insertAll":
                answer = self.insert_all(project, rest[1], rest[3], body)
                if self._lose > 0:
                    self._lose -= 1
                    raise ApiError(503, "backendError")
                return 200, answer
            if op == "jobs.insert":
                return 200, self._run_job(project, body)
            if op == "jobs.query":
                job = self._run_job(project, {"configuration": {"query": body}})
                wants = bool((body.get("formatOptions") or {}).get("useInt64Timestamp"))
                return 200, self._results(job["jobReference"]["jobId"], wants, False)
            if not op.startswith("jobs."):
                raise ApiError(404, "notFound", f"Not found: URL {path}")
            job_id = rest[1] if len(rest) > 1 else ""
            if job_id not in self.jobs:
                raise ApiError(404, "notFound", f"Not found: Job {project}:US.{job_id}")
            if op == "jobs.get":
                return 200, self.jobs[job_id]["job"]
            if op == "jobs.cancel":
                return 200, {"kind": "bigquery#jobCancelResponse", "job": self.jobs[job_id]["job"]}
            if op == "jobs.getQueryResults":
                wants = [v.lower() for v in params.get("formatOptions.useInt64Timestamp", [])
                         ] == ["true"]  # fmt: skip
                return 200, self._results(job_id, wants, params.get("maxResults") == ["0"])
        raise ApiError(404, "notFound", f"Not found: URL {path}")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                url = urlparse(self.path)
                params = parse_qs(url.query)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                if url.path == "/token" and method == "POST":
                    fake.ops.append("token")
                    status, answer = fake.token(parse_qs(raw.decode()))
                    return self._send(status, answer)
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    return self._send(400, api_error(400, "parseError", "Parse Error"))
                fake.requests.append((method, url.path, body))
                fake.headers.append(headers)
                try:
                    status, answer = fake.dispatch(method, url.path, params, body, headers)
                except ApiError as exc:
                    status, answer = exc.code, exc.body
                self._send(status, answer)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._route("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._route("POST")

            def do_PATCH(self) -> None:  # noqa: N802
                self._route("PATCH")

            def do_PUT(self) -> None:  # noqa: N802
                self._route("PATCH")

        return Handler


def _op(method: str, rest: list[str]) -> str:
    """The API method a request path names (rest: the path after the project)."""
    n = len(rest)
    if rest[:1] == ["datasets"]:
        if n == 1:
            return "datasets.insert" if method == "POST" else "datasets.list"
        if n == 2:
            return "datasets.get" if method == "GET" else "datasets.patch"
        if n == 3 and rest[2] == "tables":
            return "tables.insert" if method == "POST" else "tables.list"
        if n == 4:
            return {"GET": "tables.get"}.get(method, "tables.patch")
        if n == 5 and rest[4] == "insertAll":
            return "insertAll"
    if rest[:1] == ["jobs"]:
        if n == 1:
            return "jobs.insert"
        if n == 3 and rest[2] == "cancel":
            return "jobs.cancel"
        return "jobs.get"
    if rest[:1] == ["queries"]:
        return "jobs.query" if n == 1 else "jobs.getQueryResults"
    return "unknown"


def _cell(value: Any, kind: str, int64_ts: bool) -> Any:
    if value is None:
        return None
    if kind == "TIMESTAMP":
        micros = int(value)
        return str(micros) if int64_ts else f"{micros / 1_000_000:.6f}"
    if kind in ("BOOLEAN", "BOOL"):
        return "true" if value else "false"
    return str(value)
