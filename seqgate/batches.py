"""Batches: piano-roll pieces into padded (batch, time, keys) float tensors with a frame mask.

Training: every epoch cuts each training piece into windows of at most `window` frames at a random
phase (so every frame is seen once per epoch and window edges move), groups windows of similar
length, pads them with a mask so padding never touches the loss, and shuffles the batch order.
Evaluation: whole pieces grouped by length. Grouping similar lengths keeps padding (wasted work)
small; the mask keeps it out of every sum.
"""

from __future__ import annotations

import numpy as np
import torch


def training_windows(lengths: list[int], window: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """(piece, start, end) windows covering every frame once, cut at a random phase per piece."""
    windows = []
    for piece, length in enumerate(lengths):
        if length <= window:
            windows.append((piece, 0, length))
            continue
        cut = int(rng.integers(window // 2, window + 1))  # first window half to full length
        starts = [0, *range(cut, length, window)]
        ends = [*starts[1:], length]
        windows.extend((piece, s, e) for s, e in zip(starts, ends))
    return windows


def transpose_limits(roll: np.ndarray) -> tuple[int, int]:
    """How far a piece can shift down and up without a note leaving the keyboard."""
    keys = np.flatnonzero(roll.any(0))
    if len(keys) == 0:
        return 0, 0
    return int(keys[0]), int(roll.shape[1] - 1 - keys[-1])


def epoch_batches(rolls: list[torch.Tensor], limits: list[tuple[int, int]], *, window: int,
                  batch_size: int, augment_transpose: int, rng: np.random.Generator):
    """Yield (padded rolls (B,T,K), mask (B,T)) for one epoch; all randomness from `rng`.

    limits: transpose_limits of each piece; augment_transpose: shift each window by a random
    number of semitones up to this many, never moving a note off the keyboard.
    """
    windows = training_windows([len(r) for r in rolls], window, rng)
    # Sort by length (ties broken at random) so a batch wastes little on padding.
    order = np.lexsort((rng.random(len(windows)), [e - s for _, s, e in windows]))
    groups = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    for group_index in rng.permutation(len(groups)):
        members = [windows[i] for i in groups[group_index]]
        shifts = [0] * len(members)
        if augment_transpose:
            k = augment_transpose
            shifts = [int(rng.integers(-min(k, limits[p][0]), min(k, limits[p][1]) + 1))
                      for p, _, _ in members]
        longest = max(e - s for _, s, e in members)
        batch = torch.zeros(len(members), longest, rolls[0].shape[1])
        mask = torch.zeros(len(members), longest, dtype=torch.bool)
        for row, ((piece, start, end), shift) in enumerate(zip(members, shifts)):
            segment = rolls[piece][start:end]
            if shift:
                segment = torch.roll(segment, shift, dims=1)  # limits guarantee nothing wraps
            batch[row, :end - start] = segment
            mask[row, :end - start] = True
        yield batch, mask


def padded_batches(rolls: list[np.ndarray], batch_size: int, device) -> list[tuple]:
    """Whole pieces grouped by length: (rolls (B,T,K), mask (B,T), piece indices) per batch."""
    order = sorted(range(len(rolls)), key=lambda i: len(rolls[i]))
    batches = []
    for start in range(0, len(order), batch_size):
        members = order[start:start + batch_size]
        longest = max(len(rolls[i]) for i in members)
        batch = np.zeros((len(members), longest, rolls[members[0]].shape[1]), dtype=np.float32)
        mask = np.zeros((len(members), longest), dtype=bool)
        for row, i in enumerate(members):
            batch[row, :len(rolls[i])] = rolls[i]
            mask[row, :len(rolls[i])] = True
        batches.append((torch.from_numpy(batch).to(device), torch.from_numpy(mask).to(device), members))
    return batches
