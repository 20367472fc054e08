"""The shared BigQuery dataset, through the real `google-cloud-bigquery` client: tables
made (or widened) from the sources' schemas, rows streamed with `insert_rows_json` (each
with its insertId, so a retried batch is not stored twice), teammates' learnings read back
with a parameterised query.

Every method blocks (HTTP): the exporter runs them in daemon threads (`blocking`), never
on the event loop, and a hung request can never hold a closing engine (a daemon thread is
not waited for). The client's own retries are off: the exporter's backoff is the one retry
loop, so a 503 costs one request, not ten minutes of the client's.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ..config import BigQueryConfig
from .sources import Source

T = TypeVar("T")
PULL_COLUMNS = ("row_id", "machine_id", "origin", "learning_key", "category", "text", "task_id",
                "created_at", "uses", "given_to", "success_with", "success_without", "state",
                "effect", "sent_at")  # fmt: skip


async def blocking(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in a daemon thread of its own; its result, or its exception, here."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def run() -> None:
        try:
            result: tuple[bool, Any] = (True, fn(*args))
        except BaseException as exc:  # handed to the awaiting side
            result = (False, exc)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(settle, *result)

    threading.Thread(target=run, name="bigquery-export", daemon=True).start()
    return await future


class Warehouse:
    def __init__(self, cfg: BigQueryConfig, client: Any = None) -> None:
        self.cfg = cfg
        self._client: Any = client

    @property
    def client(self) -> Any:
        if self._client is None:
            from ..gcp import bigquery_client

            self._client = bigquery_client(self.cfg.project, self.cfg.api_endpoint)
        return self._client

    def _dataset_ref(self) -> Any:
        from google.cloud import bigquery

        return bigquery.DatasetReference(self.client.project, self.cfg.dataset)

    def ensure_table(self, source: Source) -> None:
        """The dataset and the source's table exist and have every column of its schema
        (BigQuery adds columns, never drops them: a new column is added NULLABLE)."""
        from google.api_core.exceptions import NotFound
        from google.cloud import bigquery

        t = self.cfg.timeout_s
        client = self.client
        ds_ref = self._dataset_ref()
        try:
            client.get_dataset(ds_ref, retry=None, timeout=t)
        except NotFound:
            dataset = bigquery.Dataset(ds_ref)
            if self.cfg.location:
                dataset.location = self.cfg.location
            client.create_dataset(dataset, exists_ok=True, retry=None, timeout=t)
        schema = [bigquery.SchemaField(c.name, c.type, mode=c.mode) for c in source.schema]
        ref = ds_ref.table(source.name)
        try:
            table = client.get_table(ref, retry=None, timeout=t)
        except NotFound:
            client.create_table(bigquery.Table(ref, schema=schema), exists_ok=True, retry=None,
                                timeout=t)  # fmt: skip
            return
        have = {f.name for f in table.schema}
        missing = [bigquery.SchemaField(f.name, f.field_type, mode="NULLABLE")
                   for f in schema if f.name not in have]  # fmt: skip
        if missing:
            table.schema = [*table.schema, *missing]
            client.update_table(table, ["schema"], retry=None, timeout=t)

    def insert(self, source: Source, rows: list[dict[str, Any]], row_ids: list[str]
               ) -> list[dict[str, Any]]:  # fmt: skip
        """Stream the rows; BigQuery's per-row errors (empty: all stored)."""
        ref = self._dataset_ref().table(source.name)
        return list(self.client.insert_rows_json(
            ref, rows, row_ids=row_ids, retry=None, timeout=self.cfg.timeout_s))  # fmt: skip

    def pull_learnings(self, machine_id: str, since: float, limit: int) -> list[dict[str, Any]]:
        """Learnings other machines sent since `since`, oldest first."""
        from google.cloud import bigquery

        t = self.cfg.timeout_s
        table = f"`{self.client.project}.{self.cfg.dataset}.learnings`"
        sql = (f"SELECT {', '.join(PULL_COLUMNS)} FROM {table} "
               f"WHERE machine_id != @me AND sent_at >= @since "
               f"ORDER BY sent_at, row_id LIMIT {int(limit)}")  # fmt: skip
        since_at = dt.datetime.fromtimestamp(max(since, 0.0), dt.UTC)
        config = bigquery.QueryJobConfig(query_parameters=[
            bigquery.ScalarQueryParameter("me", "STRING", machine_id),
            bigquery.ScalarQueryParameter("since", "TIMESTAMP", since_at),
        ])  # fmt: skip
        job = self.client.query(sql, job_config=config, retry=None, job_retry=None, timeout=t)
        out = []
        for row in job.result(timeout=t, retry=None, job_retry=None):
            item = dict(row.items())
            for key in ("created_at", "sent_at"):
                if isinstance(item.get(key), dt.datetime):
                    item[key] = item[key].timestamp()
            out.append(item)
        return out

    def dry_run(self) -> int:
        """A free query that proves the credentials reach the dataset: bytes it would read."""
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(dry_run=True, use_query_cache=False)
        job = self.client.query("SELECT 1", job_config=config, retry=None, job_retry=None,
                                timeout=self.cfg.timeout_s)  # fmt: skip
        return int(job.total_bytes_processed or 0)
