"""Agents in the server: the runner as a background task, and GET /mirador/notifications.

Each agent's run is an answer like any other: it waits for a slot at the same gate
as the clients' answers, runs through the orchestrator (events, memory, an answer
id to rate), and its result lands in the notifications.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from mirador.agents.clock import Clock
from mirador.agents.runner import AgentRunner, Ask
from mirador.agents.spec import Agent
from mirador.agents.store import AgentStore
from mirador.orchestration.events import Done, final
from mirador.orchestration.hooks import Query as MiradorQuery
from mirador.server.runtime import AnswerRequest, ServerRuntime
from mirador.toolspec import Tool

log = logging.getLogger("mirador.server")

router = APIRouter(prefix="/mirador", tags=["native"])


class NotificationItem(BaseModel):
    id: str
    agent: str
    at: float
    text: str
    status: str
    answer_id: str | None = None
    condition: str | None = None


class NotificationList(BaseModel):
    notifications: list[NotificationItem]
    enabled: list[str]


@router.get("/notifications", response_model=NotificationList)
async def notifications(request: Request, limit: int = Query(50, ge=1, le=1000),
                        agent: str | None = None) -> Any:
    """Agents' results, newest first, and which agents are enabled."""
    rt: ServerRuntime = request.app.state.runtime
    store = AgentStore(rt.settings.home)
    notes = await asyncio.to_thread(store.notifications, limit, agent)
    return {"notifications": [n.__dict__ for n in notes], "enabled": sorted(store.enabled())}


def gated_ask(rt: ServerRuntime) -> Ask:
    """Answer through the server's gate, as a client's answer would be."""
    async def ask(query: MiradorQuery, chain: str | None) -> Done:
        stream = await rt.answer(AnswerRequest(query=query, chain=chain))
        try:
            return await final(stream)
        finally:
            await stream.cancel()
    return ask


def start_agents(rt: ServerRuntime, agents: Sequence[Agent], clock: Clock | None,
                 tools: Mapping[str, Tool] | None = None) -> asyncio.Task[None] | None:
    """Start watching, when any agent is declared (enabled ones run; the rest wait for
    `mirador agents enable NAME`, read at every tick)."""
    if not agents:
        return None
    runner = AgentRunner(agents, AgentStore(rt.settings.home), gated_ask(rt), clock, tools)
    return asyncio.create_task(runner.serve(), name="mirador-agents")
