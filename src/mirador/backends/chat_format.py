"""Turning chat messages into the prompt text a GGUF model was trained on.

A GGUF usually carries its own Jinja chat template (`tokenizer.chat_template`),
and that always wins. When it carries none, the format is chosen by the
model's architecture (`general.architecture`): Gemma's turn format for the
Gemma family, ChatML otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mirador.backends.base import Message


@dataclass(frozen=True)
class Prompt:
    text: str
    stop: tuple[str, ...]
    has_bos: bool  # the text already starts with the BOS token


Formatter = Callable[[Sequence[Message]], Prompt]


def gemma_format(messages: Sequence[Message]) -> Prompt:
    """Gemma's turns; Gemma has no system role, so the system text opens the first user turn."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    parts = []
    first_user = True
    for message in messages:
        if message.role == "system":
            continue
        role = "model" if message.role == "assistant" else "user"
        content = message.content
        if role == "user" and first_user and system:
            content = f"{system}\n\n{content}"
        first_user = first_user and role != "user"
        parts.append(f"<start_of_turn>{role}\n{content}<end_of_turn>\n")
    parts.append("<start_of_turn>model\n")
    return Prompt("".join(parts), stop=("<end_of_turn>",), has_bos=False)


def chatml_format(messages: Sequence[Message]) -> Prompt:
    parts = [f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages]
    parts.append("<|im_start|>assistant\n")
    return Prompt("".join(parts), stop=("<|im_end|>",), has_bos=False)


ARCHITECTURE_FORMATS: dict[str, Formatter] = {
    "gemma": gemma_format,
    "gemma2": gemma_format,
    "gemma3": gemma_format,
    "gemma3n": gemma_format,
}


def template_format(template: str, bos: str, eos: str) -> Formatter:
    """A formatter that renders the GGUF's own Jinja template."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    jinja = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos,
                                add_generation_prompt=True)

    def render(messages: Sequence[Message]) -> Prompt:
        chat: Any = [{"role": m.role, "content": m.content} for m in messages]
        result = jinja(messages=chat)
        stops = result.stop if isinstance(result.stop, list) else [result.stop or eos]
        return Prompt(result.prompt, stop=tuple(s for s in stops if s),
                      has_bos=bool(bos) and result.prompt.startswith(bos))

    return render


def formatter_for(metadata: dict[str, str], bos: str, eos: str) -> Formatter:
    template = metadata.get("tokenizer.chat_template")
    if template:
        return template_format(template, bos, eos)
    return ARCHITECTURE_FORMATS.get(metadata.get("general.architecture", ""), chatml_format)
