"""`seqgate compare`: train several cells under the same conditions; one table, one set of curves.

Chung et al. 2014, "Empirical Evaluation of Gated Recurrent Neural Networks on Sequence
Modeling": every cell gets the same data, the same parameter budget (the hidden size is solved
for it, Table 1), the same recipe, limits and seeds. The table is shaped like their Table 2
(NLL per frame on train / valid / test, from each run's best.pt, the lowest validation NLL);
curves.png is their Figure 2 (validation NLL against updates and against wall-clock seconds).

Output folder (default runs/compare-<cells>): one run folder per cell and seed (gru-seed0, ...),
report.md, results.json, curves.png.

Reuse: a run folder is used again, not retrained, when its config.json says "finished", its saved
"train" config equals the one this comparison would use (cell, data path, budget, recipe, limits,
seed, device, everything) and its compare.json records the same dataset fingerprint (a hash of the
pieces, splits and names, so re-preparing the same corpus keeps the runs while a changed corpus at
the same path does not). A matching run that is not finished (interrupted) is resumed from its
last.pt. Any other folder in the way is left as it is and the run is trained anew into a fresh
folder beside it (gru-seed0-2, ...): nothing is ever overwritten or deleted, and a changed setting
(say --max-epochs) never silently reuses a run trained under another.

--jobs N trains N runs at once in spawned processes (jobs.py), with the exact same TrainConfig.
Runs trained with different thread counts can differ in the last digits. With one job, training
happens in this process with the caller's display.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
from rich import box
from rich.console import Console, Group
from rich.table import Table

from seqgate.benchmarks import PAPER_CITATION, recognise_dataset
from seqgate.dataset import DEFAULT_DATASET, SPLITS, dataset_fingerprint
from seqgate.jobs import train_in_processes
from seqgate.errors import UserError
from seqgate.files import write_json_atomic, write_text_atomic
from seqgate.runs import DEFAULT_RUNS_DIR, Run, compare_runs, new_compare_run
from seqgate.settings import DEFAULT_PARAMS, TrainConfig

def default_output(cells: list[str]) -> Path:
    return DEFAULT_RUNS_DIR / f"compare-{'-'.join(cells)}"


@dataclass
class RunResult:
    """One trained (or reused) run of one cell and seed, evaluated on every split."""
    cell: str
    seed: int
    run_dir: Path
    action: str  # "trained", "resumed" or "reused"
    summary: dict = field(default_factory=dict)  # the run's config.json
    evaluation: dict = field(default_factory=dict)  # split -> evaluate_run's result

    def record(self) -> dict:
        epochs = self.summary.get("epochs") or 0
        return {
            "cell": self.cell, "seed": self.seed, "run_dir": str(self.run_dir), "action": self.action,
            "parameters": self.summary["parameters"], "hidden": self.summary["model_config"]["hidden"],
            "epochs": epochs, "best_epoch": self.summary["best_epoch"],
            "updates": self.summary["updates"], "seconds": self.summary["seconds"],
            "seconds_per_epoch": self.summary["seconds"] / epochs if epochs else None,
            "stopped": self.summary.get("stopped"),
            **{f"{split}_nll": self.evaluation[split]["nll"] for split in SPLITS},
            **{f"{split}_nll_per_piece": self.evaluation[split]["nll_per_piece"] for split in SPLITS},
            "test_accuracy": self.evaluation["test"]["accuracy"],
        }


# Columns averaged over seeds: results.json key -> (report heading, terminal heading, decimals)
MEASURES = {
    "train_nll": ("train NLL", "train", 3), "valid_nll": ("valid NLL", "valid", 3),
    "test_nll": ("test NLL", "test", 3), "test_accuracy": ("test frame acc.", "acc.", 3),
    "best_epoch": ("best epoch", "best ep.", 0), "updates": ("updates", "updates", 0),
    "seconds": ("seconds", "sec", 1), "seconds_per_epoch": ("s / epoch", "s/ep", 2),
}


@dataclass
class Comparison:
    """What `compare` trained, measured and wrote."""
    output: Path
    cells: list[str]
    seeds: int
    runs: list[RunResult]
    rows: list[dict]  # per cell: parameters, hidden, mean/std of every MEASURE, paper numbers
    data: Path
    benchmark: str | None  # the benchmark corpus the data is, if any
    paper: bool  # the paper's numbers are in the table
    notes: list[str]  # said while comparing, repeated in the report
    command: str
    files: dict[str, Path]  # report, results, curves


def compare(cells: list[str], *, data: str | os.PathLike = DEFAULT_DATASET,
            output: str | os.PathLike | None = None, params: int | None = None, seeds: int = 1,
            max_epochs: int | None = None, max_minutes: float | None = None, jobs: int = 1,
            recipe: str = TrainConfig.recipe, device: str = TrainConfig.device, paper: bool = False,
            train_options: dict | None = None, console: Console | None = None,
            display_factory=None) -> Comparison:
    """Train every cell for seeds 0..seeds-1 under one config, evaluate, write the report.

    params: the parameter budget each cell's hidden size is solved for (default 20000).
    max_epochs / max_minutes: limits per run (default: TrainConfig's). jobs: runs trained at once.
    train_options: further TrainConfig fields, the same for every cell (e.g. batch_size).
    display_factory(max_epochs) -> a training display (see cli.TrainDisplay), used with one job.
    """
    from seqgate.dataset import load_dataset
    from seqgate.evaluate import evaluate_run
    from seqgate.model import check_cell

    console = console or Console(quiet=True)
    cells = [check_cell(str(cell)) for cell in cells]
    if not cells:
        raise UserError("name at least one cell to compare: tanh, gru or lstm")
    repeated = sorted({cell for cell in cells if cells.count(cell) > 1})
    if repeated:
        raise UserError(f"cell {repeated[0]} is named twice; use --seeds for repeated runs")
    if int(seeds) < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}")
    if int(jobs) < 1:
        raise UserError(f"--jobs must be at least 1, got {jobs}")
    seeds, jobs = int(seeds), int(jobs)
    output = Path(output) if output is not None else default_output(cells)
    if output.exists() and not output.is_dir():
        raise UserError(f"cannot write the comparison to {output}: it is a file")
    params = DEFAULT_PARAMS if params is None else int(params)

    data = Path(data)
    dataset = load_dataset(data)
    if not dataset.split("train") or not dataset.split("valid"):
        raise UserError(f"{data} needs training and validation pieces to train on")
    if not dataset.split("test"):
        raise UserError(f"{data} has no test pieces; the comparison reports test NLL")
    benchmark = recognise_dataset(dataset)
    notes = []
    if paper and benchmark is None:
        counts = "/".join(str(len(dataset.split(s))) for s in SPLITS)
        notes.append(f"--paper: {data} is not one of the four benchmark corpora (its pieces "
                     f"train/valid/test are {counts}); the paper's numbers are left out")
        console.print(notes[-1])
    fingerprint = dataset_fingerprint(dataset)
    del dataset

    extra = dict(train_options or {})
    known = {f.name for f in fields(TrainConfig)}
    for name in ("cell", "data", "seed", "params", "hidden", "recipe", "device", "max_epochs", "max_minutes"):
        known.discard(name)
    unknown = sorted(set(extra) - known)
    if unknown:
        raise ValueError(f"not TrainConfig options (or set by compare itself): {', '.join(unknown)}")
    limits = {"max_minutes": max_minutes}
    if max_epochs is not None:
        limits["max_epochs"] = int(max_epochs)
    configs = []
    for cell in cells:
        for seed in range(seeds):
            config = TrainConfig(cell=cell, data=str(data.resolve()), params=params, recipe=recipe,
                                 device=device, seed=seed, **limits, **extra)
            config.validate()
            config.resolved_hidden()  # a bad budget fails now, not after other cells trained
            # Written out, not left to "the recipe's own": a run trained before the recipe's
            # defaults changed must not look equal to one trained after.
            config.lr, config.weight_noise = config.recipe_lr(), config.recipe_weight_noise()
            configs.append(config)

    output.mkdir(parents=True, exist_ok=True)
    planned = [_plan(config, output, fingerprint) for config in configs]
    to_train = []
    for config, (run_dir, action) in zip(configs, planned):
        if action == "reused":
            console.print(f"{config.cell} seed {config.seed}: reusing the finished run {run_dir}")
        else:
            Run(run_dir).write_marker(fingerprint, config.data)
            to_train.append((config, run_dir, action == "resumed"))
    if jobs == 1 or len(to_train) <= 1:
        _train_here(to_train, console, display_factory)
    else:
        train_in_processes(to_train, min(jobs, len(to_train)), console)

    runs = []
    with console.status("evaluating the best checkpoint of every run on train, valid and test"):
        for config, (run_dir, action) in zip(configs, planned):
            summary = Run(run_dir).read_config()
            runs.append(RunResult(config.cell, config.seed, run_dir, action, summary,
                                  {split: evaluate_run(run_dir, None, split) for split in SPLITS}))

    shown_paper = paper and benchmark is not None
    rows = [_cell_row(cell, [r for r in runs if r.cell == cell],
                      benchmark.paper.get(cell) if shown_paper else None) for cell in cells]
    command = equivalent_command(cells, data, output, params, seeds, configs[0], jobs, paper, extra)
    comparison = Comparison(output=output, cells=cells, seeds=seeds, runs=runs, rows=rows, data=data,
                            benchmark=benchmark.name if benchmark else None, paper=shown_paper,
                            notes=notes, command=command,
                            files={"report": output / "report.md", "results": output / "results.json",
                                   "curves": output / "curves.png"})
    _write_outputs(comparison, fingerprint, configs[0])
    return comparison


# ----------------------------------------------------------------------------- which folder

def _plan(config, output: Path, fingerprint: str) -> tuple[Path, str]:
    """(run folder, "reused" | "resumed" | "trained") for one cell and seed; see the module doc."""
    wanted, hidden = asdict(config), config.resolved_hidden()
    for run in compare_runs(output, config.cell, config.seed):
        action = run.reuse_action(wanted, fingerprint, hidden)
        if action is not None:
            return run.folder, action
    return new_compare_run(output, config.cell, config.seed).folder, "trained"


# ----------------------------------------------------------------------------- training

def _train_here(to_train: list, console: Console, display_factory) -> None:
    from seqgate.train import train

    for config, run_dir, resume in to_train:
        if resume:
            console.print(f"{config.cell} seed {config.seed}: resuming the unfinished run {run_dir}")
        display = display_factory(config.max_epochs) if display_factory else None
        train(config, run_dir, resume=resume, display=display)


# ----------------------------------------------------------------------------- the numbers

def _mean_std(values: list) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "std": None}
    mean = float(np.mean(values))
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return {"mean": mean, "std": std}


def _cell_row(cell: str, runs: list[RunResult], paper: tuple[float, float] | None) -> dict:
    records = [run.record() for run in runs]
    row = {"cell": cell, "parameters": records[0]["parameters"], "hidden": records[0]["hidden"],
           "seeds": [r["seed"] for r in records]}
    for key in MEASURES:
        row[key] = _mean_std([r[key] for r in records])
    row["paper"] = {"train": paper[0], "test": paper[1]} if paper else None
    return row


def format_stat(stat: dict, decimals: int, separator: str = " ") -> str:
    """"8.123 ± 0.045" (std over seeds, only with two or more), or "-"."""
    if stat["mean"] is None:
        return "-"
    text = f"{stat['mean']:,.{decimals}f}"
    if stat["std"] is not None:
        text += f"{separator}± {stat['std']:,.{decimals}f}"
    return text


NLL_COLUMNS = ("train_nll", "valid_nll", "test_nll", "test_accuracy")
TRAINING_COLUMNS = ("best_epoch", "updates", "seconds", "seconds_per_epoch")


def _table_rows(comparison: Comparison, keys=tuple(MEASURES), short: bool = False,
                sizes: bool = True) -> tuple[list[str], list[list[str]]]:
    """Headings and rows of the chosen MEASURES (the paper's columns after the NLLs)."""
    headings = ["cell"] + (["params" if short else "parameters", "hidden"] if sizes else [])
    headings += [MEASURES[key][1 if short else 0] for key in keys]
    paper = comparison.paper and "test_nll" in keys
    if paper:
        headings += ["paper train", "paper test"]
    rows = []
    for row in comparison.rows:
        cells = [row["cell"]] + ([f"{row['parameters']:,}", str(row["hidden"])] if sizes else [])
        # In the terminal the std goes under the mean, so the table stays narrow.
        cells += [format_stat(row[key], MEASURES[key][2], "\n" if short else " ") for key in keys]
        if paper:
            cells += [f"{row['paper'][split]:.2f}" if row["paper"] else "-" for split in ("train", "test")]
        rows.append(cells)
    return headings, rows


def _rich_table(headings: list[str], rows: list[list[str]], **options) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, **options)
    for index, heading in enumerate(headings):
        # Wide enough for every number and every word of the heading: a narrow terminal wraps
        # headings between words and never cuts a number.
        width = max([len(line) for cells in rows for line in cells[index].splitlines()]
                    + [len(word) for word in heading.split()])
        table.add_column(heading, justify="left" if index == 0 else "right", min_width=width)
    for cells in rows:
        table.add_row(*cells)
    return table


def results_table(comparison: Comparison) -> Group:
    """The comparison for the terminal: the NLL table (the paper's Table 2) and the training table."""
    seeds = "1 seed" if comparison.seeds == 1 else f"mean ± std over {comparison.seeds} seeds"
    nll = _rich_table(*_table_rows(comparison, NLL_COLUMNS, short=True),
                      title=f"NLL per frame, {comparison.benchmark or comparison.data.name} ({seeds})",
                      caption="best.pt, every frame weighted equally; acc.: test frame accuracy"
                              + (f"; paper: {PAPER_CITATION}" if comparison.paper else ""))
    training = _rich_table(*_table_rows(comparison, TRAINING_COLUMNS, short=True, sizes=False),
                           title="Training", caption="sec: seconds of training")
    return Group(nll, training)


def equivalent_command(cells, data: Path, output: Path, params: int, seeds: int, config, jobs: int,
                       paper: bool, extra: dict) -> str:
    """The command line that repeats this comparison, every compare option written out."""
    words = ["seqgate", "compare", *cells, "--data", str(data), "-o", str(output),
             "--params", str(params), "--seeds", str(seeds), "--max-epochs", str(config.max_epochs)]
    if config.max_minutes is not None:
        words += ["--max-minutes", f"{config.max_minutes:g}"]
    words += ["--recipe", config.recipe]
    if config.device != "auto":
        words += ["--device", config.device]
    if jobs > 1:
        words += ["--jobs", str(jobs)]
    if paper:
        words.append("--paper")
    command = shlex.join(words)
    if extra:
        command += "  (library call; also " + ", ".join(f"{k}={v!r}" for k, v in sorted(extra.items())) + ")"
    return command


def _write_outputs(comparison: Comparison, fingerprint: str, config) -> None:
    from seqgate.plots import plot_comparison_curves

    curves = {cell: [Run(run.run_dir).read_metrics() for run in comparison.runs if run.cell == cell]
              for cell in comparison.cells}
    budget = f"{comparison.rows[0]['parameters']:,}" if len(comparison.rows) == 1 else f"~{config.params:,}"
    plot_comparison_curves(curves, comparison.files["curves"],
                           title=f"{comparison.benchmark or comparison.data.name}: validation NLL, "
                                 f"{budget} parameters")
    first = comparison.runs[0]
    data_info = first.summary.get("data", {})
    results = {
        "command": comparison.command,
        "data": {"path": data_info.get("path", str(comparison.data)), "source": data_info.get("source"),
                 "benchmark": comparison.benchmark, "fingerprint": fingerprint,
                 "pieces": data_info.get("split_pieces"),
                 "frames": {split: first.evaluation[split]["frames"] for split in SPLITS}},
        "settings": {"seeds": comparison.seeds, **{k: v for k, v in asdict(config).items()
                                                   if k not in ("cell", "seed", "data", "hidden")}},
        "nll": "nats per frame, keys summed, every frame of a split weighted equally; best.pt",
        "std": "sample standard deviation over seeds (n - 1), only with two or more seeds",
        "paper": f"{PAPER_CITATION} (train, test)" if comparison.paper else None,
        "cells": comparison.rows,
        "runs": [run.record() for run in comparison.runs],
    }
    write_json_atomic(comparison.files["results"], results)
    write_text_atomic(comparison.files["report"], _report(comparison, results))


def _report(comparison: Comparison, results: dict) -> str:
    headings, rows = _table_rows(comparison)
    data = results["data"]
    pieces = data["pieces"] or {}
    lines = [
        f"# seqgate compare: {', '.join(comparison.cells)}",
        "",
        f"Dataset: `{data['path']}`" + (f" ({data['source']})" if data["source"] else "")
        + (f", the {comparison.benchmark} benchmark" if comparison.benchmark else "") + ".  ",
        "Pieces train / valid / test: " + " / ".join(str(pieces.get(s, "?")) for s in SPLITS)
        + "; frames: " + " / ".join(f"{data['frames'][s]:,}" for s in SPLITS) + ".",
        "",
        "Command:",
        "",
        "```",
        comparison.command,
        "```",
        "",
        "Every cell: the same data, parameter budget, recipe, limits and "
        + (f"seeds (0..{comparison.seeds - 1})" if comparison.seeds > 1 else "seed (0)") + ". NLL: nats per frame, keys summed, every frame of a split "
        "weighted equally, from each run's best.pt (lowest validation NLL)."
        + (" ±: standard deviation over seeds." if comparison.seeds > 1 else "")
        + (f" Paper: {PAPER_CITATION} (train / test)." if comparison.paper else ""),
        "",
        "Training settings: " + ", ".join(f"{k} {v}" for k, v in results["settings"].items()
                                          if k not in ("seeds",)) + ".",
        "",
        *(f"Note: {note}\n" for note in comparison.notes),
        "| " + " | ".join(headings) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(headings) - 1)) + "|",
        *("| " + " | ".join(cells) + " |" for cells in rows),
        "",
        "Runs:",
        "",
        *(f"- `{run.run_dir.name}`: {run.action}, {run.summary.get('epochs')} epochs, "
          f"stopped by {run.summary.get('stopped') or '?'}" for run in comparison.runs),
        "",
        "![validation NLL against updates and seconds](curves.png)",
        "",
    ]
    return "\n".join(lines)
