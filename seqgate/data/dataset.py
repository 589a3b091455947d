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
  onsets         uint8  (n_notes,)        only in onset-aware files (`prepare --onsets`): 1 where the
                                          key of that entry of pitches is struck at that frame,
                                          0 where it is held on from the frame before; a key that
                                          did not sound in the frame before counts as struck
  meta           str    ()                JSON: frames_per_quarter, lowest_pitch, n_keys, source,
                                          seqgate_version, created,
                                          drums / transpose_to_c / onsets (how MIDI was read),
                                          benchmark (its name, for a known .mat/.pickle)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from seqgate.errors import UserError, is_number
from seqgate.data.npz import BadNpz, read_npz
from seqgate.data.roll import (LOWEST_PITCH, MAX_FRAMES_PER_QUARTER, N_KEYS, dense_roll, is_grid, sparse_onsets,
                               sparse_roll)

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
    onsets        uint8 (n_notes,)   or None: 1 where the key is struck at that frame (an
                                     onset-aware dataset, `prepare --onsets`)
    Dense (frames, 88) rolls are made only for what is asked: one piece (roll), a split of a small
    corpus (split), or a batch (batches.py).
    """

    def __init__(self, pitches: np.ndarray, frame_counts: np.ndarray, lengths: np.ndarray,
                 splits: list[str], names: list[str], meta: dict | None = None,
                 onsets: np.ndarray | None = None):
        self.pitches = np.asarray(pitches, dtype=np.uint8)
        self.onsets = None if onsets is None else np.asarray(onsets, dtype=np.uint8)
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
                   meta: dict | None = None, struck: list[np.ndarray] | None = None) -> Dataset:
        """From dense (frames, 88) rolls, one per piece; struck: the keys struck at each frame of
        each piece, for an onset-aware dataset."""
        parts = [sparse_roll(roll) for roll in rolls]
        onsets = None
        if struck is not None:
            onsets = np.concatenate([sparse_onsets(r, s) for r, s in zip(rolls, struck)] or [np.zeros(0, np.uint8)])
        return cls(np.concatenate([p for p, _ in parts]) if parts else np.zeros(0, np.uint8),
                   np.concatenate([c for _, c in parts]) if parts else np.zeros(0, np.uint8),
                   np.array([len(roll) for roll in rolls], dtype=np.int64), splits, names, meta, onsets)

    def __len__(self) -> int:
        return len(self.lengths)

    def roll(self, piece: int, start: int = 0, end: int | None = None) -> np.ndarray:
        """Frames start..end of one piece as a dense bool (frames, 88) roll."""
        end = int(self.lengths[piece]) if end is None else end
        counts, notes, _ = self.window(piece, start, end)
        return dense_roll(notes, counts)

    def struck(self, piece: int, start: int = 0, end: int | None = None) -> np.ndarray | None:
        """Frames start..end of one piece as a bool (frames, 88) roll of the keys struck at each
        frame; None for a dataset without onsets."""
        if self.onsets is None:
            return None
        end = int(self.lengths[piece]) if end is None else end
        counts, notes, onsets = self.window(piece, start, end)
        return dense_roll(notes, counts, onsets)

    def window(self, piece: int, start: int, end: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(keys sounding per frame, their key indices, their onset bits or None for a dataset
        without onsets) of frames start..end of one piece."""
        first = self.frame_starts[piece]
        skip = int(self.frame_counts[first:first + start].sum(dtype=np.int64))
        counts = self.frame_counts[first + start:first + end]
        begin = self.note_starts[piece] + skip
        notes = slice(begin, begin + int(counts.sum(dtype=np.int64)))
        return counts, self.pitches[notes], None if self.onsets is None else self.onsets[notes]

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
    def frames_per_quarter(self) -> int | None:
        return self.meta.get("frames_per_quarter")

    def roll_format(self) -> dict:
        """What a model trained on this data expects of its input; compared before evaluating.
        "onsets" is there only for onset-aware data, so older runs' formats stay as they were."""
        found = {
            "n_keys": int(self.meta.get("n_keys", N_KEYS)),
            "lowest_pitch": int(self.meta.get("lowest_pitch", LOWEST_PITCH)),
            "frames_per_quarter": self.meta.get("frames_per_quarter"),
        }
        return {**found, "onsets": True} if self.onsets is not None else found


# Every array a dataset file may hold: (dtype as numpy writes it, without byte order; dimensions).
FILE_ARRAYS = {"pitches": ("u1", 1), "frame_counts": ("u1", 1), "frame_offsets": ("i8", 1),
               "piece_offsets": ("i8", 1), "split": ("u1", 1), "names": ("U", 1), "meta": ("U", 0),
               "tempos": ("f8", 1), "programs": ("i2", 1), "onsets": ("u1", 1)}
# What the metadata's known keys may hold (None is always allowed); other keys are kept as they are.
META_TYPES = {"frames_per_quarter": (int,), "n_keys": (int,), "lowest_pitch": (int,),
              "source": (str,), "benchmark": (str,), "created": (str,), "seqgate_version": (str,),
              "format_version": (int,), "drums": (bool,), "transpose_to_c": (bool,),
              "onsets": (bool,)}


def load_dataset(path: str | Path) -> Dataset:
    """Read a dataset file written by save_dataset (format 2, or format 1 with frame offsets).

    The file may come from a stranger: every array is checked against the format (dtypes, shapes,
    offsets from 0, never decreasing, ending at the stored notes and frames, keys on the keyboard,
    known splits, a name per piece, metadata types) before anything is built from it, and nothing
    is allocated beyond what the file's arrays hold. Any problem is a one-line UserError.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"no dataset at {path}; run `seqgate prepare` first")
    try:
        arrays = read_npz(path, FILE_ARRAYS, {"pitches", "piece_offsets", "split", "names", "meta"})
        if ("frame_counts" in arrays) == ("frame_offsets" in arrays):
            raise BadNpz("needs exactly one of frame_counts (format 2) and frame_offsets (format 1)")
        meta = json.loads(str(arrays["meta"][()]))
        dataset = _checked_dataset(arrays, meta)
    except (BadNpz, ValueError) as error:  # json's errors are ValueErrors
        raise UserError(f"{path} is not a seqgate dataset file ({error})") from None
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror or error}") from None
    return dataset


def _checked_dataset(arrays: dict, meta) -> Dataset:
    """A Dataset from a file's arrays once they agree with each other; BadNpz says where not."""
    pitches = arrays["pitches"]
    if "frame_counts" in arrays:
        frame_counts = arrays["frame_counts"]
    else:  # format 1: int64 offsets, 8 bytes a frame; counts take one
        offsets = arrays["frame_offsets"]
        _check_offsets(offsets, len(pitches), "frame_offsets", "notes")
        steps = np.diff(offsets)
        if len(steps) and steps.max() > N_KEYS:
            raise BadNpz(f"a frame in frame_offsets holds more than {N_KEYS} keys")
        frame_counts = steps.astype(np.uint8)
    if len(frame_counts) and frame_counts.max() > N_KEYS:
        raise BadNpz(f"a frame holds {int(frame_counts.max())} keys, more than {N_KEYS}")
    if int(frame_counts.sum(dtype=np.int64)) != len(pitches):
        raise BadNpz(f"frame_counts add up to {int(frame_counts.sum(dtype=np.int64)):,} notes, "
                     f"the file holds {len(pitches):,}")
    if len(pitches) and pitches.max() >= N_KEYS:
        raise BadNpz(f"a key index of {int(pitches.max())}, outside 0..{N_KEYS - 1}")
    onsets = arrays.get("onsets")
    if onsets is not None and len(onsets) != len(pitches):
        raise BadNpz(f"{len(onsets):,} onset bits for {len(pitches):,} notes")
    if onsets is not None and len(onsets) and onsets.max() > 1:
        raise BadNpz(f"an onset bit of {int(onsets.max())}; the bits are 0 and 1")
    piece_offsets = arrays["piece_offsets"]
    _check_offsets(piece_offsets, len(frame_counts), "piece_offsets", "frames")
    n_pieces = len(piece_offsets) - 1
    for name in ("split", "names", *PER_PIECE_META):
        if name in arrays and len(arrays[name]) != n_pieces:
            raise BadNpz(f"{len(arrays[name]):,} entries in {name} for {n_pieces:,} pieces")
    split_codes = arrays["split"]
    if n_pieces and split_codes.max() >= len(SPLITS):
        raise BadNpz(f"a split code of {int(split_codes.max())}; the codes are 0..{len(SPLITS) - 1}")
    meta = _checked_meta(meta, n_pieces)
    if meta.get("onsets") and onsets is None:
        raise BadNpz("its metadata says it holds onsets, but it has no onsets array")
    for key, (_, unknown) in PER_PIECE_META.items():
        if key in arrays:  # format 2; format 1 kept these lists in the JSON
            values = arrays[key]
            missing = np.isnan(values) if values.dtype.kind == "f" else values == unknown
            meta[key] = [None if m else v for v, m in zip(values.tolist(), missing.tolist())]
    return Dataset(pitches, frame_counts, np.diff(piece_offsets), [SPLITS[c] for c in split_codes.tolist()],
                   arrays["names"].tolist(), meta, onsets)


def _check_offsets(offsets: np.ndarray, end: int, name: str, what: str) -> None:
    if len(offsets) == 0 or offsets[0] != 0:
        raise BadNpz(f"{name} must start at 0")
    if len(offsets) > 1 and (np.diff(offsets) < 0).any():
        raise BadNpz(f"{name} decrease")
    if offsets[-1] != end:
        raise BadNpz(f"{name} end at {int(offsets[-1]):,}, the file holds {end:,} {what}")


def _checked_meta(meta, n_pieces: int) -> dict:
    if not isinstance(meta, dict):
        raise BadNpz("its metadata is not a JSON object")
    for key, types in META_TYPES.items():
        value = meta.get(key)
        if value is not None and (not isinstance(value, types) or (bool not in types and isinstance(value, bool))):
            raise BadNpz(f"metadata {key} is {value!r}")
    if meta.get("n_keys", N_KEYS) != N_KEYS or meta.get("lowest_pitch", LOWEST_PITCH) != LOWEST_PITCH:
        raise BadNpz(f"rolls of {meta.get('n_keys')} keys from pitch {meta.get('lowest_pitch')}; "
                     f"seqgate reads {N_KEYS} from {LOWEST_PITCH}")
    grid = meta.get("frames_per_quarter")
    if grid is not None and not is_grid(grid):
        raise BadNpz(f"metadata frames_per_quarter is {grid!r}, not a grid of 1..{MAX_FRAMES_PER_QUARTER} "
                     f"frames per quarter")
    for key in PER_PIECE_META:  # format 1's lists
        values = meta.get(key)
        if values is not None and (not isinstance(values, list) or len(values) != n_pieces or not all(
                v is None or is_number(v) for v in values)):
            raise BadNpz(f"metadata {key} is not a number or null for each of the {n_pieces:,} pieces")
    return meta


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
            "source": dataset.meta.get("source"),
            # With onsets, the notes are the struck keys; without, they cannot be told apart.
            "struck_notes": None if dataset.onsets is None else int(dataset.onsets.sum(dtype=np.int64))}


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
        if dataset.onsets is not None:
            digest.update(dataset.onsets[dataset.note_starts[piece]:dataset.note_starts[piece + 1]].tobytes())
    return digest.hexdigest()
