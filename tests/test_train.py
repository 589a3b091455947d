"""Training: the loss under padding, resume equivalence, interruption, the run folder."""

import contextlib
import dataclasses
import json
import math
import re
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from seqgate.errors import UserError
from seqgate.model.network import NextStepModel, shift_right
from seqgate.training.runs import Run
from seqgate.settings import DEFAULT_HEAD, RECIPES, TrainConfig
from seqgate.training.train import train


def read_metrics(run_dir):
    return Run(run_dir).read_metrics()


def frame_nll(model, rolls):
    return model.nll(shift_right(rolls), rolls)


def tiny_config(data, **changes):
    """A few seconds of training. The Bernoulli head learns the tiny corpus in a few epochs; the
    run folder, resume and signals do not depend on the head."""
    settings = dict(data=str(data), cell="gru", hidden=8, max_epochs=4, batch_size=4, window=24,
                    lr=0.01, seed=3, head="bernoulli")
    settings.update(changes)
    return TrainConfig(**settings)


def test_padding_never_changes_the_loss():
    torch.manual_seed(0)
    model = NextStepModel("lstm", 6, head=DEFAULT_HEAD)
    short = (torch.rand(1, 5, 88) > 0.8).float()
    long = (torch.rand(1, 9, 88) > 0.8).float()
    alone, _ = frame_nll(model, short)
    batch = torch.zeros(2, 9, 88)
    batch[0, :5], batch[1] = short[0], long[0]
    mask = torch.zeros(2, 9, dtype=torch.bool)
    mask[0, :5], mask[1] = True, True
    padded, _ = frame_nll(model, batch)
    assert torch.allclose(padded[0, :5], alone[0], atol=1e-6)
    masked_mean = (padded * mask)[0].sum() / mask[0].sum()
    assert torch.allclose(masked_mean, alone.mean(), atol=1e-6)


def test_training_lowers_the_validation_nll_and_writes_the_run_folder(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    summary = train(tiny_config(tiny_dataset, max_epochs=6), run)
    records = read_metrics(run)
    assert [r["epoch"] for r in records] == list(range(1, 7))
    assert records[-1]["valid_nll"] < records[0]["valid_nll"]
    for name in ("config.json", "metrics.jsonl", "best.pt", "last.pt", "curves.png"):
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())
    assert config["status"] == "finished" and config["stopped"] == "max epochs"
    assert math.isclose(config["best_valid_nll"], min(r["valid_nll"] for r in records))
    assert summary["parameters"] == config["parameters"]
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_the_default_head_is_a_nade_that_learns_the_tiny_corpus(tiny_dataset, tmp_path):
    # TrainConfig's own default head, as `seqgate train` without --head gets it
    config = dataclasses.replace(tiny_config(tiny_dataset, max_epochs=30, patience=30), head=TrainConfig.head)
    summary = train(config, tmp_path / "run")
    records = read_metrics(tmp_path / "run")
    assert summary["model_config"]["head"] == "nade" and summary["model_config"]["head_size"] == 6
    assert records[-1]["valid_nll"] < records[0]["valid_nll"] - 0.2


def test_same_seed_gives_the_same_numbers(tiny_dataset, tmp_path):
    first = train(tiny_config(tiny_dataset), tmp_path / "a")
    second = train(tiny_config(tiny_dataset), tmp_path / "b")
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("seconds", "frames_per_second")} for r in rs]
    assert strip(read_metrics(tmp_path / "a")) == strip(read_metrics(tmp_path / "b"))
    assert first["best_valid_nll"] == second["best_valid_nll"]


@pytest.mark.parametrize("recipe", ["default", "paper"])
def test_resumed_run_ends_with_the_numbers_of_an_uninterrupted_one(tiny_dataset, tmp_path, recipe):
    options = dict(recipe=recipe, dropout=0.1, augment_transpose=2, max_epochs=5)
    train(tiny_config(tiny_dataset, **options), tmp_path / "whole")
    train(tiny_config(tiny_dataset, **{**options, "max_epochs": 2}), tmp_path / "split")
    train(tiny_config(tiny_dataset, **options), tmp_path / "split", resume=True)
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("seconds", "frames_per_second")} for r in rs]
    assert strip(read_metrics(tmp_path / "whole")) == strip(read_metrics(tmp_path / "split"))
    whole = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)["model"]
    split = torch.load(tmp_path / "split" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(whole[k], split[k]) for k in whole)


def test_sigterm_keeps_a_resumable_last_checkpoint(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "seqgate", "train", "--data", str(tiny_dataset), "--hidden", "8",
               "--window", "24", "--max-epochs", "100000", "--patience", "100000", "--run-dir", str(run)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and len(read_metrics(run)) < 2:
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "Traceback" not in stderr and "--resume" in stderr
    saved = torch.load(run / "last.pt", weights_only=True)
    assert saved["epoch"] >= 1  # the signal may land between an epoch's log line and its last.pt
    assert json.loads((run / "config.json").read_text())["status"] == "interrupted"
    resumed = train(TrainConfig(max_epochs=saved["epoch"] + 1), run, resume=True)
    assert resumed["epochs"] == saved["epoch"] + 1
    assert [r["epoch"] for r in read_metrics(run)] == list(range(1, saved["epoch"] + 2))


def test_a_run_folder_is_not_overwritten(tiny_dataset, tmp_path):
    train(tiny_config(tiny_dataset, max_epochs=1), tmp_path / "run")
    with pytest.raises(UserError, match="already holds a run"):
        train(tiny_config(tiny_dataset, max_epochs=1), tmp_path / "run")


def test_unknown_cell_and_recipe_are_user_errors(tiny_dataset, tmp_path):
    with pytest.raises(UserError, match="unknown cell"):
        train(tiny_config(tiny_dataset, cell="transformer"), tmp_path / "a")
    with pytest.raises(UserError, match="unknown recipe"):
        train(tiny_config(tiny_dataset, recipe="magic"), tmp_path / "b")


def test_time_left_names_the_limit_that_binds_first():
    from seqgate.training.display import time_left
    from seqgate.training.train import Progress

    progress = Progress(epoch=10, seconds=100.0, best_epoch=7)  # 10 s an epoch
    assert time_left(Progress(), TrainConfig()) == (None, "", 20)  # nothing to go by yet
    assert time_left(progress, TrainConfig(max_epochs=50, patience=20)) == (400.0, "max epochs", 27)
    # 2 minutes: 20 s left, and the epoch that crosses the limit still runs to its end
    assert time_left(progress, TrainConfig(max_epochs=50, max_minutes=2)) == (30.0, "time limit", 27)
    assert time_left(progress, TrainConfig(max_epochs=12, max_minutes=60)) == (20.0, "max epochs", 27)


def test_the_start_of_a_run_says_what_an_epoch_is_and_which_limits_stop_it(tiny_dataset, tmp_path):
    result = subprocess.run([sys.executable, "-m", "seqgate", "train", "--data", str(tiny_dataset), "--hidden", "8",
                             "--window", "24", "--max-epochs", "2", "--max-minutes", "5", "--run-dir",
                             str(tmp_path / "run")], capture_output=True, text=True, env={**os.environ, "COLUMNS": "300"})
    assert result.returncode == 0, result.stderr[-2000:]
    out = " ".join(result.stdout.split())
    frames = json.loads((tmp_path / "run" / "config.json").read_text())["epoch_frames"]
    assert f"an epoch: {frames:,} training frames" in out
    assert "stops at the first of: epoch 2, 20 epochs without a better validation NLL, 5 minutes of training" in out
    assert re.search(r"s/epoch, <= 0:00:\d\d left \(max epochs\), early stop at epoch 2[12]\b", out), out
    assert "stopped at the epoch limit, 2 epochs" in out
    # the end table: the run, its size, its length and its best validation NLL, and what that NLL is
    summary = json.loads((tmp_path / "run" / "config.json").read_text())
    assert "gru run finished (max epochs)" in out
    assert f"{summary['parameters']:,} │ 2 │" in out and f"{summary['best_valid_nll']:.3f} │" in out
    assert "valid NLL: nats per frame over the 88 sounding keys" in out


def test_a_run_has_a_time_budget_unless_told_none():
    assert TrainConfig().max_minutes > 0  # the default run ends in minutes on any corpus
    unlimited = TrainConfig(max_minutes=0)
    unlimited.validate()
    assert unlimited.max_minutes is None
    with pytest.raises(UserError, match="--max-minutes"):
        TrainConfig(max_minutes=-1).validate()


def test_an_interrupt_that_escapes_train_still_exits_130_in_one_line(monkeypatch, capsys):
    """A second Ctrl-C (or SIGTERM) landing while train is already stopping reaches the command
    as a bare KeyboardInterrupt; it must not become click's "Aborted!" and exit code 1."""
    from seqgate import cli
    from seqgate.training import train as training

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "train", interrupted)
    monkeypatch.setattr(sys, "argv", ["seqgate", "train", "--hidden", "4"])
    with pytest.raises(SystemExit) as stop:
        cli.main()
    assert stop.value.code == 130
    err = capsys.readouterr().err
    assert "--resume" in err and "Aborted" not in err and "Traceback" not in err


def test_a_signal_while_the_run_is_closed_still_names_the_run_to_resume(tiny_dataset, tmp_path):
    """Under torchrun, a failing peer's SIGTERM can land after the loop, while this process writes
    its last files or leaves the process group: the interrupt must still carry the run's folder."""
    from seqgate.training.train import Interrupted

    class SignalledWhileClosing:
        def status(self, message): return contextlib.nullcontext()
        def say(self, message): pass
        def start(self, *args): pass
        def batch(self, *args): pass
        def epoch(self, *args): pass
        def stop(self):
            raise KeyboardInterrupt

    with pytest.raises(Interrupted) as stopped:
        train(tiny_config(tiny_dataset, max_epochs=1), tmp_path / "run", display=SignalledWhileClosing())
    assert str(stopped.value) == str(tmp_path / "run")
    assert Run(tmp_path / "run").has_checkpoint("last.pt")


def test_the_dropout_recipe_grows_its_dropout_with_parameters_per_training_frame(tiny_dataset, tmp_path):
    recipe = RECIPES["dropout"]
    # JSB's 13,807 training frames: 0.3 for the 20k models, the cap for five times as many.
    assert recipe.dropout_for(20_000, 13_807) == pytest.approx(0.3, abs=0.005)
    assert recipe.dropout_for(100_000, 13_807) == recipe.dropout == 0.5
    assert recipe.dropout_for(20_000, 176_561) < 0.1  # Nottingham's
    assert RECIPES["default"].dropout_for(10**6, 1) == 0.0
    assert TrainConfig(recipe="dropout", dropout=0.2).recipe_dropout(20_000, 13_807) == 0.2  # --dropout wins
    train(tiny_config(tiny_dataset, recipe="dropout", max_epochs=1), tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    expected = recipe.dropout_for(saved["parameters"], saved["epoch_frames"])
    assert 0 < expected <= recipe.dropout
    # written out, so that resume and compare find the same settings however a recipe changes
    assert saved["train"]["dropout"] == expected == saved["model_config"]["dropout"]


@pytest.mark.parametrize("cell", ["gru", "tanh", "lstm"])
def test_a_run_on_the_cpu_prepares_the_compiled_loops_before_its_first_epoch(tiny_dataset, tmp_path,
                                                                                   monkeypatch, cell):
    import seqgate.training.train as training

    events = []

    class Display:
        def status(self, message):
            raise AssertionError("only prepare_compiled_loops opens the status")

        def say(self, message):
            raise AssertionError("only prepare_compiled_loops says a failed build")

        def start(self, *args):
            events.append("start")

        def batch(self, *args):
            pass

        def epoch(self, *args):
            pass

        def stop(self):
            pass

    display = Display()
    monkeypatch.setattr(training, "prepare_compiled_loops",
                        lambda status=None, say=None: events.append(("prepare", status, say)) or True)
    train(tiny_config(tiny_dataset, cell=cell, max_epochs=1), tmp_path / "run", display=display)
    if cell in ("gru", "tanh"):  # the LSTM runs torch's own oneDNN kernel
        assert events == [("prepare", display.status, display.say), "start"]
    else:
        assert events == ["start"]
