"""`seqgate prepare`: MIDI folders and benchmark files -> one piano-roll dataset file.

MIDI files are found under the given folders (recursively), parsed to rolls in a crash- and
hang-proof worker pool (workers.py; roll.py does the reading), split by folder name
(train/valid/test) or by a hash of each file's relative path, and written as one dataset file
(dataset.py). A benchmark .mat/.pickle keeps its own splits (benchmarks.py).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from array import array
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from seqgate.data.benchmarks import BENCHMARK_SUFFIXES, read_benchmark
from seqgate.data.dataset import SPLITS
from seqgate.data.writer import DatasetWriter
from seqgate.errors import UserError
from seqgate.settings import PrepareConfig
from seqgate.files import write_json_atomic
from seqgate.data.roll import parser_error
from seqgate.data.workers import Lost, WorkerPool

MIDI_SUFFIXES = {".mid", ".midi"}
SPLIT_FOLDERS = {"train": "train", "valid": "valid", "validation": "valid", "test": "test"}
# What the parser workers run (parse_midi_chunk below), and what they start with imported.
PARSER_TASK = "seqgate.data.prepare:parse_midi_chunk"
PARSER_PRELOAD = ("symusic", "seqgate.data.roll")

@dataclass
class PrepareSummary:
    output: Path
    files_found: int
    pieces_per_split: dict[str, int]
    frames_per_split: dict[str, int]
    skipped: list[tuple[str, str]]  # (file or piece name, reason)
    dropped_out_of_range: int
    source: str


def prepare_dataset(paths: list[Path], output: Path, settings: PrepareConfig = PrepareConfig(), *,
                    report: Path | None = None, console=None) -> PrepareSummary:
    """MIDI folders/files (or one benchmark .mat/.pickle) -> a dataset file at `output`; report:
    every skipped file and its reason, as JSON."""
    from rich.console import Console

    console = console or Console(quiet=True)
    settings = settings.validate()
    paths = [Path(p) for p in paths]
    source = ", ".join(str(p) for p in paths)
    if not paths:
        paths, source = [bundled_corpus_dir()], "bundled corpus"
        if not paths[0].is_dir() or not _midi_in(paths[0]):
            raise UserError("the bundled corpus has no MIDI files; give a folder of MIDI files")
    for path in paths:
        if not path.exists():
            raise UserError(f"no such file or folder: {path}")
    output = Path(output)
    _check_writable(output)
    if report is not None:
        _check_writable(Path(report))

    benchmark = [p for p in paths if p.is_file() and p.suffix.lower() in BENCHMARK_SUFFIXES]
    if benchmark and settings.onsets:  # the .mat/.pickle rolls say only which keys sound
        raise UserError(f"{benchmark[0]} holds no onsets (benchmark rolls say only which keys sound); "
                        f"leave out --onsets")
    with DatasetWriter(output, onsets=settings.onsets) as writer:
        if benchmark:
            if len(paths) > 1:
                raise UserError(f"{benchmark[0]} is a benchmark file with its own splits; give it alone")
            if settings.transpose_to_c or settings.drums:
                console.print("[yellow]note:[/] --drums / --transpose-to-c apply to MIDI input only")
            dataset, dropped = read_benchmark(paths[0])
            writer.add_dataset(dataset)
            files_found, skipped, meta, names = 1, [], dataset.meta, dataset.names
        else:
            files = find_midi_files(paths)
            files_found, names = len(files), files.names
            skipped, dropped, meta = _parse_into(writer, files, settings, console)
            meta.update(frames_per_quarter=settings.frames_per_quarter, source=source, drums=settings.drums,
                        transpose_to_c=settings.transpose_to_c)

        if report is not None:
            write_json_atomic(report, {
                "source": source,
                "files_found": files_found,
                "pieces": len(writer),
                "skipped": [{"file": name, "reason": reason} for name, reason in skipped],
            })
        if not len(writer):
            if benchmark:
                raise UserError(f"{paths[0]} holds no pieces")
            first = "; ".join(f"{name}: {reason}" for name, reason in skipped[:2])
            raise UserError(f"none of the {files_found} MIDI files could be used ({first})")
        meta["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        counts = writer.finish(meta, names)
    return PrepareSummary(
        output=output,
        files_found=files_found,
        pieces_per_split=counts["pieces"],
        frames_per_split=counts["frames"],
        skipped=skipped,
        dropped_out_of_range=dropped,
        source=str(meta.get("source", source)),
    )


def bundled_corpus_dir() -> Path:
    """The bundled sample_midi corpus, installed as the package seqgate.sample_midi."""
    try:
        from importlib.resources import files

        folder = Path(str(files("seqgate.sample_midi")))
        if folder.is_dir():
            return folder
    except (ImportError, TypeError, ValueError):
        pass
    return Path(__file__).resolve().parents[2] / "sample_midi"  # a source checkout


# ---- finding MIDI files and their splits

class MidiFiles:
    """Every MIDI file found, sorted by name, kept compact: a corpus can hold hundreds of
    thousands of files, so each costs its relative path and a few bytes, and its full path and
    piece name are made when asked for.
    """

    def __init__(self, roots: list[str], labels: list[str | None], root_of: np.ndarray,
                 relative: list[str], split_codes: np.ndarray):
        self.roots, self.labels = roots, labels  # label: the given folder's name; None for a file
        self.root_of, self.relative, self.split_codes = root_of, relative, split_codes

    def __len__(self) -> int:
        return len(self.relative)

    def path(self, i: int) -> str:
        return os.path.join(self.roots[self.root_of[i]], self.relative[i])

    def name(self, i: int) -> str:
        label = self.labels[self.root_of[i]]
        return self.relative[i] if label is None else f"{label}/{self.relative[i]}"

    @property
    def paths(self) -> _View:
        return _View(self.path, len(self))

    @property
    def names(self) -> _View:
        return _View(self.name, len(self))


class _View:
    """A read-only sequence computed item by item: a list of every path would cost ~100 bytes a file."""

    def __init__(self, item, length: int):
        self.item, self.length = item, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        return self.item(i)


def find_midi_files(paths: list[Path]) -> MidiFiles:
    """Every MIDI file under the given folders/files, sorted by name, each file once (the same
    file reached twice, even through a hard link, counts once: under the first path given, the
    first name in order); UserError if none."""
    roots, labels, found, identities = [], [], [], array("Q")
    for root in paths:
        if root.is_dir():
            relative = _midi_in(root, identities)
            if not relative:
                raise UserError(f"no MIDI files (.mid/.midi) under {root}")
            roots.append(str(root))
            labels.append(root.resolve().name)
        elif root.suffix.lower() in MIDI_SUFFIXES:
            status = root.stat()
            identities.extend((status.st_dev, status.st_ino))
            relative = [root.name]
            roots.append(str(root.parent))
            labels.append(None)
        else:
            raise UserError(f"{root} is not a MIDI file, a folder or a benchmark .mat/.pickle")
        found.append(relative)
    _drop_repeats(found, identities)
    if len(found) == 1:  # the usual case, sorted in place: no per-file keys or tuples
        relative = found[0]
        relative.sort()
        root_of = np.zeros(len(relative), dtype=np.int32)
    else:
        merged = sorted(((root, rel) for root, rels in enumerate(found) for rel in rels),
                        key=lambda item: item[1] if labels[item[0]] is None else f"{labels[item[0]]}/{item[1]}")
        root_of = np.array([root for root, _ in merged], dtype=np.int32)
        relative = [rel for _, rel in merged]
    split_codes = np.empty(len(relative), dtype=np.uint8)
    for i, rel in enumerate(relative):
        label = labels[root_of[i]]
        split = _split_from_folders([label, *rel.split("/")[:-1]] if label is not None
                                    else [Path(roots[root_of[i]]).resolve().name])
        split_codes[i] = SPLITS.index(split) if split else len(SPLITS)
    return MidiFiles(roots, labels, root_of, relative, split_codes)


def _drop_repeats(found: list[list[str]], identities: array) -> None:
    """Keep one path per (device, inode): the first folder given, the first name in order."""
    pairs = np.frombuffer(identities, dtype=np.uint64).reshape(-1, 2)
    if len(np.unique(pairs, axis=0)) == len(pairs):
        return
    keeper: dict[tuple[int, int], tuple[int, str]] = {}
    flat = [(root, rel) for root, rels in enumerate(found) for rel in rels]
    for (root, rel), pair in zip(flat, pairs.tolist()):
        if tuple(pair) not in keeper or (root, rel) < keeper[tuple(pair)]:
            keeper[tuple(pair)] = (root, rel)
    kept = set(keeper.values())
    for root, rels in enumerate(found):
        rels[:] = [rel for rel in rels if (root, rel) in kept]


def _midi_in(folder: Path, identities: array | None = None) -> list[str]:
    """The path of every MIDI file under a folder, relative to it with "/" between parts, in the
    order found; each file's (device, inode) is appended to `identities`. Plain strings and a
    flat array from os.scandir: a Path, a tuple or a cached stat per file would cost several
    times the memory on a big corpus, and the inode comes from the listing without a stat call."""
    found = []
    pending = [("", str(folder))]
    while pending:
        prefix, directory = pending.pop()
        try:
            device = os.stat(directory).st_dev
            listing = os.scandir(directory)
        except OSError:
            continue
        with listing:
            for entry in listing:
                if entry.is_dir(follow_symlinks=False):
                    pending.append((prefix + entry.name + "/", entry.path))
                elif os.path.splitext(entry.name)[1].lower() in MIDI_SUFFIXES and entry.is_file():
                    found.append(prefix + entry.name)
                    if identities is None:
                        continue
                    if entry.is_symlink():  # the file it points to is what counts once
                        status = os.stat(entry.path)
                        identities.extend((status.st_dev, status.st_ino))
                    else:
                        identities.extend((device, entry.inode()))
    return found


def _split_from_folders(folders: list[str]) -> str | None:
    """The split named by the deepest train/valid/validation/test folder, if any."""
    for folder in reversed(folders):
        if folder.lower() in SPLIT_FOLDERS:
            return SPLIT_FOLDERS[folder.lower()]
    return None


def hash_split(key: str, fractions: tuple[float, float, float]) -> str:
    """A split that depends on the file's relative path only, so adding files moves none."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    position = int.from_bytes(digest[:8], "big") / 2.0**64  # uniform in [0, 1)
    if position < fractions[0]:
        return "train"
    return "valid" if position < fractions[0] + fractions[1] else "test"


def _check_writable(path: Path) -> None:
    """Fail before the long work, not after it, if `path` cannot be written."""
    if path.is_dir():
        raise UserError(f"cannot write {path}: it is a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as error:
        raise UserError(f"cannot write {path}: {error.strerror or error}") from None


def _parse_into(writer: DatasetWriter, files: MidiFiles, settings: PrepareConfig,
                console) -> tuple[list, int, dict]:
    """Parse every file in the worker pool, each piece going to the writer as it arrives.

    Returns (skipped (name, reason) in file order, notes dropped off the keyboard, the metadata
    with one tempo and one program per kept piece, in file order). Per file this holds a few
    bytes; the notes go straight to the writer's scratch files.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    tempos = np.full(len(files), np.nan)
    programs = np.full(len(files), -1, dtype=np.int16)
    skipped, dropped = {}, 0
    n_workers = max(1, min(settings.workers or os.cpu_count() or 1, len(files)))
    pool = WorkerPool(PARSER_TASK, files.paths, settings, n_workers, settings.file_timeout, preload=PARSER_PRELOAD)
    # No refresh thread (auto_refresh=False): the parent stays single-threaded, so replacement
    # workers can still be forked safely.
    progress = Progress("parsing MIDI", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, transient=True, auto_refresh=False)
    try:
        with progress:
            task = progress.add_task("parse", total=len(files))
            shown = time.monotonic()
            for indices, outcome in pool.results():
                if isinstance(outcome, Lost):
                    skipped[indices[0]] = lost_reason(outcome)
                else:
                    rolls, reasons = outcome
                    usable = []
                    for index, reason in zip(indices, reasons):
                        if reason is None:
                            usable.append(index)
                        else:
                            skipped[index] = reason
                    usable = np.array(usable, dtype=np.int64)
                    writer.add_pieces(usable, rolls, [_split_of(files, i, settings.split_fractions)
                                                         for i in usable.tolist()])
                    tempos[usable], programs[usable] = rolls.qpm, rolls.programs
                    dropped += int(rolls.dropped_out_of_range.sum())
                progress.advance(task, len(indices))
                if time.monotonic() - shown > 0.1:
                    progress.refresh()
                    shown = time.monotonic()
    finally:
        pool.close()
    meta = {"tempos": tempos, "programs": programs}  # by file index, as the writer's positions
    return [(files.name(i), skipped[i]) for i in sorted(skipped)], dropped, meta


def _split_of(files: MidiFiles, index: int, fractions) -> str:
    """The split of file `index`: its folder's name, or else the hash of its relative path."""
    code = int(files.split_codes[index])
    return SPLITS[code] if code < len(SPLITS) else hash_split(files.relative[index], fractions)


def lost_reason(lost: Lost) -> str:
    """What the user reads about a file whose parser crashed, hung or raised."""
    return {"crash": "crashed the parser", "timeout": lost.detail, "error": parser_error(lost.detail)}[lost.kind]


def read_midi_isolated(path: Path, frames_per_quarter: int, timeout: float = PrepareConfig.file_timeout,
                       onsets: bool = False):
    """One MIDI file read in a watched worker process, so that a file crafted to crash or hang
    the parser costs a one-line message, not the caller: a roll.SparseMidiRoll, or the reason (str)."""
    pool = WorkerPool(PARSER_TASK, [str(path)], PrepareConfig(frames_per_quarter, onsets=onsets), 1, timeout,
                      preload=PARSER_PRELOAD)
    try:
        for _, outcome in pool.results():
            if isinstance(outcome, Lost):
                return lost_reason(outcome)
            rolls, reasons = outcome
            return reasons[0] or rolls.piece(0)
    finally:
        pool.close()
    return "no result from the parser"


def parse_midi_chunk(paths: list[str], settings: PrepareConfig, starting):
    """The workers' task: a chunk of MIDI files -> (their rolls in the dataset's sparse form, one
    message for all: about 4.5 bytes a frame through the pipe and in the parent, not 88; for
    each file None, or the reason it is skipped), as roll.read_midi_batch gives them."""
    from seqgate.data.roll import read_midi_batch

    return read_midi_batch(paths, settings.frames_per_quarter, settings.drums, settings.transpose_to_c,
                           settings.onsets, starting)
