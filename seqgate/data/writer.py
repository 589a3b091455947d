"""Writing the dataset file (its format: dataset.py) piece by piece, in bounded memory."""

from __future__ import annotations

import contextlib
import json
import tempfile
import zipfile
from array import array
from pathlib import Path

import numpy as np

from seqgate import __version__
from seqgate.data.dataset import FORMAT_VERSION, PER_PIECE_META, SPLITS, Dataset
from seqgate.files import atomic_write, cannot_write, refusing_no_room
from seqgate.data.roll import LOWEST_PITCH, N_KEYS

COPY_BLOCK = 1 << 20  # bytes copied from a scratch file at once (1 MiB: more would show in the peak memory)


class DatasetWriter:
    """Writes a dataset file piece by piece, in any order, holding no piece's notes in memory.

    add() appends a piece's key indices and frame counts to two scratch files beside the output;
    finish() writes the .npz with the pieces in the order of their `position`, copying each from
    the scratch files, and renames it into place. Memory grows with the number of pieces (21 bytes
    each, and the caller's names), never with their frames, so `prepare` runs in bounded memory on
    any corpus. Leaving the `with` block without finish() removes the scratch files, writes nothing.
    """

    def __init__(self, path: str | Path, onsets: bool = False):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._scratch = tempfile.TemporaryDirectory(prefix=f".{self.path.name}.", dir=self.path.parent)
        except OSError as error:
            raise cannot_write(self.path, error) from None
        folder = Path(self._scratch.name)
        self._notes = open(folder / "pitches", "w+b")
        self._counts = open(folder / "frame_counts", "w+b")
        # An onset-aware dataset's onset bits, one a note, beside the notes in the same order.
        self._onsets = open(folder / "onsets", "w+b") if onsets else None
        # Per piece, in arrival order (so its place in each scratch file is the sum of those
        # before it): its position in the file, notes, frames and split code; 21 bytes a piece.
        self._positions, self._notes_per_piece, self._frames_per_piece = array("i"), array("q"), array("q")
        self._splits = array("B")

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc) -> None:
        # finish() flushed what it read back; a close that fails now (a full disk on the way out
        # of an error) would only lose scratch data, and must not keep the scratch folder.
        for scratch in (self._notes, self._counts, self._onsets):
            if scratch is not None:
                with contextlib.suppress(OSError):
                    scratch.close()
        self._scratch.cleanup()

    def __len__(self) -> int:
        return len(self._splits)

    def add(self, position: int, pitches: np.ndarray, frame_counts: np.ndarray, split: str,
            onsets: np.ndarray | None = None) -> None:
        """One piece, sparse as Dataset holds it; `position` orders the pieces in the file.
        onsets: its onset bits, one a note, for a writer made with onsets=True."""
        self._append([position], [len(pitches)], [len(frame_counts)], [split], pitches, frame_counts, onsets)

    def add_pieces(self, positions, rolls, splits: list[str]) -> None:
        """Several pieces at once, as roll.read_midi_batch gives them (a roll.SparseRolls):
        piece i goes to positions[i], in splits[i]."""
        self._append(positions, rolls.notes_per_piece, rolls.frames_per_piece, splits, rolls.pitches,
                     rolls.frame_counts, rolls.onsets)

    def _append(self, positions, notes_per_piece, frames_per_piece, splits, pitches, frame_counts, onsets) -> None:
        if (onsets is None) != (self._onsets is None):
            raise ValueError("onset bits are given for every piece of an onset-aware dataset, and only then")
        self._positions.frombytes(np.asarray(positions, dtype=np.int32).tobytes())
        self._notes_per_piece.frombytes(np.asarray(notes_per_piece, dtype=np.int64).tobytes())
        self._frames_per_piece.frombytes(np.asarray(frames_per_piece, dtype=np.int64).tobytes())
        self._splits.frombytes(bytes(SPLITS.index(split) for split in splits))
        with refusing_no_room(self.path):  # the scratch files fill the output's disk
            self._notes.write(np.ascontiguousarray(pitches, dtype=np.uint8).tobytes())
            self._counts.write(np.ascontiguousarray(frame_counts, dtype=np.uint8).tobytes())
            if onsets is not None:
                self._onsets.write(np.ascontiguousarray(onsets, dtype=np.uint8).tobytes())

    def add_dataset(self, dataset: Dataset) -> None:
        """Every piece of an in-memory dataset, its position its index there."""
        for piece in range(len(dataset)):
            frame_counts, pitches, onsets = dataset.window(piece, 0, int(dataset.lengths[piece]))
            self.add(piece, pitches, frame_counts, dataset.splits[piece], onsets)

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
        meta = {**meta, "format_version": FORMAT_VERSION, "n_keys": N_KEYS, "onsets": self._onsets is not None,
                "lowest_pitch": LOWEST_PITCH, "seqgate_version": __version__}
        per_piece = {key: _per_piece_array(meta.pop(key, None), positions, key) for key in PER_PIECE_META}
        with refusing_no_room(self.path):
            self._notes.flush()
            self._counts.flush()
            if self._onsets is not None:
                self._onsets.flush()
        # np.savez would append ".npz" to a bare name; a file handle keeps the name as given.
        # zlib level 1: ~5x faster to write than np.savez_compressed, ~4% larger; np.load reads it.
        with atomic_write(self.path, "wb") as handle, \
                zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            _copy_member(archive, "pitches", self._notes, (np.cumsum(notes) - notes)[order], notes[order])
            _copy_member(archive, "frame_counts", self._counts, (np.cumsum(frames) - frames)[order], lengths)
            if self._onsets is not None:
                _copy_member(archive, "onsets", self._onsets, (np.cumsum(notes) - notes)[order], notes[order])
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
    """A uint8 .npy member made of the scratch file's (start, size) extents, in the order given."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
              "shape": (int(sizes.sum()),)}
    # Pieces mostly arrive in file order, so runs of them lie end to end in the scratch file:
    # each run is copied in blocks of at most COPY_BLOCK bytes, not a piece at a time.
    ends = starts + sizes
    # Piece k begins a run unless it starts where piece k - 1 ends; the runs' bounds, as pieces.
    bounds = np.flatnonzero(np.r_[True, starts[1:] != ends[:-1], True]).tolist() if len(starts) else []
    with archive.open(name + ".npy", "w", force_zip64=True) as member:
        np.lib.format.write_array_header_1_0(member, header)
        for first, last in zip(bounds[:-1], bounds[1:]):
            position, end = int(starts[first]), int(ends[last - 1])
            scratch.seek(position)
            while position < end:
                block = scratch.read(min(COPY_BLOCK, end - position))
                member.write(block)
                position += len(block)


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


def save_dataset(dataset: Dataset, path: str | Path) -> dict:
    """Write an in-memory dataset atomically through DatasetWriter, the one writer of the format;
    returns DatasetWriter.finish's counts."""
    with DatasetWriter(path, onsets=dataset.onsets is not None) as writer:
        writer.add_dataset(dataset)
        return writer.finish(dataset.meta, dataset.names)
