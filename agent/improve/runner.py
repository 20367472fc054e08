"""Accepted proposals as queued work: a daemon runs them as ordinary tasks, at most
`[improve] auto_concurrent` at a time (default one), each through the normal approval
gates (it asks before applying). A proposal is claimed in the store before its task is
made, so two daemons (or a daemon and `improve auto`) never run it twice."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from .. import events as ev
from ..errors import CockpitError, StopActive
from . import records
from .jobs import start_proposal

if TYPE_CHECKING:
    from .host import ImproveHost

log = logging.getLogger(__name__)
POLL_S = 2.0


class ProposalRunner:
    def __init__(self, engine: ImproveHost, workspace: Path) -> None:
        self.engine = engine
        self.workspace = workspace
        self.live: set[str] = set()  # task ids of proposals this runner started
        self.refused: dict[str, str] = {}  # proposal id -> why its task could not be made

    async def run(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            try:
                await self.step()
            except StopActive:
                continue  # the stop came between the check and the submit: held
            except CockpitError as exc:  # a workspace gone, a store locked: said, kept going
                log.error("running accepted proposals: %s", exc)

    async def step(self) -> list[str]:
        """Start what may start now; the task ids started."""
        engine = self.engine
        for task_id in list(self.live):
            task = await engine.get(task_id)
            if task is None or task["state"] in ev.END_STATES:
                self.live.discard(task_id)
        free = engine.config.improve.auto_concurrent - len(self.live)
        if not engine.config.improve.auto_run or engine.stopped or free <= 0:
            return []
        started = []
        accepted = await records.proposals(engine.store, (records.ACCEPTED,))
        waiting = [p for p in accepted if p["id"] not in self.refused]
        for proposal in sorted(waiting, key=lambda p: p["created_at"])[:free]:
            try:
                task_id = await start_proposal(engine, proposal, self.workspace)
            except StopActive:
                raise
            except CockpitError as exc:  # its workspace is gone, say: once, not every poll
                self.refused[proposal["id"]] = str(exc)
                log.error("proposal %s cannot run: %s", proposal["id"], exc)
                continue
            if task_id is None:
                continue  # another runner took it
            log.info("proposal %s (%s) runs as task %s", proposal["id"], proposal["title"],
                     task_id)
            self.live.add(task_id)
            started.append(task_id)
        return started
