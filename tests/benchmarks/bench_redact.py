"""Redaction throughput on typical ~300-byte events (every event append goes through it).

Run: /work/venv/bin/python tests/benchmarks/bench_redact.py
"""

from __future__ import annotations

import json
import random
import string
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.redact import Redactor  # noqa: E402

N = 20_000
WORDS = ["the", "agent", "reads", "file", "src/app.py", "and", "runs", "pytest", "then",
         "writes", "a", "fix", "for", "failing", "test", "assert", "ok", "==", "def"]  # fmt: skip


def make_events(n: int, secret: str, extra: str = "") -> list[dict]:
    rnd = random.Random(7)
    events = []
    for i in range(n):
        text = " ".join(rnd.choice(WORDS) for _ in range(36)) + extra
        if i % 50 == 0:  # a few events really carry a secret
            text += f" export API_KEY={secret}"
        events.append({"task_id": "a1b2c3d4", "seq": i, "ts": 1_700_000_000.0 + i,
                       "type": "tool_result", "tool": "execute_bash",
                       "output": text, "is_error": False})  # fmt: skip
    return events


def run(redactor: Redactor, events: list[dict], secret: str) -> float:
    for e in events[:500]:  # warm up
        redactor.redact_obj(e)
    t = time.perf_counter()
    out = [redactor.redact_obj(e) for e in events]
    elapsed = time.perf_counter() - t
    assert all(secret not in json.dumps(e) for e in out)
    return elapsed


def main() -> None:
    rnd = random.Random(1)
    alphabet = string.ascii_letters + string.digits
    secrets = {f"SECRET_{k}": "".join(rnd.choice(alphabet) for _ in range(32)) for k in range(20)}
    redactor = Redactor(secrets)
    secret = secrets["SECRET_3"]
    for name, extra in (("typical", ""), ("with a trigger word", " max token budget")):
        events = make_events(N, secret, extra)
        size = sum(len(json.dumps(e)) for e in events) / N
        elapsed = run(redactor, events, secret)
        print(f"redact_obj, {name:20s}: {N / elapsed:9,.0f} events/s  "
              f"({elapsed / N * 1e6:5.1f} us/event, ~{size:.0f}-byte events, "
              f"{len(secrets)} known secrets + token patterns)")  # fmt: skip


if __name__ == "__main__":
    main()
