"""deploy_code: runs only the operator's configured command, sandboxed with network."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.config import Config, DeployTarget
from agent.errors import ToolError
from agent.procs import ProcessGroups
from agent.tools import deploy_code
from agent.tools.base import ToolContext


def make_ctx(root: Path, deploy: dict[str, DeployTarget]) -> ToolContext:
    async def emit(type_: str, **payload: Any) -> None:
        pass

    async def ask(kind: str, summary: str, detail: dict[str, Any]) -> bool:
        return True

    config = Config()
    config.data_dir = root.parent / "data"
    config.deploy = deploy
    return ToolContext(
        root=root, task_id="t-1", config=config, emit=emit, procs=ProcessGroups(), ask=ask
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "wt"
    path.mkdir()
    return path


TARGETS = {
    "staging": DeployTarget(
        command="echo staged > deployed.txt && echo up", rollback="rm deployed.txt"
    ),
    "prod": DeployTarget(command="echo prod > deployed.txt"),
}


async def test_default_target_is_the_first_configured(root: Path) -> None:
    result = await deploy_code.tool.run({}, make_ctx(root, dict(TARGETS)))
    assert not result.is_error, result.output
    assert (root / "deployed.txt").read_text() == "staged\n"
    assert result.data["target"] == "staging"
    assert result.data["rollback_command"] == "rm deployed.txt"
    assert result.data["exit_code"] == 0 and "up" in result.output


async def test_named_target_without_rollback(root: Path) -> None:
    result = await deploy_code.tool.run({"target": "prod"}, make_ctx(root, dict(TARGETS)))
    assert (root / "deployed.txt").read_text() == "prod\n"
    assert result.data["rollback_command"] is None


async def test_dry_run_runs_nothing(root: Path) -> None:
    result = await deploy_code.tool.run({"dry_run": True}, make_ctx(root, dict(TARGETS)))
    assert not result.is_error
    assert "would deploy target 'staging'" in result.output
    assert "echo staged > deployed.txt" in result.output and "rm deployed.txt" in result.output
    assert not (root / "deployed.txt").exists()


async def test_unknown_and_missing_targets(root: Path) -> None:
    with pytest.raises(ToolError, match=r"unknown deploy target 'qa'; configured: staging, prod"):
        await deploy_code.tool.run({"target": "qa"}, make_ctx(root, dict(TARGETS)))
    with pytest.raises(ToolError, match="no deploy targets configured"):
        await deploy_code.tool.run({}, make_ctx(root, {}))
    with pytest.raises(ToolError, match="has no command"):
        await deploy_code.tool.run({}, make_ctx(root, {"x": DeployTarget()}))


async def test_failed_deploy_is_an_error(root: Path) -> None:
    ctx = make_ctx(root, {"bad": DeployTarget(command="echo boom >&2; exit 7")})
    result = await deploy_code.tool.run({}, ctx)
    assert result.is_error and result.data["exit_code"] == 7
    assert "deploy FAILED" in result.output and "boom" in result.output


async def test_deploy_has_network_but_stays_confined(root: Path, tmp_path: Path) -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    try:
        connect = f"{sys.executable} -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3)\""
        ctx = make_ctx(root, {"net": DeployTarget(command=f"{connect} && echo reached")})
        result = await deploy_code.tool.run({}, ctx)
        assert not result.is_error, result.output
        assert "reached" in result.output
    finally:
        srv.close()
    ctx = make_ctx(root, {"esc": DeployTarget(command=f"echo x > {Path.home()}/escaped-deploy")})
    result = await deploy_code.tool.run({}, ctx)
    assert result.is_error and not (Path.home() / "escaped-deploy").exists()
