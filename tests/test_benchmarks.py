"""Benchmark corpora: the table of facts, .mat and .pickle import, and refusing unsafe pickles."""

import os
import pickle

import numpy as np
import pytest
import scipy.io

from conftest import assert_one_line_error, run_cli
from seqgate.data.benchmarks import BENCHMARKS, recognise
from seqgate.data.dataset import load_dataset
from seqgate.errors import UserError
from seqgate.data.prepare import prepare_dataset


def test_jsb_mat_round_trips_frame_for_frame(tmp_path, datasets_dir):
    source = datasets_dir / "JSB_Chorales.mat"
    summary = prepare_dataset([source], tmp_path / "jsb.npz")
    assert summary.pieces_per_split == {"train": 229, "valid": 76, "test": 77}
    assert summary.frames_per_split == {"train": 13807, "valid": 4602, "test": 4725}
    dataset = load_dataset(tmp_path / "jsb.npz")
    assert dataset.frames_per_quarter == 1 and dataset.meta["source"] == "JSB_Chorales.mat"
    assert dataset.split_names("train")[3] == "JSB_Chorales/train/0003"
    mat = scipy.io.loadmat(str(source))
    for split, variable in [("train", "traindata"), ("valid", "validdata"), ("test", "testdata")]:
        expected = [np.asarray(piece, dtype=bool) for piece in mat[variable].ravel()]
        got = dataset.split(split)
        assert len(got) == len(expected)
        assert all(np.array_equal(a, b) for a, b in zip(got, expected))


def test_nottingham_mat_keeps_its_splits(tmp_path, datasets_dir):
    summary = prepare_dataset([datasets_dir / "Nottingham.mat"], tmp_path / "n.npz")
    assert summary.pieces_per_split == {"train": 694, "valid": 173, "test": 170}
    assert load_dataset(tmp_path / "n.npz").frames_per_quarter == 2


def test_boulanger_lewandowski_pickle_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    data = {split: [[tuple(int(p) for p in rng.choice(np.arange(21, 109), rng.integers(0, 5), replace=False))
                     for _ in range(rng.integers(5, 30))] for _ in range(count)]
            for split, count in [("train", 4), ("valid", 2), ("test", 3)]}
    data["train"][0][0] = [60.0, 64]  # Python 2 pickles hold floats now and then
    data["train"][0][1] = [10, 60]  # below the keyboard: dropped and counted
    path = tmp_path / "bench.pickle"
    path.write_bytes(pickle.dumps(data, protocol=2))
    summary = prepare_dataset([path], tmp_path / "b.npz")
    assert summary.pieces_per_split == {"train": 4, "valid": 2, "test": 3}
    assert summary.dropped_out_of_range == 1
    dataset = load_dataset(tmp_path / "b.npz")
    assert dataset.frames_per_quarter is None  # not a benchmark we know the grid of
    for split in ("train", "valid", "test"):
        for roll, piece in zip(dataset.split(split), data[split]):
            assert len(roll) == len(piece)
            for frame, pitches in zip(roll, piece):
                expected = sorted(int(p) for p in pitches if 21 <= p <= 108)
                assert list(np.flatnonzero(frame) + 21) == expected


class Sneaky:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling this would create a folder: proof that code ran
        return (os.mkdir, (self.marker,))


def test_pickle_that_would_run_code_is_refused_in_one_line(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"train": [[Sneaky(str(marker))]], "valid": [], "test": []}))
    result = run_cli("prepare", path, "-o", tmp_path / "out.npz")
    assert_one_line_error(result)
    assert "refused" in result.stderr and "posix.mkdir" in result.stderr
    assert not marker.exists() and not (tmp_path / "out.npz").exists()


@pytest.mark.parametrize("payload, message", [
    ({"train": [[{1, 2}]], "valid": [], "test": []}, "holds a set"),
    ({"train": [], "valid": []}, "train/valid/test"),
    ({"train": [[["C4"]]], "valid": [], "test": []}, "whole MIDI pitches"),
    ([1, 2, 3], "train/valid/test"),
])
def test_pickle_with_the_wrong_structure_is_a_user_error(tmp_path, payload, message):
    path = tmp_path / "odd.pickle"
    path.write_bytes(pickle.dumps(payload, protocol=4))
    with pytest.raises(UserError, match=message):
        prepare_dataset([path], tmp_path / "out.npz")


def test_a_file_that_is_not_a_pickle_is_a_user_error(tmp_path):
    path = tmp_path / "noise.pkl"
    path.write_bytes(b"\x00\x01 not a pickle")
    with pytest.raises(UserError, match="not a readable pickle"):
        prepare_dataset([path], tmp_path / "out.npz")




def test_prepared_benchmark_frame_counts_match_the_table(tmp_path, datasets_dir):
    for benchmark, file in ((BENCHMARKS[0], "JSB_Chorales.mat"), (BENCHMARKS[1], "Nottingham.mat")):
        summary = prepare_dataset([datasets_dir / file], tmp_path / "d.npz")
        assert tuple(summary.pieces_per_split.values()) == benchmark.pieces
        assert tuple(summary.frames_per_split.values()) == benchmark.frames
        assert load_dataset(tmp_path / "d.npz").meta["benchmark"] == benchmark.name


def test_benchmarks_are_recognised_by_their_split_piece_counts():
    assert recognise((229, 76, 77)).name == "JSB Chorales"
    assert recognise((694, 173, 170)).frames_per_quarter == 2
    assert recognise((524, 135, 124)).name == "MuseData"
    assert recognise((87, 12, 25)).paper["gru"] == (4.93, 8.82)
    assert recognise((229, 76, 78)) is None
