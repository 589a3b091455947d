"""`seqgate demo`: the whole pipeline on the bundled corpus in one command, in a few minutes.

prepare (the bundled Bach chorales) -> compare gru and lstm (short runs, equal parameter budget)
-> sample a piece from the better run -> say where every file went. Everything lands in one
folder; running the demo again reuses the finished runs (see seqgate.compare.compare).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

DEMO_OUTPUT = Path("seqgate-demo")
DEMO_CELLS = ("gru", "lstm")
# Limits per run: early stopping usually ends a run first; the time limit bounds the demo at about
# two minutes of training whatever the machine.
DEMO_MAX_EPOCHS = 300
DEMO_MAX_MINUTES = 1.0


def demo_jobs() -> int:
    """The demo's runs trained at once: one per core, up to one per cell. Its small models train
    on one thread each, so on two cores the two runs take the time of one (compare --jobs)."""
    from seqgate.settings import available_cores

    return max(1, min(len(DEMO_CELLS), available_cores()))


@dataclass
class DemoResult:
    output: Path
    prepare: object  # prepare.PrepareSummary
    comparison: object  # compare.Comparison
    sample: object  # sample.SampleReport
    sampled_run: Path  # the run out.mid came from: the lowest validation NLL
    files: list[tuple[str, Path]]  # (what, where), in the order they were made


def run_demo(output: str | os.PathLike = DEMO_OUTPUT, *, max_epochs: int | None = None,
             max_minutes: float | None = None, params: int | None = None,
             console: Console | None = None, display_factory=None,
             train_options: dict | None = None, jobs: int | None = None) -> DemoResult:
    """Prepare, compare gru and lstm, sample; everything under `output`.

    max_epochs / max_minutes: limits per run (None: DEMO_MAX_EPOCHS / DEMO_MAX_MINUTES).
    display_factory: see compare.compare.
    train_options: further TrainConfig fields (tests use them to keep runs tiny).
    jobs: runs trained at once (None: demo_jobs()).
    """
    from seqgate.compare.compare import compare
    from seqgate.data.dataset import DEFAULT_DATASET, SPLITS
    from seqgate.data.prepare import prepare_dataset
    from seqgate.music.sample import sample_to_midi
    from seqgate.settings import CompareConfig, SampleConfig

    console = console or Console(quiet=True)
    max_epochs = DEMO_MAX_EPOCHS if max_epochs is None else max_epochs
    max_minutes = DEMO_MAX_MINUTES if max_minutes is None else max_minutes
    output = Path(output)
    dataset = output / DEFAULT_DATASET.name

    console.rule("1/3  prepare the bundled corpus")
    prepared = prepare_dataset([], dataset, console=console)
    pieces = " / ".join(str(prepared.pieces_per_split[s]) for s in SPLITS)
    console.print(f"{prepared.source}: {pieces} pieces (train / valid / test) -> {dataset}")

    console.rule(f"2/3  train {' and '.join(DEMO_CELLS)} under the same conditions")
    settings = CompareConfig(cells=DEMO_CELLS, data=str(dataset), output=str(output / f"compare-{'-'.join(DEMO_CELLS)}"),
                             max_epochs=max_epochs, max_minutes=max_minutes, train_options=train_options or {},
                             jobs=demo_jobs() if jobs is None else jobs,
                             **({} if params is None else {"params": params}))
    comparison = compare(settings, console=console, display_factory=display_factory)

    console.rule("3/3  sample from the better model")
    best = min(comparison.runs, key=lambda run: run.evaluation["valid"]["nll"])
    console.print(f"{best.cell} has the lowest validation NLL "
                  f"({best.evaluation['valid']['nll']:.3f}); sampling from {best.run_dir}")
    report = sample_to_midi(best.run_dir, output / "out.mid", SampleConfig(png=True), console=console)

    files = [("dataset", dataset)]
    files += [(f"{run.cell} run, seed {run.seed}", run.run_dir) for run in comparison.runs]
    files += [("report to open", comparison.files["page"]),
              ("comparison report", comparison.files["report"]),
              ("comparison numbers", comparison.files["results"]),
              ("learning curves", comparison.files["curves"])]
    for result in report.results:
        files.append(("sampled MIDI", result.path))
        if result.png:
            files.append(("its piano roll", result.png))
    return DemoResult(output=output, prepare=prepared, comparison=comparison, sample=report,
                      sampled_run=best.run_dir, files=files)
