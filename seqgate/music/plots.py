"""Figures: one run's learning curves, several cells compared, and piano-roll images.

`plot_comparison_curves` draws the shape of Figure 2 of Chung et al. 2014 ("Empirical Evaluation
of Gated Recurrent Neural Networks on Sequence Modeling", arXiv:1412.3555): validation negative
log-likelihood on a log scale against the number of parameter updates and against wall-clock
time, one colour per recurrent unit. The paper's point is that the ranking of the units can differ
between the two axes, so both are shown side by side.

Figures are drawn with matplotlib's object API on the Agg canvas: no display, no pyplot global
state, safe to call from worker threads and from tests. Every PNG is written through
files.atomic_write, so a crash never leaves half an image where a good one was.
"""

from __future__ import annotations

import os
from typing import Iterable

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter

from seqgate.files import atomic_write
from seqgate.data.roll import LOWEST_PITCH

FIGURE_DPI = 100
# Figure sizes in inches; the PNGs are these times FIGURE_DPI pixels.
TRAINING_CURVES_SIZE = (7.0, 4.5)
COMPARISON_CURVES_SIZE = (12.0, 4.5)
PIANO_ROLL_SIZE = (12.0, 5.0)
# The mean over seeds is drawn on this many points between the first and last x all seeds reach.
MEAN_CURVE_POINTS = 200
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def plot_training_curves(records: list[dict], path: str | os.PathLike, title: str = "") -> None:
    """Train and valid NLL (nats per frame) against epoch for one run's metrics.jsonl records."""
    figure, axes = _new_figure(TRAINING_CURVES_SIZE)
    drawn = False
    for key, label, style in (("train_nll", "train", "-"), ("valid_nll", "valid", "-o")):
        epochs, values = _series(records, "epoch", key)
        if len(epochs):
            axes.plot(epochs, values, style, label=label, markersize=3)
            drawn = True
    axes.set_xlabel("epoch")
    axes.set_ylabel("NLL (nats per frame)")
    axes.grid(True, alpha=0.3)
    if drawn:
        axes.legend()
    else:
        _say_no_data(axes)
    if title:
        axes.set_title(title)
    _save(figure, path)


def plot_comparison_curves(runs: dict[str, list[list[dict]]], path: str | os.PathLike,
                           title: str = "") -> None:
    """Validation NLL against updates (left) and wall-clock seconds (right), one colour per label.

    `runs` maps a label (the cell name) to the metrics.jsonl records of each of its seeds. Every
    seed is a thin line; with several seeds, their mean over the stretch of x that all seeds reach
    is a thick line, and with one seed that seed itself is drawn thick.
    """
    figure = Figure(figsize=COMPARISON_CURVES_SIZE, dpi=FIGURE_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    by_updates, by_seconds = figure.subplots(1, 2, sharey=True)
    palette = colormaps["tab10"]
    all_values = []
    for index, (label, seeds) in enumerate(runs.items()):
        colour = palette(index % palette.N)
        for axes, x_key in ((by_updates, "updates"), (by_seconds, "seconds")):
            curves = [_series(records, x_key, "valid_nll") for records in seeds]
            curves = [(x, y) for x, y in curves if len(x)]
            if not curves:
                continue
            all_values.extend(np.concatenate([y for _, y in curves]))
            if len(curves) > 1:
                for x, y in curves:
                    axes.plot(x, y, color=colour, linewidth=0.8, alpha=0.45)
                mean_x, mean_y = mean_curve(curves)
                name = f"{label} (mean of {len(curves)} seeds)"
            else:
                mean_x, mean_y = curves[0]
                name = label
            axes.plot(mean_x, mean_y, color=colour, linewidth=2.2, label=name)
    # A log scale needs positive values; Bernoulli NLLs always are, but stay safe with odd input.
    if all_values and min(all_values) > 0:
        by_updates.set_yscale("log")
        # NLLs span about one decade: label the in-between ticks, as plain numbers, not 4x10^0.
        by_updates.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
        by_updates.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))
    by_updates.set_xlabel("parameter updates")
    by_seconds.set_xlabel("wall-clock time (seconds)")
    by_updates.set_ylabel("validation NLL (nats per frame)")
    for axes in (by_updates, by_seconds):
        axes.grid(True, which="both", alpha=0.3)
    if all_values:
        by_updates.legend()
    else:
        _say_no_data(by_updates)
    if title:
        figure.suptitle(title)
    _save(figure, path)


def plot_piano_roll(roll: np.ndarray, path: str | os.PathLike, title: str = "",
                    frames_per_quarter: float | None = None) -> None:
    """A piano-roll image: time on x (frames, or quarter notes when frames_per_quarter is given),
    MIDI pitch on y (21..108 for an 88-key roll), sounding keys dark."""
    roll = np.asarray(roll)
    if roll.ndim != 2:
        raise ValueError(f"a roll must be (frames, keys), got shape {roll.shape}")
    if frames_per_quarter is not None and frames_per_quarter <= 0:
        raise ValueError("frames_per_quarter must be positive")
    frames, keys = roll.shape
    time_scale = 1.0 / frames_per_quarter if frames_per_quarter else 1.0
    duration = frames * time_scale
    figure, axes = _new_figure(PIANO_ROLL_SIZE)
    # Each key is one row centred on its pitch, so a row's edges lie half a semitone either side.
    bottom, top = LOWEST_PITCH - 0.5, LOWEST_PITCH + keys - 0.5
    if frames:
        axes.imshow(roll.T.astype(np.float32), origin="lower", aspect="auto", cmap="Greys",
                    vmin=0.0, vmax=1.0, extent=(0.0, duration, bottom, top))
    axes.set_xlim(0.0, duration if frames else 1.0)
    axes.set_ylim(bottom, top)
    octave_starts = [pitch for pitch in range(LOWEST_PITCH, LOWEST_PITCH + keys) if pitch % 12 == 0]
    axes.set_yticks(octave_starts, [note_name(pitch) for pitch in octave_starts])
    axes.set_ylabel("pitch")
    axes.set_xlabel("quarter notes" if frames_per_quarter else "frames")
    if title:
        axes.set_title(title)
    _save(figure, path)


def _new_figure(size: tuple[float, float]):
    figure = Figure(figsize=size, dpi=FIGURE_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _save(figure: Figure, path: str | os.PathLike) -> None:
    with atomic_write(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=FIGURE_DPI)


def _series(records: Iterable[dict], x_key: str, y_key: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the records that have both values, sorted by x (a resumed run may repeat x)."""
    pairs = [(record[x_key], record[y_key]) for record in records
             if record.get(x_key) is not None and record.get(y_key) is not None]
    if not pairs:
        return np.empty(0), np.empty(0)
    x, y = np.array(pairs, dtype=np.float64).T
    order = np.argsort(x, kind="stable")
    return x[order], y[order]


def mean_curve(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The mean of several seeds' curves, each interpolated linearly onto a common x grid.

    The grid only spans the x that every seed reaches, so the mean never extrapolates a seed that
    stopped early; if they share no stretch, the first seed stands in for the mean.
    """
    start = max(x[0] for x, _ in curves)
    stop = min(x[-1] for x, _ in curves)
    if stop <= start:
        return curves[0]
    grid = np.linspace(start, stop, MEAN_CURVE_POINTS)
    return grid, np.mean([np.interp(grid, x, y) for x, y in curves], axis=0)


def note_name(pitch: int) -> str:
    """Scientific pitch notation: MIDI 60 is C4."""
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def _say_no_data(axes) -> None:
    axes.text(0.5, 0.5, "no evaluations recorded", ha="center", va="center",
              transform=axes.transAxes, color="grey")
