"""`seqgate prepare`: MIDI folders, bad files, crashing and hanging parsers, splits, user errors."""

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli, scale, write_midi
from seqgate.data import prepare
from seqgate.data import workers
from seqgate.data.dataset import dataset_statistics, load_dataset
from seqgate.errors import UserError
from seqgate.data.prepare import hash_split, prepare_dataset
from seqgate.settings import PrepareConfig

PIECE = [{"notes": scale(60) + [(48, 0, 8)], "program": 19}]


def make_folder(root: Path, names) -> Path:
    for name in names:
        write_midi(root / name, PIECE)
    return root


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
    prepare_dataset([tmp_path / "in"], tmp_path / "d.npz", PrepareConfig(drums=True, frames_per_quarter=4))
    dataset = load_dataset(tmp_path / "d.npz")
    assert dataset.names == ["in/x.mid", "in/y.mid"]
    assert dataset.meta["tempos"] == [96.0, 120.0] and dataset.meta["programs"][0] == 19
    assert dataset.meta["frames_per_quarter"] == 4 and dataset.meta["drums"] is True
    assert dataset.meta["transpose_to_c"] is False and "created" in dataset.meta
    assert len(dataset.rolls[0]) == 32  # 8 quarter notes at 4 frames each


@pytest.mark.parametrize("fork", [True, False], ids=["forked-workers", "fresh-interpreters"])
def test_a_crashing_or_hanging_parser_costs_only_that_file(tmp_path, monkeypatch, fork):
    monkeypatch.setattr(workers, "fork_is_safe", lambda: fork)
    monkeypatch.setenv(workers.FAULT_ENV, "crash:c.mid,hang:f.mid")
    folder = make_folder(tmp_path / "in", [f"{name}.mid" for name in "abcdefgh"])
    summary = prepare_dataset([folder], tmp_path / "d.npz", PrepareConfig(workers=2, file_timeout=1.0))
    assert summary.skipped == [("in/c.mid", "crashed the parser"), ("in/f.mid", "timed out after 1 s")]
    assert load_dataset(tmp_path / "d.npz").names == [f"in/{n}.mid" for n in "abdegh"]


@pytest.mark.parametrize("fork", [True, False], ids=["forked-workers", "fresh-interpreters"])
def test_a_crash_or_hang_inside_a_chunk_costs_only_that_file(tmp_path, monkeypatch, fork):
    """A worker answers once per chunk of files: the file it was on when it crashed or hung is
    the one lost (read from the memory it shares with the parent), the files before and after
    it in its chunk are parsed again by a fresh worker."""
    monkeypatch.setattr(workers, "fork_is_safe", lambda: fork)
    monkeypatch.setenv(workers.FAULT_ENV, "crash:f13.mid,hang:f30.mid")
    names = [f"f{i:02d}.mid" for i in range(48)]
    folder = make_folder(tmp_path / "in", names)
    chunks = []

    class Recording(workers.WorkerPool):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            chunks.append(self.chunk)

    monkeypatch.setattr(prepare, "WorkerPool", Recording)
    summary = prepare_dataset([folder], tmp_path / "d.npz", PrepareConfig(workers=1, file_timeout=1.0))
    assert chunks == [6]  # 48 files on one worker: 8 chunks of 6
    assert summary.skipped == [("in/f13.mid", "crashed the parser"), ("in/f30.mid", "timed out after 1 s")]
    dataset = load_dataset(tmp_path / "d.npz")
    assert dataset.names == [f"in/{n}" for n in names if n not in ("f13.mid", "f30.mid")]
    alone = load_dataset(prepare_dataset([folder / "f00.mid"], tmp_path / "one.npz").output)
    assert all(np.array_equal(roll, alone.rolls[0]) for roll in dataset.rolls)


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
    prepare_dataset([root], tmp_path / "1.npz", PrepareConfig(workers=1))
    before = load_dataset(tmp_path / "1.npz")
    make_folder(root, [f"q{i:02d}.mid" for i in range(15)])
    prepare_dataset([root], tmp_path / "2.npz", PrepareConfig(workers=1))
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
    summary = prepare_dataset([path], tmp_path / "d.npz", PrepareConfig(split_fractions=(1, 0, 0)))
    assert summary.files_found == 1 and summary.pieces_per_split["train"] == 1
    stats = dataset_statistics(load_dataset(tmp_path / "d.npz"))
    assert stats["pitch_range"] == (48, 72)
    assert stats["splits"]["train"] == {"pieces": 1, "frames": 16, "mean_notes_per_frame": 2.0}
    assert stats["splits"]["test"] == {"pieces": 0, "frames": 0, "mean_notes_per_frame": 0.0}
    assert stats["frames_per_quarter"] == 2


# ---- user errors

def split_fractions(spec: str) -> tuple:
    """--split as the command line reads it: parsed, then validated with the other settings."""
    return PrepareConfig(split_fractions=PrepareConfig.parse_split(spec)).validate().split_fractions


@pytest.mark.parametrize("spec", ["0.8,0.2", "0.5,0.5,0.5", "-0.1,0.6,0.5", "a,b,c", "0.8,0.1,0.1,0"])
def test_bad_split_specs_are_user_errors(spec):
    with pytest.raises(UserError):
        split_fractions(spec)


def test_a_split_spec_reads_as_three_fractions_around_spaces():
    assert split_fractions(" 0.7, 0.2 ,0.1") == (0.7, 0.2, 0.1)
    assert split_fractions("1,0,0") == (1.0, 0.0, 0.0)


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
    assert prepare.bundled_corpus_dir().is_dir()
    monkeypatch.setattr(prepare, "bundled_corpus_dir", lambda: tmp_path / "bundled")
    (tmp_path / "bundled").mkdir()
    with pytest.raises(UserError, match="bundled corpus has no MIDI"):
        prepare_dataset([], tmp_path / "d.npz")
    make_folder(tmp_path / "bundled", ["chorale.mid"])
    summary = prepare_dataset([], tmp_path / "d.npz")
    assert summary.files_found == 1 and summary.source == "bundled corpus"


def test_pieces_are_stored_in_name_order_and_a_file_reached_twice_counts_once(tmp_path):
    folder = make_folder(tmp_path / "songs", ["b.mid", "sub/a.mid", "a.mid", "c.mid"])
    (folder / "sub" / "linked.mid").hardlink_to(folder / "c.mid")  # the same file under two names
    prepare_dataset([folder, folder / "a.mid"], tmp_path / "d.npz", PrepareConfig(workers=2))
    names = load_dataset(tmp_path / "d.npz").names
    assert names == ["songs/a.mid", "songs/b.mid", "songs/c.mid", "songs/sub/a.mid"]


@pytest.mark.parametrize("grid", [0, 97])
def test_a_grid_the_dataset_reader_would_refuse_is_refused_before_parsing(tmp_path, grid):
    make_folder(tmp_path / "in", ["a.mid"])
    with pytest.raises(UserError, match=f"frames per quarter must be 1..96, not {grid}"):
        prepare_dataset([tmp_path / "in"], tmp_path / "d.npz", PrepareConfig(frames_per_quarter=grid))
    assert not (tmp_path / "d.npz").exists()
    prepare_dataset([tmp_path / "in"], tmp_path / "d.npz", PrepareConfig(frames_per_quarter=96))
    assert load_dataset(tmp_path / "d.npz").frames_per_quarter == 96


# ---- onsets

def test_prepare_onsets_keeps_each_struck_key_and_the_sounding_roll_is_unchanged(tmp_path):
    repeated = [{"notes": [(67, 0.5 * i, 0.5 * i + 0.5) for i in range(4)] + [(60, 0, 2)]}]
    for name in ("a.mid", "b.mid"):
        write_midi(tmp_path / "songs" / name, repeated)
    plain = prepare_dataset([tmp_path / "songs"], tmp_path / "plain.npz", PrepareConfig(split_fractions=(1, 0, 0)))
    aware = prepare_dataset([tmp_path / "songs"], tmp_path / "aware.npz", PrepareConfig(split_fractions=(1, 0, 0), onsets=True))
    assert plain.frames_per_split == aware.frames_per_split
    plain, aware = load_dataset(tmp_path / "plain.npz"), load_dataset(tmp_path / "aware.npz")
    assert plain.onsets is None and plain.struck(0) is None and "onsets" not in plain.roll_format()
    assert aware.meta["onsets"] is True and aware.roll_format()["onsets"] is True
    for piece in range(2):
        assert np.array_equal(aware.roll(piece), plain.roll(piece))
        struck = aware.struck(piece)
        # C4 struck once at frame 0; G4 at every one of the four eighth-note frames.
        assert np.flatnonzero(struck[:, 60 - 21]).tolist() == [0]
        assert np.flatnonzero(struck[:, 67 - 21]).tolist() == [0, 1, 2, 3]
        assert np.array_equal(aware.struck(piece, 1, 3), struck[1:3])
    # inspect says so: 2 pieces x (1 C4 + 4 G4) notes struck.
    assert dataset_statistics(aware)["struck_notes"] == 10 and dataset_statistics(plain)["struck_notes"] is None
    assert "onsets: kept, 10 notes struck" in run_cli("inspect", tmp_path / "aware.npz").stdout


def test_onsets_of_a_benchmark_file_are_refused_in_one_line(tmp_path):
    (tmp_path / "b.mat").write_bytes(b"refused before it is read")
    result = run_cli("prepare", tmp_path / "b.mat", "--onsets", "-o", tmp_path / "d.npz")
    assert_one_line_error(result)
    assert "onsets" in result.stderr


def test_a_chunk_function_that_raises_loses_only_the_file_it_was_on(tmp_path, monkeypatch):
    """A bug that escapes the reading of a chunk costs the file being read when it struck, as a
    parser error; the worker lives on and the chunk's other files are read again."""
    from seqgate.data import roll

    real = roll.read_midi_batch

    def buggy(paths, *args):
        starting = args[-1]
        for k, path in enumerate(paths):
            starting(k)
            if path.endswith("f05.mid"):
                raise RuntimeError("boom")
        return real(paths, *args)

    monkeypatch.setattr(workers, "fork_is_safe", lambda: True)  # the forked workers see the patch
    monkeypatch.setattr(roll, "read_midi_batch", buggy)
    folder = make_folder(tmp_path / "in", [f"f{i:02d}.mid" for i in range(16)])
    summary = prepare_dataset([folder], tmp_path / "d.npz", PrepareConfig(workers=1))
    assert summary.skipped == [("in/f05.mid", "parser error (RuntimeError: boom)")]
    assert len(load_dataset(tmp_path / "d.npz")) == 15


@pytest.mark.parametrize("chunk", [1, workers.MAX_CHUNK])
def test_the_pool_never_times_out_a_quick_task(tmp_path, chunk):
    """The parent reads which task a worker is on, and since when, while the worker writes it:
    a read in the middle of a write must never look like a task begun long ago (a torn read
    once made quick files "time out after 60 s" now and then)."""
    missing = [str(tmp_path / f"missing-{i}.mid") for i in range(12_000)]
    pool = workers.WorkerPool(prepare.PARSER_TASK, missing, PrepareConfig(frames_per_quarter=2), 2, 30.0,
                              chunk=chunk)
    outcomes = []
    try:
        for indices, outcome in pool.results():
            outcomes.append((len(indices), outcome))
    finally:
        pool.close()
    assert not [outcome for _, outcome in outcomes if isinstance(outcome, workers.Lost)]
    assert sum(n for n, _ in outcomes) == len(missing)
    assert {reason for _, (rolls, reasons) in outcomes for reason in reasons} == {"cannot open file"}
