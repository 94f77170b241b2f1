"""A package's personas answer a test query set in the sandbox; the answers are judged.

The persona runs on llama.cpp in `tools.sandbox` (bubblewrap: no network, no home,
another uid, rlimits), with the base GGUF, the package's adapter and llama.cpp's
Python package mounted read-only; only the answers come back, as JSON on stdout.
Each answer is judged with the measures the quality gate and `bench/quality.py`
use: empty, repetitive (a 4-word sequence 3 times), echoing the question, off-topic
(MiniLM cosine to the question under 0.25), quoting its own system prompt (6 words
in a row), or the same as the answer to another question (cosine 0.9 or more).
More than half of a persona's answers unsound and the package is refused.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from mirador.catalog.manifest import ResolvedPersona
from mirador.errors import PackageRefusedError
from mirador.settings import SandboxConfig, Settings

BASE_QUERIES = (
    "How can I plan my week so that I finish my most important work?",
    "What are some good ways to fall asleep faster at night?",
    "How should I prepare for a job interview tomorrow?",
)
MAX_TOKENS = 96
MAX_UNSOUND = 0.5  # share of a persona's answers that may be unsound
SAME_ANSWER = 0.9  # cosine between answers to different questions: one canned answer

_PROBE = r'''
import json, os, sys
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"
sys.path.insert(0, "/probe/site")
job = json.loads(JOB)
import llama_cpp
extra = {"lora_path": "/probe/adapter.gguf", "lora_scale": job["lora_scale"]} if job["lora"] else {}
llm = llama_cpp.Llama(model_path="/probe/base.gguf", n_ctx=2048, n_threads=1,
                      n_threads_batch=1, verbose=False, seed=job["seed"], **extra)
answers = []
for query in job["queries"]:
    messages = job["messages"] + [{"role": "user", "content": query}]
    out = llm.create_chat_completion(messages=messages, **job["options"])
    answers.append(out["choices"][0]["message"]["content"] or "")
print(json.dumps(answers))
'''


@dataclass(frozen=True)
class Verdict:
    """One answer and what is wrong with it (`flags`; empty when sound)."""

    question: str
    answer: str
    flags: tuple[str, ...]


def probe_config(settings: Settings) -> SandboxConfig:
    """The sandbox's settings with room for a small model: 4 GiB, 5 minutes."""
    own = settings.config.tools.sandbox
    return own.model_copy(update={"timeout": 300.0, "cpu_seconds": 300, "memory_mb": 4096,
                                  "output_bytes": 1_000_000, "open_files": 256})


def _job(persona: ResolvedPersona, queries: list[str]) -> dict:
    messages = [{"role": "system", "content": persona.system}] if persona.system else []
    for example in persona.examples:
        messages += [{"role": "user", "content": example.user},
                     {"role": "assistant", "content": example.assistant}]
    options = persona.options.model_dump(exclude_none=True)
    options["max_tokens"] = min(options.get("max_tokens", MAX_TOKENS), MAX_TOKENS)
    seed = options.pop("seed", 0)
    return {"messages": messages, "options": options, "queries": queries, "seed": seed,
            "lora": bool(persona.loras),
            "lora_scale": persona.loras[0].scale if persona.loras else 1.0}


def _site_packages() -> Path:
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None:
        raise PackageRefusedError("llama-cpp-python is not installed, so the package's "
                                  "personas cannot be tried; pip install llama-cpp-python")
    return Path(spec.origin).parent.parent


async def answer_in_sandbox(settings: Settings, persona: ResolvedPersona, base: Path,
                            adapter: Path | None, queries: list[str]) -> list[str]:
    """The persona's answers to `queries`, produced inside the sandbox."""
    from mirador.tools.sandbox import run_code
    from mirador.toolspec import ToolError

    binds = [(_site_packages(), "/probe/site"), (base, "/probe/base.gguf")]
    if adapter is not None:
        binds.append((adapter, "/probe/adapter.gguf"))
    code = _PROBE.replace("JOB", repr(json.dumps(_job(persona, queries))), 1)
    try:
        run = await run_code(code, probe_config(settings), binds)
    except ToolError as exc:
        raise PackageRefusedError(f"the package's personas cannot be tried in the sandbox: "
                                  f"{exc}; nothing installed") from None
    if not run.ok:
        tail = run.stderr.strip().splitlines()[-1:] or ["no output"]
        raise PackageRefusedError(f"persona '{persona.id}' failed to answer in the sandbox "
                                  f"({'timed out' if run.timed_out else tail[0]}); nothing "
                                  "installed")
    return [str(a) for a in json.loads(run.stdout)]


def judge(settings: Settings, persona: ResolvedPersona, queries: list[str],
          answers: list[str]) -> list[Verdict]:
    """Each answer with the quality measures' flags."""
    from mirador.embeddings import create_embedder
    from mirador.orchestration.quality import ngrams, score_stage

    embedder = create_embedder(settings)
    vectors = embedder.embed([a or " " for a in answers])
    prompt_grams = set(ngrams(persona.system or "", 6))
    verdicts = []
    for i, (query, answer) in enumerate(zip(queries, answers, strict=True)):
        flags = list(score_stage(query, answer, {}, embedder).flags)
        if answer.strip() and prompt_grams & set(ngrams(answer, 6)):
            flags.append("quotes its system prompt")
        others = [float(vectors[i] @ vectors[j]) for j in range(len(answers)) if j != i]
        if answer.strip() and others and max(others) >= SAME_ANSWER:
            flags.append("same as another answer")
        verdicts.append(Verdict(query, answer, tuple(flags)))
    return verdicts


def check_answers(persona: ResolvedPersona, verdicts: list[Verdict]) -> None:
    """Refuse the persona when more than MAX_UNSOUND of its answers are unsound."""
    unsound = [v for v in verdicts if v.flags]
    if len(unsound) > MAX_UNSOUND * len(verdicts):
        worst = unsound[0]
        raise PackageRefusedError(
            f"persona '{persona.id}' answered {len(unsound)} of {len(verdicts)} test questions "
            f"badly (e.g. {worst.question!r}: {', '.join(worst.flags)}: "
            f"{worst.answer[:80]!r}); nothing installed")


def try_persona(settings: Settings, persona: ResolvedPersona, base: Path, adapter: Path | None,
                extra_queries: list[str]) -> list[Verdict]:
    """Run the test query set against `persona` in the sandbox, judge, refuse if bad."""
    queries = [*BASE_QUERIES, *extra_queries[:3]]
    answers = asyncio.run(answer_in_sandbox(settings, persona, base, adapter, queries))
    if len(answers) != len(queries):
        raise PackageRefusedError(f"persona '{persona.id}' gave {len(answers)} answers to "
                                  f"{len(queries)} questions in the sandbox; nothing installed")
    verdicts = judge(settings, persona, queries, answers)
    check_answers(persona, verdicts)
    return verdicts
