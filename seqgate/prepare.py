"""`seqgate prepare`: MIDI folders and benchmark files -> one piano-roll dataset file.

MIDI files are found under the given folders (recursively), parsed to rolls in a crash- and
hang-proof worker pool (workers.py; roll.py does the reading), split by folder name
(train/valid/test) or by a hash of each file's relative path, and written as one dataset file
(dataset.py). A benchmark .mat/.pickle keeps its own splits (benchmarks.py).
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from seqgate.benchmarks import BENCHMARK_SUFFIXES, read_benchmark
from seqgate.dataset import SPLITS, Dataset, save_dataset
from seqgate.errors import UserError
from seqgate.files import write_json_atomic
from seqgate.roll import DEFAULT_FRAMES_PER_QUARTER, N_KEYS
from seqgate.workers import Lost, WorkerPool

MIDI_SUFFIXES = {".mid", ".midi"}
SPLIT_FOLDERS = {"train": "train", "valid": "valid", "validation": "valid", "test": "test"}
DEFAULT_SPLIT = (0.8, 0.1, 0.1)
DEFAULT_FILE_TIMEOUT = 60.0  # seconds one MIDI file may take before its worker is killed

@dataclass
class PrepareSummary:
    output: Path
    files_found: int
    pieces_per_split: dict[str, int]
    frames_per_split: dict[str, int]
    skipped: list[tuple[str, str]]  # (file or piece name, reason)
    dropped_out_of_range: int
    source: str


@dataclass(frozen=True)
class MidiSource:
    """One MIDI file to prepare."""

    path: Path
    name: str  # the given folder's name / relative path: shown to the user, stored as piece name
    key: str  # path relative to the given folder: what the split hash sees
    split: str | None  # from a train/valid/test folder on the way, else None


def prepare_dataset(paths: list[Path], output: Path, *,
                    frames_per_quarter: int = DEFAULT_FRAMES_PER_QUARTER,
                    drums: bool = False, transpose_to_c: bool = False,
                    split_fractions: tuple[float, float, float] = DEFAULT_SPLIT,
                    workers: int | None = None, report: Path | None = None, console=None,
                    file_timeout: float = DEFAULT_FILE_TIMEOUT) -> PrepareSummary:
    """MIDI folders/files (or one benchmark .mat/.pickle) -> a dataset file at `output`."""
    from rich.console import Console

    console = console or Console(quiet=True)
    fractions = _check_fractions(split_fractions)
    if frames_per_quarter < 1:
        raise UserError(f"frames per quarter must be at least 1, not {frames_per_quarter}")
    paths = [Path(p) for p in paths]
    source = ", ".join(str(p) for p in paths)
    if not paths:
        paths, source = [bundled_corpus_dir()], "bundled corpus"
        if not _midi_in(paths[0]):
            raise UserError("the bundled corpus has no MIDI files; give a folder of MIDI files")
    for path in paths:
        if not path.exists():
            raise UserError(f"no such file or folder: {path}")
    output = Path(output)
    _check_writable(output)
    if report is not None:
        _check_writable(Path(report))

    benchmark = [p for p in paths if p.is_file() and p.suffix.lower() in BENCHMARK_SUFFIXES]
    if benchmark:
        if len(paths) > 1:
            raise UserError(f"{benchmark[0]} is a benchmark file with its own splits; give it alone")
        if transpose_to_c or drums:
            console.print("[yellow]note:[/] --drums / --transpose-to-c apply to MIDI input only")
        dataset, dropped = read_benchmark(paths[0])
        files_found, skipped = 1, []
    else:
        sources = find_midi_files(paths)
        files_found = len(sources)
        parsed = parse_midi_files([s.path for s in sources], frames_per_quarter=frames_per_quarter,
                                  drums=drums, transpose_to_c=transpose_to_c, workers=workers,
                                  file_timeout=file_timeout, console=console)
        dataset, skipped, dropped = _assemble(sources, parsed, fractions)
        dataset.meta.update(frames_per_quarter=frames_per_quarter, source=source, drums=drums,
                            transpose_to_c=transpose_to_c)

    if report is not None:
        write_json_atomic(report, {
            "source": source,
            "files_found": files_found,
            "pieces": len(dataset.rolls),
            "skipped": [{"file": name, "reason": reason} for name, reason in skipped],
        })
    if not dataset.rolls:
        if benchmark:
            raise UserError(f"{paths[0]} holds no pieces")
        first = "; ".join(f"{name}: {reason}" for name, reason in skipped[:2])
        raise UserError(f"none of the {files_found} MIDI files could be used ({first})")
    dataset.meta["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    save_dataset(dataset, output)
    return PrepareSummary(
        output=output,
        files_found=files_found,
        pieces_per_split={s: len(dataset.split(s)) for s in SPLITS},
        frames_per_split={s: sum(len(r) for r in dataset.split(s)) for s in SPLITS},
        skipped=skipped,
        dropped_out_of_range=dropped,
        source=str(dataset.meta.get("source", source)),
    )


def parse_split_spec(spec: str) -> tuple[float, float, float]:
    """"0.8,0.1,0.1" -> (0.8, 0.1, 0.1): train, valid, test fractions summing to 1."""
    parts = [part.strip() for part in str(spec).split(",")]
    if len(parts) != 3:
        raise UserError(f"--split needs three fractions train,valid,test, got {spec!r}")
    try:
        fractions = tuple(float(part) for part in parts)
    except ValueError:
        raise UserError(f"--split fractions must be numbers, got {spec!r}") from None
    return _check_fractions(fractions)


def _check_fractions(fractions) -> tuple[float, float, float]:
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or not all(math.isfinite(f) and f >= 0 for f in fractions):
        raise UserError(f"split fractions must be three non-negative numbers, got {fractions}")
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise UserError(f"split fractions must sum to 1, got {sum(fractions):g}")
    return fractions


def bundled_corpus_dir() -> Path:
    """The bundled sample_midi corpus, installed as the package seqgate.sample_midi."""
    try:
        from importlib.resources import files

        folder = Path(str(files("seqgate.sample_midi")))
        if folder.is_dir():
            return folder
    except (ImportError, TypeError, ValueError):
        pass
    return Path(__file__).resolve().parent.parent / "sample_midi"  # a source checkout


# ---- finding MIDI files and their splits

def find_midi_files(paths: list[Path]) -> list[MidiSource]:
    """Every MIDI file under the given folders/files, sorted by name; UserError if none."""
    found: dict[tuple[int, int], MidiSource] = {}
    for root in paths:
        if root.is_dir():
            folder_name = root.resolve().name
            files = _midi_in(root)
            if not files:
                raise UserError(f"no MIDI files (.mid/.midi) under {root}")
            for path in files:
                rel = path.relative_to(root)
                folders = [folder_name, *rel.parent.parts]
                _add(found, MidiSource(path, f"{folder_name}/{rel.as_posix()}", rel.as_posix(),
                                       _split_from_folders(folders)))
        elif root.suffix.lower() in MIDI_SUFFIXES:
            _add(found, MidiSource(root, root.name, root.name,
                                   _split_from_folders([root.resolve().parent.name])))
        else:
            raise UserError(f"{root} is not a MIDI file, a folder or a benchmark .mat/.pickle")
    return sorted(found.values(), key=lambda s: s.name)


def _midi_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file())


def _add(found: dict, source: MidiSource) -> None:
    # The same file given twice counts once. Its device and inode identify it with one stat
    # call, where Path.resolve() costs one per path component.
    status = source.path.stat()
    found.setdefault((status.st_dev, status.st_ino), source)


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


def _assemble(sources: list[MidiSource], parsed: list, fractions) -> tuple[Dataset, list, int]:
    rolls, splits, names, tempos, programs, skipped, dropped = [], [], [], [], [], [], 0
    for source, result in zip(sources, parsed):
        if isinstance(result, str):
            skipped.append((source.name, result))
            continue
        rolls.append(result.roll)
        splits.append(source.split or hash_split(source.key, fractions))
        names.append(source.name)
        tempos.append(result.qpm)
        programs.append(result.program)
        dropped += result.dropped_out_of_range
    dataset = Dataset(rolls=rolls, splits=splits, names=names,
                      meta={"tempos": tempos, "programs": programs})
    return dataset, skipped, dropped


def parse_midi_files(paths: list[Path], *, frames_per_quarter: int = DEFAULT_FRAMES_PER_QUARTER,
                     drums: bool = False,
                     transpose_to_c: bool = False, workers: int | None = None,
                     file_timeout: float = DEFAULT_FILE_TIMEOUT, console=None) -> list:
    """For each path, in order, a MidiRoll or the reason (str) it was skipped."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    results: list = [None] * len(paths)
    if not paths:
        return results
    options = (frames_per_quarter, drums, transpose_to_c)
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(paths)))
    pool = WorkerPool("seqgate.prepare:parse_one_midi", [str(p) for p in paths], options, n_workers,
                      file_timeout, preload=("symusic", "seqgate.roll"))
    # No refresh thread (auto_refresh=False): the parent stays single-threaded, so replacement
    # workers can still be forked safely.
    progress = Progress("parsing MIDI", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, transient=True, auto_refresh=False)
    try:
        with progress:
            task = progress.add_task("parse", total=len(paths))
            shown = time.monotonic()
            for index, result in pool.results():
                results[index] = _unpack(result)
                progress.advance(task)
                if time.monotonic() - shown > 0.1:
                    progress.refresh()
                    shown = time.monotonic()
    finally:
        pool.close()
    return results




def parse_one_midi(path: str, options: tuple) -> tuple | str:
    """The workers' task: one MIDI file -> its roll with bits packed (11 bytes a frame through the
    pipe, not 88), source tempo, program and dropped notes; or the reason it is skipped."""
    from seqgate.roll import BadMidi, read_midi_roll

    frames_per_quarter, drums, transpose_to_c = options
    try:
        parsed = read_midi_roll(path, frames_per_quarter, drums, transpose_to_c)
    except BadMidi as error:
        return str(error)
    return (len(parsed.roll), np.packbits(parsed.roll).tobytes(), parsed.qpm, parsed.program,
            parsed.dropped_out_of_range)


def _unpack(result):
    from seqgate.roll import MidiRoll

    if isinstance(result, Lost):
        return {"crash": "crashed the parser", "timeout": result.detail,
                "error": f"parser error ({result.detail})"}[result.kind]
    if isinstance(result, str):
        return result
    n_frames, packed, qpm, program, dropped = result
    bits = np.unpackbits(np.frombuffer(packed, dtype=np.uint8), count=n_frames * N_KEYS)
    return MidiRoll(bits.reshape(n_frames, N_KEYS).view(bool), qpm, program, dropped)
