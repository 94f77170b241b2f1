"""Prompt-lookup speculative decoding against plain decoding, same run, same prompts.

Two kinds of stage on the workload's queries, through Mirador's llama.cpp backend
(SmolLM2-135M, one thread, greedy decoding so the two can be compared token for token):

    first      the `quick` persona answering the query: its reply does not repeat its input
    synthesis  the `synthesizer` persona over the first stage's answer (prompts.py's own
               messages): a reply that may copy from its input, where prompt lookup can pay

Each query runs plain and speculative back to back, the order alternating, the prompt
evaluated whole each time (a seed resets llama.cpp's prompt cache). The queries are split
once by a fixed seed: the tuning half picks the number of guessed tokens for each kind
(4 or 10: the higher tokens/s ratio), the held-out half reports with that choice.
Figures: time to first token, tokens/s of generation, seconds and joules per reply (CPU
time x watts per core), tokens per llama.cpp decode pass, and whether the text is identical.

A second part, `--part prefill`, measures speculative prefill (orchestration/speculation.py)
through the whole stack (`mirador.compose`: the learner choosing chains, the routes): time to
the first token of the chosen chain's first stage, with the likely first prompt read while
the chain is chosen against without, alternating, on every workload query (nothing is tuned);
how often the guess was used, and the joules, wasted guesses included.

A third part, `--part execution`, measures speculative execution
(orchestration/speculative_chains.py): time to the committed chain's first token with the
close candidates' first stages raced against the pick alone, on queries where the learner is
unsure, and the wasted tokens and joules (see bench/_speculative_execution.py).

    python bench/speculation.py [--part decoding|prefill|execution] [--queries N]
                                [--tokens N] [--quick]

Prints a table and writes bench/results/speculation.json. On a shared machine the
absolute figures move; the ratios, measured in alternation, are what to read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _default_model import prepare_home  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORKLOAD = next((p / "shared" / "workload" / "queries.jsonl" for p in ROOT.parents
                 if (p / "shared" / "workload" / "queries.jsonl").exists()),
                ROOT.parent / "shared" / "workload" / "queries.jsonl")
RESULTS = ROOT / "bench" / "results" / "speculation.json"
SEED = 15
DRAFTS = (4, 10)


@dataclass
class Run:
    ttft: float
    tokens: int
    eval_seconds: float
    seconds: float
    joules: float
    passes: int
    text: str


def split_queries(limit: int) -> tuple[list[str], list[str]]:
    """The workload's queries, shuffled once by SEED: a tuning half and a held-out half."""
    lines = [json.loads(line)["query"] for line in WORKLOAD.read_text().splitlines()
             if line.strip()]
    random.Random(SEED).shuffle(lines)
    half = len(lines) // 2
    return lines[:half][:limit], lines[half:][:limit]


class Bench:
    """Mirador's llama.cpp backend on the default model, with a meter and a pass counter."""

    def __init__(self, home: Path, tokens: int) -> None:
        from mirador.backends.llamacpp import LlamaCppBackend
        from mirador.catalog.manifest import manifest_for
        from mirador.energy.meter import EnergyMeter
        from mirador.orchestration.stages import ModelStage
        from mirador.settings import load_settings

        self.settings = load_settings(home=home, env={})
        self.settings.config.backends.llamacpp.n_threads = 1
        self.manifest = manifest_for(self.settings)
        self.backend = LlamaCppBackend(self.settings)
        self.meter = EnergyMeter(self.settings.config.energy.watts_per_core)
        self.tokens = tokens
        self.stages = {s.name: ModelStage.from_config(s) for s in self.settings.config.stages}
        self.passes = [0]

    async def start(self) -> None:
        model = self.manifest.resolve("quick").model
        await self.backend.load(model)
        llm = self.backend._models[model.id].llm
        plain_eval = llm.eval

        def counted(tokens: Any) -> None:
            self.passes[0] += 1
            plain_eval(tokens)

        llm.eval = counted

    def request(self, persona_id: str, stage: str, query: str, earlier: dict[str, Any],
                draft: int | None) -> Any:
        from mirador.backends import ChatRequest
        from mirador.catalog.manifest import SamplingOptions, Speculation
        from mirador.orchestration import prompts
        from mirador.orchestration.hooks import Query

        persona = self.manifest.resolve(persona_id)
        messages = prompts.stage_messages(Query(query), persona, self.stages[stage], earlier, "")
        options = persona.options.merged(SamplingOptions(
            temperature=0.0, seed=1, max_tokens=self.tokens))
        return ChatRequest(model=persona.model, messages=messages, options=options,
                           speculative=Speculation(draft_tokens=draft) if draft else None)

    async def run(self, request: Any) -> Run:
        from mirador.backends import Finished, TextPiece

        self.passes[0] = 0
        joules = self.meter.read()
        started = time.perf_counter()
        first, text, finished = None, [], None
        async for event in self.backend.stream_chat(request):
            if isinstance(event, TextPiece) and event.text:
                first = first or time.perf_counter() - started
                text.append(event.text)
            elif isinstance(event, Finished):
                finished = event
        assert finished is not None and first is not None
        return Run(ttft=first, tokens=finished.completion_tokens,
                   eval_seconds=finished.timings["eval_seconds"],
                   seconds=time.perf_counter() - started, joules=self.meter.read() - joules,
                   passes=self.passes[0], text="".join(text))


async def measure(bench: Bench, queries: list[str], drafts: tuple[int, ...]
                  ) -> dict[str, dict[str, list[Run]]]:
    """Per kind ('first', 'synthesis'), per mode ('plain', 'draft N'): one run per query."""
    from mirador.orchestration.events import StageAnswer

    runs: dict[str, dict[str, list[Run]]] = {"first": {}, "synthesis": {}}
    for index, query in enumerate(queries):
        modes = [None, *drafts] if index % 2 == 0 else [*drafts, None]
        first: dict[int | None, Run] = {}
        for draft in modes:
            first[draft] = await bench.run(bench.request("quick", "quick_response", query,
                                                         {}, draft))
        earlier = {"quick_response": StageAnswer(first[None].text.strip(), "ok",
                                                 "smollm2-135m", False)}
        synthesis = {draft: await bench.run(bench.request("synthesizer", "synthesis", query,
                                                          earlier, draft))
                     for draft in modes}
        for kind, done in (("first", first), ("synthesis", synthesis)):
            for draft, run in done.items():
                runs[kind].setdefault(_mode(draft), []).append(run)
        print(f"  {index + 1}/{len(queries)} {query[:50]}", flush=True)
    return runs


def _mode(draft: int | None) -> str:
    return "plain" if draft is None else f"draft {draft}"


def summary(runs: list[Run], plain: list[Run]) -> dict[str, Any]:
    rate = sum(r.tokens for r in runs) / max(sum(r.eval_seconds for r in runs), 1e-9)
    plain_rate = sum(r.tokens for r in plain) / max(sum(r.eval_seconds for r in plain), 1e-9)
    ttft, plain_ttft = (statistics.median(r.ttft for r in x) for x in (runs, plain))
    return {"tokens_per_second": round(rate, 1), "ratio_tokens_per_second":
            round(rate / plain_rate, 3),
            "ttft_ms": round(ttft * 1000, 1), "ratio_ttft": round(ttft / plain_ttft, 3),
            "seconds_per_reply": round(statistics.mean(r.seconds for r in runs), 3),
            "ratio_seconds": round(sum(r.seconds for r in runs)
                                   / sum(r.seconds for r in plain), 3),
            "joules_per_reply": round(statistics.mean(r.joules for r in runs), 2),
            "ratio_joules": round(sum(r.joules for r in runs)
                                  / max(sum(r.joules for r in plain), 1e-9), 3),
            "tokens_per_pass": round(sum(r.tokens for r in runs)
                                     / max(sum(r.passes - 1 for r in runs), 1), 2),
            "identical_texts": f"{sum(r.text == p.text for r, p in zip(runs, plain, strict=True))}"
                               f"/{len(runs)}"}


def choose_drafts(tuning: dict[str, dict[str, list[Run]]]) -> dict[str, int]:
    """For each kind, the draft size with the higher tokens/s ratio on the tuning half."""
    return {kind: max(DRAFTS, key=lambda d: summary(modes[_mode(d)], modes["plain"])
                      ["ratio_tokens_per_second"]) for kind, modes in tuning.items()}


def table(report: dict[str, dict[str, Any]]) -> None:
    print(f"\n{'kind':<10} {'mode':<9} {'tok/s':>7} {'x':>6} {'TTFT ms':>8} {'x':>6} "
          f"{'s/reply':>8} {'x':>6} {'J/reply':>8} {'x':>6} {'tok/pass':>8} {'same':>6}")
    for kind, modes in report.items():
        for mode, s in modes.items():
            print(f"{kind:<10} {mode:<9} {s['tokens_per_second']:>7} "
                  f"{s['ratio_tokens_per_second']:>6} {s['ttft_ms']:>8} {s['ratio_ttft']:>6} "
                  f"{s['seconds_per_reply']:>8} {s['ratio_seconds']:>6} "
                  f"{s['joules_per_reply']:>8} {s['ratio_joules']:>6} "
                  f"{s['tokens_per_pass']:>8} {s['identical_texts']:>6}")


PREFILL_CONFIG = {
    "memory": {"enabled": False},
    "backends": {"llamacpp": {"n_threads": 1}},
    "energy": {"profiles": {
        "spec": {"max_tokens": 8, "deeper_stages": False, "speculate": True, "prefill": True},
        "plain": {"max_tokens": 8, "deeper_stages": False, "speculate": False}}}}


async def prefill_part(queries: list[str]) -> dict[str, Any]:
    """TTFT and joules per answer with and without speculative prefill, alternating."""
    import yaml

    from mirador.compose import create_orchestrator
    from mirador.settings import load_settings

    runs: dict[str, list[Any]] = {"spec": [], "plain": []}
    with tempfile.TemporaryDirectory() as tmp:
        prepare_home(Path(tmp))
        (Path(tmp) / "config.yaml").write_text(yaml.safe_dump(PREFILL_CONFIG))
        orchestrator = create_orchestrator(load_settings(home=Path(tmp), env={}))
        try:
            await orchestrator.answer("Warm up.", remember=False)  # model and learner loaded
            for index, query in enumerate(queries):
                for name in ("spec", "plain") if index % 2 == 0 else ("plain", "spec"):
                    orchestrator.limits.store.set(name)  # type: ignore[union-attr]
                    forget_prompts(orchestrator)  # else the second run finds the first's
                    done = await orchestrator.answer(query, remember=False)
                    runs[name].append(done)
                print(f"  {index + 1}/{len(queries)} {runs['spec'][-1].speculated}", flush=True)
        finally:
            await orchestrator.aclose()
    return prefill_summary(runs)


def forget_prompts(orchestrator: Any) -> None:
    """Empty llama.cpp's prompt cache, as a query that follows another's answer finds it."""
    for loaded in orchestrator.manager.backend("llamacpp")._models.values():
        loaded.llm.reset()


def prefill_summary(runs: dict[str, list[Any]]) -> dict[str, Any]:
    ttft = {k: statistics.median(d.ttft for d in v if d.ttft) for k, v in runs.items()}
    joules = {k: statistics.mean(d.energy_j or 0.0 for d in v) for k, v in runs.items()}
    notes = [d.speculated or "" for d in runs["spec"]]
    return {"answers": len(runs["spec"]),
            "ttft_ms": {k: round(v * 1000, 1) for k, v in ttft.items()},
            "ratio_ttft": round(ttft["spec"] / ttft["plain"], 3),
            "joules_per_answer": {k: round(v, 2) for k, v in joules.items()},
            "ratio_joules": round(joules["spec"] / max(joules["plain"], 1e-9), 3),
            "guess_used": sum(n.endswith("and used") for n in notes),
            "guess_wasted": sum("wasted" in n for n in notes),
            "guess_cancelled": sum("cancelled" in n for n in notes),
            "examples": notes[:3]}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("decoding", "prefill", "execution"),
                        default="decoding")
    parser.add_argument("--queries", type=int, default=8, help="per half")
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--quick", action="store_true", help="2 queries per half, 32 tokens")
    args = parser.parse_args()
    if args.quick:
        args.queries, args.tokens = 2, 32
    if args.part == "prefill":
        await run_prefill(args.queries)
        return
    if args.part == "execution":
        await run_execution(args.queries, args.tokens)
        return
    tuning_q, held_q = split_queries(args.queries)
    with tempfile.TemporaryDirectory() as tmp:
        prepare_home(Path(tmp))
        bench = Bench(Path(tmp), args.tokens)
        await bench.start()
        try:
            print(f"tuning half ({len(tuning_q)} queries), drafts {DRAFTS}:")
            tuning = await measure(bench, tuning_q, DRAFTS)
            chosen = choose_drafts(tuning)
            print(f"chosen on tuning: {chosen}; held-out half ({len(held_q)} queries):")
            held = await measure(bench, held_q, tuple(sorted(set(chosen.values()))))
        finally:
            await bench.backend.aclose()
    report = {kind: {mode: summary(runs, modes["plain"]) for mode, runs in modes.items()
                     if mode == "plain" or mode == _mode(chosen[kind])}
              for kind, modes in held.items()}
    table(report)
    for kind in held:
        plain, spec = held[kind]["plain"][0], held[kind][_mode(chosen[kind])][0]
        print(f"\n{kind}, first held-out query:\n  plain: {plain.text[:160]!r}\n"
              f"  draft: {spec.text[:160]!r}")
    load = os.getloadavg()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    RESULTS.write_text(json.dumps({
        "prefill": previous.get("prefill"), "execution": previous.get("execution"),
        "model": "SmolLM2-135M-Instruct Q4_1",
        "threads": 1, "max_tokens": args.tokens,
        "seed": SEED, "queries_per_half": len(held_q), "drafts_chosen_on_tuning": chosen,
        "tuning": {kind: {mode: summary(runs, modes["plain"]) for mode, runs in modes.items()}
                   for kind, modes in tuning.items()},
        "held_out": report, "load_average": [round(x, 2) for x in load],
        "examples": {kind: [asdict(r) for r in modes["plain"][:1]]
                     for kind, modes in held.items()}}, indent=2) + "\n")
    print(f"\nload average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; wrote {RESULTS}")


async def run_prefill(limit: int) -> None:
    lines = [json.loads(line)["query"] for line in WORKLOAD.read_text().splitlines()
             if line.strip()]
    report = await prefill_part(lines[:limit])
    report["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=2))
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(previous | {"prefill": report}, indent=2) + "\n")
    print(f"wrote {RESULTS}")


async def run_execution(limit: int, tokens: int) -> None:
    from _speculative_execution import execution_part

    report = await execution_part(WORKLOAD, limit, tokens)
    load = os.getloadavg()
    report["load_average"] = [round(x, 2) for x in load]
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(previous | {"execution": report}, indent=2) + "\n")
    print(f"\nload average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; wrote {RESULTS}")


if __name__ == "__main__":
    asyncio.run(main())
