"""Operator in the loop: the cockpit serving the HTTP API (`[api] enabled = true`) shares one
approval queue with it. A request of an API task shows in the Approval Queue and a key
decides it (the API's late approve is told who decided); a request of a cockpit task is
decided over the API and the queue shows who did."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx

from cockpit.api.tokens import create_token, load_secret
from cockpit.widgets import KeyedTable

from .support import idle, make_app, open_panel, panel_text, ready, wait_for

SIZE = (120, 40)
CLEAN = "Clean the build artifacts"  # the demo script asks before its `git clean`


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_one_queue_for_the_cockpit_and_the_api_whoever_decides_first_wins(
        tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=((CLEAN, "ask", ""),))
    app.config.api.enabled = True
    app.config.api.port = _free_port()
    token = create_token(load_secret(app.config.data_dir), subject="alice")
    base = f"http://127.0.0.1:{app.config.api.port}/api/autonomous"
    async with app.run_test(size=SIZE, notifications=True) as pilot, httpx.AsyncClient(
            headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        await ready(pilot, plan)
        await wait_for(pilot, lambda: any("HTTP API on" in n.message
                                          for n in app._notifications), what="the API")
        (cockpit_request,) = await app.engine.pending_approvals()
        cockpit_task = cockpit_request["task_id"]

        # An API task's request lands in the cockpit's queue...
        answer = await http.post(f"{base}/execute", json={"task": CLEAN, "approve": "ask"})
        assert answer.status_code == 202, answer.text
        api_task = answer.json()["taskId"]
        await open_panel(pilot, "3")
        table = app.screen.query_one("#queue", KeyedTable)
        api_request = await wait_for(
            pilot, lambda: next((r for r in app.screen.rows.values()
                                 if r["task_id"] == api_task and r["state"] == "pending"), None),
            what="the API task's request in the queue")
        assert str(api_request["id"]) in table.rows
        # ...and the operator decides it with one key.
        table.move_cursor(row=table.get_row_index(str(api_request["id"])))
        await idle(pilot)
        await pilot.press("a")
        await wait_for(pilot, lambda: str(table.get_cell(str(api_request["id"]), "Decision"))
                       == "approved by operator", what="the cockpit's decision")
        late = await http.post(f"{base}/approve/{api_task}", json={"approved": False})
        assert late.status_code == 409
        assert "approved by operator" in late.json()["error"], late.text
        record = (await http.get(f"{base}/tasks/{api_task}")).json()
        assert [(a["state"], a["decidedBy"]) for a in record["approvals"]] == [
            ("approved", "operator")]

        # The reverse: the cockpit's own task, decided over the API, shows who decided.
        decided = await http.post(f"{base}/approve/{cockpit_task}",
                                  json={"approved": False, "notes": "not on a Friday"})
        assert decided.status_code == 200, decided.text
        await wait_for(pilot, lambda: str(table.get_cell(str(cockpit_request["id"]), "Decision"))
                       == "denied by api:alice", what="the API's decision in the queue")
        assert "denied by api:alice" in panel_text(app)
        row = await app.engine.store.get_approval(cockpit_request["id"])
        assert (row["decided_by"], row["reason"]) == ("api:alice", "not on a Friday")
