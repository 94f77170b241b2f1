"""`mirador pull`: fetch a model and register it in ~/.mirador/manifest.yaml."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from typing import TextIO

import click

from mirador.models.pull import (
    Meter,
    Progress,
    Pulled,
    Registered,
    human_size,
    parse_ref,
    resume_hint,
)
from mirador.settings import Settings, load_settings

EXIT_INTERRUPTED = 130


@click.command()
@click.argument("ref")
@click.option("--use-for", metavar="STAGE", help="Point this stage's persona at the model: "
              "quick, deep_analysis or synthesis (any stage in config.yaml, by its name or "
              "its persona's).")
@click.option("--id", "model_id", help="The id to register it under (default: from the file "
              "name or tag).")
@click.option("--sha256", help="The file's expected SHA-256, when the source gives none.")
def pull(ref: str, use_for: str | None, model_id: str | None, sha256: str | None) -> None:
    """Download a model and add it to your manifest.

    \b
    REF is one of:
      hf:OWNER/REPO/FILE.gguf   a GGUF file on Hugging Face
      https://.../FILE.gguf     a GGUF file at any URL
      ollama:TAG                a model a running Ollama pulls

    An interrupted download resumes when the same command runs again.
    """
    from mirador.models import pull as pulling

    settings = load_settings()
    source = parse_ref(ref, settings)
    if use_for:
        pulling.stage_persona(settings, use_for)  # a wrong stage fails before any download
    bar = ProgressBar(label=source.filename or source.ollama_tag or ref)
    try:
        pulled = asyncio.run(pulling.pull(ref, settings, progress=bar.show, sha256=sha256,
                                          model_id=model_id))
    except KeyboardInterrupt:
        bar.close()
        click.echo(f"mirador: interrupted; {resume_hint(source, settings)}", err=True)
        sys.exit(EXIT_INTERRUPTED)
    finally:
        bar.close()
    registered = pulling.register(settings, pulled, use_for)
    _report(settings, pulled, registered)


def _report(settings: Settings, pulled: Pulled, registered: Registered) -> None:
    if pulled.path is None:
        click.echo(f"Pulled {pulled.source.ollama_tag} into Ollama.")
    else:
        verb = "Already downloaded" if pulled.already_there else "Downloaded"
        unchecked = "not checked again" if pulled.already_there else "no SHA-256 to check"
        check = "SHA-256 checked" if pulled.sha256_checked else unchecked
        click.echo(f"{verb} {pulled.path} ({human_size(pulled.size)}, GGUF, {check}).")
    click.echo(f"Registered model '{registered.model_id}' in {registered.manifest}.")
    if registered.stage:
        click.echo(f"Stage {registered.stage} (persona {registered.persona}) now runs on it.")
    click.echo(f"Try: mirador ask --model {registered.model_id} \"What should I focus on today?\"")


@dataclass
class ProgressBar:
    """A progress bar on stderr with speed and time left; plain lines when not a terminal."""

    label: str
    out: TextIO = field(default_factory=lambda: sys.stderr)
    meter: Meter = field(default_factory=Meter)
    _status: str = ""
    _open_line: bool = False
    _last_step: int = -1

    def show(self, p: Progress) -> None:
        if p.status != self._status:
            self._new_status(p)
        if not p.total:
            return
        rate = self.meter.rate(p.done)
        if self.out.isatty():
            self._draw(p, rate)
        else:
            self._log(p)

    def _new_status(self, p: Progress) -> None:
        self._end_line()
        self._status, self._last_step = p.status, -1
        if p.status != "downloading":
            self.out.write(f"{p.status}\n")
        elif p.resumed_from:
            self.out.write(f"resuming {self.label} from {human_size(p.resumed_from)}\n")
        self.out.flush()

    def _draw(self, p: Progress, rate: float | None) -> None:
        assert p.total
        fraction = min(p.done / p.total, 1.0)
        bar = "#" * int(fraction * 24)
        speed = f"{human_size(int(rate))}/s" if rate else "--/s"
        left = _eta((p.total - p.done) / rate) if rate else "--:--"
        self.out.write(f"\r{self.label} [{bar:<24}] {fraction:4.0%} {human_size(p.done)}/"
                       f"{human_size(p.total)} {speed} ETA {left}  ")
        self.out.flush()
        self._open_line = True

    def _log(self, p: Progress) -> None:
        assert p.total
        step = int(p.done * 4 / p.total)  # a line at 0, 25, 50, 75 and 100%
        if step != self._last_step:
            self._last_step = step
            self.out.write(f"{self.label}: {p.done * 100 // p.total}% of {human_size(p.total)}\n")
            self.out.flush()

    def _end_line(self) -> None:
        if self._open_line:
            self.out.write("\n")
            self.out.flush()
            self._open_line = False

    def close(self) -> None:
        """End the bar's line, so that what follows starts on its own."""
        self._end_line()


def _eta(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


