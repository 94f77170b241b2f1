"""Pins set with `mirador models pin`: models the manager never evicts.

They live in `<home>/models/pins.json`, so a pin set from one command reaches
a running server too: the manager re-reads the file whenever it changes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from mirador.atomic import write_json_atomic

log = logging.getLogger("mirador.models")


class PinStore:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._pins: set[str] = set()
        self._stamp: int | None = None

    def pinned(self) -> set[str]:
        """The pinned model ids, re-read if the file changed."""
        if self.path is None:
            return self._pins
        try:
            stamp = self.path.stat().st_mtime_ns
        except OSError:
            return self._pins
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._pins = set(json.loads(self.path.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError) as exc:
                log.warning("the pins file %s cannot be read (%s): nothing is pinned; "
                            "`mirador models pin NAME` rewrites it", self.path, exc)
                self._pins = set()
        return self._pins

    def set(self, model_id: str, pinned: bool = True) -> None:
        pins = set(self.pinned())
        if pinned:
            pins.add(model_id)
        else:
            pins.discard(model_id)
        self._pins = pins
        if self.path is not None:
            write_json_atomic(self.path, sorted(pins))
            self._stamp = self.path.stat().st_mtime_ns
