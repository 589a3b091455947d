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

--jobs N trains N runs at once, each in a spawned process calling seqgate.train.train with the
exact same TrainConfig (its output in <run>/train.log), each with max(1, cores // N) torch threads
so the jobs do not fight over cores. Runs trained with different thread counts can differ in the
last digits. With one job, training happens in this process with the caller's display.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
from rich import box
from rich.console import Console, Group
from rich.table import Table

from seqgate.errors import UserError
from seqgate.files import DEFAULT_DATASET, DEFAULT_RUNS_DIR, write_json_atomic, write_text_atomic

SPLITS = ("train", "valid", "test")
MARKER = "compare.json"  # in each run folder: the dataset fingerprint it was trained on

# The four benchmark corpora (Boulanger-Lewandowski et al. 2012), known by their split piece counts.
BENCHMARKS = {
    (229, 76, 77): "JSB Chorales",
    (694, 173, 170): "Nottingham",
    (524, 135, 124): "MuseData",
    (87, 12, 25): "Piano-midi",
}
# Chung et al. 2014, Table 2: average negative log-probability, (train, test), per cell.
PAPER_TABLE2 = {
    "Nottingham": {"tanh": (3.22, 3.13), "gru": (2.79, 3.23), "lstm": (3.08, 3.20)},
    "JSB Chorales": {"tanh": (8.82, 9.10), "gru": (6.94, 8.54), "lstm": (8.15, 8.67)},
    "MuseData": {"tanh": (5.64, 6.23), "gru": (5.06, 5.99), "lstm": (5.18, 6.23)},
    "Piano-midi": {"tanh": (5.64, 9.03), "gru": (4.93, 8.82), "lstm": (6.49, 9.03)},
}


def recognise_benchmark(dataset) -> str | None:
    """The benchmark corpus a dataset is, by its canonical split piece counts; None otherwise."""
    counts = tuple(len(dataset.split(split)) for split in SPLITS)
    return BENCHMARKS.get(counts)


def dataset_fingerprint(dataset) -> str:
    """SHA-256 of what training sees: every roll, its split and name, and the roll format.

    The file's own bytes would change with every `prepare` (it stores a creation time).
    """
    digest = hashlib.sha256()
    digest.update(json.dumps(dataset.roll_format(), sort_keys=True).encode())
    for roll, split, name in zip(dataset.rolls, dataset.splits, dataset.names):
        roll = np.asarray(roll, dtype=bool)
        digest.update(f"{split}\0{name}\0{roll.shape}\0".encode())
        digest.update(np.packbits(roll).tobytes())
    return digest.hexdigest()


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
            recipe: str = "default", device: str = "auto", paper: bool = False,
            train_options: dict | None = None, console: Console | None = None,
            display_factory=None) -> Comparison:
    """Train every cell for seeds 0..seeds-1 under one config, evaluate, write the report.

    params: the parameter budget each cell's hidden size is solved for (default 20000).
    max_epochs / max_minutes: limits per run (default: TrainConfig's). jobs: runs trained at once.
    train_options: further TrainConfig fields, the same for every cell (e.g. batch_size).
    display_factory(max_epochs) -> a training display (see cli.TrainDisplay), used with one job.
    """
    from seqgate.corpus import load_dataset
    from seqgate.model import check_cell
    from seqgate.train import DEFAULT_PARAMS, TrainConfig

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
    benchmark = recognise_benchmark(dataset)
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
            write_json_atomic(run_dir / MARKER, {"data_fingerprint": fingerprint, "data": config.data})
            to_train.append((config, run_dir, action == "resumed"))
    if jobs == 1 or len(to_train) <= 1:
        _train_here(to_train, console, display_factory)
    else:
        _train_parallel(to_train, min(jobs, len(to_train)), console)

    runs = []
    with console.status("evaluating the best checkpoint of every run on train, valid and test"):
        for config, (run_dir, action) in zip(configs, planned):
            summary = json.loads((run_dir / "config.json").read_text())
            runs.append(RunResult(config.cell, config.seed, run_dir, action, summary,
                                  _evaluate(run_dir, summary["model_config"])))

    shown_paper = paper and benchmark is not None
    rows = [_cell_row(cell, [r for r in runs if r.cell == cell],
                      PAPER_TABLE2[benchmark].get(cell) if shown_paper else None) for cell in cells]
    command = equivalent_command(cells, data, output, params, seeds, configs[0], jobs, paper, extra)
    comparison = Comparison(output=output, cells=cells, seeds=seeds, runs=runs, rows=rows, data=data,
                            benchmark=benchmark, paper=shown_paper, notes=notes, command=command,
                            files={"report": output / "report.md", "results": output / "results.json",
                                   "curves": output / "curves.png"})
    _write_outputs(comparison, fingerprint, configs[0])
    return comparison


# ----------------------------------------------------------------------------- which folder

def _plan(config, output: Path, fingerprint: str) -> tuple[Path, str]:
    """(run folder, "reused" | "resumed" | "trained") for one cell and seed; see the module doc."""
    wanted = asdict(config)
    base = f"{config.cell}-seed{config.seed}"

    def number(path: Path) -> int:
        tail = path.name[len(base):].lstrip("-")
        return int(tail) if tail.isdigit() else 1

    candidates = [p for p in output.glob(f"{base}*") if p.is_dir()
                  and (p.name == base or (p.name.startswith(base + "-") and p.name[len(base) + 1:].isdigit()))]
    for run_dir in sorted(candidates, key=number):
        saved, marker = _read_json(run_dir / "config.json"), _read_json(run_dir / MARKER)
        if (saved.get("train") != wanted or marker.get("data_fingerprint") != fingerprint
                or saved.get("model_config", {}).get("hidden") != config.resolved_hidden()):
            continue
        if saved.get("status") == "finished" and (run_dir / "best.pt").is_file():
            return run_dir, "reused"
        if (run_dir / "last.pt").is_file():
            return run_dir, "resumed"
    taken = {p.name for p in output.iterdir()}
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return output / name, "trained"


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


# ----------------------------------------------------------------------------- training

def _train_here(to_train: list, console: Console, display_factory) -> None:
    from seqgate.train import train

    for config, run_dir, resume in to_train:
        if resume:
            console.print(f"{config.cell} seed {config.seed}: resuming the unfinished run {run_dir}")
        display = display_factory(config.max_epochs) if display_factory else None
        train(config, run_dir, resume=resume, display=display)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _train_parallel(to_train: list, jobs: int, console: Console) -> None:
    """Train the runs in `jobs` spawned processes at a time, showing one bar per run."""
    import multiprocessing
    from multiprocessing.connection import wait

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from seqgate.train import Interrupted, read_metrics, sigterm_as_interrupt

    threads = max(1, _cores() // jobs)
    console.print(f"training {len(to_train)} runs, {jobs} at a time, {threads} torch "
                  f"thread{'s' if threads > 1 else ''} each; logs in <run>/train.log")
    context = multiprocessing.get_context("spawn")  # never fork a process that holds torch threads
    pending = list(to_train)
    running: dict = {}  # process -> (config, run_dir)
    failed = []
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("valid {task.fields[valid]}  {task.fields[state]}"), TimeElapsedColumn(),
                   console=console)
    tasks = {run_dir: bar.add_task(f"{config.cell} seed {config.seed}", total=config.max_epochs,
                                   valid="-", state="waiting")
             for config, run_dir, _ in to_train}
    try:
        with bar, sigterm_as_interrupt():
            while pending or running:
                while pending and len(running) < jobs:
                    config, run_dir, resume = pending.pop(0)
                    process = context.Process(target=_train_in_child, name=f"seqgate-{run_dir.name}",
                                              args=(asdict(config), str(run_dir), resume, threads))
                    process.start()
                    running[process] = (config, run_dir)
                    bar.update(tasks[run_dir], state="resuming" if resume else "training")
                wait([p.sentinel for p in running], timeout=0.5)
                finished = []
                for process in [p for p in running if not p.is_alive()]:
                    process.join()
                    config, run_dir = running.pop(process)
                    finished.append(run_dir)
                    state = "done" if process.exitcode == 0 else f"failed (exit code {process.exitcode})"
                    bar.update(tasks[run_dir], state=state)
                    if process.exitcode != 0:
                        failed.append((run_dir, process.exitcode))
                for run_dir in [run_dir for _, run_dir in running.values()] + finished:
                    records = read_metrics(run_dir)
                    if records:
                        bar.update(tasks[run_dir], completed=records[-1]["epoch"],
                                   valid=f"{records[-1]['valid_nll']:.3f}")
    except KeyboardInterrupt:
        # Ctrl-C in a terminal reaches the jobs too: give them a moment to stop by themselves, then
        # stop the rest with SIGTERM (train keeps last.pt at the last finished epoch either way).
        deadline = time.monotonic() + 3
        for process in running:
            process.join(max(0.0, deadline - time.monotonic()))
        for process in running:
            if process.is_alive():
                process.terminate()
        for process in running:
            process.join()
        raise Interrupted(", ".join(str(run_dir) for _, run_dir in running.values()) or "compare") from None
    finally:
        for process in running:
            if process.is_alive():
                process.kill()
    if failed:
        run_dir, code = failed[0]
        if code == 130:
            raise Interrupted(str(run_dir))
        raise UserError(f"training {run_dir} failed (exit code {code}): {_last_line(run_dir / 'train.log')}"
                        + (f"; {len(failed) - 1} more failed" if len(failed) > 1 else ""))


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return f"no log at {path}"
    return (lines[-1] if lines else "empty log") + f" (see {path})"


class _LogDisplay:
    """Training progress as plain lines, for a job whose output goes to train.log."""

    def start(self, run_dir, info, progress) -> None:
        model = info["model_config"]
        print(f"training {model['cell']} (hidden {model['hidden']}, {info['parameters']:,} parameters) "
              f"on {info['device']} -> {run_dir}, from epoch {progress.epoch}", flush=True)

    def batch(self, frames: int, train_nll: float) -> None:
        pass

    def epoch(self, record: dict, progress) -> None:
        print(f"epoch {record['epoch']}  updates {record['updates']}  seconds {record['seconds']:.1f}  "
              f"train {record['train_nll']:.4f}  valid {record['valid_nll']:.4f}  "
              f"best {progress.best_valid:.4f}", flush=True)

    def stop(self) -> None:
        pass


def _train_in_child(config: dict, run_dir: str, resume: bool, threads: int) -> None:
    """One job of --jobs: output to <run>/train.log, `threads` torch threads, exit code 0/2/130."""
    run_dir = Path(run_dir)
    with open(run_dir / "train.log", "a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    import torch

    from seqgate.train import Interrupted, TrainConfig, train

    torch.set_num_threads(threads)
    try:
        summary = train(TrainConfig(**config), run_dir, resume=resume, display=_LogDisplay())
    except UserError as error:
        print(f"seqgate: error: {error}", flush=True)
        sys.exit(2)
    except Interrupted:
        print("interrupted; last.pt holds the last finished epoch", flush=True)
        sys.exit(130)
    print(f"finished ({summary['stopped']})", flush=True)


# ----------------------------------------------------------------------------- the numbers

def _evaluate(run_dir: Path, model_config: dict) -> dict:
    """evaluate_run on every split, on one CPU thread for a small model as training does: a
    20K-parameter model split over busy cores runs many times slower, not faster."""
    from seqgate.evaluate import evaluate_run
    from seqgate.model import build_model, few_threads_for_small_work

    with few_threads_for_small_work(build_model(model_config), 64):  # evaluate's batch size
        return {split: evaluate_run(run_dir, None, split) for split in SPLITS}


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
                              + ("; paper: Chung et al. 2014, Table 2" if comparison.paper else ""))
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
    from seqgate.train import read_metrics

    curves = {cell: [read_metrics(run.run_dir) for run in comparison.runs if run.cell == cell]
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
        "paper": "Chung et al. 2014, Table 2 (train, test)" if comparison.paper else None,
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
        + (" Paper: Chung et al. 2014, Table 2 (train / test)." if comparison.paper else ""),
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
