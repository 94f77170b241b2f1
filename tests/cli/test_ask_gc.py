"""`mirador ask` pauses Python's garbage collector while it starts (`cli.main`), and
showing an answer turns it on again at the first token, or when the answer ends."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest

from mirador.cli.ask import show_events
from mirador.orchestration.events import Ack, Done, Event, Token


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    yield
    gc.enable()


@dataclass
class Seen:
    enabled: list[tuple[str, bool]] = field(default_factory=list)

    def show(self, event: Event) -> None:
        self.enabled.append((type(event).__name__, gc.isenabled()))


async def events(fail: bool = False) -> AsyncIterator[Event]:
    yield Ack(answer_id="a", query="q", complexity="simple", stages=["quick_response"],
              chain="auto")
    if fail:
        raise RuntimeError("the stream broke")
    yield Token(text="Hi", stage="quick_response", model="m", confidence=0.6)
    yield Done(answer_id="a", status="ok", answer="Hi", final_stage="quick_response")


async def test_the_collector_resumes_at_the_first_token() -> None:
    gc.disable()
    seen = Seen()
    done = await show_events(events(), seen)  # type: ignore[arg-type]
    assert done.answer == "Hi"
    assert seen.enabled == [("Ack", False), ("Token", False), ("Done", True)]  # on once shown
    assert gc.isenabled()


async def test_the_collector_resumes_when_the_answer_fails() -> None:
    gc.disable()
    with pytest.raises(RuntimeError):
        await show_events(events(fail=True), Seen())  # type: ignore[arg-type]
    assert gc.isenabled()
