"""A full disk: the data dir on a small tmpfs of its own (in a private mount namespace, so
nothing outlives the test), filled up by the task's own command. The run must end within
seconds with the task failed and saying why, and the commands that only show the store
must keep working on the full disk."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, write_script

pytestmark = pytest.mark.skipif(not Path("/usr/bin/bwrap").exists(), reason="needs bubblewrap")

DISK = "12m"
VIEWS = ("history", "tasks", "metrics", "learnings", "approvals", "capabilities")


def _namespace() -> list[str] | None:
    """How to get a private mount namespace here: as root, or as a user through an
    unprivileged user namespace. None when neither is allowed."""
    for argv in (["unshare", "--mount", "--propagation", "private"], ["unshare", "-rm"]):
        try:
            probe = subprocess.run([*argv, "true"], capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return argv
    return None


def test_a_full_disk_fails_the_task_quickly_and_the_store_stays_readable(
    repo: Path, tmp_path: Path
) -> None:
    namespace = _namespace()
    if namespace is None:
        pytest.skip("no mount namespace (needs root or unprivileged user namespaces)")
    fill = "head -c 100000000 /dev/zero > big.bin; echo filled"
    turns = [{"tool_calls": [{"name": "execute_bash", "input": {"command": fill}}]},
             {"tool_calls": [{"name": "execute_bash", "input": {"command": "echo more"}}]}]  # fmt: skip
    model = write_script(tmp_path / "model.json", [{"match": ".", "turns": turns}])
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    out.mkdir()
    cli = f"{shlex.quote(sys.executable)} -m cockpit"
    # Bounded: the old behaviour hung for minutes; `timeout` turns that into exit 124.
    lines = [
        f"mount -t tmpfs -o size={DISK} tmpfs {data} || exit 99",
        f"timeout 90 {cli} run 'fill the disk' --workspace {repo} --approve auto "
        f"--model {shlex.quote(model)} > {out}/run.out 2> {out}/run.err; echo $? > {out}/run.rc",
        *(
            f"{cli} {v} --json > {out}/{v}.out 2> {out}/{v}.err; echo $? > {out}/{v}.rc"
            for v in VIEWS
        ),  # fmt: skip
        f"{cli} audit verify > {out}/audit.out 2> {out}/audit.err; echo $? > {out}/audit.rc",
    ]
    env = {**os.environ, "LIVHANA_DATA_DIR": str(data)}
    done = subprocess.run([*namespace, "sh", "-c", "\n".join(lines)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    if done.returncode == 99:
        pytest.skip(f"cannot mount a tmpfs in the namespace: {done.stderr.strip()}")

    def read(name: str) -> str:
        return (out / name).read_text()

    assert "No space left on device" in read("run.out"), "the disk did not fill up"
    run_rc, run_err = int(read("run.rc")), read("run.err")
    assert run_rc not in (0, 124), f"exit {run_rc}: {run_err}"
    assert "Traceback" not in run_err
    assert "the disk is full" in read("run.out") + run_err
    for view in VIEWS:
        assert read(f"{view}.rc").strip() == "0", f"{view}: {read(f'{view}.err')}"
    (task,) = json.loads(read("history.out"))
    assert task["state"] == "failed" and "the disk is full" in task["error"]
    assert json.loads(read("tasks.out")) == []
    assert read("audit.rc").strip() == "0" and "verified" in read("audit.out")
