"""`livhana-cockpit --daemon` serves the HTTP API, as a user starts it: on loopback by
default, not at all with --no-api, beyond loopback only with an explicit flag (and a
warning), a busy port in one line; SIGTERM ends it cleanly with a stream still open."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.api_kit import Daemon
from tests.conftest import ROOT, cli, write_script


def _daemon(*flags: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cockpit", "--daemon", *flags], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def test_the_daemon_serves_the_api_to_a_token_from_token_create(
    tmp_path: Path, repo: Path
) -> None:
    slow = [{"delay_s": 60, "text": "thinking it over"}]  # still running when SIGTERM comes
    config = tmp_path / "config.toml"
    model = write_script(tmp_path / "s.json", [{"match": ".", "turns": slow}])
    config.write_text(f'[engine]\nmodel = "{model}"\n')
    daemon = Daemon(tmp_path / "data", "--workspace", str(repo), config=config)
    try:
        url = daemon.wait_ready()
        assert url.startswith("http://127.0.0.1:")
        token = cli("--config", str(config), "token", "create").stdout.strip()
        # httpx waits 5 s by default; a loaded machine can take longer to end the task and
        # close the stream after SIGTERM.
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                          timeout=60) as http:
            assert http.get("/healthz").json()["status"] == "ok"
            assert http.get("/api/autonomous/capabilities").status_code == 200
            answer = http.post("/api/autonomous/execute", json={"task": "look around"})
            assert answer.status_code == 202, answer.text
            task_id = answer.json()["taskId"]
            record = http.get(f"/api/autonomous/tasks/{task_id}").json()
            assert record["workspace"] == str(repo.resolve())  # the daemon's --workspace
            # A stream is open when the daemon is told to stop: it ends, and so does the daemon.
            with http.stream("GET", f"/api/autonomous/stream/{task_id}") as resp:
                assert resp.status_code == 200
                lines = resp.iter_lines()
                assert next(lines).startswith("retry:")
                daemon.proc.send_signal(signal.SIGTERM)
                rest = list(lines)  # the server closes it
            assert any(line.startswith("data:") for line in rest)
        assert daemon.proc.wait(timeout=30) == 0
    finally:
        daemon.stop()
    assert "Traceback" not in daemon.log.read_text()
    # The stream ended with the server; the store has the task's end, for a client that
    # resumes (Last-Event-ID) once a daemon is back.
    (ended,) = json.loads(cli("--config", str(config), "history", "--json").stdout)
    assert (ended["id"], ended["state"]) == (task_id, "interrupted")


def test_no_api_means_no_listener(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "data", "--no-api")
    try:
        deadline = time.monotonic() + 30
        while "running on" not in daemon.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "running on" in daemon.log.read_text()
        assert "HTTP API" not in daemon.log.read_text()
    finally:
        assert daemon.stop() == 0


def test_a_remote_bind_needs_its_flag_and_then_warns(tmp_path: Path) -> None:
    refused = _daemon("--api-host", "0.0.0.0", "--api-port", "0")
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "--api-allow-remote" in refused.stderr
    assert "Traceback" not in refused.stderr
    daemon = Daemon(tmp_path / "data", "--api-host", "0.0.0.0", "--api-allow-remote")
    try:
        url = daemon.wait_ready()
        log = daemon.log.read_text()
        assert "warning" in log and "beyond this machine" in log and "clear text" in log
        port = int(url.rsplit(":", 1)[1])
        # Beyond loopback the Host check is off (it is for loopback binds), tokens still hold.
        assert httpx.get(f"http://127.0.0.1:{port}/api/autonomous/history").status_code == 401
    finally:
        daemon.stop()


def test_a_busy_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _daemon("--api-port", str(port))
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "--api-port" in result.stderr
    bad = _daemon("--api-port", "70000")
    assert bad.returncode == 2 and "--api-port" in bad.stderr
