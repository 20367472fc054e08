"""5 · Capabilities: the agent's tools, their input schema, policy (allow/ask/deny) and
recent use. Change a tool's policy here; Enter shows the tool in full. On a narrow terminal
the detail goes under the list."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Static

from agent.policy import WHO_ANSWERS

from .. import fmt
from ..widgets import KeyedTable, put
from ..widgets.detail_view import DetailView
from .base import PanelScreen

if TYPE_CHECKING:
    from agent.engine import Engine

POLICY_TONE = {"allow": "ok", "ask": "warn", "deny": "bad"}


GATED = "*"  # marks a tool whose calls a rule can still send to the operator or refuse


def policy(decision: str, gates: list[str] | None = None) -> str:
    """A tool's policy, coloured in the current theme; marked when some calls are gated."""
    tone = POLICY_TONE.get(decision)
    text = fmt.paint(decision, tone) if tone else fmt.escape(decision or "?")
    return text + fmt.paint(GATED, "warn") if gates and decision != "deny" else text


class CapabilitiesScreen(PanelScreen):
    MODE = "capabilities"
    CSS_PATH = "capabilities.tcss"
    WATCH = frozenset({"step"})
    ENTER = "the tool in full: description, policy and its rule, input schema"
    BINDINGS = [
        Binding("l", "policy('allow')", "Allow", id="capabilities.allow"),
        Binding("k", "policy('ask')", "Ask", id="capabilities.ask"),
        Binding("x", "policy('deny')", "Deny", id="capabilities.deny"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.tools: dict[str, dict[str, Any]] = {}

    def compose_panel(self) -> ComposeResult:
        with Horizontal(classes="panel-body", id="body"):
            with Vertical(id="left"):
                yield Static("", id="mode")
                yield KeyedTable(("Tool", 17), ("Kind", 7), ("Policy", 7), ("Uses", 5),
                                 ("Last used", 12), id="tools")
            with VerticalScroll(id="detail-pane"):
                yield Static("", id="detail")

    async def refresh_data(self, engine: Engine) -> None:
        caps = engine.capabilities()
        use = await engine.recent_tool_use()
        self.tools = {c["name"]: c for c in caps}
        self.query_one("#tools", KeyedTable).sync({
            c["name"]: (c["name"], c.get("kind", ""), policy(c.get("policy", ""), c.get("gates")),
                        str(use.get(c["name"], {}).get("count", 0)),
                        fmt.ago(use.get(c["name"], {}).get("last_ts")))
            for c in caps})
        mode = getattr(engine, "policy_mode", None)
        put(self.query_one("#mode", Static), 
            f"policy mode [b]{fmt.escape(mode or 'default')}[/] · l allow · k ask · x deny "
            f"(selected tool) · {fmt.paint(GATED, 'warn')} some calls still ask")
        self._show(self.query_one("#tools", KeyedTable).selected_key)

    @on(KeyedTable.RowHighlighted, "#tools")
    def _row(self, event: KeyedTable.RowHighlighted) -> None:
        self._show(event.row_key.value)

    def _show(self, name: str | None) -> None:
        tool = self.tools.get(name or "")
        self.query_one("#detail", Static).update(tool_text(tool) if tool else "")

    def drill(self, table: KeyedTable, key: str) -> None:
        tool = self.tools.get(key)
        if tool is not None:
            self.app.push_screen(DetailView(f"Tool {key}", tool_text(tool)))

    def action_policy(self, decision: str) -> None:
        name = self.query_one("#tools", KeyedTable).selected_key
        if not name:
            return
        self.act(lambda e: e.set_policy(name, decision), done=f"{name}: {decision}")


def tool_text(tool: dict[str, Any]) -> str:
    e = fmt.escape
    schema = json.dumps(tool.get("input_schema", {}), indent=2)
    rule = f" [dim](rule: {e(tool['rule'])})[/]" if tool.get("rule") else ""
    return (f"[b]{e(tool['name'])}[/] · {e(tool.get('kind', ''))} · policy "
            f"{policy(tool.get('policy', ''))}{rule}{gates_text(tool)}"
            f"\n\n{e(tool.get('description', ''))}\n\n[b]input schema[/]\n{e(schema)}")


def gates_text(tool: dict[str, Any]) -> str:
    """Why a call of an allowed tool can still wait for approval: the rules the engine
    checks before the tool's own policy, each with its decision."""
    gates = tool.get("gates") or []
    if not gates or tool.get("policy") == "deny":
        return ""
    lines = []
    for gate in gates:
        decision, _, why = gate.partition(": ")
        lines.append(f"  {policy(decision)}: {fmt.escape(why)}")
    return (f"\n\n[b]{GATED} some calls still ask or are refused, whatever the policy:[/]\n"
            + "\n".join(lines) + f"\n[dim]{fmt.escape(WHO_ANSWERS)}[/]")
