"""Every error Mirador raises on purpose.

Each message says what went wrong and what to do next. Only the CLI turns
these into exit codes; the server turns them into JSON bodies.

    MiradorError
    ├── ConfigError            a settings or manifest file is wrong
    ├── ModelError
    │   ├── ModelNotFoundError a model or persona id that nobody declared
    │   ├── ModelFileError     a GGUF that is missing, unreadable or corrupt
    │   ├── ModelLoadError     the runtime refused to load a model
    │   ├── ModelBudgetError   a model does not fit the memory budget now
    │   ├── ModelBusyError     a request waited longer than models.queue_wait for its turn
    │   ├── ContextOverflowError  a prompt longer than the model's context window
    │   └── DownloadError      `mirador pull` could not fetch a model
    ├── BackendError
    │   └── BackendUnavailableError  a server that is down or unreachable
    ├── StageError             one stage failed (the answer goes on without it)
    ├── AllStagesFailedError   every stage failed: there is no answer
    ├── LearningError
    │   ├── LearningStoreError the ratings database is unreadable or from a newer Mirador
    │   ├── RatingError        a rating out of range, or for an answer that is not known
    │   ├── TrainingError      an adapter cannot be trained, deployed or rolled back
    │   └── FederationError    a federation cannot be joined, run or reached
    ├── MarketError            a marketplace key, package or index cannot be used
    │   └── PackageRefusedError  a package failed verification or validation: nothing installed
    ├── MemoryStoreError       the memory store cannot be opened, read or written
    │   ├── MemoryImportError  an import file has a bad line (named in the message)
    │   ├── EmbedderChanged    memories were embedded by another model: reindex them
    │   └── EmbedderError      the embedding model cannot be loaded or run
    └── MissingExtraError      an optional dependency is not installed
"""

from __future__ import annotations

import logging
import os


class MiradorError(Exception):
    """Base of every error Mirador raises on purpose."""


class ConfigError(MiradorError):
    """A settings or manifest file is malformed or inconsistent."""


class ModelError(MiradorError):
    """A model could not be found, read or loaded."""


class ModelNotFoundError(ModelError):
    """A model or persona id is not declared anywhere."""


class ModelFileError(ModelError):
    """A model file is missing, unreadable or corrupt."""


class ModelLoadError(ModelError):
    """The runtime refused to load a model."""


class ModelBudgetError(ModelError):
    """A model does not fit the memory budget, even after evicting what may be evicted."""


class ModelBusyError(ModelError):
    """A request waited longer than `models.queue_wait` for its turn on a busy model."""


class ContextOverflowError(ModelError):
    """A prompt that does not fit the model's context window (the client's to shorten)."""


class DownloadError(ModelError):
    """A model download failed: an unknown file, a refused request, a bad checksum, no room."""


class BackendError(MiradorError):
    """A backend failed while serving a request."""


class BackendUnavailableError(BackendError):
    """A backend server cannot be reached."""


class StageError(MiradorError):
    """One stage of a progressive answer failed."""


class AllStagesFailedError(MiradorError):
    """Every stage failed, so there is no answer at all."""


class LearningError(MiradorError):
    """Learning from ratings failed."""


class LearningStoreError(LearningError):
    """The ratings database cannot be read or was written by a newer Mirador."""


class TrainingError(LearningError):
    """An adapter cannot be trained (too few examples, no torch), deployed or rolled back."""


class FederationError(LearningError):
    """A federation round cannot start, a peer cannot join, or Flower is not reachable."""


class RatingError(LearningError):
    """A rating is out of range or names an answer that is not known."""


class MarketError(MiradorError):
    """A marketplace key, package, download or index cannot be used."""


class PackageRefusedError(MarketError):
    """A package failed its signature check or validation; nothing was installed."""


class MemoryStoreError(MiradorError):
    """The memory store cannot be opened, read or written."""


class EmbedderChanged(MemoryStoreError):
    """Memories were embedded by another model than the configured embedder."""


class MemoryImportError(MemoryStoreError):
    """An import file is malformed; the message names the line."""


class EmbedderError(MemoryStoreError):
    """The embedding model cannot be loaded or run."""


class MissingExtraError(MiradorError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"this needs the '{package}' package; install it with: pip install 'mirador[{extra}]'"
        )


def report_unexpected(log: logging.Logger, what: str, exc: BaseException) -> None:
    """Log an exception nobody named (a bug, or a library's surprise) where it is contained:
    one line saying `what` failed and how, the traceback too under `MIRADOR_DEBUG=1`."""
    debug = os.environ.get("MIRADOR_DEBUG") == "1"
    log.error("%s: %s: %s%s", what, type(exc).__name__, exc,
              "" if debug else " (MIRADOR_DEBUG=1 shows the traceback)",
              exc_info=exc if debug else None)
