"""`mirador train` refusing with what to do, and `mirador adapters ls | use | rollback`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mirador.learning.adapters import AdapterStore
from tests.support.tiny_gguf import write_lora_for


def mirador(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mirador", *args], capture_output=True,
                          text=True, timeout=120)


def add_version(home: Path, base: Path, verdict: str) -> str:
    store = AdapterStore(home, "quick")
    version = store.next_version()
    staging = store.staging(version)
    write_lora_for(base, staging / "adapter.gguf", rank=2, targets=("attn_v",))
    store.finish(staging, {"verdict": verdict, "base_model": "smollm2-135m", "created_at": 0,
                           "train_ids": ["a", "b"], "reason": "held-out loss not better",
                           "metrics": {"held_out_loss_before": 2.5,
                                       "held_out_loss_after": 1.25}})
    return version


def test_train_without_rated_answers_says_what_to_do(isolated_home: Path) -> None:
    result = mirador("train")
    assert result.returncode == 1
    assert "only 0 exchange(s) to learn from" in result.stderr
    assert "mirador rate 5" in result.stderr and "Traceback" not in result.stderr


def test_adapters_ls_use_and_rollback(isolated_home: Path, smollm_gguf: Path) -> None:
    assert "no adapters for 'quick' yet" in mirador("adapters", "ls").stdout
    add_version(isolated_home, smollm_gguf, "accepted")
    add_version(isolated_home, smollm_gguf, "rejected")
    assert mirador("adapters", "use", "v0001").stdout.strip() == \
        "'quick' answers with adapter v0001"
    used = mirador("adapters", "use", "2")
    assert "v0002 (it was rejected: held-out loss not better)" in used.stdout
    listing = mirador("adapters", "ls").stdout.splitlines()
    assert listing[1].startswith("* v0002") and "held-out loss 2.500 -> 1.250" in listing[1]
    assert "adapter v0001 again" in mirador("adapters", "rollback").stdout
    assert "base model alone" in mirador("adapters", "rollback").stdout
    nothing = mirador("adapters", "rollback")
    assert nothing.returncode == 1 and "no deployed adapter to roll back" in nothing.stderr
    missing = mirador("adapters", "use", "v0009")
    assert missing.returncode == 1 and "(known: v0001, v0002)" in missing.stderr
