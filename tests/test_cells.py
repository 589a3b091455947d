"""cells.py's hand-written equations against torch's fused nn.RNN / nn.GRU / nn.LSTM."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from seqgate.model import reference as cells

N_KEYS, HIDDEN, BATCH, STEPS = 88, 13, 3, 7
TOLERANCE = 1e-5


def random_inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of binary rolls (as the model sees them) and a random initial state."""
    generator = torch.Generator().manual_seed(seed)
    x = (torch.rand(BATCH, STEPS, N_KEYS, generator=generator) < 0.1).double()
    h0 = torch.randn(BATCH, HIDDEN, generator=generator, dtype=torch.float64) * 0.5
    return x, h0


def build(module_class, seed: int = 0, **options) -> nn.RNNBase:
    torch.manual_seed(seed)
    return module_class(N_KEYS, HIDDEN, batch_first=True, **options).double()


def test_tanh_rnn_matches_nn_rnn():
    module = build(nn.RNN, nonlinearity="tanh")
    x, h0 = random_inputs()
    expected_outputs, expected_final = module(x, h0.unsqueeze(0))
    outputs, final = cells.tanh_rnn(x, h0, *cells.layer_weights(module))
    assert outputs.shape == (BATCH, STEPS, HIDDEN)
    torch.testing.assert_close(outputs, expected_outputs, atol=TOLERANCE, rtol=0)
    torch.testing.assert_close(final, expected_final[0], atol=TOLERANCE, rtol=0)


def test_gru_reset_after_matches_nn_gru():
    module = build(nn.GRU)
    x, h0 = random_inputs()
    expected_outputs, expected_final = module(x, h0.unsqueeze(0))
    outputs, final = cells.gru(x, h0, *cells.layer_weights(module), reset_after=True)
    torch.testing.assert_close(outputs, expected_outputs, atol=TOLERANCE, rtol=0)
    torch.testing.assert_close(final, expected_final[0], atol=TOLERANCE, rtol=0)


def test_lstm_matches_nn_lstm():
    module = build(nn.LSTM)
    x, h0 = random_inputs()
    c0 = torch.randn_like(h0)
    expected_outputs, (expected_h, expected_c) = module(x, (h0.unsqueeze(0), c0.unsqueeze(0)))
    outputs, (h, c) = cells.lstm(x, (h0, c0), *cells.layer_weights(module))
    torch.testing.assert_close(outputs, expected_outputs, atol=TOLERANCE, rtol=0)
    torch.testing.assert_close(h, expected_h[0], atol=TOLERANCE, rtol=0)
    torch.testing.assert_close(c, expected_c[0], atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("module_class, run", [
    (nn.RNN, lambda x, h0, weights: cells.tanh_rnn(x, h0, *weights)),
    (nn.GRU, lambda x, h0, weights: cells.gru(x, h0, *weights)),
    (nn.LSTM, lambda x, h0, weights: cells.lstm(x, (h0, torch.zeros_like(h0)), *weights)),
])
def test_cells_match_modules_built_without_bias(module_class, run):
    module = build(module_class, bias=False)
    x, h0 = random_inputs(seed=1)
    state = h0.unsqueeze(0)
    if module_class is nn.LSTM:
        state = (state, torch.zeros_like(state))
    expected_outputs, _ = module(x, state)
    weights = cells.layer_weights(module)
    assert weights[2] is None and weights[3] is None
    outputs, _ = run(x, h0, weights)
    torch.testing.assert_close(outputs, expected_outputs, atol=TOLERANCE, rtol=0)


def test_gru_reset_before_differs_from_torch_in_general():
    module = build(nn.GRU)
    x, h0 = random_inputs()
    weights = cells.layer_weights(module)
    after, _ = cells.gru(x, h0, *weights, reset_after=True)
    before, _ = cells.gru(x, h0, *weights, reset_after=False)
    assert (after - before).abs().max() > 1e-3


def test_gru_reset_before_equals_reset_after_when_reset_gate_is_open():
    # r * (U h + b_hn) and U (r * h) + b_hn agree when r == 1 everywhere; a huge reset-gate bias
    # saturates the sigmoid to exactly 1.0 in float64.
    module = build(nn.GRU)
    with torch.no_grad():
        module.bias_ih_l0[:HIDDEN] = 1e3
    x, h0 = random_inputs()
    weights = cells.layer_weights(module)
    after, after_final = cells.gru(x, h0, *weights, reset_after=True)
    before, before_final = cells.gru(x, h0, *weights, reset_after=False)
    torch.testing.assert_close(before, after, atol=1e-12, rtol=0)
    torch.testing.assert_close(before_final, after_final, atol=1e-12, rtol=0)


def test_gru_single_step_by_hand_both_reset_placements():
    # One input, one hidden unit, one step: every quantity can be written down.
    x_value, h_value = 1.0, 0.5
    w_ir, w_iz, w_in = 0.3, -0.2, 0.8
    w_hr, w_hz, w_hn = 0.5, 0.4, -1.2
    b_in, b_hn = 0.1, 0.7  # the other biases are zero
    w_ih = torch.tensor([[w_ir], [w_iz], [w_in]], dtype=torch.float64)
    w_hh = torch.tensor([[w_hr], [w_hz], [w_hn]], dtype=torch.float64)
    b_ih = torch.tensor([0.0, 0.0, b_in], dtype=torch.float64)
    b_hh = torch.tensor([0.0, 0.0, b_hn], dtype=torch.float64)
    x = torch.tensor([[[x_value]]], dtype=torch.float64)
    h0 = torch.tensor([[h_value]], dtype=torch.float64)

    def sigmoid(a: float) -> float:
        return 1 / (1 + math.exp(-a))

    r = sigmoid(w_ir * x_value + w_hr * h_value)
    z = sigmoid(w_iz * x_value + w_hz * h_value)
    n_after = math.tanh(w_in * x_value + b_in + r * (w_hn * h_value + b_hn))
    n_before = math.tanh(w_in * x_value + b_in + w_hn * (r * h_value) + b_hn)
    expected_after = (1 - z) * n_after + z * h_value
    expected_before = (1 - z) * n_before + z * h_value
    assert abs(expected_after - expected_before) > 1e-2  # the example does tell them apart

    _, after = cells.gru(x, h0, w_ih, w_hh, b_ih, b_hh, reset_after=True)
    _, before = cells.gru(x, h0, w_ih, w_hh, b_ih, b_hh, reset_after=False)
    assert after.item() == pytest.approx(expected_after, abs=1e-12)
    assert before.item() == pytest.approx(expected_before, abs=1e-12)

    module = nn.GRU(1, 1, batch_first=True).double()
    with torch.no_grad():
        module.weight_ih_l0.copy_(w_ih)
        module.weight_hh_l0.copy_(w_hh)
        module.bias_ih_l0.copy_(b_ih)
        module.bias_hh_l0.copy_(b_hh)
    _, torch_final = module(x, h0.unsqueeze(0))
    assert torch_final.item() == pytest.approx(expected_after, abs=1e-12)


def test_empty_sequence_returns_initial_state():
    module = build(nn.GRU)
    _, h0 = random_inputs()
    x = torch.zeros(BATCH, 0, N_KEYS, dtype=torch.float64)
    outputs, final = cells.gru(x, h0, *cells.layer_weights(module))
    assert outputs.shape == (BATCH, 0, HIDDEN)
    assert torch.equal(final, h0)


def test_layer_weights_picks_the_requested_layer_of_a_stack():
    torch.manual_seed(0)
    module = nn.LSTM(N_KEYS, HIDDEN, num_layers=2, batch_first=True)
    first = cells.layer_weights(module, 0)
    second = cells.layer_weights(module, 1)
    assert first[0].shape == (4 * HIDDEN, N_KEYS)
    assert second[0].shape == (4 * HIDDEN, HIDDEN)
    assert torch.equal(first[1], module.weight_hh_l0)
    assert torch.equal(second[3], module.bias_hh_l1)
    with pytest.raises(ValueError):
        cells.layer_weights(module, 2)


def test_layer_weights_rejects_what_the_cells_do_not_cover():
    with pytest.raises(ValueError):
        cells.layer_weights(nn.RNN(4, 3, nonlinearity="relu"))
    with pytest.raises(ValueError):
        cells.layer_weights(nn.LSTM(4, 3, proj_size=2))
    with pytest.raises(TypeError):
        cells.layer_weights(nn.Linear(4, 3))


def test_shape_mismatch_is_reported():
    module = build(nn.GRU)
    x, h0 = random_inputs()
    with pytest.raises(ValueError, match="weights do not fit"):
        cells.tanh_rnn(x, h0, *cells.layer_weights(module))
    with pytest.raises(ValueError, match="initial state"):
        cells.gru(x, h0[:1, :5], *cells.layer_weights(module))
