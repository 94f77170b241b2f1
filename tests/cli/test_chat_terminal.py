"""`mirador chat` in a real pseudo-terminal: prompt_toolkit's line editing and history."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pexpect

FAST = ("stages:\n  - {name: quick_response, persona: quick, confidence: 0.6, max_tokens: 12}\n"
        "color: never\n")


def test_chat_edits_lines_keeps_history_and_exits(isolated_home: Path) -> None:
    (isolated_home / "config.yaml").write_text(FAST)
    child = pexpect.spawn(sys.executable, ["-m", "mirador", "chat", "--stages", "quick_response"],
                          env={**os.environ, "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"},
                          encoding="utf-8", timeout=120,
                          dimensions=(40, 120))
    child.expect("you>")
    child.send("Hello thre")
    child.send("\x7f\x7f")  # backspace twice: line editing
    child.send("ere\r")
    child.expect("── quick_response")
    child.expect("you>")
    child.send("\x1b[A")  # up arrow recalls the previous line from history
    child.expect("Hello there")
    child.send("\x15/exit\r")  # Ctrl-U clears the line, then /exit
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    history = (isolated_home / "chat_history").read_text()
    assert "+Hello there" in history and "Hello threre" not in history
