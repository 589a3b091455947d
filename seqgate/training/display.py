"""The words and the live view of a training run: what an epoch is, which limits stop it, how
long it may still take, and which limit ended it. `seqgate train` shows TrainDisplay; compare's
parallel jobs (jobs.py) and the end of a run (cli.py) use the same words.

Nothing here imports torch: the numbers come from train.py's Progress and the run's settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from seqgate.settings import TrainConfig
    from seqgate.training.train import Progress


def time_left(progress: Progress, config: TrainConfig) -> tuple[float | None, str, int]:
    """What the limits in force say of the rest of a run, from its seconds an epoch so far:
    (seconds at most, the limit that binds first: "max epochs" or "time limit", the epoch at
    which early stopping ends it unless the validation NLL improves). Seconds None before the
    first epoch."""
    early_stop_epoch = progress.best_epoch + config.patience
    if progress.epoch == 0:
        return None, "", early_stop_epoch
    per_epoch = progress.seconds / progress.epoch
    by_epochs = (config.max_epochs - progress.epoch) * per_epoch
    if config.max_minutes is not None and config.max_minutes * 60 - progress.seconds < by_epochs:
        # the time limit is checked after each epoch, so the last one runs over by up to an epoch
        return max(0.0, config.max_minutes * 60 - progress.seconds) + per_epoch, "time limit", early_stop_epoch
    return by_epochs, "max epochs", early_stop_epoch


def model_head(model_config: dict) -> str:
    """"nade 24" or "bernoulli": the head of a stored model config, with its size if it has one."""
    head = model_config["head"]
    return f"{head} {model_config['head_size']}" if model_config.get("head_size") else head


def limits_line(settings: dict) -> str:
    """The limits a run stops at, the first that binds, as the start of a run says them."""
    limits = [f"epoch {settings['max_epochs']}",
              f"{settings['patience']} epochs without a better validation NLL"]
    if settings.get("max_minutes") is not None:
        limits.append(f"{settings['max_minutes']:g} minutes of training")
    return "stops at the first of: " + ", ".join(limits)


def finished_table(summary: dict, nll_of: str) -> Table:
    """The table at the end of `seqgate train`: the run's size, length and best validation NLL
    (`nll_of`: what that NLL measures, evaluate.nll_quantity)."""
    table = Table(title=f"{summary['model_config']['cell']} run finished ({summary['stopped']})",
                  caption=f"valid NLL: {nll_of}")
    for column in ("run", "params", "epochs", "updates", "minutes", "s/epoch", "best epoch", "best valid"):
        table.add_column(column, justify="right")
    table.add_row(summary["run_dir"], f"{summary['parameters']:,}", str(summary["epochs"]),
                  f"{summary['updates']:,}", f"{summary['seconds'] / 60:.1f}",
                  f"{summary['seconds'] / max(summary['epochs'], 1):.1f}", str(summary["best_epoch"]),
                  f"{summary['best_valid_nll']:.3f}" if summary["best_valid_nll"] is not None else "-")
    return table


def stop_reason(summary: dict) -> str:
    """Which limit ended a finished run, in words."""
    settings, stopped = summary["train"], summary["stopped"]
    if stopped == "early stopping":
        return (f"stopped early: {settings['patience']} epochs without a better validation NLL after "
                f"epoch {summary['best_epoch']}")
    if stopped == "time limit":
        return f"stopped at the time limit, {settings['max_minutes']:g} minutes of training"
    return f"stopped at the epoch limit, {settings['max_epochs']} epochs"


def outlook_text(progress, settings) -> str:
    """"7.5 s/epoch, <= 0:37:21 left (max epochs), early stop at epoch 23": the seconds an epoch so
    far, the latest end the epoch and time limits allow, and the epoch at which early stopping
    ends the run unless the validation NLL improves."""
    seconds, limit, early_stop_epoch = time_left(progress, settings)
    if seconds is None:
        return ""
    minutes, rest = divmod(int(round(seconds)), 60)
    return (f"{progress.seconds / progress.epoch:.1f} s/epoch, <= {minutes // 60}:{minutes % 60:02d}:{rest:02d} "
            f"left ({limit}), early stop at epoch {early_stop_epoch}")


class TrainDisplay:
    """The live view of `seqgate train`: what an epoch is and which limits stop the run, then an
    epoch bar with train NLL, valid NLL, speed, time an epoch and the latest end the limits allow."""

    def __init__(self, max_epochs: int, console: Console | None = None):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        console = console or Console()
        self.console = console
        self.max_epochs = max_epochs
        self.bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(bar_width=10), MofNCompleteColumn(),
            TextColumn("train {task.fields[train]} valid {task.fields[valid]} "
                       "(best {task.fields[best]}) {task.fields[speed]}"),
            TextColumn("{task.fields[outlook]}"), console=console, transient=False)
        self.task = None
        self.settings = None

    def start(self, run_dir, info, progress) -> None:
        from seqgate.settings import TrainConfig

        model, self.settings = info["model_config"], TrainConfig(**info["train"])
        self.console.print(f"training {model['cell']} (hidden {model['hidden']}, {model_head(model)} head, "
                      f"{info['parameters']:,} parameters) on {info['device']} -> {run_dir}")
        self.console.print(f"an epoch: {info['epoch_frames']:,} training frames in about "
                      f"{info['updates_per_epoch']:,} updates of {self.settings.batch_size} windows of up to "
                      f"{self.settings.window} frames, then validation; {limits_line(info['train'])}")
        self.bar.start()
        best = f"{progress.best_valid:.3f}" if progress.best_epoch else "-"
        self.task = self.bar.add_task("epoch", total=self.max_epochs, completed=progress.epoch,
                                      train="-", valid="-", best=best, speed="",
                                      outlook=outlook_text(progress, self.settings))

    def status(self, message: str):
        """A spinner for a wait before the first epoch (the compiled loops' one-time build)."""
        return self.console.status(message)

    def say(self, message: str) -> None:
        """One line before the first epoch (a compiled-loops build that failed)."""
        self.console.print(message, markup=False, highlight=False, soft_wrap=True)

    def batch(self, frames: int, train_nll: float) -> None:
        self.bar.update(self.task, train=f"{train_nll:.3f}")

    def epoch(self, record: dict, progress) -> None:
        self.bar.update(self.task, completed=record["epoch"], valid=f"{record['valid_nll']:.3f}",
                        best=f"{progress.best_valid:.3f}",
                        speed=f"{record['frames_per_second'] / 1000:,.0f}k fr/s",
                        outlook=outlook_text(progress, self.settings))

    def stop(self) -> None:
        self.bar.stop()
