"""`seqgate compare`: train several cells under the same conditions; one table, one set of curves.

Chung et al. 2014, "Empirical Evaluation of Gated Recurrent Neural Networks on Sequence
Modeling": every cell gets the same data, the same parameter budget (the hidden size is solved
for it, Table 1), the same recipe, limits and seeds. The table is shaped like their Table 2
(NLL per frame on train / valid / test, from each run's best.pt, the lowest validation NLL);
curves.png is their Figure 2 (validation NLL against updates and against wall-clock seconds).
Beside them, each cell's samples are judged with MusPy's measures (metrics.py) next to the
training corpus's: SAMPLE_PIECES pieces of 16 bars from every run's best.pt.

Output folder (default runs/compare-<cells>): one run folder per cell and seed (gru-seed0, ...),
report.md, results.json, curves.png, and report.html (the tables, the curves, and each cell's
samples to look at and listen to, in samples/).

Reuse: a run folder is used again, not retrained, when its config.json says "finished", its saved
"train" config equals the one this comparison would use (cell, data path, budget, recipe, limits,
seed, device, everything) and its compare.json records the same dataset fingerprint (a hash of the
pieces, splits and names, so re-preparing the same corpus keeps the runs while a changed corpus at
the same path does not). A matching run that is not finished (interrupted) is resumed from its
last.pt. Any other folder in the way is left as it is and the run is trained anew into a fresh
folder beside it (gru-seed0-2, ...): nothing is ever overwritten or deleted, and a changed setting
(say --max-epochs) never silently reuses a run trained under another.

--jobs N trains N runs at once in spawned processes (jobs.py), with the exact same TrainConfig;
each process reads the dataset itself. Runs trained with different thread counts can differ in the
last digits. With one job, training happens in this process, on the dataset compare has read, with
the caller's display.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from rich.console import Console

from seqgate.data.benchmarks import recognise_dataset
from seqgate.data.dataset import SPLITS, dataset_fingerprint
from seqgate.compare.jobs import train_in_processes
from seqgate.compare.report import MEASURES, equivalent_command, write_outputs, write_page
from seqgate.errors import UserError
from seqgate.music.metrics import SAMPLE_MEASURES
from seqgate.training.runs import DEFAULT_RUNS_DIR, Run, compare_runs, new_compare_run
from seqgate.music.page import PAGE_NAME
from seqgate.music.sample import sample_statistics, write_samples
from seqgate.settings import CompareConfig, SampleConfig

# Pieces of 16 bars each run samples for its row of MusPy's measures: enough that the mean is
# steady, few enough to cost a second or two per run.
SAMPLE_PIECES = 8
# Pieces of each cell on report.html, each with its picture and player (from its first seed),
# of PAGE_BARS bars: half a minute of a chorale, enough to hear what a cell learned, and half the
# rendering time of the 16 bars `sample` writes by default.
PAGE_PIECES = 2
PAGE_BARS = 8


def default_output(cells: list[str], heads: list[str]) -> Path:
    return DEFAULT_RUNS_DIR / (f"compare-{'-'.join(cells)}" + (f"-{'-'.join(heads)}" if len(heads) > 1 else ""))


def run_label(cell: str, head: str, heads: list[str]) -> str:
    """What names a cell's row and run folders: the cell, and its head when several are compared."""
    return f"{cell}-{head}" if len(heads) > 1 else cell


@dataclass
class RunResult:
    """One trained (or reused) run of one cell, head and seed, evaluated on every split."""
    cell: str
    head: str
    label: str  # run_label: the row it belongs to
    seed: int
    run_dir: Path
    action: str  # "trained", "resumed" or "reused"
    summary: dict = field(default_factory=dict)  # the run's config.json
    evaluation: dict = field(default_factory=dict)  # split -> evaluate_run's result
    sample_stats: dict = field(default_factory=dict)  # sample.sample_statistics of its best.pt
    page_samples: object = None  # sample.SampleReport of the pieces report.html shows (first seed)

    def record(self) -> dict:
        epochs = self.summary.get("epochs") or 0
        return {
            "cell": self.cell, "head": self.head, "label": self.label, "seed": self.seed,
            "run_dir": str(self.run_dir), "action": self.action,
            "parameters": self.summary["parameters"], "hidden": self.summary["model_config"]["hidden"],
            "head_size": self.summary["model_config"].get("head_size"),
            "epochs": epochs, "best_epoch": self.summary["best_epoch"],
            "updates": self.summary["updates"], "seconds": self.summary["seconds"],
            "seconds_per_epoch": self.summary["seconds"] / epochs if epochs else None,
            "stopped": self.summary.get("stopped"),
            **{f"{split}_nll": self.evaluation[split]["nll"] for split in SPLITS},
            **{f"{split}_nll_per_piece": self.evaluation[split]["nll_per_piece"] for split in SPLITS},
            "test_accuracy": self.evaluation["test"]["accuracy"],
            **{f"sample_{key}": self.sample_stats.get(key) for key in SAMPLE_MEASURES},
        }


@dataclass
class Comparison:
    """What `compare` trained, measured and wrote."""
    output: Path
    cells: list[str]
    heads: list[str]
    seeds: int
    runs: list[RunResult]
    rows: list[dict]  # per cell and head: sizes, mean/std of every MEASURE, paper numbers
    data: Path
    benchmark: object  # the benchmarks.Benchmark the data is, if any
    paper: bool  # the paper's numbers are in the table
    notes: list[str]  # said while comparing, repeated in the report
    command: str
    files: dict[str, Path]  # report, results, curves, page
    no_players: str | None = None  # why report.html has no audio players, if it has none


def compare(settings: CompareConfig, console: Console | None = None, display_factory=None) -> Comparison:
    """Train every cell (with every head) for seeds 0..seeds-1 under one config, evaluate, write
    the report. display_factory(max_epochs) -> a training display (see training.display.TrainDisplay), used
    with one job. The dataset is read once, and each run's best.pt once."""
    from seqgate.data.dataset import load_dataset
    from seqgate.training.evaluate import evaluate_model
    from seqgate.training.train import write_out_corpus_settings

    console = console or Console(quiet=True)
    settings = settings.validate()
    cells, heads = list(settings.cells), list(settings.heads)
    output = Path(settings.output) if settings.output is not None else default_output(cells, heads)
    if output.exists() and not output.is_dir():
        raise UserError(f"cannot write the comparison to {output}: it is a file")

    data = Path(settings.data)
    dataset = load_dataset(data)
    if not dataset.indices("train") or not dataset.indices("valid"):
        raise UserError(f"{data} needs training and validation pieces to train on")
    if not dataset.indices("test"):
        raise UserError(f"{data} has no test pieces; the comparison reports test NLL")
    benchmark = recognise_dataset(dataset)
    notes = []
    if settings.paper and benchmark is None:
        counts = "/".join(str(len(dataset.indices(s))) for s in SPLITS)
        notes.append(f"--paper: {data} is not one of the four benchmark corpora (its pieces "
                     f"train/valid/test are {counts}); the paper's numbers are left out")
        console.print(notes[-1])
    fingerprint = dataset_fingerprint(dataset)
    onsets = dataset.onsets is not None

    configs = settings.train_configs(str(data.resolve()))
    for config in configs:  # as each run will record them, so that a finished run is found again
        write_out_corpus_settings(config, dataset)
    # Solved once per run, here: a bad budget fails now, not after other cells trained.
    hidden_sizes = [config.resolved_hidden(onsets) for config in configs]
    labels = [run_label(config.cell, config.head, heads) for config in configs]

    output.mkdir(parents=True, exist_ok=True)
    planned = [_plan(config, label, output, fingerprint, hidden)
               for config, label, hidden in zip(configs, labels, hidden_sizes)]
    to_train = []
    for config, label, (run_dir, action) in zip(configs, labels, planned):
        if action == "reused":
            console.print(f"{label} seed {config.seed}: reusing the finished run {run_dir}")
        else:
            Run(run_dir).write_marker(fingerprint, config.data)
            to_train.append((config, run_dir, action == "resumed"))
    if settings.jobs == 1 or len(to_train) <= 1:
        _train_here(to_train, dataset, console, display_factory)
    else:
        train_in_processes(to_train, min(settings.jobs, len(to_train)), console)

    runs = []
    with console.status("evaluating the best checkpoint of every run on train, valid and test, "
                        "and sampling from it"):
        for config, label, (run_dir, action) in zip(configs, labels, planned):
            run = Run(run_dir)
            model, checkpoint = run.load_model("best.pt")
            evaluation = {split: evaluate_model(model, checkpoint, dataset, split, data) for split in SPLITS}
            shown = None
            if config.seed == 0:  # every label's first seed: its pieces on report.html
                shown = write_samples(model, checkpoint, run_dir, output / "samples" / f"{label}.mid",
                                      SampleConfig(n=PAGE_PIECES, bars=PAGE_BARS, png=True,
                                                   seed=config.seed).validate())
            runs.append(RunResult(config.cell, config.head, label, config.seed, run_dir, action,
                                  run.read_config(), evaluation,
                                  sample_statistics(model, checkpoint, SAMPLE_PIECES, seed=config.seed), shown))

    shown_paper = settings.paper and benchmark is not None
    rows = [_cell_row(cell, head, [r for r in runs if r.cell == cell and r.head == head],
                      benchmark.paper.get(cell) if shown_paper else None)
            for cell in cells for head in heads]
    comparison = Comparison(output=output, cells=cells, heads=heads, seeds=settings.seeds, runs=runs, rows=rows,
                            data=data, benchmark=benchmark, paper=shown_paper,
                            notes=notes, command=equivalent_command(replace(settings, output=str(output))),
                            files={"report": output / "report.md", "results": output / "results.json",
                                   "curves": output / "curves.png", "page": output / PAGE_NAME})
    write_outputs(comparison, fingerprint, configs[0])
    with console.status("rendering the samples for report.html"):
        comparison.no_players = write_page(comparison)
    return comparison


# ----------------------------------------------------------------------------- which folder

def _plan(config, label: str, output: Path, fingerprint: str, hidden: int) -> tuple[Path, str]:
    """(run folder, "reused" | "resumed" | "trained") for one cell and seed; see the module doc."""
    wanted = asdict(config)
    for run in compare_runs(output, label, config.seed):
        action = run.reuse_action(wanted, fingerprint, hidden)
        if action is not None:
            return run.folder, action
    return new_compare_run(output, label, config.seed).folder, "trained"


# ----------------------------------------------------------------------------- training

def _train_here(to_train: list, dataset, console: Console, display_factory) -> None:
    from seqgate.training.train import train

    for config, run_dir, resume in to_train:
        if resume:
            console.print(f"{config.cell} seed {config.seed}: resuming the unfinished run {run_dir}")
        display = display_factory(config.max_epochs) if display_factory else None
        train(config, run_dir, resume=resume, display=display, dataset=dataset)


# ----------------------------------------------------------------------------- the numbers

def _mean_std(values: list) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "std": None}
    mean = float(np.mean(values))
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return {"mean": mean, "std": std}


def _cell_row(cell: str, head: str, runs: list[RunResult], paper: tuple[float, float] | None) -> dict:
    records = [run.record() for run in runs]
    row = {"cell": cell, "head": head, "label": records[0]["label"],
           "parameters": records[0]["parameters"], "hidden": records[0]["hidden"],
           "head_size": records[0]["head_size"], "seeds": [r["seed"] for r in records]}
    for key in MEASURES:
        row[key] = _mean_std([r[key] for r in records])
    row["paper"] = {"train": paper[0], "test": paper[1]} if paper else None
    return row
