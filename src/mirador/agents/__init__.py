"""Agents that watch: scheduled or conditional answers whose results become notifications.

Agents are declared in `config.yaml` (`agents:`) or with `@mirador.agent` on a class
(spec.py); each has a trigger (`daily 08:00`, `every 30m`) and may have a condition
on a tool's result (triggers.py). `mirador serve` runs the enabled ones (runner.py);
they stay disabled until the person runs `mirador agents enable NAME` (store.py).
"""

from __future__ import annotations

from mirador.agents.clock import Clock, ManualClock, SystemClock
from mirador.agents.spec import Agent, agent, declared_agents
from mirador.agents.store import AgentStore, Notification, RunRecord
from mirador.agents.triggers import Condition, Daily, Every, parse_trigger

__all__ = ["Agent", "AgentStore", "Clock", "Condition", "Daily", "Every", "ManualClock",
           "Notification", "RunRecord", "SystemClock", "agent", "declared_agents",
           "parse_trigger"]
