"""`seqgate evaluate`: negative log-likelihood per frame and frame-level accuracy of a trained run.

Conventions (Boulanger-Lewandowski et al. 2012): the NLL of each frame (for the Bernoulli head, the
88 keys' terms summed) is averaged over every predicted frame of a split, each frame weighted
equally ("nll"). The per-piece average ("nll_per_piece": mean over pieces of each piece's
per-frame NLL) weights short pieces more and is reported beside it. Frame 0 is predicted from an
all-zero frame, so every frame counts. Accuracy is Bay et al. 2009's frame-level
ACC = TP / (TP + FP + FN) summed over all frames, on the frame the model's head predicts (for the
Bernoulli head, a key on when p >= 0.5).
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
import torch

from seqgate.training.batches import padded_batches
from seqgate.data.dataset import Dataset
from seqgate.errors import UserError
from seqgate.model.network import NextStepModel, few_threads_for_small_work, shift_right
from seqgate.settings import EVALUATE_CHECKPOINT, EVALUATE_DEVICE, EVALUATE_SPLIT
from seqgate.training.runs import Checkpoint, Run

EVALUATION_BATCH_SIZE = 64
# At most this many floats per head tensor at once: long pieces are evaluated in time chunks with
# the recurrent state carried, so a NADE's (batch, time, keys, hidden) work stays near 32 MB.
EVALUATION_CHUNK_FLOATS = 8_000_000


def nll_quantity(onsets: bool) -> str:
    """What an NLL per frame measures: an onset-aware model's also prices each held key's
    re-strike, so it is not the benchmarks' 88-key NLL and must never sit beside it unlabelled."""
    if onsets:
        return "nats per frame over the sounding keys and their onsets (re-strikes): not the 88-key benchmark NLL"
    return "nats per frame over the 88 sounding keys"


@torch.inference_mode()
def evaluate_batches(model: NextStepModel, batches, reduce=None) -> dict:
    """Likelihood and accuracy over batches of whole pieces (see batches.padded_batches).

    reduce: under torchrun, a function that sums a vector over every process (World.sum), each
    process having scored its own share of the pieces; the ratios are taken after the sums.
    """
    was_training = model.training
    model.eval()
    # nll, frames, first frames' nll, later frames, sum of per-piece NLLs, pieces, TP, FP, FN
    totals = np.zeros(9)
    for rolls, mask, members in batches:
        nll, predicted = _score_in_chunks(model, rolls)
        nll = nll * mask
        frames_per_piece = mask.sum(1)
        predicted = predicted & mask.unsqueeze(-1)
        actual = rolls[..., :model.n_keys].bool()  # accuracy is on the sounding keys
        totals += [float(nll.sum()), int(frames_per_piece.sum()),
                   float(nll[:, 0].sum()) if nll.shape[1] else 0.0,
                   int(mask[:, 1:].sum()) if nll.shape[1] else 0,
                   float((nll.sum(1) / frames_per_piece).sum()), len(members),
                   int((predicted & actual).sum()), int((predicted & ~actual).sum()),
                   int((~predicted & actual & mask.unsqueeze(-1)).sum())]
    model.train(was_training)
    if reduce is not None:
        totals = reduce(totals)
    # Plain floats: these numbers go into checkpoints, which hold no numpy objects.
    total_nll, total_frames, first_frames_nll, later_frames, piece_nll_sum, pieces, \
        true_pos, false_pos, false_neg = totals.tolist()
    if total_frames == 0:
        raise UserError("the split has no frames to evaluate")
    precision = true_pos / max(true_pos + false_pos, 1)
    recall = true_pos / max(true_pos + false_neg, 1)
    return {
        "nll": total_nll / total_frames,
        "nll_per_piece": piece_nll_sum / pieces,
        # TCN's poly_music convention: frame 0 of a piece is never a target.
        "nll_from_second_frame": (total_nll - first_frames_nll) / later_frames if later_frames else None,
        "accuracy": true_pos / max(true_pos + false_pos + false_neg, 1),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / max(precision + recall, 1e-12),
        "frames": int(total_frames),
        "pieces": int(pieces),
    }


def _score_in_chunks(model: NextStepModel, rolls: torch.Tensor):
    """model.score over the whole batch, in time chunks with the recurrent state carried."""
    chunk = max(1, EVALUATION_CHUNK_FLOATS // (len(rolls) * model.work_per_frame()))
    inputs = shift_right(rolls)
    if rolls.shape[1] <= chunk:
        nll, predicted, _ = model.score(inputs, rolls)
        return nll, predicted
    pieces, state = [], None
    for start in range(0, rolls.shape[1], chunk):
        nll, predicted, state = model.score(inputs[:, start:start + chunk], rolls[:, start:start + chunk], state)
        pieces.append((nll, predicted))
    return torch.cat([n for n, _ in pieces], 1), torch.cat([p for _, p in pieces], 1)


def evaluate_pieces(model: NextStepModel, dataset: Dataset, pieces: list[int], device="cpu",
                    batch_size: int = EVALUATION_BATCH_SIZE) -> dict:
    """evaluate_batches over the given pieces of a dataset, a batch made at a time."""
    if not pieces:
        raise UserError("the split has no pieces to evaluate")
    threads = few_threads_for_small_work(model, batch_size) if torch.device(device).type == "cpu" \
        else contextlib.nullcontext()
    with threads:
        return evaluate_batches(model, padded_batches(dataset, pieces, batch_size, device))


def evaluate_rolls(model: NextStepModel, rolls: list[np.ndarray], device="cpu",
                   batch_size: int = EVALUATION_BATCH_SIZE) -> dict:
    """evaluate_pieces on dense (frames, 88) rolls."""
    dataset = Dataset.from_rolls(rolls, ["test"] * len(rolls), [str(i) for i in range(len(rolls))])
    return evaluate_pieces(model, dataset, list(range(len(rolls))), device, batch_size)


def check_roll_format(expected: dict, found: dict, data_path) -> None:
    """Refuse data whose roll differs from what the model was trained on, saying how."""
    for key, label in (("n_keys", "keys"), ("lowest_pitch", "lowest pitch"),
                       ("frames_per_quarter", "frames per quarter note"), ("onsets", "onsets")):
        if expected.get(key) != found.get(key):
            raise UserError(f"{data_path} does not match the model's roll format: {label} "
                            f"{found.get(key)} in the data, {expected.get(key)} in the model")


def evaluate_model(model: NextStepModel, checkpoint: Checkpoint, dataset: Dataset, split: str,
                   data_path, device="cpu") -> dict:
    """A loaded run's model on one split of a dataset whose roll is the one it was trained on."""
    check_roll_format(checkpoint.data.roll_format, dataset.roll_format(), data_path)
    result = evaluate_pieces(model.to(device), dataset, dataset.indices(split), device)
    result.update({"split": split, "data": str(data_path), "cell": model.cell, "head": model.head_name,
                   "onsets": model.onsets, "nll_of": nll_quantity(model.onsets)})
    return result


def evaluate_run(run: Run | str | os.PathLike, data_path=None, split: str = EVALUATE_SPLIT,
                 checkpoint_name: str = EVALUATE_CHECKPOINT, device: str = EVALUATE_DEVICE) -> dict:
    """Evaluate a run's checkpoint on one split of its own dataset or of another matching one."""
    return evaluate_runs([run], data_path, split, checkpoint_name, device)


def evaluate_runs(runs, data_path=None, split: str = EVALUATE_SPLIT,
                  checkpoint_name: str = EVALUATE_CHECKPOINT, device: str = EVALUATE_DEVICE) -> dict:
    """evaluate_run for one run; for several, their ensemble (model/ensemble.py: the mean of their
    predictive distributions, an exact likelihood) on one split of the first run's dataset (or the
    one given), which every run must have been trained on the roll format of."""
    from seqgate.data.dataset import load_dataset
    from seqgate.model.ensemble import Ensemble

    runs = [run if isinstance(run, Run) else Run(run) for run in runs]
    loaded = [run.load_model(checkpoint_name, map_location=device) for run in runs]
    checkpoint = loaded[0][1]
    if data_path is None:
        if not checkpoint.data.path:
            raise UserError(f"{runs[0]} does not record its dataset; give --data")
        data_path = checkpoint.data.path
    dataset = load_dataset(data_path)
    if len(runs) == 1:
        result = evaluate_model(loaded[0][0], checkpoint, dataset, split, data_path, device)
        return {**result, "run": str(runs[0]), "checkpoint": checkpoint_name}
    for run, (_, member_checkpoint) in zip(runs, loaded):  # saying which run does not match
        try:
            check_roll_format(member_checkpoint.data.roll_format, dataset.roll_format(), data_path)
        except UserError as error:
            raise UserError(f"{run}: {error}") from None
    ensemble = Ensemble([model for model, _ in loaded])
    result = evaluate_model(ensemble, checkpoint, dataset, split, data_path, device)
    return {**result, "run": ", ".join(str(run) for run in runs), "runs": [str(run) for run in runs],
            "checkpoint": checkpoint_name, "parameters": ensemble.n_parameters()}
