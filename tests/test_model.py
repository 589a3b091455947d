"""Model sizes and the next-step convention."""

import pytest
import torch

from seqgate.errors import UserError
from seqgate.settings import DEFAULT_HEAD
from seqgate.model.cells import CELLS
from seqgate.model.network import NextStepModel, shift_right
from seqgate.model.sizing import count_parameters, hidden_for_params
from seqgate.training.runs import load_checkpoint_file as load_checkpoint


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("head", ["bernoulli", "nade"])
def test_count_parameters_matches_the_built_model(cell, layers, head):
    model = NextStepModel(cell, 17, layers=layers, head=head)
    assert count_parameters(cell, 17, layers, head=head) == model.n_parameters()
    sized = NextStepModel(cell, 17, layers=layers, head=head, head_size=5)
    assert count_parameters(cell, 17, layers, head=head, head_size=5) == sized.n_parameters()


def test_a_budget_sizes_cell_and_nade_together():
    # The split of the 32-unit GRU with a 24-unit NADE that reached 5.59 nats on JSB.
    assert hidden_for_params("gru", 20_000, head="nade") == 32
    assert count_parameters("gru", 32, head="nade") == 19_632
    assert NextStepModel("gru", 32, head="nade").head_size == 24
    assert hidden_for_params("gru", 20_000, head="nade", head_size=60) < 32  # a bigger head, a smaller cell


@pytest.mark.parametrize("cell", CELLS)
def test_hidden_for_params_is_the_closest_size(cell):
    for head in ("bernoulli", "nade"):
        hidden = hidden_for_params(cell, 20_000, head=head)
        gap = abs(count_parameters(cell, hidden, head=head) - 20_000)
        assert gap <= abs(count_parameters(cell, hidden - 1, head=head) - 20_000)
        assert gap <= abs(count_parameters(cell, hidden + 1, head=head) - 20_000)
        assert gap / 20_000 < 0.03


def test_params_20000_orders_the_cells_as_the_paper():
    # Chung et al. Table 1: tanh 100 > GRU 46 > LSTM 36 units at ~20K parameters; with 88 inputs
    # and outputs (the paper trimmed its inputs) the same budget buys fewer units, in the same order.
    sizes = {cell: hidden_for_params(cell, 20_000, head="bernoulli") for cell in CELLS}
    assert sizes == {"tanh": 78, "gru": 41, "lstm": 34}


def test_hidden_for_params_refuses_a_non_positive_budget():
    with pytest.raises(UserError):
        hidden_for_params("gru", 0, head=DEFAULT_HEAD)


def test_shift_right_predicts_frame_zero_from_silence():
    rolls = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4)
    shifted = shift_right(rolls)
    assert torch.equal(shifted[:, 0], torch.zeros(2, 4))
    assert torch.equal(shifted[:, 1:], rolls[:, :-1])


def test_output_depends_only_on_earlier_frames():
    torch.manual_seed(0)
    model = NextStepModel("gru", 8, head=DEFAULT_HEAD)
    rolls = (torch.rand(1, 10, 88) > 0.9).float()
    changed = rolls.clone()
    changed[0, 6:] = 1 - changed[0, 6:]
    first, _ = model(shift_right(rolls))
    second, _ = model(shift_right(changed))
    assert torch.allclose(first[0, :7], second[0, :7])  # frame 6 is predicted from frames < 6
    assert not torch.allclose(first[0, 7:], second[0, 7:])


def test_init_output_bias_starts_at_the_key_frequencies():
    model = NextStepModel("tanh", 5, head="bernoulli")
    frequency = torch.full((88,), 0.25)
    model.init_output_bias(frequency)
    assert torch.allclose(torch.sigmoid(model.head.bias), frequency, atol=1e-6)


class NotATensor:
    """Any class: unpickling it would import and run code that weights_only must refuse."""


def test_load_checkpoint_refuses_a_pickled_object(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model_config": {"cell": "gru"}, "model": {}, "payload": NotATensor()}, path)
    with pytest.raises(UserError, match="refusing to load"):
        load_checkpoint(path)


def test_load_checkpoint_refuses_a_file_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "text.pt"
    path.write_text("hello")
    with pytest.raises(UserError):
        load_checkpoint(path)


def test_a_run_that_names_no_size_is_sized_by_its_corpus():
    from seqgate.model.sizing import params_for_corpus
    from seqgate.settings import DEFAULT_PARAMS, MOST_PARAMS_FOR_A_CORPUS

    assert params_for_corpus(13_807, benchmark=True) == DEFAULT_PARAMS  # JSB keeps the paper's size
    assert params_for_corpus(515_256, benchmark=True) == DEFAULT_PARAMS
    assert params_for_corpus(515_256, benchmark=False) == 103_000
    assert params_for_corpus(1_000, benchmark=False) == DEFAULT_PARAMS  # never below the paper's
    assert params_for_corpus(10 ** 9, benchmark=False) == MOST_PARAMS_FOR_A_CORPUS
