"""Musical statistics of piano rolls: how much sounds, how dense, in which keys.

Used to describe a corpus (`prepare`) and to compare generated samples with the training data
(`sample`, `compare`): a model that has learned the style should produce about the same polyphony,
note count per frame and pitch-class distribution as the pieces it was trained on.

The statistics follow the common descriptive measures of MusPy (Dong et al. 2020, "MusPy: A
Toolkit for Symbolic Music Generation", muspy.metrics: polyphony, pitch_class_entropy,
empty_beat_rate, pitch_range), computed here on binary rolls rather than note lists. One
difference: MusPy's polyphony averages over non-empty time steps only, while mean_notes_per_frame
averages over all frames (empty_frame_share gives the rest).

A roll is a boolean array (frames, keys), column k = MIDI pitch 21 + k (see roll.py). Everything
is vectorised over the concatenated corpus, so whole datasets (hundreds of thousands of frames)
take a fraction of a second.
"""

from __future__ import annotations

import numpy as np

from seqgate.roll import LOWEST_PITCH, N_KEYS

PITCH_CLASSES = 12


def roll_statistics(rolls: list[np.ndarray]) -> dict:
    """Statistics over all frames of all `rolls`, as plain Python numbers (JSON-able).

    frames                 total number of frames
    pieces                 number of rolls
    notes                  number of notes: a key held over consecutive frames of one piece is
                           one note; a key sounding at the end of one piece and the start of the
                           next is two
    mean_notes_per_frame   mean number of keys sounding per frame (0.0 when there are no frames)
    pitch_class_entropy    Shannon entropy in bits of the pitch-class histogram over sounding
                           key-frames (0.0 for silence; at most log2(12) = 3.585)
    empty_frame_share      fraction of frames where no key sounds (0.0 when there are no frames)
    max_polyphony          most keys sounding in one frame
    lowest_pitch           MIDI pitch of the lowest key that ever sounds, None if none does
    highest_pitch          MIDI pitch of the highest, None if none does
    """
    if isinstance(rolls, np.ndarray) and rolls.ndim == 2:
        rolls = [rolls]  # one piece given on its own
    rolls = [np.asarray(roll) for roll in rolls]
    for roll in rolls:
        if roll.ndim != 2:
            raise ValueError(f"a roll must be (frames, keys), got shape {roll.shape}")
    n_keys = rolls[0].shape[1] if rolls else N_KEYS
    if any(roll.shape[1] != n_keys for roll in rolls):
        raise ValueError("all rolls must have the same number of keys")

    lengths = np.array([roll.shape[0] for roll in rolls], dtype=np.int64)
    frames = int(lengths.sum())
    if frames == 0:
        return {"frames": 0, "pieces": len(rolls), "notes": 0, "mean_notes_per_frame": 0.0,
                "pitch_class_entropy": 0.0, "empty_frame_share": 0.0, "max_polyphony": 0,
                "lowest_pitch": None, "highest_pitch": None}
    sounding = np.concatenate([roll.astype(bool, copy=False) for roll in rolls], axis=0)

    # A note starts where a key sounds and did not sound in the frame before. The frame before
    # the first frame of each piece counts as silent, so notes never run across pieces.
    sounded_before = np.zeros_like(sounding)
    sounded_before[1:] = sounding[:-1]
    piece_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    sounded_before[piece_starts[lengths > 0]] = False
    notes = int(np.count_nonzero(sounding & ~sounded_before))

    keys_per_frame = np.count_nonzero(sounding, axis=1)
    frames_per_key = np.count_nonzero(sounding, axis=0)
    sounding_keys = np.flatnonzero(frames_per_key)

    pitch_class_of_key = (LOWEST_PITCH + np.arange(n_keys)) % PITCH_CLASSES
    pitch_class_counts = np.bincount(pitch_class_of_key, weights=frames_per_key,
                                     minlength=PITCH_CLASSES)
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
    }


def entropy_bits(counts: np.ndarray) -> float:
    """Shannon entropy, in bits, of the distribution proportional to `counts` (0.0 if all zero)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return 0.0
    shares = counts[counts > 0] / total
    # max(0, ...) turns the -0.0 of a single class into 0.0.
    return max(0.0, float(-(shares * np.log2(shares)).sum()))
