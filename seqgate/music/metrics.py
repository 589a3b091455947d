"""Musical statistics of piano rolls: how much sounds, how dense, in which keys, how steady.

Used to describe the training corpus (`train` keeps it in the run) and to compare generated samples with the training data
(`sample`, `compare`): a model that has learned the style should produce about the same polyphony,
note count per frame, pitch-class distribution, scale use and groove as the pieces it was trained
on.

The measures follow MusPy (Dong et al. 2020, "MusPy: A Toolkit for Symbolic Music Generation",
muspy/metrics/metrics.py: polyphony, pitch_class_entropy, pitch_range, scale_consistency,
pitch_in_scale_rate, empty_beat_rate, groove_consistency), computed here on binary rolls rather
than note lists. MusPy measures one piece; here every measure is taken per piece and pooled over
the corpus by its own unit (notes, frames, beats, measure pairs), so a long piece weighs more than
a short one. Two of the keys look alike but differ: `polyphony` (MusPy's) averages the sounding
keys over non-empty frames only, `mean_notes_per_frame` over all frames (`empty_frame_share`
gives the rest).

A roll is a boolean array (frames, keys), column k = MIDI pitch 21 + k (see roll.py). Everything
is vectorised over the concatenated corpus (only the key estimate loops, once per piece), so a
corpus of a million frames takes a few seconds at most.
"""

from __future__ import annotations

import numbers

import numpy as np

from seqgate.data.keys import MAJOR_STEPS, NATURAL_MINOR_STEPS, estimate_key
from seqgate.data.roll import LOWEST_PITCH, N_KEYS
# MIDI rolls here carry no time signature: a measure is taken to be four quarter-note beats.
from seqgate.settings import QUARTERS_PER_BAR

PITCH_CLASSES = 12
# The 24 scales of MusPy's _get_scale, one row each, as pitch-class masks: rows 0..11 major on
# tonic 0..11, rows 12..23 natural (Aeolian) minor, the minor MusPy uses. A natural minor holds
# the pitch classes of its relative major, so the 24 rows hold 12 distinct sets.
_MAJOR_SCALE = np.isin(np.arange(PITCH_CLASSES), MAJOR_STEPS)  # C D E F G A B
_MINOR_SCALE = np.isin(np.arange(PITCH_CLASSES), NATURAL_MINOR_STEPS)  # C D Eb F G Ab Bb
SCALES = np.array([np.roll(scale, tonic) for scale in (_MAJOR_SCALE, _MINOR_SCALE)
                   for tonic in range(PITCH_CLASSES)])

# The measures a sample is judged by beside its training corpus (`sample`, `compare`,
# bench/sample_quality.py): roll_statistics key -> (heading, format).
SAMPLE_MEASURES = {
    "mean_notes_per_frame": ("notes/frame", ".2f"),
    "polyphony": ("polyphony", ".2f"),
    "pitch_class_entropy": ("pitch-class entropy", ".2f"),
    "mean_pitch": ("mean pitch", ".1f"),
    "scale_consistency": ("scale", ".1%"),
    "pitch_in_scale_rate": ("in key", ".1%"),
    "empty_beat_rate": ("empty beats", ".1%"),
    "groove_consistency": ("groove", ".3f"),
}

MEASURES_CAPTION = ("MusPy's measures (metrics.py). Entropy in bits, at most log2(12) = 3.58; polyphony: "
                    "keys over frames that sound; scale: notes in the best-fitting scale; in key: in the "
                    "piece's estimated key; groove: onsets alike bar to bar")


def format_measure(stats: dict, key: str) -> str:
    """One SAMPLE_MEASURES value as shown, "-" where it is unknown (or from an older run)."""
    value = stats.get(key)
    return "-" if value is None else format(value, SAMPLE_MEASURES[key][1])


def format_measure_stat(stat: dict, key: str, separator: str = " ") -> str:
    """A SAMPLE_MEASURES mean over seeds ({"mean", "std"}) as shown everywhere a measure is (the
    terminal, report.md, report.html): "86.2%" or "86.2% ± 1.3%" (the std with two seeds or
    more), "-" where unknown."""
    if stat.get("mean") is None:
        return "-"
    text = format(stat["mean"], SAMPLE_MEASURES[key][1])
    if stat.get("std") is not None:
        text += f"{separator}± {format(stat['std'], SAMPLE_MEASURES[key][1])}"
    return text


def measure_legend() -> dict:
    """For results.json: each SAMPLE_MEASURES key's heading and how it is shown, since the file
    stores rates as fractions (0.862) and every table shows them as percentages (86.2%)."""
    return {key: {"heading": heading, "shown_as": "percent" if fmt.endswith("%") else "number",
                  "stored_as": "fraction from 0 to 1" if fmt.endswith("%") else "number"}
            for key, (heading, fmt) in SAMPLE_MEASURES.items()}


def roll_statistics(rolls: list[np.ndarray], onsets: list[np.ndarray] | None = None,
                    frames_per_quarter: float | None = None) -> dict:
    """Statistics over all frames of all `rolls`, as plain Python numbers (JSON-able).

    rolls: the pieces, each a (frames, keys) array in which any nonzero value sounds; one 2-D
    array is one piece. onsets: None, or one array per roll of the same shape saying which keys
    are struck at each frame (a key struck again while it sounds starts a new note). Without it a
    note starts wherever a key sounds that did not sound in the frame before. With it, a note
    starts at every struck cell that sounds (a strike on a silent cell is ignored) and, still,
    wherever a key starts sounding (a note has to start somewhere, whatever `onsets` says). The
    frame before each piece counts as silent: notes never run across pieces.
    frames_per_quarter: the grid, for the beat measures. The beat is a quarter note and, as MIDI
    rolls here carry no time signature, a measure is always 4 beats; a measure must be a whole
    number of frames (4 * frames_per_quarter an integer). Without it the beat measures are None.

    frames                 total number of frames
    pieces                 number of rolls
    notes                  number of notes (see onsets above)
    mean_notes_per_frame   mean number of keys sounding per frame (0.0 when there are no frames)
    pitch_class_entropy    Shannon entropy in bits of the pitch-class histogram over sounding
                           key-frames (0.0 for silence; at most log2(12) = 3.585)
    empty_frame_share      fraction of frames where no key sounds (0.0 when there are no frames)
    max_polyphony          most keys sounding in one frame
    lowest_pitch           MIDI pitch of the lowest key that ever sounds, None if none does
    highest_pitch          MIDI pitch of the highest, None if none does
    mean_pitch             the mean MIDI pitch of the sounding cells (the register), None if none

    The MusPy measures are None where their denominator is empty (MusPy returns NaN there), so a
    corpus without frames gives None for all five:
    polyphony              muspy.polyphony: mean number of keys sounding over the frames where at
                           least one sounds; None if none does
    scale_consistency      muspy.scale_consistency: per piece, the largest share of its notes
                           whose pitch class lies in one of the 24 major / natural minor scales
                           (notes counted by their starts, as MusPy counts notes, not frames);
                           pooled as the share of all notes; None without notes
    pitch_in_scale_rate    muspy.pitch_in_scale_rate, each piece in its own key: the key is
                           keys.estimate_key (Krumhansl-Schmuckler) of the piece's notes weighted
                           by their sounding frames; the share of all notes whose pitch class is
                           in their piece's scale (natural minor for a minor key); None without
                           notes
    empty_beat_rate        muspy.empty_beat_rate: share of beats in which no key sounds (MusPy
                           marks every beat a note spans, start to end, so sounding, not
                           starting, is what fills a beat); a piece has ceil(frames / fpq) beats,
                           the last maybe partial, and the rate is over the beats of all pieces;
                           None without frames_per_quarter or without frames
    groove_consistency     muspy.groove_consistency: 1 - the mean Hamming distance between the
                           onset patterns (at which frames of the measure any note starts) of
                           consecutive measures, divided by the measure length in frames; a
                           partial last measure is padded with silence; only measures of one
                           piece are compared; the mean is over the measure pairs of all pieces;
                           None without frames_per_quarter or when no piece has two measures
    """
    rolls = _pieces(rolls, "rolls")
    n_keys = rolls[0].shape[1] if rolls else N_KEYS
    if any(roll.shape[1] != n_keys for roll in rolls):
        raise ValueError("all rolls must have the same number of keys")
    if onsets is not None:
        onsets = _pieces(onsets, "onsets")
        if len(onsets) != len(rolls) or any(o.shape != r.shape for o, r in zip(onsets, rolls)):
            raise ValueError("onsets must hold one array per roll, each of the roll's shape")
    measure_frames = _measure_frames(frames_per_quarter)

    lengths = np.array([roll.shape[0] for roll in rolls], dtype=np.int64)
    frames = int(lengths.sum())
    if frames == 0:
        return {"frames": 0, "pieces": len(rolls), "notes": 0, "mean_notes_per_frame": 0.0,
                "pitch_class_entropy": 0.0, "empty_frame_share": 0.0, "max_polyphony": 0,
                "lowest_pitch": None, "highest_pitch": None, "mean_pitch": None, "polyphony": None,
                "scale_consistency": None, "pitch_in_scale_rate": None, "empty_beat_rate": None,
                "groove_consistency": None}
    sounding = np.concatenate([roll.astype(bool, copy=False) for roll in rolls], axis=0)
    piece_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    first_frames = piece_starts[lengths > 0]

    # A note starts where a key sounds and did not sound in the frame before (the frame before
    # each piece counts as silent), and, given onsets, wherever a sounding key is struck again.
    starts = sounding.copy()
    starts[1:] &= ~sounding[:-1]
    starts[first_frames] = sounding[first_frames]
    if onsets is not None:
        starts |= np.concatenate([o.astype(bool, copy=False) for o in onsets], axis=0) & sounding
    notes = int(np.count_nonzero(starts))

    keys_per_frame = np.count_nonzero(sounding, axis=1)
    frames_per_key = np.count_nonzero(sounding, axis=0)
    sounding_keys = np.flatnonzero(frames_per_key)
    sounding_frames = int(np.count_nonzero(keys_per_frame))

    pitch_class_of_key = (LOWEST_PITCH + np.arange(n_keys)) % PITCH_CLASSES
    pitch_class_counts = np.bincount(pitch_class_of_key, weights=frames_per_key,
                                     minlength=PITCH_CLASSES)
    piece_of_frame = np.repeat(np.arange(len(rolls)), lengths)
    scale_consistency, pitch_in_scale_rate = _scale_shares(sounding, starts, piece_of_frame,
                                                           len(rolls), notes)
    return {
        "frames": frames,
        "pieces": len(rolls),
        "notes": notes,
        "mean_notes_per_frame": float(keys_per_frame.mean()),
        "pitch_class_entropy": entropy_bits(pitch_class_counts),
        "empty_frame_share": float(np.mean(keys_per_frame == 0)),
        "max_polyphony": int(keys_per_frame.max()),
        "lowest_pitch": int(LOWEST_PITCH + sounding_keys[0]) if sounding_keys.size else None,
        "highest_pitch": int(LOWEST_PITCH + sounding_keys[-1]) if sounding_keys.size else None,
        # the register: the MIDI pitch of a sounding cell, on average
        "mean_pitch": (float(LOWEST_PITCH + np.dot(np.arange(n_keys), frames_per_key) / frames_per_key.sum())
                       if sounding_keys.size else None),
        "polyphony": float(keys_per_frame.sum() / sounding_frames) if sounding_frames else None,
        "scale_consistency": scale_consistency,
        "pitch_in_scale_rate": pitch_in_scale_rate,
        "empty_beat_rate": (None if measure_frames is None else
                            _empty_beat_rate(keys_per_frame > 0, piece_of_frame, piece_starts,
                                             lengths, measure_frames)),
        "groove_consistency": (None if measure_frames is None else
                               _groove_consistency(starts.any(axis=1), piece_of_frame,
                                                   piece_starts, lengths, measure_frames)),
    }


def _pieces(arrays, name: str) -> list[np.ndarray]:
    """A list of 2-D arrays from a list of them or from one 2-D array (one piece on its own)."""
    if isinstance(arrays, np.ndarray) and arrays.ndim == 2:
        arrays = [arrays]
    arrays = [np.asarray(array) for array in arrays]
    for array in arrays:
        if array.ndim != 2:
            raise ValueError(f"{name}: a roll must be (frames, keys), got shape {array.shape}")
    return arrays


def _measure_frames(frames_per_quarter) -> int | None:
    """Frames per measure (4 quarter-note beats) for a grid, None for no grid."""
    if frames_per_quarter is None:
        return None
    if (isinstance(frames_per_quarter, bool) or not isinstance(frames_per_quarter, numbers.Real)
            or not np.isfinite(frames_per_quarter) or frames_per_quarter <= 0):
        raise ValueError(f"frames_per_quarter must be a positive number, "
                         f"got {frames_per_quarter!r}")
    measure = QUARTERS_PER_BAR * frames_per_quarter
    if measure != round(measure):
        raise ValueError(f"a measure of {QUARTERS_PER_BAR} beats must be a whole number of "
                         f"frames; frames_per_quarter {frames_per_quarter!r} gives {measure:g}")
    return int(round(measure))


def _scale_shares(sounding: np.ndarray, starts: np.ndarray, piece_of_frame: np.ndarray,
                  n_pieces: int, notes: int) -> tuple[float | None, float | None]:
    """(scale_consistency, pitch_in_scale_rate) of the concatenated corpus; see roll_statistics.

    Follows muspy.scale_consistency and muspy.pitch_in_scale_rate (with _get_scale's major and
    natural minor), with notes counted per piece and pitch class instead of one by one.
    """
    if notes == 0:
        return None, None
    n_keys = sounding.shape[1]
    frames_per_key = _counts_per_piece_and_key(sounding, piece_of_frame, n_pieces)
    notes_per_key = _counts_per_piece_and_key(starts, piece_of_frame, n_pieces)
    key_to_class = np.zeros((n_keys, PITCH_CLASSES), dtype=np.int64)
    key_to_class[np.arange(n_keys), (LOWEST_PITCH + np.arange(n_keys)) % PITCH_CLASSES] = 1
    notes_per_class = notes_per_key @ key_to_class  # (pieces, 12)

    in_scale = notes_per_class @ SCALES.T.astype(np.int64)  # (pieces, 24): notes in each scale
    scale_consistency = in_scale.max(axis=1).sum() / notes

    # The key of each piece that has notes (Krumhansl-Schmuckler needs a loop over pieces).
    midi_pitches = LOWEST_PITCH + np.arange(n_keys)
    scale_of_piece = np.zeros(n_pieces, dtype=np.int64)
    for piece in np.flatnonzero(notes_per_class.any(axis=1)):
        # A flat histogram (all twelve classes alike) has no correlation with any profile:
        # estimate_key then answers C major, and numpy's warning about it says nothing more.
        with np.errstate(invalid="ignore", divide="ignore"):
            tonic, minor = estimate_key(midi_pitches, frames_per_key[piece])
        scale_of_piece[piece] = tonic + PITCH_CLASSES * minor
    in_own_scale = in_scale[np.arange(n_pieces), scale_of_piece].sum()
    return float(scale_consistency), float(in_own_scale / notes)


def _counts_per_piece_and_key(cells: np.ndarray, piece_of_frame: np.ndarray,
                              n_pieces: int) -> np.ndarray:
    """(pieces, keys) counts of the True cells of a (frames, keys) array, by the frame's piece."""
    n_keys = cells.shape[1]
    flat = np.flatnonzero(cells)  # sorted by frame, then key: only the True cells are touched
    bins = piece_of_frame[flat // n_keys] * n_keys + flat % n_keys
    return np.bincount(bins, minlength=n_pieces * n_keys).reshape(n_pieces, n_keys)


def _empty_beat_rate(frame_sounds: np.ndarray, piece_of_frame: np.ndarray,
                     piece_starts: np.ndarray, lengths: np.ndarray, measure_frames: int) -> float:
    """muspy.empty_beat_rate over all beats of all pieces: the share of beats no sounding frame
    overlaps.

    Beat b of a piece spans frames [b * fpq, (b + 1) * fpq), fpq = measure_frames / 4, so with a
    grid coarser than a beat a frame spans several beats, and with a grid not a whole number of
    frames per beat a frame may straddle two. Times are kept in quarters of a frame, so that all
    arithmetic is on integers. Unlike MusPy, a note ending exactly on a beat does not fill the
    beat that follows (MusPy marks beats note.time // resolution .. note.end // resolution
    inclusive, though note.end is exclusive), and the beats run to the end of the roll, not to the
    end of its last note.
    """
    beat = measure_frames  # a beat, in quarter-frames: measure_frames / 4 frames
    beats_per_piece = (QUARTERS_PER_BAR * lengths + beat - 1) // beat
    first_beat = np.concatenate([[0], np.cumsum(beats_per_piece)[:-1]])
    total_beats = int(beats_per_piece.sum())
    frame = np.flatnonzero(frame_sounds)
    piece = piece_of_frame[frame]
    local = QUARTERS_PER_BAR * (frame - piece_starts[piece])  # frame start, in quarter-frames
    first = first_beat[piece] + local // beat
    last = first_beat[piece] + (local + QUARTERS_PER_BAR - 1) // beat  # beat of the frame's end
    # Mark each sounding frame's beat span [first, last] with +1 / -1 and add up along the beats.
    marks = (np.bincount(first, minlength=total_beats + 1)
             - np.bincount(last + 1, minlength=total_beats + 1))
    filled = int(np.count_nonzero(np.cumsum(marks)[:total_beats]))
    return 1.0 - filled / total_beats


def _groove_consistency(frame_starts_note: np.ndarray, piece_of_frame: np.ndarray,
                        piece_starts: np.ndarray, lengths: np.ndarray,
                        measure_frames: int) -> float | None:
    """muspy.groove_consistency pooled over the consecutive measure pairs of all pieces.

    Frame t of a measure is compared with frame t of the next measure of the same piece: with
    frames numbered within the piece, position p (in every measure but the last) with p + measure,
    or with silence where p + measure falls in the padding of a partial last measure.
    """
    measures = (lengths + measure_frames - 1) // measure_frames
    pairs = int(np.maximum(measures - 1, 0).sum())
    if pairs == 0:
        return None
    local = np.arange(len(piece_of_frame)) - piece_starts[piece_of_frame]
    compared = local < (measures - 1)[piece_of_frame] * measure_frames
    following = np.zeros_like(frame_starts_note)  # the same position one measure on, or silence
    has_next = np.flatnonzero(local + measure_frames < lengths[piece_of_frame])
    following[has_next] = frame_starts_note[has_next + measure_frames]
    distance = int(np.count_nonzero(compared & (frame_starts_note != following)))
    return 1.0 - distance / (measure_frames * pairs)


def entropy_bits(counts: np.ndarray) -> float:
    """Shannon entropy, in bits, of the distribution proportional to `counts` (0.0 if all zero)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return 0.0
    shares = counts[counts > 0] / total
    # max(0, ...) turns the -0.0 of a single class into 0.0.
    return max(0.0, float(-(shares * np.log2(shares)).sum()))


# A corpus is described (its statistics kept in a run, shown beside samples) by at most this many
# frames, its first pieces, so that the dense rolls it takes cost bounded memory.
DESCRIBED_MAX_FRAMES = 1_000_000


def describe_corpus(dataset, pieces: list[int]) -> tuple[dict, np.ndarray | None]:
    """(roll_statistics, restrike_share or None without onsets) of the first of a dataset's
    `pieces` that hold DESCRIBED_MAX_FRAMES frames (all of them, for a smaller corpus)."""
    described = pieces[:int(np.searchsorted(np.cumsum(dataset.lengths[pieces]), DESCRIBED_MAX_FRAMES)) + 1]
    rolls = [dataset.roll(p) for p in described]
    struck = [dataset.struck(p) for p in described] if dataset.onsets is not None else None
    return (roll_statistics(rolls, struck, dataset.frames_per_quarter),
            None if struck is None else restrike_share(rolls, struck))


def restrike_share(rolls: list[np.ndarray], struck: list[np.ndarray]) -> np.ndarray:
    """For each key, the share of its held-over frames (sounding in the frame before too, within
    a piece) in which it is struck again: (keys,) float64, 0.0 for a key never held over.
    An onset-aware model's re-strike units start from these (heads.unit_values)."""
    n_keys = rolls[0].shape[1] if len(rolls) else N_KEYS
    held, again = np.zeros(n_keys), np.zeros(n_keys)
    for roll, strikes in zip(rolls, struck):
        roll = np.asarray(roll, dtype=bool)
        held_over = roll[1:] & roll[:-1]
        held += held_over.sum(0)
        again += (held_over & np.asarray(strikes, dtype=bool)[1:]).sum(0)
    return np.divide(again, held, out=np.zeros(n_keys), where=held > 0)
