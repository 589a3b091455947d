"""`seqgate prepare`: MIDI folders and benchmark files -> one piano-roll dataset file.

The dataset file is a numpy .npz (read with allow_pickle=False, so a stranger's file cannot run
code) that stores the binary 88-key roll sparsely, CSR style:

  pitches        uint8  (n_notes,)        key index 0..87 (MIDI pitch 21 + k) of every sounding key
  frame_offsets  int64  (n_frames + 1,)   frame f sounds pitches[frame_offsets[f]:frame_offsets[f+1]]
  piece_offsets  int64  (n_pieces + 1,)   piece p is frames piece_offsets[p]:piece_offsets[p+1]
  split          uint8  (n_pieces,)       0 train, 1 valid, 2 test
  names          str    (n_pieces,)       where each piece came from (relative path or benchmark id)
  meta           str    ()                JSON: frames_per_quarter, lowest_pitch, n_keys, source,
                                          seqgate_version, tempos (source qpm per piece),
                                          programs (GM program per piece), created,
                                          drums / transpose_to_c (how MIDI was read),
                                          benchmark (its name, for a known .mat/.pickle)

Below the file format: `prepare` itself (inputs, splits, parser processes, benchmark import).
Benchmark files: Boulanger-Lewandowski, Bengio & Vincent (2012), "Modeling Temporal
Dependencies in High-Dimensional Sequences" (JSB Chorales, Nottingham, MuseData, Piano-midi.de).
"""

from __future__ import annotations

import faulthandler
import hashlib
import json
import math
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zipfile
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from seqgate import __version__
from seqgate.errors import UserError
from seqgate.files import atomic_write

SPLITS = ("train", "valid", "test")
N_KEYS = 88
LOWEST_PITCH = 21  # column k of a roll is MIDI pitch 21 + k (A0 .. C8)
FORMAT_VERSION = 1


@dataclass
class Dataset:
    """Pieces as dense boolean (frames, 88) rolls, each with its split and name."""

    rolls: list[np.ndarray]
    splits: list[str]
    names: list[str]
    meta: dict = field(default_factory=dict)

    def split(self, name: str) -> list[np.ndarray]:
        """The rolls of one split ('train', 'valid' or 'test'), in file order."""
        if name not in SPLITS:
            raise UserError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
        return [roll for roll, split in zip(self.rolls, self.splits) if split == name]

    def split_names(self, name: str) -> list[str]:
        return [piece for piece, split in zip(self.names, self.splits) if split == name]

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


def save_dataset(dataset: Dataset, path: str | Path) -> None:
    """Write the dataset atomically as a sparse, pickle-free .npz."""
    frame_counts = [len(roll) for roll in dataset.rolls]
    piece_offsets = np.zeros(len(dataset.rolls) + 1, dtype=np.int64)
    np.cumsum(frame_counts, out=piece_offsets[1:])
    if dataset.rolls:
        dense = np.concatenate([np.asarray(r, dtype=bool) for r in dataset.rolls], axis=0)
    else:
        dense = np.zeros((0, N_KEYS), dtype=bool)
    # Flat indices are sorted by frame, then key; on a 1-D array this is ~3x faster than a 2-D
    # np.nonzero, which matters for a corpus of millions of frames.
    flat_index = np.flatnonzero(dense)
    key_index = flat_index % N_KEYS
    frame_offsets = np.zeros(len(dense) + 1, dtype=np.int64)
    np.cumsum(np.bincount(flat_index // N_KEYS, minlength=len(dense)), out=frame_offsets[1:])
    meta = {
        "format_version": FORMAT_VERSION,
        "n_keys": N_KEYS,
        "lowest_pitch": LOWEST_PITCH,
        "seqgate_version": __version__,
        **dataset.meta,
    }
    arrays = {
        "pitches": key_index.astype(np.uint8),
        "frame_offsets": frame_offsets,
        "piece_offsets": piece_offsets,
        "split": np.array([SPLITS.index(s) for s in dataset.splits], dtype=np.uint8),
        "names": np.array(dataset.names, dtype=np.str_),
        "meta": np.array(json.dumps(meta)),
    }
    path = Path(path)
    # np.savez appends ".npz" to a bare name; a file handle keeps the name exactly as given.
    with atomic_write(path, "wb") as handle:
        _savez_fast(handle, arrays)


def _savez_fast(handle, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed at zlib level 1: ~5x faster to write, ~4% larger; np.load reads it."""
    with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, array in arrays.items():
            with archive.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def load_dataset(path: str | Path) -> Dataset:
    """Read a dataset file written by save_dataset; any problem is a one-line UserError."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"no dataset at {path}; run `seqgate prepare` first")
    try:
        with np.load(path, allow_pickle=False) as data:
            pitches = data["pitches"].astype(np.int64)
            frame_offsets = data["frame_offsets"]
            piece_offsets = data["piece_offsets"]
            split_codes = data["split"]
            names = [str(n) for n in data["names"]]
            meta = json.loads(str(data["meta"]))
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as error:
        raise UserError(f"{path} is not a seqgate dataset file ({error})") from None
    n_frames = len(frame_offsets) - 1
    dense = np.zeros((n_frames, N_KEYS), dtype=bool)
    frame_of_note = np.repeat(np.arange(n_frames), np.diff(frame_offsets))
    dense[frame_of_note, pitches] = True
    rolls = [dense[a:b] for a, b in zip(piece_offsets[:-1], piece_offsets[1:])]
    return Dataset(
        rolls=rolls,
        splits=[SPLITS[int(c)] for c in split_codes],
        names=names,
        meta=meta,
    )


# --------------------------------------------------------------------------------------------
# `seqgate prepare`: find the inputs, parse MIDI in worker processes, split, write.

MIDI_SUFFIXES = {".mid", ".midi"}
BENCHMARK_SUFFIXES = {".mat", ".pickle", ".pkl"}
SPLIT_FOLDERS = {"train": "train", "valid": "valid", "validation": "valid", "test": "test"}
# Pieces per split of the Boulanger-Lewandowski (2012) benchmarks, and their grids.
KNOWN_BENCHMARKS = {(229, 76, 77): ("JSB Chorales", 1), (694, 173, 170): ("Nottingham", 2)}
DEFAULT_FILE_TIMEOUT = 60.0  # seconds one MIDI file may take before its worker is killed
# Test hook, read by prepare_dataset and handed to the workers: "crash:a.mid,hang:b.mid" makes
# the worker parsing a file of that name abort (as a segfaulting parser would) or hang.
FAULT_ENV = "SEQGATE_TEST_FAULT"


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


def prepare_dataset(paths: list[Path], output: Path, *, frames_per_quarter: int = 2,
                    drums: bool = False, transpose_to_c: bool = False,
                    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
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
        from seqgate.files import write_json_atomic

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


def dataset_statistics(dataset: Dataset) -> dict:
    """Pieces, frames and mean sounding notes per frame for each split, and the pitch range."""
    splits, used = {}, np.zeros(N_KEYS, dtype=bool)
    for split in SPLITS:
        rolls = dataset.split(split)
        frames = sum(len(r) for r in rolls)
        notes = sum(int(np.count_nonzero(r)) for r in rolls)
        splits[split] = {"pieces": len(rolls), "frames": frames,
                         "mean_notes_per_frame": notes / frames if frames else 0.0}
        for roll in rolls:
            used |= np.asarray(roll, dtype=bool).any(axis=0)
    keys = np.flatnonzero(used)
    pitch_range = (int(keys[0]) + LOWEST_PITCH, int(keys[-1]) + LOWEST_PITCH) if len(keys) else None
    return {"splits": splits, "pitch_range": pitch_range,
            "frames_per_quarter": dataset.meta.get("frames_per_quarter"),
            "source": dataset.meta.get("source")}


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


# ---- parsing in worker processes
#
# A malformed MIDI file can crash (segfault) or hang a C++ parser, so files are parsed in worker
# processes the parent watches. The parent hands a worker a chunk of files; the worker answers
# once per file, in order, so the parent always knows which file is in flight. If a worker dies,
# or spends longer than `file_timeout` on one file, the parent kills it, records that one file as
# skipped and starts a fresh worker for the rest of the work.
#
# A worker is forked from the parent when that is safe (Linux, a single thread, torch not loaded):
# it starts in milliseconds with the parser already imported. Otherwise it is a fresh interpreter
# (`python -c`, ~0.2 s to start), never a fork of a process whose threads might hold locks.
# Either way the worker talks over two plain pipes and runs the same loop, _worker_loop.

def parse_midi_files(paths: list[Path], *, frames_per_quarter: int = 2, drums: bool = False,
                     transpose_to_c: bool = False, workers: int | None = None,
                     file_timeout: float = DEFAULT_FILE_TIMEOUT, console=None) -> list:
    """For each path, in order, a MidiRoll or the reason (str) it was skipped."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    results: list = [None] * len(paths)
    if not paths:
        return results
    options = (frames_per_quarter, drums, transpose_to_c, _faults_from_env())
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(paths)))
    pool = _ParserPool([str(p) for p in paths], options, n_workers, file_timeout)
    # No refresh thread (auto_refresh=False): the parent stays single-threaded, so replacement
    # workers can still be forked safely.
    progress = Progress("parsing MIDI", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, transient=True, auto_refresh=False)
    try:
        with progress:
            task = progress.add_task("parse", total=len(paths))
            shown = time.monotonic()
            for index, result in pool.results():
                results[index] = result
                progress.advance(task)
                if time.monotonic() - shown > 0.1:
                    progress.refresh()
                    shown = time.monotonic()
    finally:
        pool.close()
    return results


def _faults_from_env() -> dict[str, str]:
    """The test hook: {file name: "crash" or "hang"} from SEQGATE_TEST_FAULT."""
    faults = {}
    for item in filter(None, os.environ.get(FAULT_ENV, "").split(",")):
        kind, _, name = item.partition(":")
        faults[name] = kind
    return faults


def _fork_is_safe() -> bool:
    return sys.platform == "linux" and threading.active_count() == 1 and "torch" not in sys.modules


class _Worker:
    """One parser process and the parent's ends of its two pipes."""

    def __init__(self, options, others: list[_Worker]):
        from multiprocessing.connection import Connection

        task_read, task_write = os.pipe()
        answer_read, answer_write = os.pipe()
        if _fork_is_safe():
            # The child must not keep the other workers' pipe ends open, or they would never
            # see end-of-file when the parent goes away.
            parent_ends = [task_write, answer_read] + [fd for w in others for fd in w.fds()]
            self.process = _ForkedProcess(lambda: _worker_loop(task_read, answer_write), parent_ends)
        else:
            package_root = str(Path(__file__).resolve().parent.parent)
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(
                filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from seqgate.corpus import _worker_main; _worker_main()",
                 str(task_read), str(answer_write)],
                pass_fds=(task_read, answer_write), stdin=subprocess.DEVNULL, env=env)
        os.close(task_read)
        os.close(answer_write)
        self.tasks = Connection(task_write, readable=False)
        self.answers = Connection(answer_read, writable=False)
        self.tasks.send(options)
        self.ready = False  # set once the worker says its imports are done
        self.in_flight: deque[int] = deque()  # indices sent, not yet answered, in order
        self.since = 0.0  # when the file at the head of in_flight started

    def fds(self) -> list[int]:
        return [c.fileno() for c in (self.tasks, self.answers) if not c.closed]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.tasks.close()
        self.answers.close()


class _ForkedProcess:
    """Just enough of subprocess.Popen (poll, kill, wait) for a worker made with os.fork()."""

    def __init__(self, run, close_in_child: list[int]):
        self.returncode = None
        self.pid = os.fork()
        if self.pid == 0:  # the child: run, then leave without the parent's exit handlers
            code = 1
            try:
                faulthandler.disable()  # a parser crash is reported by the parent, no dump
                for fd in close_in_child:
                    os.close(fd)
                run()
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
            time.sleep(0.002)
        return self.returncode


class _ParserPool:
    def __init__(self, paths: list[str], options, n_workers: int, file_timeout: float):
        self.paths, self.options, self.timeout = paths, options, file_timeout
        self.pending: deque[int] = deque(range(len(paths)))
        # Chunks small enough to balance the load, large enough that IPC stays cheap.
        self.chunk = max(1, min(32, len(paths) // (n_workers * 8)))
        if _fork_is_safe():
            import symusic  # noqa: F401  imported once here, inherited by every forked worker

            import seqgate.roll  # noqa: F401
        self.workers: list[_Worker] = []
        for _ in range(n_workers):
            self.workers.append(_Worker(options, self.workers))

    def results(self):
        """Yield (index, MidiRoll or reason) as the workers finish files."""
        from multiprocessing.connection import wait

        while True:
            for worker in self.workers:
                if worker.ready and not worker.in_flight and self.pending:
                    self._feed(worker)
            starting = [w for w in self.workers if not w.ready]
            busy = [w for w in self.workers if w.in_flight]
            if not busy and not starting:
                return
            timeout = None
            if busy:
                timeout = max(0.0, min(w.since for w in busy) + self.timeout - time.monotonic())
            wait([w.answers for w in starting + busy], timeout=timeout)
            for worker in starting + busy:
                yield from self._collect(worker)

    def _feed(self, worker: _Worker) -> None:
        chunk = [self.pending.popleft() for _ in range(min(self.chunk, len(self.pending)))]
        worker.in_flight.extend(chunk)
        worker.since = time.monotonic()
        try:
            worker.tasks.send([(i, self.paths[i]) for i in chunk])
        except OSError:
            pass  # it died; _collect sees that and blames the first file of the chunk

    def _collect(self, worker: _Worker):
        died = False
        try:
            while worker.answers.poll():
                message = worker.answers.recv()
                if message == "ready":
                    worker.ready = True
                    continue
                index, result = message
                worker.in_flight.popleft()
                worker.since = time.monotonic()
                yield index, _unpack(result)
        except (EOFError, OSError):
            died = True
        if not worker.ready:
            if died:  # no file was ever given to it: a broken installation, not a bad file
                worker.kill()
                raise RuntimeError(f"a MIDI parser process failed to start "
                                   f"(exit code {worker.process.returncode})")
            return
        if died:
            reason = "crashed the parser"
        elif worker.in_flight and time.monotonic() - worker.since > self.timeout:
            reason = f"timed out after {self.timeout:g} s"
        else:
            return
        if worker.in_flight:
            lost = worker.in_flight.popleft()
            self.pending.extendleft(reversed(worker.in_flight))  # the rest goes back in the queue
            yield lost, reason
        worker.kill()
        others = [w for w in self.workers if w is not worker]
        self.workers[self.workers.index(worker)] = _Worker(self.options, others)

    def close(self) -> None:
        """Let idle workers exit; kill busy ones (we are here on an error or Ctrl-C)."""
        for worker in self.workers:
            if worker.in_flight:
                worker.kill()
                continue
            try:
                worker.tasks.send(None)
            except OSError:
                pass
        deadline = time.monotonic() + 2.0
        for worker in self.workers:
            try:
                worker.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            worker.kill()


def _worker_main() -> None:
    """Entry point of a worker started as a fresh interpreter: pipe descriptors in argv."""
    _worker_loop(int(sys.argv[1]), int(sys.argv[2]))


def _worker_loop(task_fd: int, answer_fd: int) -> None:
    """Parse the files of each chunk received, answer once per file, until told to stop."""
    from multiprocessing.connection import Connection

    from seqgate.roll import BadMidi, read_midi_roll

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    tasks = Connection(task_fd, writable=False)
    answers = Connection(answer_fd, readable=False)
    frames_per_quarter, drums, transpose_to_c, faults = tasks.recv()
    answers.send("ready")
    while True:
        try:
            chunk = tasks.recv()
        except EOFError:  # the parent is gone
            return
        if chunk is None:
            return
        for index, path in chunk:
            fault = faults.get(os.path.basename(path))
            if fault == "crash":
                os.abort()  # as a segfaulting parser would
            if fault == "hang":
                time.sleep(10**6)
            try:
                parsed = read_midi_roll(path, frames_per_quarter, drums, transpose_to_c)
                # Packed bits: 11 bytes a frame through the pipe, not 88.
                result = (len(parsed.roll), np.packbits(parsed.roll).tobytes(), parsed.qpm,
                          parsed.program, parsed.dropped_out_of_range)
            except BadMidi as error:
                result = str(error)
            except Exception as error:  # a parser bug on one file must not stop the others
                result = f"parser error ({type(error).__name__}: {error})"
            answers.send((index, result))


def _unpack(result):
    from seqgate.roll import MidiRoll

    if isinstance(result, str):
        return result
    n_frames, packed, qpm, program, dropped = result
    bits = np.unpackbits(np.frombuffer(packed, dtype=np.uint8), count=n_frames * N_KEYS)
    return MidiRoll(bits.reshape(n_frames, N_KEYS).view(bool), qpm, program, dropped)


# ---- benchmark files: Boulanger-Lewandowski et al. (2012) .mat and .pickle

def read_benchmark(path: Path) -> tuple[Dataset, int]:
    """A .mat or .pickle benchmark with its own train/valid/test splits -> (dataset, dropped)."""
    if path.suffix.lower() == ".mat":
        pieces, dropped = _read_mat(path), 0
    else:
        pieces, dropped = _read_pickle(path)
    counts = tuple(len(pieces[s]) for s in SPLITS)
    known = KNOWN_BENCHMARKS.get(counts)
    rolls, splits, names = [], [], []
    for split in SPLITS:
        for number, roll in enumerate(pieces[split]):
            rolls.append(roll)
            splits.append(split)
            names.append(f"{path.stem}/{split}/{number:04d}")
    meta = {"frames_per_quarter": known[1] if known else None, "source": path.name,
            "benchmark": known[0] if known else None, "tempos": [None] * len(rolls),
            "programs": [None] * len(rolls), "drums": False, "transpose_to_c": False}
    return Dataset(rolls=rolls, splits=splits, names=names, meta=meta), dropped


def _read_mat(path: Path) -> dict[str, list[np.ndarray]]:
    import scipy.io

    try:
        data = scipy.io.loadmat(str(path))
    except Exception as error:  # scipy raises several types for a file that is not .mat
        raise UserError(f"{path} is not a readable .mat file ({error})") from None
    pieces = {}
    for split, variable in zip(SPLITS, ("traindata", "validdata", "testdata")):
        if variable not in data:
            raise UserError(f"{path} has no {variable} variable; expected traindata/validdata/testdata")
        pieces[split] = []
        for piece in np.asarray(data[variable], dtype=object).ravel():
            piece = np.asarray(piece)
            if piece.ndim != 2 or piece.shape[1] != N_KEYS:
                raise UserError(f"{path}: {variable} holds a {piece.shape} array, not (frames, 88)")
            pieces[split].append(piece != 0)
    return pieces


class _Refused(pickle.UnpicklingError):
    pass


class _PlainUnpickler(pickle.Unpickler):
    """Loads plain containers only: any reference to a class or function is refused, so
    unpickling can never call code (REDUCE, BUILD, INST, OBJ and EXT all go through these)."""

    def find_class(self, module, name):
        raise _Refused(f"it refers to {module}.{name}, which is refused")

    def persistent_load(self, pid):
        raise _Refused("it uses persistent ids, which are refused")


def _read_pickle(path: Path) -> tuple[dict[str, list[np.ndarray]], int]:
    try:
        with open(path, "rb") as handle:
            data = _PlainUnpickler(handle, encoding="latin1").load()
    except _Refused as error:
        raise UserError(f"{path} is not a plain benchmark pickle: {error}") from None
    except Exception as error:  # truncated or not a pickle at all
        raise UserError(f"{path} is not a readable pickle ({type(error).__name__})") from None
    _check_plain(path, data)
    if not isinstance(data, dict) or not all(s in data for s in SPLITS):
        raise UserError(f"{path} is not a benchmark pickle: expected a dict with train/valid/test")
    pieces, dropped = {}, 0
    for split in SPLITS:
        if not isinstance(data[split], (list, tuple)):
            raise UserError(f"{path}: {split} is not a list of pieces")
        pieces[split] = []
        for piece in data[split]:
            roll, lost = _frames_to_roll(path, piece)
            pieces[split].append(roll)
            dropped += lost
    return pieces, dropped


def _check_plain(path: Path, data) -> None:
    """Only dict, list, tuple, int, float and str, all the way down."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif type(item) not in (int, float, str):
            raise UserError(f"{path} is not a benchmark pickle: it holds a {type(item).__name__}")


def _frames_to_roll(path: Path, piece) -> tuple[np.ndarray, int]:
    """A piece as a list of frames, each a list of MIDI pitches -> (roll, notes out of range)."""
    if not isinstance(piece, (list, tuple)) or not all(isinstance(f, (list, tuple)) for f in piece):
        raise UserError(f"{path}: a piece is not a list of frames (lists of MIDI pitches)")
    frame_of = [f for f, frame in enumerate(piece) for _ in frame]
    pitch = [p for frame in piece for p in frame]
    if not all(isinstance(p, int) or (isinstance(p, float) and p.is_integer()) for p in pitch):
        raise UserError(f"{path}: a frame holds something other than whole MIDI pitches")
    frame_of, pitch = np.array(frame_of, dtype=np.int64), np.array(pitch, dtype=np.int64)
    keep = (pitch >= LOWEST_PITCH) & (pitch < LOWEST_PITCH + N_KEYS)
    roll = np.zeros((len(piece), N_KEYS), dtype=bool)
    roll[frame_of[keep], pitch[keep] - LOWEST_PITCH] = True
    return roll, int((~keep).sum())
