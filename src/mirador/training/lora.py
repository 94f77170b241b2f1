"""The torch side of training: the base GGUF in transformers, a LoRA trained with peft.

transformers reads (and dequantizes) the GGUF itself, so nothing but the file on
disk is needed. Training runs on CPU in float32; what comes out is plain numpy
matrices per projection, so the rest of Mirador never touches torch.
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mirador.errors import MissingExtraError, TrainingError

Progress = Callable[[int, int, float], None]
"""Called after each step with (steps done, steps in all, the step's loss)."""

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True)
class TrainConfig:
    """How a LoRA is trained. The defaults were chosen on the tuning half of
    bench/training.py's simulated person."""

    rank: int = 8
    alpha: int = 16  # the LoRA's scale is alpha / rank
    learning_rate: float = 1e-3
    epochs: int = 3
    max_steps: int | None = None
    max_tokens: int = 256  # a longer example is cut: CPU time grows with length
    seed: int = 0
    targets: tuple[str, ...] = TARGETS


@dataclass(frozen=True)
class Encoded:
    """One exchange as token ids, with the prompt's positions masked out of the loss."""

    ids: tuple[int, ...]
    labels: tuple[int, ...]  # -100 where the loss does not count (the prompt)


@dataclass(frozen=True)
class LoraWeights:
    """A trained LoRA: per (layer, projection) its A (rank x in) and B (out x rank)."""

    rank: int
    alpha: int
    pairs: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


@dataclass
class TorchBase:
    """A base model loaded into torch, with its tokenizer and config."""

    path: Path
    model: Any
    tokenizer: Any

    @property
    def heads(self) -> tuple[int, int]:
        config = self.model.config
        return config.num_attention_heads, config.num_key_value_heads

    @property
    def architecture(self) -> str:
        return str(self.model.config.model_type)


def _torch() -> Any:
    try:
        import peft  # noqa: F401
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError(exc.name or "peft", "train") from None
    return torch


def load_base(path: Path, threads: int | None = None) -> TorchBase:
    """Read the GGUF at `path` into torch (float32, dequantized), ready to train."""
    torch = _torch()
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if threads:
        torch.set_num_threads(threads)
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                     dtype=torch.float32)
    except (ValueError, OSError, KeyError) as exc:
        raise TrainingError(f"transformers cannot read {path} for training ({exc}); only "
                            "GGUF models of an architecture it supports (llama, ...) can "
                            "have adapters trained") from None
    if model.config.model_type != "llama":
        raise TrainingError(f"{path} is a '{model.config.model_type}' model; Mirador writes "
                            "LoRA adapters for llama-architecture models only (SmolLM2 is one)")
    return TorchBase(path, model, tokenizer)


def encode(base: TorchBase, system: str | None, query: str, answer: str,
           max_tokens: int) -> Encoded:
    """The chat-formatted exchange; only the answer's tokens (and its end) are learned."""
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": query}]
    prompt = base.tokenizer.apply_chat_template(messages, tokenize=False,
                                                add_generation_prompt=True)
    end = base.tokenizer.eos_token or ""
    prompt_ids = base.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    full_ids = base.tokenizer(prompt + answer + end, add_special_tokens=False)["input_ids"]
    full_ids = full_ids[:max(max_tokens, len(prompt_ids) + 1)]
    labels = [-100] * len(prompt_ids) + full_ids[len(prompt_ids):]
    return Encoded(tuple(full_ids), tuple(labels[:len(full_ids)]))


def train(base: TorchBase, examples: Sequence[Encoded], config: TrainConfig,
          progress: Progress | None = None, start: LoraWeights | None = None) -> LoraWeights:
    """Train a LoRA on `examples` (one example per step), from `start` if given (else
    peft's seeded initialisation); the base model is left as it was."""
    torch = _torch()
    if not examples:
        raise TrainingError("there is nothing to train on")
    model = _with_lora(torch, base, config)
    try:
        if start is not None:
            _load(torch, model, start)
        _steps(torch, model, examples, config, progress)
        return _weights(model, config)
    finally:
        base.model = model.unload()  # the LoRA layers out: the base is shared


def fresh(base: TorchBase, config: TrainConfig) -> LoraWeights:
    """The LoRA a run with `config` starts from (A seeded at random, B zero: no change yet)."""
    model = _with_lora(_torch(), base, config)
    try:
        return _weights(model, config)
    finally:
        base.model = model.unload()


def _with_lora(torch: Any, base: TorchBase, config: TrainConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(config.seed)
    lora = LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=0.0, bias="none",
                      target_modules=list(config.targets), task_type="CAUSAL_LM")
    with warnings.catch_warnings():  # peft asks transformers a deprecated question
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated",
                                FutureWarning)
        return get_peft_model(base.model, lora)


def _load(torch: Any, model: Any, start: LoraWeights) -> None:
    """Copy `start`'s matrices into the model's LoRA layers (shapes must match)."""
    for (layer, projection), module in _lora_modules(model):
        if (layer, projection) not in start.pairs:
            raise TrainingError(f"the starting adapter has no matrices for layer {layer}'s "
                                f"{projection}; it was made for another base or targets")
        a, b = start.pairs[(layer, projection)]
        for target, value in ((module.lora_A["default"].weight, a),
                              (module.lora_B["default"].weight, b)):
            if tuple(target.shape) != value.shape:
                raise TrainingError(f"the starting adapter's {projection} in layer {layer} "
                                    f"is {value.shape}, the model needs {tuple(target.shape)}")
            with torch.no_grad():
                target.copy_(torch.from_numpy(np.asarray(value, dtype=np.float32)))


def _steps(torch: Any, model: Any, examples: Sequence[Encoded], config: TrainConfig,
           progress: Progress | None) -> None:
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate)
    order = random.Random(config.seed)
    total = len(examples) * config.epochs
    total = min(total, config.max_steps) if config.max_steps else total
    model.train()
    done = 0
    while done < total:
        batch = list(examples)
        order.shuffle(batch)
        for example in batch[:total - done]:
            loss = _loss(torch, model, example)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            done += 1
            if progress is not None:
                progress(done, total, float(loss.item()))
    model.eval()


def _loss(torch: Any, model: Any, example: Encoded) -> Any:
    ids = torch.tensor([example.ids])
    labels = torch.tensor([example.labels])
    return model(input_ids=ids, labels=labels).loss


def _lora_modules(model: Any) -> list[tuple[tuple[int, str], Any]]:
    found = []
    for name, module in model.named_modules():
        if ".layers." not in name or not hasattr(module, "lora_A"):
            continue
        if "default" not in module.lora_A:
            continue
        layer = int(name.split(".layers.")[1].split(".")[0])
        found.append(((layer, name.rsplit(".", 1)[1]), module))
    return found


def _weights(model: Any, config: TrainConfig) -> LoraWeights:
    pairs: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = {}
    for key, module in _lora_modules(model):
        a = module.lora_A["default"].weight.detach().cpu().numpy().astype(np.float32)
        b = module.lora_B["default"].weight.detach().cpu().numpy().astype(np.float32)
        pairs[key] = (a, b)
    return LoraWeights(config.rank, config.alpha, pairs)


def mean_loss(base: TorchBase, examples: Sequence[Encoded]) -> float:
    """The base model's mean answer loss in torch (no adapter)."""
    torch = _torch()
    with torch.no_grad():
        losses = [float(_loss(torch, base.model, e).item()) for e in examples]
    return sum(losses) / len(losses) if losses else math.nan
