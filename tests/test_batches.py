"""Batches: windows cover every frame once, masks mark the real frames, transposition never wraps,
and dense batches are built from the sparse dataset exactly."""

import numpy as np
import torch

from seqgate.training.batches import (dense_batch, epoch_batches, padded_batches, training_windows,
                             transpose_limits)
from seqgate.data.dataset import Dataset


def dataset_of(rolls) -> Dataset:
    return Dataset.from_rolls(rolls, ["train"] * len(rolls), [str(i) for i in range(len(rolls))])


def test_windows_cover_every_frame_once():
    rng = np.random.default_rng(0)
    lengths = [3, 50, 129, 40]
    windows = training_windows(lengths, 32, rng)
    for piece, length in enumerate(lengths):
        covered = sorted((s, e) for p, s, e in windows if p == piece)
        assert covered[0][0] == 0 and covered[-1][1] == length
        assert all(a[1] == b[0] for a, b in zip(covered, covered[1:]))
        assert all(0 < e - s <= 32 for s, e in covered)


def test_dense_batch_is_the_rolls_windows_zero_padded():
    rng = np.random.default_rng(3)
    rolls = [rng.random((n, 88)) < 0.1 for n in (9, 0, 30)]
    dataset = dataset_of(rolls)
    windows = [(2, 5, 17), (0, 0, 9), (2, 0, 3), (1, 0, 0)]
    batch, mask = dense_batch(dataset, windows)
    assert batch.shape == (4, 12, 88) and batch.dtype == torch.float32
    for row, (piece, start, end) in enumerate(windows):
        assert np.array_equal(batch[row, :end - start].numpy().astype(bool), rolls[piece][start:end])
        assert not batch[row, end - start:].any()
        assert mask[row].sum() == end - start and mask[row, :end - start].all()
    assert np.array_equal(dataset.roll(2, 5, 17), rolls[2][5:17])


def test_epoch_batches_mask_marks_exactly_the_real_frames():
    rng = np.random.default_rng(1)
    dataset = dataset_of([np.ones((n, 88), dtype=bool) for n in (7, 30, 12, 55)])
    total = 0
    for batch, mask, frames in epoch_batches(dataset, [0, 1, 2, 3], [(0, 0)] * 4, window=16,
                                             batch_size=3, augment_transpose=0, rng=rng):
        assert torch.equal(batch.sum(-1) > 0, mask)
        assert frames == int(mask.sum())
        total += int(mask.sum())
    assert total == 7 + 30 + 12 + 55


def shifted_without_wrapping(roll: np.ndarray, shift: int) -> np.ndarray:
    """The roll moved `shift` keys up (down if negative), keys pushed off the edge lost."""
    moved = np.zeros_like(roll)
    if shift >= 0:
        moved[:, shift:] = roll[:, :roll.shape[1] - shift]
    else:
        moved[:, :shift] = roll[:, -shift:]
    return moved


def test_transposition_keeps_notes_on_the_keyboard_and_never_wraps():
    roll = np.zeros((4, 88), dtype=bool)
    roll[:, 2] = roll[:, 80] = True
    roll[1, 40] = True
    dataset = dataset_of([roll])
    assert transpose_limits(dataset, 0) == (2, 7)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(60):
        for batch, _, _ in epoch_batches(dataset, [0], [transpose_limits(dataset, 0)], window=16,
                                      batch_size=1, augment_transpose=12, rng=rng):
            got = batch[0].numpy().astype(bool)
            # The lowest sounding key tells the shift; the whole window must be the roll moved by
            # exactly that much, which a circular shift past either edge would break.
            shift = int(np.flatnonzero(got.any(0))[0]) - 2
            assert -2 <= shift <= 7
            assert np.array_equal(got, shifted_without_wrapping(roll, shift))
            seen.add(shift)
    assert seen == set(range(-2, 8))  # every allowed shift occurs, both edges reached


def test_padded_batches_hold_whole_pieces_by_length_with_their_mask():
    dataset = dataset_of([np.full((n, 88), True) for n in (5, 2, 9)])
    batches = list(padded_batches(dataset, [0, 1, 2], 2, "cpu"))
    assert [members for _, _, members in batches] == [[1, 0], [2]]
    batch, mask, _ = batches[0]
    assert batch.shape == (2, 5, 88) and mask.sum(1).tolist() == [2, 5]
    assert torch.equal(batch.sum(-1) > 0, mask)
