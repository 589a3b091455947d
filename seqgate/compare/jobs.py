"""Several training runs at once, each in its own spawned process (compare --jobs N).

Each job calls seqgate.train.train with its exact TrainConfig, writes its output to the run's
train.log and uses max(1, cores // N) torch threads, so the jobs do not fight over cores. The
parent shows one progress bar per run from each run's metrics. Ctrl-C or SIGTERM stops every job
with last.pt at its last finished epoch; a failed job is reported with the last line of its log.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

from rich.console import Console

from seqgate.errors import UserError
from seqgate.settings import available_cores
from seqgate.training.runs import Run
from seqgate.settings import TrainConfig


def train_in_processes(to_train: list, jobs: int, console: Console) -> None:
    """Train the runs in `jobs` spawned processes at a time, showing one bar per run.

    to_train: (TrainConfig, run folder, resume) for each run.
    """
    import multiprocessing
    from multiprocessing.connection import wait

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from seqgate.training.train import Interrupted, sigterm_as_interrupt

    threads = max(1, available_cores() // jobs)
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
                    records = Run(run_dir).read_metrics()
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
        raise UserError(f"training {run_dir} failed (exit code {code}): {_last_line(Run(run_dir).log_path)}"
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
        model, self.settings = info["model_config"], TrainConfig(**info["train"])
        print(f"training {model['cell']} (hidden {model['hidden']}, {info['parameters']:,} parameters) "
              f"on {info['device']} -> {run_dir}, from epoch {progress.epoch}", flush=True)

    def status(self, message: str):
        print(message, flush=True)
        return contextlib.nullcontext()

    def say(self, message: str) -> None:
        print(message, flush=True)

    def batch(self, frames: int, train_nll: float) -> None:
        pass

    def epoch(self, record: dict, progress) -> None:
        from seqgate.training.display import time_left

        seconds, limit, early_stop_epoch = time_left(progress, self.settings)
        print(f"epoch {record['epoch']}  updates {record['updates']}  seconds {record['seconds']:.1f}  "
              f"train {record['train_nll']:.4f}  valid {record['valid_nll']:.4f}  "
              f"best {progress.best_valid:.4f}  at most {seconds / 60:.1f} min left ({limit}), "
              f"early stop at epoch {early_stop_epoch} unless it improves", flush=True)

    def stop(self) -> None:
        pass


def _train_in_child(config: dict, run_dir: str, resume: bool, threads: int) -> None:
    """One job of --jobs: output to <run>/train.log, `threads` torch threads, exit code 0/2/130."""
    run_dir = Path(run_dir)
    with open(Run(run_dir).log_path, "a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    import torch

    from seqgate.training.train import Interrupted, train

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
