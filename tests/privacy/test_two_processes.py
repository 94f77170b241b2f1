"""Two `mirador ask` processes at once on a new home lose nothing: both answers are
logged for learning (the database's migrations are safe under concurrency) and both
exchanges are remembered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import closing
from pathlib import Path

from mirador.learning.store import LearningStore
from tests.privacy.conftest import ONE_STAGE, mirador


def test_two_asks_at_once_both_keep_their_answer(isolated_home: Path) -> None:
    home = isolated_home
    (home / "config.yaml").write_text(ONE_STAGE)
    questions = ["What is a good name for a grey cat?", "Name one fruit that is yellow."]
    children = [subprocess.Popen([sys.executable, "-m", "mirador", "ask", "--local", "--json",
                                  "--stages", "quick_response", q],
                                 env={**os.environ, "MIRADOR_HOME": str(home)},
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 stdin=subprocess.DEVNULL)
                for q in questions]
    outputs = [child.communicate(timeout=300) for child in children]
    assert [c.returncode for c in children] == [0, 0], outputs
    assert all("warning" not in err.lower() for _, err in outputs), outputs
    answer_ids = {json.loads(out.splitlines()[0])["answer_id"] for out, _ in outputs}
    with closing(LearningStore.in_home(home)) as store:
        assert {row["answer_id"] for row in store.answers_table()} == answer_ids
    listed = mirador(home, "memory", "ls", "--json")
    assert {json.loads(line)["id"] for line in listed.stdout.splitlines()} == answer_ids
