"""The dataset file: a sparse round trip, refusal of what is not one, and the fingerprint."""

import numpy as np
import pytest

from seqgate.dataset import Dataset, dataset_fingerprint, load_dataset, save_dataset
from seqgate.errors import UserError


def small_dataset() -> Dataset:
    rng = np.random.default_rng(0)
    rolls = [rng.random((n, 88)) < 0.1 for n in (5, 0, 12, 3)]
    return Dataset.from_rolls(rolls, ["train", "valid", "test", "train"], ["a", "b", "c", "d"],
                   {"frames_per_quarter": 2, "source": "test"})


def test_save_and_load_round_trip_every_roll_split_and_name(tmp_path):
    original = small_dataset()
    save_dataset(original, tmp_path / "d.npz")
    loaded = load_dataset(tmp_path / "d.npz")
    assert loaded.splits == original.splits and loaded.names == original.names
    assert all(np.array_equal(a, b) for a, b in zip(loaded.rolls, original.rolls))
    assert [len(r) for r in loaded.split("train")] == [5, 3]
    assert loaded.roll_format() == {"n_keys": 88, "lowest_pitch": 21, "frames_per_quarter": 2}
    with np.load(tmp_path / "d.npz", allow_pickle=False) as data:  # stored sparsely
        assert len(data["pitches"]) == sum(int(r.sum()) for r in original.rolls)


def test_a_file_that_is_not_a_dataset_is_a_user_error(tmp_path):
    (tmp_path / "x.npz").write_text("not a zip")
    with pytest.raises(UserError, match="not a seqgate dataset"):
        load_dataset(tmp_path / "x.npz")
    with pytest.raises(UserError, match="no dataset at"):
        load_dataset(tmp_path / "missing.npz")


def test_fingerprint_follows_the_rolls_splits_and_names_not_the_file(tmp_path):
    first = small_dataset()
    assert dataset_fingerprint(first) == dataset_fingerprint(small_dataset())
    moved = small_dataset()
    moved.splits[0] = "valid"
    renamed = small_dataset()
    renamed.names[0] = "z"
    changed = small_dataset()
    changed.pitches[0] += 1
    assert len({dataset_fingerprint(d) for d in (first, moved, renamed, changed)}) == 4
