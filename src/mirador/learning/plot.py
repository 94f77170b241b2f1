"""PNG plots of learning: ratings over time and regret curves (needs matplotlib).

matplotlib is an optional extra (`pip install 'mirador[plot]'`); it is
imported only when a plot is drawn, with the headless Agg backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mirador.errors import MiradorError, MissingExtraError

ROLLING = 10  # ratings averaged in the ratings-over-time line


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise MissingExtraError("matplotlib", "plot") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_learning(path: Path, ratings: Sequence[int], regret: Sequence[float],
                  random_regret: Sequence[float], title: str = "Mirador: learning from ratings"
                  ) -> Path:
    """Two panels: each rating and its rolling mean, then the regret curves."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), constrained_layout=True)
    xs = list(range(1, len(ratings) + 1))
    top.scatter(xs, ratings, s=12, alpha=0.5, label="rating")
    top.plot(xs, _rolling(ratings, ROLLING), color="C1", label=f"mean of last {ROLLING}")
    top.set(title="Ratings over time", xlabel="rating number", ylabel="rating (1-5)",
            ylim=(0.5, 5.5))
    top.legend(loc="lower right")
    _regret_axes(bottom, {"chains used": regret, "random choice": random_regret},
                 "Estimated regret (against the chain believed best now)")
    fig.suptitle(title)
    return _save(fig, plt, path)


def plot_curves(path: Path, curves: Mapping[str, Sequence[float]], title: str,
                xlabel: str, ylabel: str, marks: Mapping[str, float] | None = None) -> Path:
    """Lines on one axes, with optional vertical marks (e.g. 'preferences change')."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), constrained_layout=True)
    for label, values in curves.items():
        ax.plot(range(1, len(values) + 1), values, label=label)
    for label, x in (marks or {}).items():
        ax.axvline(x, color="grey", linestyle="--", linewidth=1)
        ax.annotate(label, (x, ax.get_ylim()[1]), textcoords="offset points", xytext=(4, -12),
                    fontsize=8, color="grey")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.legend(loc="best")
    return _save(fig, plt, path)


def _regret_axes(ax: Any, curves: Mapping[str, Sequence[float]], title: str) -> None:
    for label, values in curves.items():
        ax.plot(range(1, len(values) + 1), values, label=label)
    ax.set(title=title, xlabel="rated answer", ylabel="cumulative regret")
    ax.legend(loc="upper left")


def _rolling(values: Sequence[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _save(fig: Any, plt: Any, path: Path) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100, format="png")
    except OSError as exc:
        raise MiradorError(f"cannot write the plot to {path} ({exc.strerror}); "
                           "choose a file in a folder you can write to") from None
    finally:
        plt.close(fig)
    return path
