"""Export to BigQuery for teams (optional, off by default): the store's records go to a
shared dataset through a local outbox, and teammates' learnings come back.

- sources.py: what is exported, one registration per table;
- outbox.py: the local outbox, cursors and digests (store tables, migration 3);
- warehouse.py: the BigQuery side, with the real `google-cloud-bigquery` client;
- exporter.py: the engine's background loop (gather, send with backoff, pull, status);
- pull.py: teammates' learnings stored here, marked with their origin.
"""

from __future__ import annotations

from typing import Any

from .exporter import Exporter, export_status
from .sources import Host

__all__ = ["Exporter", "export_status", "start_export"]


def start_export(engine: Any) -> Exporter:
    """The exporter for `engine` (its store, config, id and redaction), started."""
    host = Host(engine.store, engine.config, engine.engine_id, engine.safety.redact, views=engine)
    exporter = Exporter(host)
    exporter.start()
    return exporter
