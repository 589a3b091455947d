"""The four benchmark corpora of Boulanger-Lewandowski, Bengio & Vincent (2012), as data, and
their import from the .mat / .pickle files those splits are published in.

One table, BENCHMARKS, says everything seqgate knows about each corpus: split piece (and, where
counted, frame) sizes, the time grid, Chung et al. 2014's Table 2 and other published test NLLs.
`prepare` recognises a corpus from it, `compare --paper` and bench/ print its numbers.

Published NLLs are nats per frame, the 88 keys' terms summed within a frame, every frame of a
split weighted equally; latent-variable models report a bound or an estimate, so compare those
with care.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seqgate.data.dataset import SPLITS, Dataset
from seqgate.errors import UserError
from seqgate.data.roll import LOWEST_PITCH, N_KEYS, on_keyboard

BENCHMARK_SUFFIXES = {".mat", ".pickle", ".pkl"}
CITATION = ("Boulanger-Lewandowski, Bengio & Vincent (2012), \"Modeling Temporal Dependencies in "
            "High-Dimensional Sequences: Application to Polyphonic Music Generation and "
            "Transcription\", ICML, arXiv 1206.6392")
PAPER_CITATION = "Chung et al. 2014, Table 2"


@dataclass(frozen=True)
class Benchmark:
    """One benchmark corpus and the numbers published on its splits."""

    name: str
    key: str  # a short name for command lines: jsb, nottingham, ...
    file: str  # the name of the .mat file the splits are published as
    pieces: tuple[int, int, int]  # train, valid, test: how a prepared file is recognised
    frames: tuple[int, int, int] | None  # train, valid, test, where counted
    frames_per_quarter: int  # the grid: 1 = quarter notes, 2 = eighth notes
    paper: dict[str, tuple[float, float]]  # Chung et al. 2014, Table 2: cell -> (train, test)
    published: dict[str, str] = field(default_factory=dict)  # model (source) -> test NLL as printed


BENCHMARKS = (
    Benchmark("JSB Chorales", "jsb", "JSB_Chorales.mat", (229, 76, 77), (13807, 4602, 4725), 1,
              {"tanh": (8.82, 9.10), "gru": (6.94, 8.54), "lstm": (8.15, 8.67)},
              {"RNN (Boulanger-Lewandowski 2012)": "8.71",
               "RNN-NADE (Boulanger-Lewandowski 2012)": "5.19-5.56",
               "GRU / LSTM / RNN (Bai et al. 2018)": "8.43 / 8.45 / 8.91",
               "TCN (Bai et al. 2018)": "8.10",
               "STORN (Bayer & Osendorfer 2014, a bound)": "6.91",
               "DMM-Aug (Krishnan et al. 2017)": "6.29",
               "DMM-Aug with a NADE emission (Krishnan et al. 2017, an importance-sampled estimate)": "5.118"}),
    Benchmark("Nottingham", "nottingham", "Nottingham.mat", (694, 173, 170), (176561, 45513, 44463), 2,
              {"tanh": (3.22, 3.13), "gru": (2.79, 3.23), "lstm": (3.08, 3.20)},
              {"RNN (Boulanger-Lewandowski 2012)": "4.46",
               "RNN-RBM (Boulanger-Lewandowski 2012)": "2.39",
               "RNN-NADE (Boulanger-Lewandowski 2012)": "2.31",
               "GRU / LSTM / RNN (Bai et al. 2018)": "3.46 / 3.29 / 4.05",
               "TCN (Bai et al. 2018)": "3.07",
               "STORN (Bayer & Osendorfer 2014, a bound)": "2.85",
               "DMM-Aug (Krishnan et al. 2017)": "2.68",
               "DMM-Aug with a NADE emission (Krishnan et al. 2017, an importance-sampled estimate)": "2.305"}),
    Benchmark("MuseData", "musedata", "MuseData.mat", (524, 135, 124), None, 2,
              {"tanh": (5.64, 6.23), "gru": (5.06, 5.99), "lstm": (5.18, 6.23)},
              {"RNN (Boulanger-Lewandowski 2012)": "8.13",
               "RNN-NADE (Boulanger-Lewandowski 2012)": "5.60",
               "STORN (Bayer & Osendorfer 2014, a bound)": "6.16",
               "DMM-Aug (Krishnan et al. 2017)": "6.36"}),
    Benchmark("Piano-midi", "pianomidi", "Piano-midi.de.mat", (87, 12, 25), None, 2,
              {"tanh": (5.64, 9.03), "gru": (4.93, 8.82), "lstm": (6.49, 9.03)},
              {"RNN (Boulanger-Lewandowski 2012)": "8.37",
               "RNN-NADE (Boulanger-Lewandowski 2012)": "7.05",
               "STORN (Bayer & Osendorfer 2014, a bound)": "7.13",
               "DMM-Aug (Krishnan et al. 2017)": "7.59"}),
)


def benchmark_by_key(key: str) -> Benchmark:
    """The benchmark with this short name (jsb, nottingham, musedata, pianomidi)."""
    for benchmark in BENCHMARKS:
        if benchmark.key == key:
            return benchmark
    raise KeyError(key)


def recognise(piece_counts: tuple[int, int, int]) -> Benchmark | None:
    """The benchmark whose canonical split has these train/valid/test piece counts, if any."""
    for benchmark in BENCHMARKS:
        if benchmark.pieces == tuple(piece_counts):
            return benchmark
    return None


def recognise_dataset(dataset: Dataset) -> Benchmark | None:
    return recognise(tuple(len(dataset.indices(split)) for split in SPLITS))


def read_benchmark(path: Path) -> tuple[Dataset, int]:
    """A .mat or .pickle benchmark with its own train/valid/test splits -> (dataset, dropped)."""
    if path.suffix.lower() == ".mat":
        pieces, dropped = _read_mat(path), 0
    else:
        pieces, dropped = _read_pickle(path)
    known = recognise(tuple(len(pieces[s]) for s in SPLITS))
    rolls, splits, names = [], [], []
    for split in SPLITS:
        for number, roll in enumerate(pieces[split]):
            rolls.append(roll)
            splits.append(split)
            names.append(f"{path.stem}/{split}/{number:04d}")
    meta = {"frames_per_quarter": known.frames_per_quarter if known else None, "source": path.name,
            "benchmark": known.name if known else None, "tempos": [None] * len(rolls),
            "programs": [None] * len(rolls), "drums": False, "transpose_to_c": False}
    return Dataset.from_rolls(rolls, splits, names, meta), dropped


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
    keep = on_keyboard(pitch)
    roll = np.zeros((len(piece), N_KEYS), dtype=bool)
    roll[frame_of[keep], pitch[keep] - LOWEST_PITCH] = True
    return roll, int((~keep).sum())
