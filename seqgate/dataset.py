"""The dataset file: the one noun every stage reads (prepare writes it; train, evaluate, compare read it).

A numpy .npz (read with allow_pickle=False, so a stranger's file cannot run code) that stores the
binary 88-key roll sparsely, CSR style:

  pitches        uint8  (n_notes,)        key index 0..87 (MIDI pitch 21 + k) of every sounding key,
                                          frame by frame, low to high within a frame
  frame_counts   uint8  (n_frames,)       how many keys sound in each frame (format 1 stored
                                          int64 frame_offsets instead; both are read)
  piece_offsets  int64  (n_pieces + 1,)   piece p is frames piece_offsets[p]:piece_offsets[p+1]
  split          uint8  (n_pieces,)       0 train, 1 valid, 2 test
  names          str    (n_pieces,)       where each piece came from (relative path or benchmark id)
  tempos         float64 (n_pieces,)      source tempo (qpm) of each piece, NaN where unknown
  programs       int16  (n_pieces,)       General MIDI program of each piece, -1 where unknown
  meta           str    ()                JSON: frames_per_quarter, lowest_pitch, n_keys, source,
                                          seqgate_version, created,
                                          drums / transpose_to_c (how MIDI was read),
                                          benchmark (its name, for a known .mat/.pickle)
"""

from __future__ import annotations

import hashlib
import json
from array import array
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from seqgate import __version__
from seqgate.errors import UserError
from seqgate.files import atomic_write
from seqgate.roll import LOWEST_PITCH, N_KEYS

SPLITS = ("train", "valid", "test")
# 2: frame_counts (uint8) replace frame_offsets (int64); tempos and programs are arrays (in 1,
# lists in the JSON). Both are read; in memory, meta["tempos"] / meta["programs"] are lists.
FORMAT_VERSION = 2
PER_PIECE_META = {"tempos": (np.float64, np.nan), "programs": (np.int16, -1)}  # dtype, unknown
# `seqgate prepare` writes here and `seqgate train` reads from here when given no options.
DEFAULT_DATASET = Path("seqgate-data.npz")

class Dataset:
    """Pieces as sparse rolls, as the file holds them: memory grows with the notes, not frames x 88.

    pitches       uint8 (n_notes,)   the key index (0..87) of every sounding key, frame by frame
    frame_counts  uint8 (n_frames,)  how many keys sound in each frame (at most 88)
    lengths       int64 (n_pieces,)  frames per piece, pieces one after another
    splits, names                    one per piece
    Dense (frames, 88) rolls are made only for what is asked: one piece (roll), a split of a small
    corpus (split), or a batch (batches.py).
    """

    def __init__(self, pitches: np.ndarray, frame_counts: np.ndarray, lengths: np.ndarray,
                 splits: list[str], names: list[str], meta: dict | None = None):
        self.pitches = np.asarray(pitches, dtype=np.uint8)
        self.frame_counts = np.asarray(frame_counts, dtype=np.uint8)
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.splits, self.names, self.meta = list(splits), list(names), dict(meta or {})
        self.frame_starts = np.zeros(len(self.lengths) + 1, dtype=np.int64)
        np.cumsum(self.lengths, out=self.frame_starts[1:])
        # Notes per piece without a running sum over every frame (8 bytes a frame).
        notes = np.zeros(len(self.lengths), dtype=np.int64)
        filled = self.lengths > 0
        if filled.any():
            notes[filled] = np.add.reduceat(self.frame_counts, self.frame_starts[:-1][filled], dtype=np.int64)
        self.note_starts = np.zeros(len(self.lengths) + 1, dtype=np.int64)
        np.cumsum(notes, out=self.note_starts[1:])

    @classmethod
    def from_rolls(cls, rolls: list[np.ndarray], splits: list[str], names: list[str],
                   meta: dict | None = None) -> Dataset:
        """From dense (frames, 88) rolls, one per piece."""
        parts = [sparse_roll(roll) for roll in rolls]
        return cls(np.concatenate([p for p, _ in parts]) if parts else np.zeros(0, np.uint8),
                   np.concatenate([c for _, c in parts]) if parts else np.zeros(0, np.uint8),
                   np.array([len(roll) for roll in rolls], dtype=np.int64), splits, names, meta)

    def __len__(self) -> int:
        return len(self.lengths)

    def roll(self, piece: int, start: int = 0, end: int | None = None) -> np.ndarray:
        """Frames start..end of one piece as a dense bool (frames, 88) roll."""
        end = int(self.lengths[piece]) if end is None else end
        counts, notes = self.window(piece, start, end)
        roll = np.zeros((end - start, N_KEYS), dtype=bool)
        roll[np.repeat(np.arange(end - start), counts), notes] = True
        return roll

    def window(self, piece: int, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """(keys sounding per frame, their key indices) of frames start..end of one piece."""
        first = self.frame_starts[piece]
        skip = int(self.frame_counts[first:first + start].sum(dtype=np.int64))
        counts = self.frame_counts[first + start:first + end]
        begin = self.note_starts[piece] + skip
        return counts, self.pitches[begin:begin + int(counts.sum(dtype=np.int64))]

    def indices(self, split: str) -> list[int]:
        """The pieces of one split ('train', 'valid' or 'test'), in file order."""
        if split not in SPLITS:
            raise UserError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        return [i for i, s in enumerate(self.splits) if s == split]

    def split(self, name: str) -> list[np.ndarray]:
        """The dense rolls of one split: for small corpora and tests; stages use indices()."""
        return [self.roll(i) for i in self.indices(name)]

    @property
    def rolls(self) -> list[np.ndarray]:
        return [self.roll(i) for i in range(len(self))]

    def split_names(self, name: str) -> list[str]:
        return [self.names[i] for i in self.indices(name)]

    def frames(self, pieces) -> int:
        return int(self.lengths[list(pieces)].sum())

    def key_counts(self, pieces) -> np.ndarray:
        """How often each key sounds over the given pieces: (88,) int64."""
        counts = np.zeros(N_KEYS, dtype=np.int64)
        for piece in pieces:
            counts += np.bincount(self.pitches[self.note_starts[piece]:self.note_starts[piece + 1]],
                                  minlength=N_KEYS)
        return counts

    def key_range(self, piece: int) -> tuple[int, int] | None:
        """The lowest and highest key index sounding in a piece, or None when it is silent."""
        notes = self.pitches[self.note_starts[piece]:self.note_starts[piece + 1]]
        return (int(notes.min()), int(notes.max())) if len(notes) else None

    @property
    def frames_per_quarter(self) -> float | None:
        return self.meta.get("frames_per_quarter")

    def roll_format(self) -> dict:
        """What a model trained on this data expects of its input; compared before evaluating."""
        return {
            "n_keys": int(self.meta.get("n_keys", N_KEYS)),
            "lowest_pitch": int(self.meta.get("lowest_pitch", LOWEST_PITCH)),
            "frames_per_quarter": self.meta.get("frames_per_quarter"),
        }


def sparse_roll(roll: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A dense (frames, 88) roll -> (key indices of its sounding keys, keys sounding per frame)."""
    roll = np.asarray(roll, dtype=bool)
    # Flat indices are sorted by frame, then key; on a 1-D array this is ~3x faster than a 2-D
    # np.nonzero, which matters for a corpus of millions of frames.
    flat = np.flatnonzero(roll)
    return (flat % N_KEYS).astype(np.uint8), np.count_nonzero(roll, axis=1).astype(np.uint8)


def save_dataset(dataset: Dataset, path: str | Path) -> dict:
    """Write an in-memory dataset atomically (through DatasetWriter, the one writer of the format);
    returns DatasetWriter.finish's counts."""
    with DatasetWriter(path) as writer:
        writer.add_dataset(dataset)
        return writer.finish(dataset.meta, dataset.names)


class DatasetWriter:
    """Writes a dataset file piece by piece, in any order, holding no piece's notes in memory.

    add() appends a piece's key indices and frame counts to two scratch files beside the output;
    finish() writes the .npz with the pieces in the order of their `position`, copying each from
    the scratch files, and renames it into place. Memory grows with the number of pieces (41 bytes
    each, and the caller's names), never with their frames, so `prepare` runs in bounded memory on
    any corpus. Leaving the `with` block without finish() removes the scratch files, writes nothing.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._scratch = tempfile.TemporaryDirectory(prefix=f".{self.path.name}.", dir=self.path.parent)
        except OSError as error:
            raise UserError(f"cannot write {self.path}: {error.strerror or error}") from None
        folder = Path(self._scratch.name)
        self._notes = open(folder / "pitches", "w+b")
        self._counts = open(folder / "frame_counts", "w+b")
        # Per piece, in arrival order (so its place in each scratch file is the sum of those
        # before it): its position in the file, notes, frames and split code; 21 bytes a piece.
        self._positions, self._notes_per_piece, self._frames_per_piece = array("i"), array("q"), array("q")
        self._splits = array("B")

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc) -> None:
        self._notes.close()
        self._counts.close()
        self._scratch.cleanup()

    def __len__(self) -> int:
        return len(self._splits)

    def add(self, position: int, pitches: np.ndarray, frame_counts: np.ndarray, split: str) -> None:
        """One piece, sparse as Dataset holds it; `position` orders the pieces in the file."""
        self._positions.append(position)
        self._notes_per_piece.append(len(pitches))
        self._frames_per_piece.append(len(frame_counts))
        self._splits.append(SPLITS.index(split))
        self._notes.write(np.ascontiguousarray(pitches, dtype=np.uint8).tobytes())
        self._counts.write(np.ascontiguousarray(frame_counts, dtype=np.uint8).tobytes())

    def add_dataset(self, dataset: Dataset) -> None:
        """Every piece of an in-memory dataset, its position its index there."""
        for piece in range(len(dataset)):
            frame_counts, pitches = dataset.window(piece, 0, int(dataset.lengths[piece]))
            self.add(piece, pitches, frame_counts, dataset.splits[piece])

    def finish(self, meta: dict, names) -> dict:
        """Write the file; names[position] names each piece, and meta's tempos and programs, when
        given, hold a value (or None) per position. Returns {"pieces": {split: n}, "frames":
        {split: n}}."""
        positions = np.frombuffer(self._positions, dtype=np.int32)
        notes = np.frombuffer(self._notes_per_piece, dtype=np.int64)
        frames = np.frombuffer(self._frames_per_piece, dtype=np.int64)
        order = np.argsort(positions, kind="stable")
        lengths = frames[order]
        piece_offsets = np.zeros(len(order) + 1, dtype=np.int64)
        np.cumsum(lengths, out=piece_offsets[1:])
        split_codes = np.frombuffer(self._splits, dtype=np.uint8)[order]
        meta = {**meta, "format_version": FORMAT_VERSION, "n_keys": N_KEYS,
                "lowest_pitch": LOWEST_PITCH, "seqgate_version": __version__}
        per_piece = {key: _per_piece_array(meta.pop(key, None), positions, key) for key in PER_PIECE_META}
        self._notes.flush()
        self._counts.flush()
        # np.savez would append ".npz" to a bare name; a file handle keeps the name as given.
        # zlib level 1: ~5x faster to write than np.savez_compressed, ~4% larger; np.load reads it.
        with atomic_write(self.path, "wb") as handle, \
                zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            _copy_member(archive, "pitches", self._notes, (np.cumsum(notes) - notes)[order], notes[order])
            _copy_member(archive, "frame_counts", self._counts, (np.cumsum(frames) - frames)[order], lengths)
            _names_member(archive, names, positions[order])
            for name, array_ in {"piece_offsets": piece_offsets, "split": split_codes,
                                 **{key: values[order] for key, values in per_piece.items()},
                                 "meta": np.array(json.dumps(meta))}.items():
                with archive.open(name + ".npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, array_, allow_pickle=False)
        return {"pieces": {s: int((split_codes == code).sum()) for code, s in enumerate(SPLITS)},
                "frames": {s: int(lengths[split_codes == code].sum()) for code, s in enumerate(SPLITS)}}


def _per_piece_array(values, positions: np.ndarray, key: str) -> np.ndarray:
    """A per-piece metadata list or array (None / NaN / -1 where unknown), indexed by position,
    as the stored array's dtype, in arrival order of the pieces."""
    dtype, unknown = PER_PIECE_META[key]
    if values is None:
        return np.full(len(positions), unknown, dtype=dtype)
    if not isinstance(values, np.ndarray):
        values = np.array([unknown if v is None else v for v in values], dtype=dtype)
    return values.astype(dtype, copy=False)[positions]


def _copy_member(archive: zipfile.ZipFile, name: str, scratch, starts: np.ndarray, sizes: np.ndarray) -> None:
    """A uint8 .npy member made of the scratch file's (start, size) extents, one piece at a time."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
              "shape": (int(sizes.sum()),)}
    with archive.open(name + ".npy", "w", force_zip64=True) as member:
        np.lib.format.write_array_header_1_0(member, header)
        for piece in range(len(starts)):
            scratch.seek(int(starts[piece]))
            member.write(scratch.read(int(sizes[piece])))


def _names_member(archive: zipfile.ZipFile, names, positions: np.ndarray, chunk: int = 4096) -> None:
    """names[p] for p in positions as one fixed-width unicode .npy member, written a chunk at a
    time: a whole array would hold 4 bytes x the longest name for every piece at once."""
    width = max((len(names[p]) for p in positions), default=1) or 1
    dtype = np.dtype(f"<U{width}")
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (len(positions),)}
    with archive.open("names.npy", "w", force_zip64=True) as member:
        np.lib.format.write_array_header_1_0(member, header)
        for start in range(0, len(positions), chunk):
            member.write(np.array([names[p] for p in positions[start:start + chunk].tolist()], dtype=dtype).tobytes())


def load_dataset(path: str | Path) -> Dataset:
    """Read a dataset file written by save_dataset (format 2, or format 1 with frame offsets);
    any problem is a one-line UserError."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"no dataset at {path}; run `seqgate prepare` first")
    try:
        with np.load(path, allow_pickle=False) as data:
            pitches = data["pitches"]
            if "frame_counts" in data.files:
                frame_counts = data["frame_counts"]
            else:  # format 1: int64 offsets, 8 bytes a frame; counts take one
                frame_counts = np.diff(data["frame_offsets"]).astype(np.uint8)
            piece_offsets = data["piece_offsets"]
            split_codes = data["split"]
            names = [str(n) for n in data["names"]]
            meta = json.loads(str(data["meta"]))
            for key, (_, unknown) in PER_PIECE_META.items():
                if key in data.files:  # format 2; format 1 kept these lists in the JSON
                    values = data[key]
                    missing = np.isnan(values) if values.dtype.kind == "f" else values == unknown
                    meta[key] = [None if m else v for v, m in zip(values.tolist(), missing.tolist())]
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as error:
        raise UserError(f"{path} is not a seqgate dataset file ({error})") from None
    return Dataset(pitches, frame_counts, np.diff(piece_offsets),
                   [SPLITS[int(c)] for c in split_codes], names, meta)


def dataset_statistics(dataset: Dataset) -> dict:
    """Pieces, frames and mean sounding notes per frame for each split, and the pitch range."""
    splits = {}
    for split in SPLITS:
        pieces = dataset.indices(split)
        frames = dataset.frames(pieces)
        notes = int(sum(dataset.note_starts[p + 1] - dataset.note_starts[p] for p in pieces))
        splits[split] = {"pieces": len(pieces), "frames": frames,
                         "mean_notes_per_frame": notes / frames if frames else 0.0}
    keys = np.flatnonzero(np.bincount(dataset.pitches, minlength=N_KEYS))
    pitch_range = (int(keys[0]) + LOWEST_PITCH, int(keys[-1]) + LOWEST_PITCH) if len(keys) else None
    return {"splits": splits, "pitch_range": pitch_range,
            "frames_per_quarter": dataset.meta.get("frames_per_quarter"),
            "source": dataset.meta.get("source")}


def dataset_fingerprint(dataset: Dataset) -> str:
    """SHA-256 of what training sees: every piece's keys, split and name, and the roll format.

    The file's own bytes would change with every `prepare` (it stores a creation time), so compare
    uses this to tell whether a finished run was trained on the same corpus.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps(dataset.roll_format(), sort_keys=True).encode())
    for piece, (split, name) in enumerate(zip(dataset.splits, dataset.names)):
        first, last = dataset.frame_starts[piece], dataset.frame_starts[piece + 1]
        digest.update(f"{split}\0{name}\0{last - first}\0".encode())
        digest.update(dataset.frame_counts[first:last].tobytes())
        digest.update(dataset.pitches[dataset.note_starts[piece]:dataset.note_starts[piece + 1]].tobytes())
    return digest.hexdigest()
