"""Tools: does the default model call them well, and do they make its answers right?

Over a labelled set written for this bench (questions that need `calculate`,
questions a small folder of documents answers through `search_docs`, and
questions that need no tool), split once by seed 14 into a tuning and a
held-out half, on the real default model (SmolLM2-135M through llama.cpp):

- routing: how often Mirador's tool routes (`mirador.tools.routing`) send a
  question to the chain whose tool it needs (none: to neither);
- the grammar, offered both tools with a neutral system prompt: how often the
  reply is a valid call (JSON, a known tool, arguments that pass its schema),
  and how often it picks the right tool (or answers, when none is needed);
- answer correctness: Mirador's path (route, the routed persona with its tool,
  the call loop) against the same model answering without tools (the `quick`
  persona), both in this run: an answer is right when it holds the expected
  figure or words;
- the overhead of one tool round: the model's choice plus the tool's run, in
  ms, beside the time of the answer without tools (a ratio, same run).

The calculator's and librarian's prompts were chosen on six development
questions that are not in this set (see the README); nothing here was tuned
on the held-out half.

    python bench/tools.py [--split tuning|heldout] [--limit N]

Prints a table and a few examples; writes bench/results/tools.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
RESULTS = ROOT / "bench" / "results" / "tools.json"
SEED = 14

DOCS = {
    "lease.md": "# Flat lease\n\nThe monthly rent is 1,180 euros, due on the 5th of each month."
                "\n\nThe deposit was 2,360 euros. The landlord is Mme Girard.\n\nThe lease ends on "
                "31 August 2027; either side gives three months' notice.",
    "bike.txt": "Bike notes. Tyre pressure is 4.5 bar at the front and 5 bar at the rear. The "
                "next service is due at 3,000 km, at the shop Velo Rapide.",
    "garden.md": "# Garden\n\nThe tomatoes are watered every Tuesday and Friday. The compost "
                 "bin is emptied in October. The apple tree was planted in 2019.",
    "health.txt": "Dentist: Dr Okafor, next check-up on 14 March. Blood type O negative. "
                  "Allergic to penicillin.",
    "car.md": "# Car\n\nThe car is a 2016 Skoda Octavia. Insurance renews on 2 June with "
              "Maif, policy number 88-4471. Oil change every 15,000 km.",
}

# (question, the tool it needs or "none", what a right answer holds: any of these)
SET: list[tuple[str, str, tuple[str, ...]]] = [
    ("What is 12% of 850 plus 9 squared?", "calculate", ("183",)),
    ("How much is 1,234 times 7?", "calculate", ("8638", "8,638")),
    ("What is 96 divided by 8 plus 15?", "calculate", ("27",)),
    ("What is 3.5 times 240 minus 100?", "calculate", ("740",)),
    ("What is 15% of 2,000?", "calculate", ("300",)),
    ("What is 2 to the power of 12?", "calculate", ("4096", "4,096")),
    ("What is the square root of 1,764?", "calculate", ("42",)),
    ("How much is 480 minus 17.5% of 480?", "calculate", ("396",)),
    ("What is 7 cubed minus 43?", "calculate", ("300",)),
    ("What is 25% of 640 plus 5% of 300?", "calculate", ("175",)),
    ("What is 1,000 divided by 8?", "calculate", ("125",)),
    ("What is 66 times 66?", "calculate", ("4356", "4,356")),
    ("What is the tyre pressure at the front of my bike?", "search_docs", ("4.5",)),
    ("When is my next dentist check-up?", "search_docs", ("14 March", "March 14")),
    ("How much was my lease deposit?", "search_docs", ("2,360", "2360")),
    ("Which days are the tomatoes watered?", "search_docs", ("Tuesday",)),
    ("When does my car insurance renew?", "search_docs", ("2 June", "June 2")),
    ("What is my blood type?", "search_docs", ("O negative", "O-")),
    ("Who is my landlord?", "search_docs", ("Girard",)),
    ("When was the apple tree planted?", "search_docs", ("2019",)),
    ("What car do I drive?", "search_docs", ("Octavia", "Skoda")),
    ("How often does my car need an oil change?", "search_docs", ("15,000", "15000")),
    ("What is the capital of Italy?", "none", ("Rome",)),
    ("Who wrote Romeo and Juliet?", "none", ("Shakespeare",)),
    ("What colour is the sky on a clear day?", "none", ("blue",)),
    ("What is the largest ocean on Earth?", "none", ("Pacific",)),
    ("Which planet is known as the red planet?", "none", ("Mars",)),
    ("What language is spoken in Brazil?", "none", ("Portuguese",)),
    ("How many days are in a week?", "none", ("seven", "7")),
    ("What do bees make?", "none", ("honey",)),
]
CHAIN_OF = {"calculation": "calculate", "documents": "search_docs"}
PERSONA_OF = {"calculate": "calculator", "search_docs": "librarian", "none": "quick"}


def split(rows: list[Any], which: str) -> list[Any]:
    """The tuning or held-out half of `rows`, by the fixed seed."""
    order = list(range(len(rows)))
    random.Random(SEED).shuffle(order)
    half = set(order[: len(rows) // 2])
    return [r for i, r in enumerate(rows) if (i in half) == (which == "tuning")]


def right(answer: str, expected: tuple[str, ...]) -> bool:
    flat = answer.lower().replace(",", "")
    return any(e.lower().replace(",", "") in flat for e in expected)


async def run(rows: list[Any], home: Path) -> dict[str, Any]:
    from mirador.backends.llamacpp import LlamaCppBackend
    from mirador.catalog.manifest import manifest_for
    from mirador.settings import load_settings
    from mirador.tools.docs import DocsIndex
    from mirador.tools.registry import available_tools
    from mirador.tools.routing import DocsRouter, ToolRouter

    settings = load_settings(home=home)
    folder = home / "papers"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in DOCS.items():
        (folder / name).write_text(text)
    index = DocsIndex(settings)
    index.add(folder)
    manifest = manifest_for(settings)
    tools = available_tools(settings)
    routes = [ToolRouter(manifest), DocsRouter(manifest, index)]
    backend = LlamaCppBackend(settings)
    try:
        out = [await one(q, need, expected, backend, manifest, tools, routes)
               for q, need, expected in rows]
    finally:
        await backend.aclose()
    return summarise(out)


async def one(question: str, need: str, expected: tuple[str, ...], backend: Any,
              manifest: Any, tools: dict[str, Any], routes: list[Any]) -> dict[str, Any]:
    from mirador.errors import MiradorError
    from mirador.orchestration.hooks import Query

    choice = next((c for r in routes if (c := r.choose(Query(question))) is not None), None)
    routed = CHAIN_OF.get(choice.chain, "none") if choice else "none"
    row: dict[str, Any] = {"question": question, "need": need, "routed": routed}
    row |= await grammar_choice(question, need, backend, manifest, tools)
    try:
        row |= await with_tools(question, routed, backend, manifest, tools)
    except MiradorError as exc:  # in Mirador the stage fails with this message: a wrong answer
        row |= {"answer_with": "", "round_ms": None, "called": False, "seconds_with": None,
                "error_with": str(exc)[:160]}
    row |= await without_tools(question, backend, manifest)
    row["right_with"] = right(row["answer_with"], expected)
    row["right_without"] = right(row["answer_without"], expected)
    print(f"{need:<11} {routed:<11} call {row['picked']!s:<11} with {row['right_with']!s:<5} "
          f"without {row['right_without']!s:<5} {question}", flush=True)
    return row


def request(manifest: Any, persona_id: str, question: str, tools: tuple[Any, ...]) -> Any:
    from mirador.backends import ChatRequest, Message

    persona = manifest.resolve(persona_id)
    messages = (Message("system", persona.system or ""), Message("user", question))
    return ChatRequest(model=persona.model, messages=messages, options=persona.options,
                       tools=tools)


async def grammar_choice(question: str, need: str, backend: Any, manifest: Any,
                         tools: dict[str, Any]) -> dict[str, Any]:
    """Both tools offered under a neutral prompt: valid call? the right one?"""
    from mirador.backends import TextPiece, ToolCallRequest
    from mirador.errors import BackendError
    from mirador.orchestration.tool_loop import argument_problem

    offered = (tools["calculate"], tools["search_docs"])
    asked = request(manifest, "quick", question, offered)
    asked = type(asked)(**{**asked.__dict__, "options": asked.options.model_copy(
        update={"max_tokens": 120, "temperature": 0.0})})
    try:
        events = [e async for e in backend.stream_chat(asked)]
    except BackendError as exc:
        return {"valid": False, "picked": "invalid", "choice": str(exc)[:120]}
    call = next((e for e in events if isinstance(e, ToolCallRequest)), None)
    if call is None:
        text = "".join(e.text for e in events if isinstance(e, TextPiece))
        return {"valid": True, "picked": "none", "choice": text[:120]}
    known = {t.name: t for t in offered}
    valid = call.name in known and argument_problem(known[call.name], call.arguments) is None
    return {"valid": valid, "picked": call.name, "choice": json.dumps(call.arguments)[:120]}


async def with_tools(question: str, routed: str, backend: Any, manifest: Any,
                     tools: dict[str, Any]) -> dict[str, Any]:
    from mirador.backends import TextPiece
    from mirador.orchestration.events import ToolCall, ToolResult
    from mirador.orchestration.tool_loop import run_with_tools

    offered = (tools[routed],) if routed != "none" else ()
    asked = request(manifest, PERSONA_OF[routed], question, offered)
    started = time.perf_counter()
    called_at = round_ms = None
    text: list[str] = []
    stream = (run_with_tools(backend.stream_chat, asked, stage="bench", max_rounds=1)
              if offered else backend.stream_chat(asked))
    async for event in stream:
        if isinstance(event, ToolCall):
            called_at = time.perf_counter()
        elif isinstance(event, ToolResult):  # its text is not the answer's: not counted
            round_ms = (time.perf_counter() - started) * 1000
        elif isinstance(event, TextPiece):
            text.append(event.text)
    return {"answer_with": "".join(text).strip(), "round_ms": round_ms,
            "called": called_at is not None,
            "seconds_with": time.perf_counter() - started}


async def without_tools(question: str, backend: Any, manifest: Any) -> dict[str, Any]:
    from mirador.backends import TextPiece

    started = time.perf_counter()
    text = [e.text async for e in backend.stream_chat(request(manifest, "quick", question, ()))
            if isinstance(e, TextPiece)]
    return {"answer_without": "".join(text).strip(),
            "seconds_without": time.perf_counter() - started}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def rate(items: list[bool]) -> float | None:
        return round(sum(items) / len(items), 3) if items else None

    needing = [r for r in rows if r["need"] != "none"]
    rounds = [r["round_ms"] for r in rows if r["round_ms"] is not None]
    plain = [r["seconds_without"] * 1000 for r in rows if r["round_ms"] is not None]
    by_need = {need: {"n": len(group), "routed_right": rate([r["routed"] == need for r in group]),
                      "valid_call": rate([r["valid"] for r in group]),
                      "right_tool": rate([r["picked"] == need for r in group]),
                      "right_with_tools": rate([r["right_with"] for r in group]),
                      "right_without_tools": rate([r["right_without"] for r in group])}
               for need in ("calculate", "search_docs", "none")
               if (group := [r for r in rows if r["need"] == need])}
    return {
        "n": len(rows), "by_need": by_need,
        "valid_call_when_a_tool_is_needed": rate([r["valid"] for r in needing]),
        "right_tool_when_a_tool_is_needed": rate([r["picked"] == r["need"] for r in needing]),
        "right_with_tools": rate([r["right_with"] for r in rows]),
        "right_without_tools": rate([r["right_without"] for r in rows]),
        "tool_round_ms_median": round(statistics.median(rounds)) if rounds else None,
        "plain_answer_ms_median": round(statistics.median(plain)) if plain else None,
        "rows": rows,
    }


def show(result: dict[str, Any]) -> None:
    print(f"\n{'need':<12}{'n':>3}{'routed':>8}{'valid':>7}{'tool':>6}{'with':>6}{'without':>9}")
    for need, s in result["by_need"].items():
        print(f"{need:<12}{s['n']:>3}{s['routed_right']:>8}{s['valid_call']:>7}"
              f"{s['right_tool']:>6}{s['right_with_tools']:>6}{s['right_without_tools']:>9}")
    print(f"answers right: with tools {result['right_with_tools']}, without "
          f"{result['right_without_tools']}; one tool round {result['tool_round_ms_median']} ms "
          f"(median) vs a plain answer {result['plain_answer_ms_median']} ms")
    for row in result["rows"][:4]:
        print(f"\n  {row['question']}\n    with: {row['answer_with'][:160]!r}\n"
              f"    without: {row['answer_without'][:160]!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("tuning", "heldout"), default="heldout")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rows = split(SET, args.split)[: args.limit]
    with tempfile.TemporaryDirectory(prefix="mirador-bench-tools-") as home:
        result = asyncio.run(run(rows, Path(home)))
    result = {"split": args.split, "seed": SEED, "model": "smollm2-135m", **result}
    show(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
