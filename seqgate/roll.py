"""MIDI <-> piano roll: the first stage of the pipeline.

A roll is a boolean (frames, 88) array: column k is MIDI pitch 21 + k (A0..C8), one row per grid
step. The grid follows the beat (ticks per quarter note), not seconds, so a tempo change never
smears the rhythm: a note starting on beat 3 lands on frame 3 * frames_per_quarter whatever the
tempo was. What the roll cannot hold (source tempo, GM program) is returned beside it so that export
can put it back.

Reading uses symusic (a fast C++ MIDI parser); writing uses pretty_midi.
Key estimation: Krumhansl & Kessler (1982) key profiles, correlated with the duration-weighted
pitch-class histogram as in the Krumhansl-Schmuckler algorithm.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

N_KEYS = 88
LOWEST_PITCH = 21  # column k is MIDI pitch 21 + k
HIGHEST_PITCH = LOWEST_PITCH + N_KEYS - 1  # 108
# Two grid steps per quarter note: eighth notes, the grid of the Nottingham, MuseData and
# Piano-midi benchmarks (JSB Chorales uses one).
DEFAULT_FRAMES_PER_QUARTER = 2
# The tempo MIDI assumes when a file sets none (the standard's 500,000 microseconds a beat).
DEFAULT_QPM = 120.0

# Krumhansl-Kessler probe-tone profiles, tonic first.
_MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


# A roll longer than this is refused: about 69 hours at 120 qpm and 2 frames per quarter note.
MAX_FRAMES = 1_000_000
# The finest grid seqgate reads or writes: 96 frames per quarter is a 1/384 note.
MAX_FRAMES_PER_QUARTER = 96


class BadMidi(Exception):
    """A MIDI file that gives no usable roll; the message is a short reason for the user."""


@dataclass
class MidiRoll:
    roll: np.ndarray  # bool (frames, 88)
    qpm: float  # the source's first tempo, quarter notes per minute (120 if none)
    program: int  # most used GM program among kept non-drum notes (0 if unknown)
    dropped_out_of_range: int  # notes outside MIDI 21..108 left out
    struck: np.ndarray | None = None  # bool (frames, 88): keys struck at each frame, if asked


@dataclass
class SparseMidiRoll:
    """The same roll as MidiRoll, in the dataset's sparse form (see dataset.Dataset)."""
    pitches: np.ndarray  # uint8 key index of every sounding key, frame by frame, low to high
    frame_counts: np.ndarray  # uint8 keys sounding in each frame
    qpm: float
    program: int
    dropped_out_of_range: int
    onsets: np.ndarray | None = None  # uint8 beside pitches: 1 where the key is struck, if asked


def read_midi_roll(path: str | os.PathLike, frames_per_quarter: int = DEFAULT_FRAMES_PER_QUARTER, drums: bool = False,
                   transpose_to_c: bool = False, onsets: bool = False) -> MidiRoll:
    """Read a MIDI file into a beat-grid roll; raise BadMidi with a short reason if unusable.
    onsets: also say which keys are struck at each frame (MidiRoll.struck)."""
    sparse = read_midi_sparse(path, frames_per_quarter, drums, transpose_to_c, onsets)
    struck = None if sparse.onsets is None else dense_roll(sparse.pitches, sparse.frame_counts, sparse.onsets)
    return MidiRoll(dense_roll(sparse.pitches, sparse.frame_counts), sparse.qpm, sparse.program,
                    sparse.dropped_out_of_range, struck)


def dense_roll(pitches: np.ndarray, frame_counts: np.ndarray, values: np.ndarray | None = None) -> np.ndarray:
    """The sparse form (key indices frame by frame, keys per frame) -> a bool (frames, 88) roll.
    values: one per sounding key (the onset bits, say): the roll holds them instead of True."""
    roll = np.zeros((len(frame_counts), N_KEYS), dtype=bool)
    roll[np.repeat(np.arange(len(frame_counts)), frame_counts), pitches] = True if values is None else values
    return roll


def sparse_roll(roll: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A dense (frames, 88) roll -> (key indices of its sounding keys, keys sounding per frame)."""
    roll = np.asarray(roll, dtype=bool)
    # Flat indices are sorted by frame, then key; on a 1-D array this is ~3x faster than a 2-D
    # np.nonzero, which matters for a corpus of millions of frames.
    flat = np.flatnonzero(roll)
    return (flat % N_KEYS).astype(np.uint8), np.count_nonzero(roll, axis=1).astype(np.uint8)


def sparse_onsets(roll: np.ndarray, struck: np.ndarray) -> np.ndarray:
    """The onset bit (uint8) of every sounding key of `roll`, in sparse_roll's order: 1 where
    `struck` says the key is struck, and wherever a key starts after silence (a note has to
    begin somewhere, whatever `struck` says)."""
    roll = np.asarray(roll, dtype=bool)
    starts = roll.copy()
    starts[1:] &= ~roll[:-1]
    return (starts | (np.asarray(struck, dtype=bool) & roll)).reshape(-1)[np.flatnonzero(roll)].astype(np.uint8)


def read_midi_sparse(path: str | os.PathLike, frames_per_quarter: int = DEFAULT_FRAMES_PER_QUARTER,
                     drums: bool = False, transpose_to_c: bool = False, onsets: bool = False) -> SparseMidiRoll:
    """read_midi_roll's roll in the dataset's sparse form, read off a flat frames x 88 byte
    buffer: what `prepare` runs for every file, so its cost beside the parser's own is kept to
    one conversion of the notes and a few array operations. onsets: also the onset bit of each
    sounding key (1 at the frame a note starts on), so that a key struck again while it sounds
    stays two notes."""
    import symusic  # imported here so that writing rolls does not need it

    try:
        score = symusic.Score(str(path), ttype="tick")
    except Exception as error:  # symusic raises RuntimeError/ValueError with its own wording
        raise BadMidi(_reason_from_parser(path, error)) from None

    # Every kept track's notes gathered in one track (in C++), then one conversion to arrays:
    # a conversion per track costs more than the parse of a small file.
    kept = symusic.Track("kept", 0, False, ttype="tick")
    programs: dict[int, int] = {}
    has_drums = False
    for track in score.tracks:
        count = len(track.notes)
        if count == 0:
            continue
        if track.is_drum:
            has_drums = True
            if not drums:
                continue
        else:
            programs[int(track.program)] = programs.get(int(track.program), 0) + count
        kept.notes.extend(track.notes)
    if len(kept.notes) == 0:
        raise BadMidi("drums only (use --drums to keep)" if has_drums else "no notes")
    notes = kept.notes.numpy()
    start = notes["time"].astype(np.int64)
    end = start + notes["duration"].astype(np.int64)
    pitch = notes["pitch"].astype(np.int64)

    in_range = (pitch >= LOWEST_PITCH) & (pitch <= HIGHEST_PITCH)
    if not in_range.any():
        raise BadMidi(f"all notes outside MIDI {LOWEST_PITCH}..{HIGHEST_PITCH}")
    if transpose_to_c:
        pitch = pitch + _shift_to_c(score, start, end, pitch, in_range)
        in_range = (pitch >= LOWEST_PITCH) & (pitch <= HIGHEST_PITCH)
    dropped = int(len(pitch) - in_range.sum())
    start, end, pitch = start[in_range], end[in_range], pitch[in_range]

    # Round half up on the beat grid, in integers so no float ever decides a frame.
    tpq = int(score.ticks_per_quarter)
    onset = (2 * start * frames_per_quarter + tpq) // (2 * tpq)
    offset = (2 * end * frames_per_quarter + tpq) // (2 * tpq)
    offset = np.maximum(offset, onset + 1)  # every note at least one frame long
    n_frames = int(offset.max())
    if n_frames > MAX_FRAMES:  # a corrupt tick value must not allocate gigabytes
        raise BadMidi(f"longer than {MAX_FRAMES:,} frames (a corrupt time value?)")
    # Every (frame, key) cell a note covers, without a Python loop: note i covers
    # onset[i], onset[i] + 1, ..., offset[i] - 1. Marked in a flat frames x 88 buffer (one
    # byte a cell, faster than sorting the cells), the cells in order are the sparse roll:
    # frame by frame, keys low to high.
    lengths = offset - onset
    first_cell = np.repeat(np.cumsum(lengths) - lengths, lengths)
    frames = np.arange(int(lengths.sum())) - first_cell + np.repeat(onset, lengths)
    marked = np.zeros(n_frames * N_KEYS, dtype=bool)
    marked[frames * N_KEYS + np.repeat(pitch - LOWEST_PITCH, lengths)] = True
    cells = np.flatnonzero(marked)
    frame_counts = np.bincount(cells // N_KEYS, minlength=n_frames).astype(np.uint8)
    onset_bits = None
    if onsets:  # the cells where a note starts, marked the same way, read at the sounding cells
        marked[:] = False
        marked[onset * N_KEYS + pitch - LOWEST_PITCH] = True
        onset_bits = marked[cells].astype(np.uint8)

    tempos = sorted(score.tempos, key=lambda t: t.time)
    qpm = round(float(tempos[0].qpm), 3) if tempos else DEFAULT_QPM
    program = max(sorted(programs), key=lambda p: programs[p]) if programs else 0
    return SparseMidiRoll((cells % N_KEYS).astype(np.uint8), frame_counts, qpm, program, dropped, onset_bits)


def _reason_from_parser(path, error: Exception) -> str:
    try:
        if os.path.getsize(path) == 0:
            return "empty file"
    except OSError:
        return "cannot open file"
    message = str(error).replace("MiniMidi: ", "").replace(": iostream error", "").strip()
    return f"unreadable MIDI ({message.rstrip('!')})" if message else "unreadable MIDI"


def _shift_to_c(score, start, end, pitch, in_range) -> int:
    """Semitones that move the piece's key to C major / C minor, staying on the keyboard."""
    tonic = _key_from_signature(score)
    if tonic is None:
        tonic = estimate_tonic(pitch[in_range], (end - start)[in_range])
    shift = (-tonic + 6) % 12 - 6  # -6..+5: the smallest move to C
    low, high = pitch[in_range].min(), pitch[in_range].max()
    for candidate in (shift, shift + 12, shift - 12):  # the octave alternative if off the keys
        if low + candidate >= LOWEST_PITCH and high + candidate <= HIGHEST_PITCH:
            return candidate
    return shift


def _key_from_signature(score) -> int | None:
    """Tonic pitch class from the first key signature event, or None if there is none."""
    if not len(score.key_signatures):
        return None
    first = min(score.key_signatures, key=lambda k: k.time)
    major_tonic = (7 * int(first.key)) % 12  # each sharp moves the tonic a fifth up
    return (major_tonic + 9) % 12 if int(first.tonality) == 1 else major_tonic


def estimate_tonic(pitches: np.ndarray, durations: np.ndarray) -> int:
    """Krumhansl-Schmuckler: the tonic pitch class whose major or minor profile fits best."""
    return estimate_key(pitches, durations)[0]


def estimate_key(pitches: np.ndarray, durations: np.ndarray) -> tuple[int, bool]:
    """Krumhansl-Schmuckler: (tonic pitch class, minor?) of the key profile that fits best the
    duration-weighted pitch-class histogram; (0, False), C major, when nothing sounds."""
    histogram = np.bincount(np.asarray(pitches) % 12, weights=np.asarray(durations, float),
                            minlength=12)
    if not histogram.any():
        return 0, False
    best, best_key = -np.inf, (0, False)
    for minor, profile in ((False, _MAJOR_PROFILE), (True, _MINOR_PROFILE)):
        for tonic in range(12):
            # Profile rolled so that its tonic entry sits at pitch class `tonic`.
            r = np.corrcoef(histogram, np.roll(profile, tonic))[0, 1]
            if np.isfinite(r) and r > best:
                best, best_key = r, (tonic, minor)
    return best_key


def roll_to_notes(roll: np.ndarray, struck: np.ndarray | None = None) -> list[tuple[int, int, int]]:
    """Notes of a roll as (MIDI pitch, start frame, end frame), sorted by start then pitch.

    Without `struck`, a key sounding in consecutive frames is one held note. With it (bool, the
    roll's shape: keys struck at each frame), a key struck while it already sounds ends the note
    before and starts a new one. End is exclusive.
    """
    roll = np.asarray(roll, dtype=bool)
    padded = np.zeros((len(roll) + 2, roll.shape[1]), dtype=bool)
    padded[1:-1] = roll
    before, now = padded[:-1], padded[1:]
    starts = now & ~before  # padded row t + 1 is frame t
    if struck is not None:
        starts[:-1] |= roll & np.asarray(struck, dtype=bool)
    stops = before & ~now
    # Transposed, nonzero() walks key by key in time order; a note lasts from its start to the
    # next start or stop of its key, the next entry in that walk (a key's last entry is a stop).
    key, frame = np.nonzero((starts | stops).T)
    is_start = starts.T[key, frame]
    first = np.flatnonzero(is_start)
    order = np.lexsort((key[first], frame[first]))
    notes = np.stack([key[first] + LOWEST_PITCH, frame[first], frame[first + 1]], axis=1)[order]
    return list(map(tuple, notes.tolist()))


def roll_to_midi(roll: np.ndarray, path: str | os.PathLike, *, qpm: float = DEFAULT_QPM,
                 frames_per_quarter: int = DEFAULT_FRAMES_PER_QUARTER, program: int = 0, velocity: int = 80,
                 struck: np.ndarray | None = None) -> int:
    """Write a roll as a one-instrument MIDI file (atomically); returns the number of notes.
    struck: the keys struck at each frame (see roll_to_notes), so re-struck notes stay apart."""
    import pretty_midi

    from seqgate.files import atomic_write

    seconds_per_frame = 60.0 / (qpm * frames_per_quarter)
    # 480 ticks per quarter divides evenly by 1, 2, 3, 4, 6, 8... frames per quarter.
    midi = pretty_midi.PrettyMIDI(resolution=480, initial_tempo=qpm)
    instrument = pretty_midi.Instrument(program=int(program))
    notes = roll_to_notes(roll, struck)
    for pitch, start, end in notes:
        instrument.notes.append(pretty_midi.Note(velocity=int(velocity), pitch=int(pitch),
                                                 start=start * seconds_per_frame,
                                                 end=end * seconds_per_frame))
    midi.instruments.append(instrument)
    with atomic_write(Path(path), "wb") as handle:
        midi.write(handle)
    return len(notes)
