"""Running enabled agents when they are due, each run an answer like any other.

The runner is told how to answer (`Ask`: through the server's gate, or straight
through an orchestrator), so an agent's answer has its events, its memory record
and its answer id to rate. Each result lands in the notifications; every run,
answered, skipped (its condition did not hold) or failed, is logged.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from mirador.agents.clock import Clock, SystemClock
from mirador.agents.spec import Agent
from mirador.agents.store import AgentStore, Notification, RunRecord
from mirador.agents.triggers import Checked
from mirador.errors import MiradorError, report_unexpected
from mirador.orchestration.events import Done, final
from mirador.orchestration.hooks import Query
from mirador.orchestration.orchestrator import Orchestrator
from mirador.toolspec import Tool

log = logging.getLogger("mirador.agents")

Ask = Callable[[Query, str | None], Awaitable[Done]]
"""Answer a query (with a chain, or the routing's choice) and return its `Done`."""


def orchestrator_ask(orchestrator: Orchestrator) -> Ask:
    """An `Ask` straight through `orchestrator` (the CLI's; the server goes through its gate)."""
    async def ask(query: Query, chain: str | None) -> Done:
        return await final(orchestrator.process(query, chain=chain))
    return ask


@dataclass
class _Context:
    """What a custom `run` gets."""

    agent: Agent
    answer: Ask
    answers: list[Done]

    async def ask(self, prompt: str) -> Done:
        done = await self.answer(query_for(self.agent, prompt), self.agent.chain)
        self.answers.append(done)
        return done


def query_for(agent: Agent, prompt: str) -> Query:
    """An agent's query: its own session, so its runs read as one conversation."""
    return Query(text=prompt, session_id=f"agent-{agent.name}")


class AgentRunner:
    """Runs the enabled agents of `agents` when their triggers say so."""

    def __init__(self, agents: Sequence[Agent], store: AgentStore, ask: Ask,
                 clock: Clock | None = None, tools: Mapping[str, Tool] | None = None,
                 poll: float = 15.0) -> None:
        self.agents = {a.name: a for a in agents}
        self.store = store
        self.ask = ask
        self.clock = clock or SystemClock()
        self.tools = dict(tools or {})
        self.poll = poll

    def due(self) -> list[Agent]:
        """The enabled agents whose trigger has come (read fresh: the CLI may have changed it)."""
        enabled, last = self.store.enabled(), self.store.last_runs()
        now = self.clock.now()
        return [agent for name, agent in self.agents.items() if name in enabled
                and agent.trigger.next_after(max(last.get(name, 0.0), enabled[name])) <= now]

    async def tick(self) -> list[RunRecord]:
        """Run every agent that is due, one after another."""
        return [await self.run(agent) for agent in self.due()]

    def pause(self) -> float:
        """Seconds until the next tick: `poll`, or less when an agent is due sooner (so a
        run starts on time, and an agent enabled meanwhile is seen within `poll`)."""
        enabled, last = self.store.enabled(), self.store.last_runs()
        now = self.clock.now()
        waits = [agent.trigger.next_after(max(last.get(name, 0.0), enabled[name])) - now
                 for name, agent in self.agents.items() if name in enabled]
        soonest = min((w for w in waits if w > 0), default=self.poll)
        return min(self.poll, soonest)

    async def serve(self) -> None:
        """Tick, then sleep on the clock until the next tick, until cancelled."""
        log.info("agents: watching %d declared (%s enabled)", len(self.agents),
                 ", ".join(self.store.enabled()) or "none")
        while True:
            pause = self.poll
            try:
                await self.tick()
                pause = self.pause()
            except MiradorError as exc:  # e.g. an unreadable state file: said, then retried
                log.error("agents: %s", exc)
            await self.clock.sleep(pause)

    async def run(self, agent: Agent) -> RunRecord:
        """Run `agent` now (whatever its trigger) and log what it did."""
        at, started = self.clock.now(), time.perf_counter()
        self.store.ran(agent.name, at)
        try:
            record = await self._run(agent, at)
        except MiradorError as exc:
            record = RunRecord(agent.name, at, "failed", str(agent.trigger), error=str(exc))
        except Exception as exc:  # an agent's own code: contained, logged, the loop goes on
            report_unexpected(log, f"agent '{agent.name}' failed", exc)
            record = RunRecord(agent.name, at, "failed", str(agent.trigger),
                               error=f"{type(exc).__name__}: {exc}")
        record = replace(record, seconds=round(time.perf_counter() - started, 3))
        self.store.log(record)
        log.info("agent %s %s%s", agent.name, record.did,
                 f": {record.error or record.condition}" if record.error or record.condition
                 else f" (answer {record.answer_id})")
        return record

    async def _run(self, agent: Agent, at: float) -> RunRecord:
        checked: Checked | None = None
        if agent.when is not None:
            checked = await agent.when.check(self.tools)
            if not checked.met:
                return RunRecord(agent.name, at, "skipped", str(agent.trigger),
                                 condition=checked.summary)
        text, done = await self._answer(agent, checked)
        note = Notification(id=uuid.uuid4().hex[:12], agent=agent.name, at=at, text=text,
                            status=done.status if done else "ok",
                            answer_id=done.answer_id if done else None,
                            condition=checked.summary if checked else None)
        self.store.notify(note)
        return RunRecord(agent.name, at, "answered", str(agent.trigger),
                         answer_id=note.answer_id, condition=note.condition,
                         error=done.error if done else None,
                         details={"prompt": _prompt(agent, checked), "status": note.status})

    async def _answer(self, agent: Agent, checked: Checked | None) -> tuple[str, Done | None]:
        if agent.run is None:
            done = await self.ask(query_for(agent, _prompt(agent, checked)), agent.chain)
            return done.answer, done
        context = _Context(agent, self.ask, [])
        result = await agent.run(context)
        if isinstance(result, Done):
            return result.answer, result
        return str(result), context.answers[-1] if context.answers else None


def _prompt(agent: Agent, checked: Checked | None) -> str:
    if agent.run is not None:
        return "(its own run)"
    return agent.prompt_for(checked.value if checked else None)
