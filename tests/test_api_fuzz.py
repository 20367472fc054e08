"""A fuzz pass driven by the API's own OpenAPI document (schemathesis, on hypothesis): every
operation, with data that fits the schema and data that breaks it, against the real daemon
over loopback. No input gets a 5xx, and what comes back matches what the document says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api_kit import Daemon
from tests.conftest import cli, write_script

EXAMPLES = 40  # per operation and mode; raise it locally for a longer hunt


@pytest.fixture
def daemon(tmp_path: Path, repo: Path) -> Any:
    model = write_script(tmp_path / "s.json", [{"match": ".", "turns": []}])  # ends at once
    config = tmp_path / "config.toml"
    config.write_text(f'[engine]\nmodel = "{model}"\nmax_concurrent = 2\n'
                      "[api]\nrate_limit = 10000\nrate_burst = 10000\n")  # fmt: skip
    running = Daemon(tmp_path / "data", "--workspace", str(repo), config=config)
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


@pytest.mark.slow
def test_no_input_gets_a_5xx_and_answers_match_the_document(daemon: Any, tmp_path: Path) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    token = cli("--config", str(tmp_path / "config.toml"), "token", "create").stdout.strip()
    auth = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_url(f"{daemon.url}/api/openapi.json")
    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance]  # fmt: skip
    seen: dict[str, set[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

            @settings(max_examples=EXAMPLES, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))  # fmt: skip
            @given(case=operation.as_strategy(generation_mode=mode))
            def hunt(case: Any) -> None:
                headers = {**(case.headers or {}), **auth}  # our token, not a made-up one
                response = case.call_and_validate(
                    base_url=daemon.url, headers=headers, checks=checks, timeout=30
                )
                seen.setdefault(case.operation.label, set()).add(response.status_code)

            try:
                hunt()
            except Unsatisfiable:  # nothing in it to break (no parameters, no body)
                assert mode == schemathesis.GenerationMode.NEGATIVE, operation.label
    assert daemon.proc.poll() is None  # still serving after all of it
    assert "Traceback" not in daemon.log.read_text()
    print("\n" + "\n".join(f"{label}: {sorted(codes)}" for label, codes in sorted(seen.items())))
