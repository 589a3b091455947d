"""Which key a piece is in: Krumhansl & Kessler (1982) key profiles, correlated with the
duration-weighted pitch-class histogram as in the Krumhansl-Schmuckler algorithm. Used to
transpose pieces to C when reading MIDI (roll.py) and for the in-key measures (metrics.py).
"""

from __future__ import annotations

import numpy as np

# Krumhansl-Kessler probe-tone profiles, tonic first.
_MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


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


# Key names: a note letter, an optional sharp or flat, then "major" / "minor" (or "m"); a bare
# letter is major, as in lead sheets ("C", "F# minor", "Bb", "Ebm").
_LETTERS = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_ACCIDENTALS = {"": 0, "#": 1, "b": -1}
_NOTE_NAMES = frozenset(letter + accidental for letter in _LETTERS for accidental in _ACCIDENTALS)
_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")  # how keys are written back

# Scales as semitones above the tonic (metrics.py's scale masks are built from these).
MAJOR_STEPS = (0, 2, 4, 5, 7, 9, 11)
NATURAL_MINOR_STEPS = (0, 2, 3, 5, 7, 8, 10)
# A minor key's notes in common practice: the natural minor scale plus its raised sixth and seventh
# (the melodic and harmonic minor's), so a leading tone is in the key, as it is in Bach.
_MINOR_KEY_STEPS = tuple(sorted(NATURAL_MINOR_STEPS + (9, 11)))


def parse_key(text: str) -> tuple[int, bool] | None:
    """(tonic pitch class, minor?) of a key name such as "C", "F# minor", "Bb major" or "ebm";
    None if `text` names no key."""
    words = str(text).strip().lower().split()
    if len(words) == 1 and len(words[0]) > 1 and words[0].endswith("m") and words[0][:-1] in _NOTE_NAMES:
        words = [words[0][:-1], "minor"]
    if not 1 <= len(words) <= 2 or words[0] not in _NOTE_NAMES:
        return None
    mode = words[1] if len(words) == 2 else "major"
    if mode not in ("major", "minor"):
        return None
    note = words[0]
    return (_LETTERS[note[0]] + _ACCIDENTALS[note[1:]]) % 12, mode == "minor"


def key_name(tonic: int, minor: bool) -> str:
    """"C major", "F# minor", ...: the name parse_key reads back."""
    return f"{_NAMES[int(tonic) % 12]} {'minor' if minor else 'major'}"


def key_pitch_classes(tonic: int, minor: bool) -> frozenset[int]:
    """The pitch classes of a key: its major scale, or for a minor key the natural minor scale plus
    the raised sixth and seventh."""
    return frozenset((int(tonic) + step) % 12 for step in (_MINOR_KEY_STEPS if minor else MAJOR_STEPS))
