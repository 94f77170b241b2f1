"""The tokenizer-free estimate: about four characters a token, rounded up."""

from __future__ import annotations

from mirador.text_tokens import estimate_tokens


def test_estimate_rounds_up_and_counts_nothing_as_zero() -> None:
    assert estimate_tokens("") == 0 and estimate_tokens() == 0
    assert estimate_tokens("a") == 1 and estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("ab", "cde") == 2, "several texts count as one"
