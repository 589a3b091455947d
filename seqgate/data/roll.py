"""MIDI <-> piano roll: the first stage of the pipeline.

A roll is a boolean (frames, 88) array: column k is MIDI pitch 21 + k (A0..C8), one row per grid
step. The grid follows the beat (ticks per quarter note), not seconds, so a tempo change never
smears the rhythm: a note starting on beat 3 lands on frame 3 * frames_per_quarter whatever the
tempo was. What the roll cannot hold (source tempo, GM program) is returned beside it so that export
can put it back.

Reading uses symusic (a fast C++ MIDI parser); writing uses pretty_midi; --transpose-to-c takes
the key from the file's key signature, or else from keys.estimate_tonic.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqgate.data.keys import estimate_tonic
from seqgate.errors import is_number

N_KEYS = 88
LOWEST_PITCH = 21  # column k is MIDI pitch 21 + k
HIGHEST_PITCH = LOWEST_PITCH + N_KEYS - 1  # 108
# Two grid steps per quarter note: eighth notes, the grid of the Nottingham, MuseData and
# Piano-midi benchmarks (JSB Chorales uses one).
DEFAULT_FRAMES_PER_QUARTER = 2
# The tempo MIDI assumes when a file sets none (the standard's 500,000 microseconds a beat).
DEFAULT_QPM = 120.0

# A roll longer than this is refused: about 69 hours at 120 qpm and 2 frames per quarter note.
MAX_FRAMES = 1_000_000
# The finest grid seqgate reads or writes: 96 frames per quarter is a 1/384 note.
MAX_FRAMES_PER_QUARTER = 96


def is_grid(value) -> bool:
    """Whether a value (an option, or read from a file) is a grid every stage can read back: a
    whole number of frames per quarter note, 1..MAX_FRAMES_PER_QUARTER."""
    return is_number(value, whole=True) and 1 <= value <= MAX_FRAMES_PER_QUARTER
# read_midi_batch marks the cells of consecutive files in runs of up to this many frames (a byte
# a cell: 720 KB, small enough to stay in the processor's cache); a longer file is marked alone.
MARKED_FRAMES_AT_ONCE = 8192


def on_keyboard(pitch: np.ndarray) -> np.ndarray:
    """Which MIDI pitches a roll can hold (LOWEST_PITCH..HIGHEST_PITCH), as a bool array."""
    return (pitch >= LOWEST_PITCH) & (pitch <= HIGHEST_PITCH)


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
    """read_midi_roll's roll in the dataset's sparse form; BadMidi with a short reason if unusable.
    onsets: also the onset bit of each sounding key (1 at the frame a note starts on), so that a
    key struck again while it sounds stays two notes."""
    rolls, reasons = read_midi_batch([path], frames_per_quarter, drums, transpose_to_c, onsets)
    if reasons[0] is not None:
        raise BadMidi(reasons[0])
    return rolls.piece(0)


@dataclass
class SparseRolls:
    """Several pieces in the dataset's sparse form, one after another: what read_midi_batch gives
    for a list of files (the usable ones, in order), and what a parser worker sends back for a
    chunk of files in one message."""
    pitches: np.ndarray  # uint8: each piece's SparseMidiRoll.pitches in turn
    frame_counts: np.ndarray  # uint8: each piece's keys per frame in turn
    onsets: np.ndarray | None  # uint8 beside pitches, if asked
    notes_per_piece: np.ndarray  # int64: each piece's share of pitches
    frames_per_piece: np.ndarray  # int64: each piece's share of frame_counts
    qpm: np.ndarray  # float64, a piece each
    programs: np.ndarray  # int64, a piece each
    dropped_out_of_range: np.ndarray  # int64, a piece each

    def __len__(self) -> int:
        return len(self.frames_per_piece)

    def piece(self, i: int) -> SparseMidiRoll:
        notes = slice(int(self.notes_per_piece[:i].sum()), int(self.notes_per_piece[:i + 1].sum()))
        frames = slice(int(self.frames_per_piece[:i].sum()), int(self.frames_per_piece[:i + 1].sum()))
        return SparseMidiRoll(self.pitches[notes], self.frame_counts[frames], float(self.qpm[i]),
                              int(self.programs[i]), int(self.dropped_out_of_range[i]),
                              None if self.onsets is None else self.onsets[notes])


def read_midi_batch(paths, frames_per_quarter: int = DEFAULT_FRAMES_PER_QUARTER, drums: bool = False,
                    transpose_to_c: bool = False, onsets: bool = False,
                    starting=None) -> tuple[SparseRolls, list[str | None]]:
    """Read several MIDI files: the usable ones' rolls (in order), and for every file None if it
    is usable or the short reason it is not. starting(k), if given, is called before file k.

    The parser reads one file at a time; the roll arithmetic then runs once for all of them in a
    handful of array operations. Done file by file, it cost more than the parse of a small file,
    and this is what `prepare` runs on every file of a corpus.
    """
    import symusic.core  # imported here so that writing rolls does not need it

    # symusic's own reader of a tick-time score, without symusic.Score's Python wrapper (which
    # makes a Path and checks it is a file: ~10 us a file, a fifth of a chorale's parse).
    parse = symusic.core.ScoreTick.from_file
    reasons: list[str | None] = [None] * len(paths)
    read = []  # a row per file with notes: (its place in paths, ticks per quarter, qpm, program, shift)
    columns, counts = [], []  # symusic's numpy columns of every kept track; notes kept per file
    for k, path in enumerate(paths):
        if starting is not None:
            starting(k)
        try:
            score = parse(str(path))
        except Exception as error:  # symusic raises RuntimeError/ValueError with its own wording
            reasons[k] = _reason_from_parser(path, error)
            continue
        try:
            kept, programs, has_drums, n_kept = [], {}, False, 0
            for track in score.tracks:
                notes = track.notes
                count = len(notes)
                if count == 0:
                    continue
                if track.is_drum:
                    has_drums = True
                    if not drums:
                        continue
                else:
                    program = int(track.program)
                    programs[program] = programs.get(program, 0) + count
                # A conversion a track: gathering the tracks in one first costs more.
                kept.append(notes.numpy())
                n_kept += count
            if not kept:
                reasons[k] = "drums only (use --drums to keep)" if has_drums else "no notes"
                continue
            shift = _shift_to_c(score, kept) if transpose_to_c else 0
            tempos = score.tempos
            qpm = round(float(min(tempos, key=lambda t: t.time).qpm), 3) if len(tempos) else DEFAULT_QPM
            program = max(sorted(programs), key=lambda p: programs[p]) if programs else 0
            row = (k, int(score.ticks_per_quarter), qpm, program, shift)
        except Exception as error:  # a surprise in one file must not lose the others
            reasons[k] = parser_error(f"{type(error).__name__}: {error}")
            continue
        read.append(row)
        columns.extend(kept)
        counts.append(n_kept)
    return _rolls_of_notes(columns, counts, read, reasons, frames_per_quarter, onsets), reasons


def parser_error(detail: str) -> str:
    """What the user reads about a file whose reading raised something unforeseen."""
    return f"parser error ({detail})"


def _notes_of(columns) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """symusic's numpy columns of one or more tracks -> (start tick, end tick, MIDI pitch), int64."""
    if not columns:
        return (np.zeros(0, dtype=np.int64),) * 3
    start = np.concatenate([c["time"] for c in columns]).astype(np.int64)
    end = start + np.concatenate([c["duration"] for c in columns])
    return start, end, np.concatenate([c["pitch"] for c in columns]).astype(np.int64)


def _rolls_of_notes(columns, counts, read, reasons, frames_per_quarter: int, onsets: bool) -> SparseRolls:
    """read_midi_batch's second half: the notes of every file read -> their sparse rolls; a
    reason for each file that turns out unusable."""
    n = len(read)
    position, tpq, qpm, program, shift = (np.array(column) for column in zip(*read)) if n else \
        (np.zeros(0, dtype=np.int64),) * 5
    counts = np.array(counts, dtype=np.int64)
    start, end, pitch = _notes_of(columns)
    if shift.any():
        pitch += np.repeat(shift, counts)
    file = np.repeat(np.arange(n), counts)
    in_range = on_keyboard(pitch)
    kept = counts
    if not in_range.all():  # (the filters below cost more than the rest when nothing is left out)
        kept = np.bincount(file[in_range], minlength=n)
        start, end, pitch, file = start[in_range], end[in_range], pitch[in_range], file[in_range]
    key = pitch - LOWEST_PITCH

    # Round half up on the beat grid, in integers so no float ever decides a frame.
    note_tpq = np.repeat(tpq, kept)
    onset = (2 * start * frames_per_quarter + note_tpq) // (2 * note_tpq)
    offset = np.maximum((2 * end * frames_per_quarter + note_tpq) // (2 * note_tpq),
                        onset + 1)  # every note at least one frame long
    frames = np.zeros(n, dtype=np.int64)
    if len(offset):  # notes are grouped by file: each file's length is a reduceat
        frames[kept > 0] = np.maximum.reduceat(offset, (np.cumsum(kept) - kept)[kept > 0])
    usable = (kept > 0) & (frames <= MAX_FRAMES)  # a corrupt tick value must not allocate gigabytes
    for i in np.flatnonzero(~usable).tolist():
        reasons[position[i]] = (f"all notes outside MIDI {LOWEST_PITCH}..{HIGHEST_PITCH}" if not kept[i]
                                else f"longer than {MAX_FRAMES:,} frames (a corrupt time value?)")
    if not usable.all():
        notes = usable[file]
        onset, offset, key, file = onset[notes], offset[notes], key[notes], (np.cumsum(usable) - 1)[file[notes]]
        frames = frames[usable]
    # Each usable file's frames follow those of the usable files before it, as in the dataset file.
    first_frame = np.cumsum(frames) - frames
    onset, offset = onset + first_frame[file], offset + first_frame[file]
    parts = [_sparse_cells(onset[a:b] - first, offset[a:b] - first, key[a:b], last - first, onsets)
             for first, last, a, b in _frame_groups(first_frame, frames, file)]
    pitches, frame_counts, onset_bits = (
        np.concatenate([part[i] for part in parts]) if parts else np.zeros(0, dtype=np.uint8) for i in range(3))
    cells_before = np.concatenate([[0], np.cumsum(frame_counts, dtype=np.int64)])
    return SparseRolls(pitches, frame_counts, onset_bits if onsets else None,
                       cells_before[first_frame + frames] - cells_before[first_frame], frames,
                       qpm[usable].astype(np.float64), program[usable].astype(np.int64),
                       (counts - kept)[usable])


def _frame_groups(first_frame: np.ndarray, frames: np.ndarray, file: np.ndarray):
    """(first frame, end frame, first note, end note) of runs of consecutive files holding at
    most MARKED_FRAMES_AT_ONCE frames together (or one longer file): the cells are marked a run
    at a time, so the buffer stays bounded however many files are read at once."""
    end_frame = first_frame + frames
    i = 0
    while i < len(frames):
        j = max(i + 1, int(np.searchsorted(end_frame, first_frame[i] + MARKED_FRAMES_AT_ONCE, side="right")))
        a, b = np.searchsorted(file, [i, j])
        yield int(first_frame[i]), int(end_frame[j - 1]), int(a), int(b)
        i = j


def _sparse_cells(onset: np.ndarray, offset: np.ndarray, key: np.ndarray, n_frames: int,
                  onsets: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Notes as (first frame, end frame, key index) on a roll of n_frames -> (key index of every
    sounding cell frame by frame, keys sounding per frame, onset bit of every sounding cell)."""
    # Every (frame, key) cell a note covers, without a Python loop: note i covers frames onset[i]
    # .. offset[i] - 1, whose flat indices in a frames x 88 buffer step by 88 from onset[i] * 88 +
    # key[i]; numbered one after another over all notes (c), cell c of note i is at
    # (onset[i] - cells before note i) * 88 + key[i] + 88 * c. Marked in the buffer (a byte a
    # cell, faster than sorting the cells), the cells in order are the sparse roll: frame by
    # frame, keys low to high.
    lengths = offset - onset
    flat = np.repeat((onset - (np.cumsum(lengths) - lengths)) * N_KEYS + key, lengths)
    flat += np.arange(0, N_KEYS * int(lengths.sum()), N_KEYS)
    marked = np.zeros((n_frames, N_KEYS), dtype=bool)
    marked.reshape(-1)[flat] = True
    cells = np.flatnonzero(marked)
    frame_counts = np.bincount(cells // N_KEYS, minlength=n_frames).astype(np.uint8)
    onset_bits = np.zeros(0, dtype=np.uint8)
    if onsets:  # the cells where a note starts, marked the same way, read at the sounding cells
        marked[:] = False
        marked.reshape(-1)[onset * N_KEYS + key] = True
        onset_bits = marked.reshape(-1)[cells].astype(np.uint8)
    return (cells % N_KEYS).astype(np.uint8), frame_counts, onset_bits


def _reason_from_parser(path, error: Exception) -> str:
    try:
        if not os.path.isfile(path):  # the parser's own word for a folder is std::bad_alloc
            return "not a file" if os.path.exists(path) else "cannot open file"
        if os.path.getsize(path) == 0:
            return "empty file"
    except OSError:
        return "cannot open file"
    message = str(error).replace("MiniMidi: ", "").replace(": iostream error", "").strip()
    return f"unreadable MIDI ({message.rstrip('!')})" if message else "unreadable MIDI"


def _shift_to_c(score, columns) -> int:
    """Semitones that move the piece's key to C major / C minor, staying on the keyboard
    (0 if no note is on it); columns: symusic's numpy columns of the kept tracks."""
    start, end, pitch = _notes_of(columns)
    in_range = on_keyboard(pitch)
    if not in_range.any():
        return 0
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
                 struck: np.ndarray | None = None, key: tuple[int, bool] | None = None) -> int:
    """Write a roll as a one-instrument MIDI file (atomically); returns the number of notes.
    struck: the keys struck at each frame (see roll_to_notes), so re-struck notes stay apart.
    key: (tonic pitch class, minor?), written as the file's key signature."""
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
    if key is not None:  # pretty_midi numbers keys 0-11 major, 12-23 minor, from C
        midi.key_signature_changes.append(pretty_midi.KeySignature(int(key[0]) % 12 + 12 * bool(key[1]), 0.0))
    with atomic_write(Path(path), "wb") as handle:
        midi.write(handle)
    return len(notes)
