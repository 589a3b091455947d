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

from seqgate.data.dataset import Dataset
from seqgate.model.heads import units_per_frame
from seqgate.data.roll import N_KEYS


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


def transpose_limits(dataset: Dataset, piece: int) -> tuple[int, int]:
    """How far a piece can shift down and up without a note leaving the keyboard."""
    keys = dataset.key_range(piece)
    if keys is None:
        return 0, 0
    return keys[0], N_KEYS - 1 - keys[1]


def dense_batch(dataset: Dataset, windows: list[tuple[int, int, int]], shifts=None, device=None):
    """(rolls (B,T,K) float32, mask (B,T) bool) of (piece, start, end) windows, zero-padded;
    for an onset-aware dataset K is 2 x 88, the struck keys after the sounding ones.

    Vectorised: the windows' notes become three index arrays and one scatter fills the batch,
    whatever its frames. The scatter runs on `device`, so what crosses to a GPU is the notes
    (three indices each), not frames x 88 floats. `shifts` transposes each window by that many
    keys (the caller keeps every note on the keyboard).
    """
    longest = max(end - start for _, start, end in windows)
    lengths = torch.tensor([end - start for _, start, end in windows])
    rows, frames, keys = [], [], []
    for row, (piece, start, end) in enumerate(windows):
        counts, notes, onsets = dataset.window(piece, start, end)
        at = np.repeat(np.arange(end - start), counts)
        key = notes.astype(np.int64) + (shifts[row] if shifts is not None else 0)
        frames.append(at)
        rows.append(np.full(len(notes), row))
        keys.append(key)
        if onsets is not None:  # an onset-aware dataset: the struck keys go after the 88
            struck = onsets.astype(bool)
            frames.append(at[struck])
            rows.append(np.full(int(struck.sum()), row))
            keys.append(key[struck] + N_KEYS)
    index = torch.from_numpy(np.stack([np.concatenate(rows), np.concatenate(frames),
                                       np.concatenate(keys)]).astype(np.int64)).to(device)
    width = units_per_frame(N_KEYS, dataset.onsets is not None)
    batch = torch.zeros(len(windows), longest, width, device=device)
    batch[index[0], index[1], index[2]] = 1.0
    mask = (torch.arange(longest) < lengths[:, None]).to(device)
    return batch, mask


def epoch_batches(dataset: Dataset, pieces: list[int], limits: list[tuple[int, int]], *,
                  window: int, batch_size: int, augment_transpose: int, rng: np.random.Generator,
                  rank: int = 0, world_size: int = 1, device=None):
    """Yield (padded rolls (B,T,K), mask (B,T), frames of the whole update) for one epoch.

    All randomness comes from `rng`, so every process of a torchrun job draws the same epoch.
    pieces: the dataset's pieces to train on; limits: transpose_limits of each; augment_transpose:
    shift each window by a random number of semitones up to this many, never off the keyboard.
    One update takes batch_size x world_size windows; process `rank` builds every world_size-th
    of them. Which windows form an update depends only on the global batch, so one process with
    batch_size x world_size sees the same updates. A process left without a window (the last,
    short update) gets a fully masked one, so it still joins the gradient exchange.
    """
    windows = training_windows([int(dataset.lengths[p]) for p in pieces], window, rng)
    # Sort by length (ties broken at random) so a batch wastes little on padding.
    order = np.lexsort((rng.random(len(windows)), [e - s for _, s, e in windows]))
    step = batch_size * world_size
    groups = [order[i:i + step] for i in range(0, len(order), step)]
    for group_index in rng.permutation(len(groups)):
        members = [windows[i] for i in groups[group_index]]
        shifts = [0] * len(members)
        if augment_transpose:
            k = augment_transpose
            shifts = [int(rng.integers(-min(k, limits[p][0]), min(k, limits[p][1]) + 1))
                      for p, _, _ in members]
        frames = sum(e - s for _, s, e in members)
        mine = list(range(rank, len(members), world_size))
        chosen = [(pieces[members[i][0]], members[i][1], members[i][2]) for i in mine or [0]]
        batch, mask = dense_batch(dataset, chosen, [shifts[i] for i in mine or [0]], device)
        yield batch, (mask if mine else torch.zeros_like(mask)), frames


def padded_batches(dataset: Dataset, pieces: list[int], batch_size: int, device):
    """Whole pieces grouped by length: yields (rolls (B,T,K), mask (B,T), positions) per batch,
    positions indexing `pieces`. Each batch is made when it is needed, so a split of any size
    holds one batch in memory at a time."""
    order = sorted(range(len(pieces)), key=lambda i: int(dataset.lengths[pieces[i]]))
    for start in range(0, len(order), batch_size):
        members = order[start:start + batch_size]
        yield (*dense_batch(dataset, [(pieces[i], 0, int(dataset.lengths[pieces[i]])) for i in members],
                            device=device), members)
