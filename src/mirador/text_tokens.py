"""A tokenizer-free token estimate, for where no model tokenizer is at hand."""

from __future__ import annotations


def estimate_tokens(*texts: str) -> int:
    """About four characters a token, rounded up; at least 1 for any text, 0 for none."""
    chars = sum(len(text) for text in texts)
    return max(1, (chars + 3) // 4) if chars else 0
