"""Mirador: a local-first personal AI orchestrator.

The Python API in one example:

    import asyncio
    from mirador import ModelStage, Orchestrator, load_settings

    async def main() -> None:
        async with Orchestrator(load_settings()) as orchestrator:
            stages = [ModelStage("quick_response", "quick", 0.6, timeout=30)]
            async for event in orchestrator.process("What should I focus on today?",
                                                    stages=stages):
                print(event.to_dict())

    asyncio.run(main())

Names are imported on first use, so `import mirador` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Orchestrator": "mirador.orchestration.orchestrator",
    "Query": "mirador.orchestration.hooks",
    "ModelStage": "mirador.orchestration.stages",
    "load_settings": "mirador.settings",
    "Settings": "mirador.settings",
    "create_orchestrator": "mirador.compose",
    "tool": "mirador.tools.decorator",
    "agent": "mirador.agents.spec",
}

__all__ = ["ModelStage", "Orchestrator", "Query", "Settings", "agent", "create_orchestrator",
           "load_settings", "tool"]

if TYPE_CHECKING:
    from mirador.agents.spec import agent
    from mirador.compose import create_orchestrator
    from mirador.orchestration.hooks import Query
    from mirador.orchestration.orchestrator import Orchestrator
    from mirador.orchestration.stages import ModelStage
    from mirador.settings import Settings, load_settings
    from mirador.tools.decorator import tool


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mirador' has no attribute {name!r}")
