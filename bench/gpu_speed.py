"""Training speed on a device: frames per second of seqgate's own training step, for every cell
and head, at the paper's 20k parameters and at about 1M, with batches large enough to fill a GPU.

    python bench/gpu_speed.py                         # cuda if there is one, else cpu
    python bench/gpu_speed.py --device cpu --batches 16 --steps 3   # the same code on the CPU
    python bench/gpu_speed.py --end-to-end            # also prepare / train / sample --device cuda

The step is the one `seqgate train` takes: windows of --window frames built by
training.batches.dense_batch on the device from a dataset held sparse (the bundled chorales,
transposed by up to 6 semitones so no two windows are the same), model.nll, backward, gradient
clipping, Adam. Each row: --warmup untimed updates, then --steps timed ones (synchronised on a GPU),
training frames per second = real frames in those updates / their seconds. --end-to-end also runs
`seqgate prepare`, `seqgate train --device DEVICE --max-epochs 5` and `seqgate sample` in a
temporary folder and prints what train printed last.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from seqgate.data.dataset import load_dataset
from seqgate.data.prepare import prepare_dataset
from seqgate.model.cells import CELLS
from seqgate.model.heads import HEADS
from seqgate.model.network import NextStepModel, shift_right
from seqgate.model.sizing import hidden_for_params
from seqgate.training.batches import dense_batch, training_windows, transpose_limits


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def frames_per_second(cell: str, head: str, params: int, dataset, pieces, args, device) -> tuple[int, float]:
    hidden = hidden_for_params(cell, params, head=head)
    torch.manual_seed(0)
    model = NextStepModel(cell, hidden, head=head).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    lengths = [int(dataset.lengths[p]) for p in pieces]

    def update() -> int:
        windows = training_windows(lengths, args.window, rng)
        chosen = [windows[i] for i in rng.choice(len(windows), args.batches)]
        chosen = [(pieces[p], s, e) for p, s, e in chosen]
        limits = [transpose_limits(dataset, p) for p, _, _ in chosen]  # never a note off the keyboard
        shifts = [int(np.clip(s, -down, up)) for s, (down, up) in zip(rng.integers(-6, 7, len(chosen)), limits)]
        batch, mask = dense_batch(dataset, chosen, shifts, device)
        loss = (model.nll(shift_right(batch), batch)[0] * mask).sum() / mask.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return int(mask.sum())

    for _ in range(args.warmup):
        update()
    synchronise(device)
    started, frames = time.perf_counter(), 0
    for _ in range(args.steps):
        frames += update()
    synchronise(device)
    return model.n_parameters(), frames / (time.perf_counter() - started)


def end_to_end(device: str) -> None:
    with tempfile.TemporaryDirectory(prefix="seqgate-gpu-") as folder:
        for command in (["prepare"], ["train", "--device", device, "--max-epochs", "5"],
                        ["sample", "-o", "out.mid"]):
            result = subprocess.run([sys.executable, "-m", "seqgate", *command], cwd=folder,
                                    capture_output=True, text=True)
            last = [line for line in result.stdout.splitlines() if line.strip()][-3:]
            print(f"seqgate {' '.join(command)}: exit {result.returncode}; " + " | ".join(last))
            if result.returncode != 0:
                print(result.stderr[-2000:])
                return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--params", type=int, nargs="+", default=[20_000, 1_000_000])
    parser.add_argument("--cells", nargs="+", default=list(CELLS))
    parser.add_argument("--heads", nargs="+", default=list(HEADS))
    parser.add_argument("--batches", type=int, default=512, help="windows per update")
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--end-to-end", action="store_true")
    args = parser.parse_args()

    device = torch.device(args.device)
    with tempfile.TemporaryDirectory(prefix="seqgate-gpu-") as folder:
        data = Path(folder) / "chorales.npz"
        prepare_dataset([], data)
        dataset = load_dataset(data)
    pieces = dataset.indices("train")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{name}, torch {torch.__version__}, {args.batches} windows of up to {args.window} frames an update")
    print(f"{'cell':5} {'head':9} {'params':>9} {'frames/s':>12}")
    for params in args.params:
        for cell in args.cells:
            for head in args.heads:
                count, speed = frames_per_second(cell, head, params, dataset, pieces, args, device)
                print(f"{cell:5} {head:9} {count:>9,} {speed:>12,.0f}", flush=True)
    if args.end_to_end:
        end_to_end(args.device)


if __name__ == "__main__":
    main()
