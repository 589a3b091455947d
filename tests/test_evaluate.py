"""The metric: NLL per frame with keys summed, frames weighted equally; frame accuracy."""

import math

import numpy as np
import pytest
import torch

from seqgate.errors import UserError
from seqgate.training.evaluate import check_roll_format, evaluate_rolls
from seqgate.model.network import NextStepModel


def constant_model(probability: float) -> NextStepModel:
    """A model whose every key has the same probability whatever the input."""
    model = NextStepModel("gru", 4, head="bernoulli")
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.fill_(math.log(probability / (1 - probability)))
    return model


def test_nll_sums_keys_and_weights_frames_equally():
    p = 0.1
    model = constant_model(p)
    short = np.zeros((2, 88), dtype=bool)
    short[:, 0] = True  # one key on in each frame
    long = np.zeros((6, 88), dtype=bool)  # all keys off
    result = evaluate_rolls(model, [short, long])
    nll_on = -math.log(p) - 87 * math.log(1 - p)
    nll_off = -88 * math.log(1 - p)
    assert result["nll"] == pytest.approx((2 * nll_on + 6 * nll_off) / 8, rel=1e-5)
    assert result["nll_per_piece"] == pytest.approx((nll_on + nll_off) / 2, rel=1e-5)
    assert result["frames"] == 8 and result["pieces"] == 2


def test_frame_accuracy_follows_bay_et_al():
    model = constant_model(0.9)  # predicts every key on
    roll = np.zeros((3, 88), dtype=bool)
    roll[:, :2] = True
    result = evaluate_rolls(model, [roll])
    # TP = 2 per frame, FP = 86 per frame, FN = 0: ACC = 6 / (6 + 258)
    assert result["accuracy"] == pytest.approx(6 / 264)
    assert result["precision"] == pytest.approx(6 / 264)
    assert result["recall"] == pytest.approx(1.0)


def test_roll_format_mismatch_says_why():
    with pytest.raises(UserError, match="frames per quarter note 1 in the data, 2 in the model"):
        check_roll_format({"n_keys": 88, "lowest_pitch": 21, "frames_per_quarter": 2},
                          {"n_keys": 88, "lowest_pitch": 21, "frames_per_quarter": 1}, "other.npz")


def test_an_ensemble_scores_the_mean_of_its_members_probabilities():
    from seqgate.model.ensemble import Ensemble
    from seqgate.training.evaluate import evaluate_rolls

    roll = np.zeros((4, 88), dtype=bool)
    roll[:, :3] = True  # three keys on in every frame
    low, high = 0.1, 0.6

    def log_frame(p):
        return 3 * math.log(p) + 85 * math.log(1 - p)

    mixed = -math.log((math.exp(log_frame(low)) + math.exp(log_frame(high))) / 2)
    result = evaluate_rolls(Ensemble([constant_model(low), constant_model(high)]), [roll])
    assert result["nll"] == pytest.approx(mixed, rel=1e-5)
    # the mixture is never worse than its members' mean NLL (Jensen), here strictly better
    assert result["nll"] < (-log_frame(low) - log_frame(high)) / 2
    # a key is predicted where most members predict it: one vote of two is not enough
    assert evaluate_rolls(Ensemble([constant_model(0.9), constant_model(0.2)]), [roll])["recall"] == 0
    assert evaluate_rolls(Ensemble([constant_model(0.9)] * 3), [roll])["recall"] == 1


def test_evaluate_takes_several_runs_as_their_ensemble(tiny_dataset, tmp_path):
    import json

    from conftest import run_cli
    from seqgate.settings import TrainConfig
    from seqgate.training.evaluate import evaluate_run
    from seqgate.training.train import train

    runs = []
    for seed in (1, 2):
        runs.append(str(tmp_path / f"run{seed}"))
        train(TrainConfig(data=str(tiny_dataset), hidden=6, max_epochs=1, batch_size=4, window=24, seed=seed,
                          head="bernoulli"), runs[-1])
    members = [evaluate_run(run)["nll"] for run in runs]
    result = run_cli("evaluate", *runs, "--json")
    assert result.returncode == 0, result.stderr
    ensemble = json.loads(result.stdout)
    assert ensemble["runs"] == runs and ensemble["cell"] == "gru+gru" and ensemble["head"] == "bernoulli"
    assert ensemble["nll"] < sum(members) / 2
    assert ensemble["parameters"] == 2 * json.loads((tmp_path / "run1" / "config.json").read_text())["parameters"]
