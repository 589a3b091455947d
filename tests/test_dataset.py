"""The dataset file: a sparse round trip, the streaming writer, format 1, refusal of what is not
one, and the fingerprint."""

import json

import numpy as np
import pytest

from seqgate.data.dataset import Dataset, dataset_fingerprint, load_dataset
from seqgate.data.writer import DatasetWriter, save_dataset
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


@pytest.mark.parametrize("order", [(2, 0, 3, 1), (2, 3, 0, 1), (0, 1, 2, 3)])
@pytest.mark.parametrize("block", [1 << 24, 3], ids=["block", "3-byte-blocks"])
def test_the_writer_puts_pieces_added_in_any_order_in_position_order(tmp_path, monkeypatch, order, block):
    from seqgate.data import writer as dataset_writer

    monkeypatch.setattr(dataset_writer, "COPY_BLOCK", block)  # runs of pieces copied a block at a time
    original = small_dataset()
    original.meta["tempos"] = [90.0, None, 120.5, 60.0]
    original.meta["programs"] = [0, 40, None, 19]
    with DatasetWriter(tmp_path / "d.npz") as writer:
        for piece in order:  # as a pool of parsers would finish them
            frame_counts, pitches, _ = original.window(piece, 0, int(original.lengths[piece]))
            writer.add(piece, pitches, frame_counts, original.splits[piece])
        counts = writer.finish(original.meta, original.names)
    assert counts == {"pieces": {"train": 2, "valid": 1, "test": 1}, "frames": {"train": 8, "valid": 0, "test": 12}}
    loaded = load_dataset(tmp_path / "d.npz")
    assert loaded.names == original.names and loaded.splits == original.splits
    assert all(np.array_equal(loaded.roll(p), original.roll(p)) for p in range(4))
    assert loaded.meta["tempos"] == [90.0, None, 120.5, 60.0]
    assert loaded.meta["programs"] == [0, 40, None, 19]
    assert not [p for p in tmp_path.iterdir() if p.name != "d.npz"], "scratch files left behind"


def test_a_writer_left_without_finishing_writes_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with DatasetWriter(tmp_path / "d.npz") as writer:
            writer.add(0, np.array([3], np.uint8), np.array([1], np.uint8), "train")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_format_1_files_with_frame_offsets_still_load(tmp_path):
    original = small_dataset()
    rolls = original.rolls
    dense = np.concatenate(rolls)
    frame_offsets = np.concatenate([[0], np.cumsum(dense.sum(1))]).astype(np.int64)
    piece_offsets = np.concatenate([[0], np.cumsum([len(r) for r in rolls])]).astype(np.int64)
    meta = {"format_version": 1, "frames_per_quarter": 2, "tempos": [100.0, None, 80.0, 70.0]}
    np.savez(tmp_path / "old.npz", pitches=(np.flatnonzero(dense) % 88).astype(np.uint8),
             frame_offsets=frame_offsets, piece_offsets=piece_offsets,
             split=np.array([0, 1, 2, 0], np.uint8), names=np.array(original.names),
             meta=np.array(json.dumps(meta)))
    loaded = load_dataset(tmp_path / "old.npz")
    assert loaded.names == original.names and loaded.splits == original.splits
    assert all(np.array_equal(a, b) for a, b in zip(loaded.rolls, rolls))
    assert loaded.meta["tempos"] == [100.0, None, 80.0, 70.0]


def test_the_sparse_dataset_holds_a_byte_per_frame_and_per_note_not_88(tmp_path):
    rng = np.random.default_rng(2)
    rolls = [rng.random((n, 88)) < 0.05 for n in (4000, 3000)]
    save_dataset(Dataset.from_rolls(rolls, ["train", "test"], ["x", "y"]), tmp_path / "d.npz")
    loaded = load_dataset(tmp_path / "d.npz")
    notes = sum(int(r.sum()) for r in rolls)
    assert loaded.pitches.nbytes == notes and loaded.frame_counts.nbytes == 7000
    held = sum(v.nbytes for v in vars(loaded).values() if isinstance(v, np.ndarray))
    assert held <= notes + 7000 + 100, "the dataset holds more than its sparse arrays"


def test_a_grid_that_is_not_a_whole_number_of_frames_per_quarter_is_refused(tmp_path):
    """prepare writes whole grids; a file claiming 0.3 frames per quarter would have no whole bar
    for the beat measures (metrics.py), so it is refused on reading, not in the middle of train."""
    roll = np.zeros((4, 88), dtype=bool)
    roll[:, 40] = True
    save_dataset(Dataset.from_rolls([roll], ["train"], ["a"], {"frames_per_quarter": 0.3}), tmp_path / "d.npz")
    with pytest.raises(UserError, match="frames_per_quarter is 0.3"):
        load_dataset(tmp_path / "d.npz")


def test_a_member_header_with_an_unclosed_bracket_is_refused_in_one_line(tmp_path):
    """A flipped bit in a member's .npy header can leave a bracket unclosed; numpy's header parser
    then raises Python's tokenize.TokenError, which must become the usual refusal."""
    import zipfile

    path = tmp_path / "d.npz"
    save_dataset(Dataset.from_rolls([np.eye(88, dtype=bool)[:5]], ["train"], ["a"]), path)
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    raw = members["pitches.npy"]
    length = int.from_bytes(raw[8:10], "little")
    header = raw[10:10 + length].decode("latin1")
    assert ")," in header
    broken = header.replace("),", ",", 1).ljust(length)[:length]  # "(5,)," -> "(5,,": "(" never closes
    members["pitches.npy"] = raw[:10] + broken.encode("latin1") + raw[10 + length:]
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(UserError, match="not a seqgate dataset file"):
        load_dataset(path)
