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
