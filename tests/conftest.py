"""Shared fixtures: small MIDI files written on the spot, and the benchmark data folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mido
import pytest

# The benchmark .mat files live beside the repository, not in it.
DATASETS_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def run_cli(*args, env=None, cwd=None):
    """`python -m seqgate ARGS` in a subprocess, as a user would run it."""
    return subprocess.run([sys.executable, "-m", "seqgate", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


def assert_one_line_error(result):
    """A user error: exit code 2, one line on stderr, no traceback."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def write_midi(path, tracks, *, tempos=((0, 120.0),), tpq=480, key_signature=None) -> Path:
    """Write a type-1 MIDI file with exact tick control (mido).

    tracks: list of dicts {"notes": [(pitch, start_beat, end_beat), ...], "program": 0,
    "drum": False}; beats are quarter notes. tempos: (beat, qpm) pairs, written to a first
    conductor track. key_signature: a mido key name such as "G" or "Em", at beat 0.
    """
    midi = mido.MidiFile(type=1, ticks_per_beat=tpq)
    conductor = [(round(beat * tpq), mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(qpm)))
                 for beat, qpm in tempos]
    if key_signature:
        conductor.append((0, mido.MetaMessage("key_signature", key=key_signature)))
    midi.tracks.append(_relative(conductor))
    for number, track in enumerate(tracks):
        channel = 9 if track.get("drum") else number % 9
        events = [(0, mido.Message("program_change", program=track.get("program", 0), channel=channel))]
        for pitch, start, end in track["notes"]:
            events.append((round(start * tpq), mido.Message("note_on", note=pitch, velocity=80, channel=channel)))
            events.append((round(end * tpq), mido.Message("note_off", note=pitch, velocity=0, channel=channel)))
        midi.tracks.append(_relative(events))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.save(str(path))
    return path


def _relative(events):
    """(absolute tick, message) pairs -> a mido track with delta times, offs before ons."""
    events = sorted(events, key=lambda e: (e[0], e[1].type == "note_on"))
    track, now = mido.MidiTrack(), 0
    for tick, message in events:
        track.append(message.copy(time=tick - now))
        now = tick
    return track


def scale(tonic: int, beats_per_note: float = 1.0, steps=(0, 2, 4, 5, 7, 9, 11, 12)):
    """A major scale from `tonic` as (pitch, start_beat, end_beat) notes."""
    return [(tonic + s, i * beats_per_note, (i + 1) * beats_per_note) for i, s in enumerate(steps)]


@pytest.fixture
def midi_writer():
    """The write_midi helper, for tests that build their own MIDI files."""
    return write_midi


@pytest.fixture
def datasets_dir() -> Path:
    """The folder with JSB_Chorales.mat / Nottingham.mat; skips the test if it is absent."""
    if not DATASETS_DIR.is_dir():
        pytest.skip(f"benchmark data folder not found ({DATASETS_DIR.name} beside the repository)")
    return DATASETS_DIR


def make_tiny_dataset(path, *, pieces_per_split=(12, 4, 4), seed=0, frames_per_quarter=2,
                      onsets: bool = False) -> Path:
    """A small dataset file of patterned rolls (rising arpeggios with held chords), varied lengths;
    onsets: an onset-aware file, whose held bass is struck again halfway."""
    import numpy as np

    from seqgate.data.dataset import Dataset
    from seqgate.data.writer import save_dataset

    rng = np.random.default_rng(seed)
    rolls, struck, splits, names = [], [], [], []
    for split, count in zip(("train", "valid", "test"), pieces_per_split):
        for index in range(count):
            length = int(rng.integers(20, 70))
            roll = np.zeros((length, 88), dtype=bool)
            root = int(rng.integers(30, 50))
            for frame in range(length):
                roll[frame, root + (frame % 4) * 4] = True  # an arpeggio, one note a frame
                roll[frame, root - 12] = frame % 8 < 6      # a held bass with a gap
            rolls.append(roll)
            strikes = roll.copy()
            strikes[1:] &= ~roll[:-1]  # where a key starts sounding
            strikes[3::8, root - 12] = roll[3::8, root - 12]  # the bass struck again
            struck.append(strikes)
            splits.append(split)
            names.append(f"tiny/{split}/{index}")
    save_dataset(Dataset.from_rolls(rolls, splits, names, {"frames_per_quarter": frames_per_quarter,
                                                "source": "tiny test corpus",
                                                "tempos": [100.0] * len(rolls)},
                                         struck=struck if onsets else None), path)
    return Path(path)


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    return make_tiny_dataset(tmp_path / "tiny.npz")
