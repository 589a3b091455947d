"""`seqgate prepare`: benchmark imports, safe pickles, bad files, crashing parsers, splits."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from conftest import scale, write_midi
from seqgate import corpus
from seqgate.corpus import (hash_split, load_dataset, parse_split_spec, prepare_dataset,
                            dataset_statistics)
from seqgate.errors import UserError

PIECE = [{"notes": scale(60) + [(48, 0, 8)], "program": 19}]


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "seqgate", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=120)


def assert_one_line_error(result):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def make_folder(root: Path, names) -> Path:
    for name in names:
        write_midi(root / name, PIECE)
    return root


# ---- benchmark files

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


class _Sneaky:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling this would create a folder: proof that code ran
        return (os.mkdir, (self.marker,))


def test_pickle_that_would_run_code_is_refused_in_one_line(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"train": [[_Sneaky(str(marker))]], "valid": [], "test": []}))
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


# ---- MIDI folders

def test_folder_with_bad_files_keeps_every_good_one_and_names_the_rest(tmp_path):
    folder = make_folder(tmp_path / "songs", ["a.mid", "sub/b.midi", "C.MID"])
    good = (folder / "a.mid").read_bytes()
    (folder / "truncated.mid").write_bytes(good[: len(good) // 2])
    (folder / "random.mid").write_bytes(np.random.default_rng(1).bytes(400))
    (folder / "text.mid").write_text("not a MIDI file\n")
    (folder / "empty.mid").write_bytes(b"")
    write_midi(folder / "silent.mid", [{"notes": []}])
    write_midi(folder / "drums.mid", [{"notes": [(36, 0, 1)], "drum": True}])
    (folder / "notes.txt").write_text("ignored: not a MIDI name\n")

    result = run_cli("prepare", folder, "-o", tmp_path / "d.npz", "--report", tmp_path / "r.json")
    assert result.returncode == 0, result.stderr
    assert "skipped: 6" in result.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    reasons = {item["file"]: item["reason"] for item in report["skipped"]}
    assert report["files_found"] == 9 and report["pieces"] == 3
    assert reasons["songs/empty.mid"] == "empty file"
    assert reasons["songs/silent.mid"] == "no notes"
    assert reasons["songs/drums.mid"] == "drums only (use --drums to keep)"
    for name in ("truncated", "random", "text"):
        assert reasons[f"songs/{name}.mid"].startswith("unreadable MIDI")
    assert load_dataset(tmp_path / "d.npz").names == ["songs/C.MID", "songs/a.mid", "songs/sub/b.midi"]


def test_prepared_pieces_carry_their_tempo_program_and_flags(tmp_path):
    write_midi(tmp_path / "in" / "x.mid", PIECE, tempos=[(0, 96.0), (2, 60.0)])
    write_midi(tmp_path / "in" / "y.mid", [{"notes": [(36, 0, 1)], "drum": True}])
    prepare_dataset([tmp_path / "in"], tmp_path / "d.npz", drums=True, frames_per_quarter=4)
    dataset = load_dataset(tmp_path / "d.npz")
    assert dataset.names == ["in/x.mid", "in/y.mid"]
    assert dataset.meta["tempos"] == [96.0, 120.0] and dataset.meta["programs"][0] == 19
    assert dataset.meta["frames_per_quarter"] == 4 and dataset.meta["drums"] is True
    assert dataset.meta["transpose_to_c"] is False and "created" in dataset.meta
    assert len(dataset.rolls[0]) == 32  # 8 quarter notes at 4 frames each


@pytest.mark.parametrize("fork", [True, False], ids=["forked-workers", "fresh-interpreters"])
def test_a_crashing_or_hanging_parser_costs_only_that_file(tmp_path, monkeypatch, fork):
    monkeypatch.setattr(corpus, "_fork_is_safe", lambda: fork)
    monkeypatch.setenv(corpus.FAULT_ENV, "crash:c.mid,hang:f.mid")
    folder = make_folder(tmp_path / "in", [f"{name}.mid" for name in "abcdefgh"])
    summary = prepare_dataset([folder], tmp_path / "d.npz", workers=2, file_timeout=1.0)
    assert summary.skipped == [("in/c.mid", "crashed the parser"), ("in/f.mid", "timed out after 1 s")]
    assert load_dataset(tmp_path / "d.npz").names == [f"in/{n}.mid" for n in "abdegh"]


def test_folders_named_train_valid_test_keep_their_split(tmp_path):
    root = tmp_path / "data"
    make_folder(root, ["train/a.mid", "Valid/deep/b.mid", "validation/c.mid", "TEST/d.mid",
                       "test/train/e.mid"])
    prepare_dataset([root], tmp_path / "d.npz")
    dataset = load_dataset(tmp_path / "d.npz")
    assert dict(zip(dataset.names, dataset.splits)) == {
        "data/TEST/d.mid": "test", "data/Valid/deep/b.mid": "valid", "data/test/train/e.mid": "train",
        "data/train/a.mid": "train", "data/validation/c.mid": "valid"}
    prepare_dataset([root / "TEST"], tmp_path / "t.npz")  # the given folder's own name counts too
    assert load_dataset(tmp_path / "t.npz").splits == ["test"]


def test_hash_split_does_not_move_pieces_when_files_are_added(tmp_path):
    root = make_folder(tmp_path / "in", [f"p{i:02d}.mid" for i in range(30)])
    prepare_dataset([root], tmp_path / "1.npz", workers=1)
    before = load_dataset(tmp_path / "1.npz")
    make_folder(root, [f"q{i:02d}.mid" for i in range(15)])
    prepare_dataset([root], tmp_path / "2.npz", workers=1)
    after = dict(zip(load_dataset(tmp_path / "2.npz").names, load_dataset(tmp_path / "2.npz").splits))
    assert all(after[name] == split for name, split in zip(before.names, before.splits))
    assert len(after) == 45


def test_hash_split_follows_the_fractions():
    splits = [hash_split(f"folder/piece{i}.mid", (0.8, 0.1, 0.1)) for i in range(20000)]
    assert abs(splits.count("train") / 20000 - 0.8) < 0.01
    assert abs(splits.count("test") / 20000 - 0.1) < 0.01
    assert {hash_split(f"x{i}", (0, 0, 1)) for i in range(100)} == {"test"}


def test_a_single_midi_file_can_be_prepared(tmp_path):
    path = write_midi(tmp_path / "one.midi", PIECE)
    summary = prepare_dataset([path], tmp_path / "d.npz", split_fractions=(1, 0, 0))
    assert summary.files_found == 1 and summary.pieces_per_split["train"] == 1
    stats = dataset_statistics(load_dataset(tmp_path / "d.npz"))
    assert stats["pitch_range"] == (48, 72)
    assert stats["splits"]["train"] == {"pieces": 1, "frames": 16, "mean_notes_per_frame": 2.0}
    assert stats["splits"]["test"] == {"pieces": 0, "frames": 0, "mean_notes_per_frame": 0.0}
    assert stats["frames_per_quarter"] == 2


# ---- user errors

@pytest.mark.parametrize("spec", ["0.8,0.2", "0.5,0.5,0.5", "-0.1,0.6,0.5", "a,b,c", "0.8,0.1,0.1,0"])
def test_bad_split_specs_are_user_errors(spec):
    with pytest.raises(UserError):
        parse_split_spec(spec)


def test_good_split_spec():
    assert parse_split_spec(" 0.7, 0.2 ,0.1") == (0.7, 0.2, 0.1)
    assert parse_split_spec("1,0,0") == (1.0, 0.0, 0.0)


@pytest.mark.parametrize("case", ["missing path", "folder without MIDI"])
def test_cli_input_errors_are_one_line_and_exit_2(tmp_path, case):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no music here")
    target = tmp_path / ("nowhere" if case == "missing path" else "empty")
    result = run_cli("prepare", target, "-o", tmp_path / "d.npz")
    assert_one_line_error(result)
    assert ("no such file" if case == "missing path" else "no MIDI files") in result.stderr


def test_unwritable_output_is_a_user_error_before_any_parsing(tmp_path):
    make_folder(tmp_path / "in", ["a.mid"])
    (tmp_path / "blocker").write_text("a file where a folder should be")
    with pytest.raises(UserError, match="cannot write"):
        prepare_dataset([tmp_path / "in"], tmp_path / "blocker" / "d.npz")
    with pytest.raises(UserError, match="is a folder"):
        prepare_dataset([tmp_path / "in"], tmp_path / "in")


def test_all_files_bad_is_a_user_error_with_the_report_written(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.mid").write_bytes(b"")
    with pytest.raises(UserError, match="none of the 1 MIDI files"):
        prepare_dataset([tmp_path / "in"], tmp_path / "d.npz", report=tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["skipped"] == [
        {"file": "in/x.mid", "reason": "empty file"}]


def test_no_paths_means_the_bundled_corpus(tmp_path, monkeypatch):
    assert corpus.bundled_corpus_dir().is_dir()
    monkeypatch.setattr(corpus, "bundled_corpus_dir", lambda: tmp_path / "bundled")
    (tmp_path / "bundled").mkdir()
    with pytest.raises(UserError, match="bundled corpus has no MIDI"):
        prepare_dataset([], tmp_path / "d.npz")
    make_folder(tmp_path / "bundled", ["chorale.mid"])
    summary = prepare_dataset([], tmp_path / "d.npz")
    assert summary.files_found == 1 and summary.source == "bundled corpus"
