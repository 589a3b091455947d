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
