"""Training speed: seqgate's batched training against a batch-of-one loop over whole pieces.

    python bench/train_speed.py                      # JSB Chorales, 10 min limit per method
    python bench/train_speed.py --max-minutes 0.3 --target 11   # a quick smoke run

Both train the same model on CPU: a GRU sized by a 20k-parameter budget (NextStepModel, same
torch seed, output bias from the training key frequencies, so the initial weights are identical;
the script checks this), on the same thread count (few_threads_for_small_work, printed).

  seqgate   seqgate.train.train with its defaults (windows of 128 frames, batches of 16, Adam
            lr 3e-3, clip 1, learning rate halved on a validation plateau, early stopping).
  baseline  the loop of TCN's poly_music script (Bai et al. 2018) and its defaults: each epoch,
            every training piece in shuffled order, one forward over the whole piece (batch of
            one), loss = NLL summed over keys and averaged over frames, backward, gradient norm
            clipped to 0.2, Adam lr 1e-3. Inputs are the piece shifted right (shift_right), the
            same next-step convention as seqgate, so every frame is scored.

Printed for each: training frames per second (training work only: no evaluation, no
checkpoints), and the training seconds until the test NLL (nats per frame, frames weighted
equally) first reaches --target (default 8.54, the GRU's JSB test NLL in Chung et al. 2014).
The test split is evaluated after every epoch, off the clock. seqgate's clock is its own
record["seconds"], which includes its per-epoch validation pass (it needs it for early stopping
and the learning-rate schedule); the baseline evaluates nothing on its clock. Each method stops
at the target, at --max-minutes of training clock, or (seqgate only) on its validation patience.
The .mat file is looked for in shared/datasets beside the repository (or --mat).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seqgate.data.dataset import load_dataset
from seqgate.training.evaluate import evaluate_rolls
from seqgate.model.network import NextStepModel, few_threads_for_small_work, shift_right
from seqgate.model.sizing import hidden_for_params
from seqgate.training.runs import load_model
from seqgate.data.prepare import prepare_dataset
from seqgate.settings import DEFAULT_PARAMS as PARAMS
from seqgate.settings import DEFAULT_HEAD, TrainConfig
from seqgate.training.train import train

LOG_EVERY = 10  # epochs between progress lines


@dataclass
class Outcome:
    name: str
    frames: int = 0  # training frames processed
    train_seconds: float = 0.0  # training work only
    clock: float = 0.0  # the method's training clock at its last epoch
    epochs: int = 0
    best_test: float = float("inf")
    reached: tuple[float, int] | None = None  # (clock seconds, epoch) at the first test NLL <= target
    stopped: str = ""
    threads: int = 0

    def after_epoch(self, epoch: int, clock: float, test_nll: float, target: float) -> bool:
        """Record one epoch's test NLL; True once the target is reached."""
        self.epochs, self.clock = epoch, clock
        self.best_test = min(self.best_test, test_nll)
        if epoch % LOG_EVERY == 0 or test_nll <= target:
            print(f"  {self.name:9} epoch {epoch:4d}  {clock:7.1f} s  test NLL {test_nll:.3f}", flush=True)
        if test_nll <= target and self.reached is None:
            self.reached = (clock, epoch)
            self.stopped = "target reached"
        return self.reached is not None


def new_model(train_rolls: list[np.ndarray], hidden: int, seed: int) -> NextStepModel:
    """The model exactly as seqgate.training.train builds it."""
    torch.manual_seed(seed)
    model = NextStepModel("gru", hidden, n_keys=train_rolls[0].shape[1], head=DEFAULT_HEAD)
    model.init_output_bias(torch.from_numpy(np.concatenate(train_rolls).mean(0)))
    return model


def run_baseline(train_rolls, test_rolls, hidden: int, args) -> tuple[Outcome, dict]:
    """TCN poly_music style: whole pieces, batch of one, shuffled each epoch."""
    model = new_model(train_rolls, hidden, args.seed)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    pieces = [torch.from_numpy(r.astype(np.float32)).unsqueeze(0) for r in train_rolls]
    epoch_frames = sum(len(r) for r in train_rolls)
    rng = np.random.default_rng(args.seed)
    out = Outcome("baseline")
    with few_threads_for_small_work(model, 1):
        out.threads = torch.get_num_threads()
        while out.clock < args.max_minutes * 60:
            start = time.perf_counter()
            model.train()
            for index in rng.permutation(len(pieces)):
                nll, _ = model.nll(shift_right(pieces[index]), pieces[index])
                loss = nll.mean()  # keys summed, frames averaged
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 0.2)
                optimizer.step()
            out.train_seconds += time.perf_counter() - start
            out.frames += epoch_frames
            if out.after_epoch(out.epochs + 1, out.train_seconds,
                               evaluate_rolls(model, test_rolls)["nll"], args.target):
                break
        else:
            out.stopped = "time limit"
    return out, initial


class TargetReached(Exception):
    pass


class TestEveryEpoch:
    """A seqgate.training.train display: test NLL from last.pt after every epoch, training time from batches.

    Training-only time of an epoch runs from the moment train() regains control after the previous
    epoch's display call (or after start) to its last batch, so validation, checkpoints, plots and
    this display's own evaluation stay out of it.
    """

    def __init__(self, test_rolls, target: float, initial: dict):
        self.test_rolls, self.target, self.initial = test_rolls, target, initial
        self.out = Outcome("seqgate")
        self.same_init = False

    def start(self, run_dir, info, progress):
        self.run_dir = Path(run_dir)
        first, _ = load_model(self.run_dir / "last.pt")  # written before the first epoch
        state = first.state_dict()
        self.same_init = state.keys() == self.initial.keys() and all(
            torch.equal(state[k], self.initial[k]) for k in state)
        self.resumed = time.perf_counter()

    def batch(self, frames, train_nll):
        self.out.frames += frames
        self.last_batch = time.perf_counter()
        self.out.threads = torch.get_num_threads()

    def epoch(self, record, progress):
        self.out.train_seconds += self.last_batch - self.resumed
        model, _ = load_model(self.run_dir / "last.pt")
        test_nll = evaluate_rolls(model, self.test_rolls)["nll"]
        if self.out.after_epoch(record["epoch"], record["seconds"], test_nll, self.target):
            raise TargetReached  # stop here, as the baseline does; last.pt is already saved
        self.resumed = time.perf_counter()

    def stop(self):
        pass


def run_seqgate(data: Path, work: Path, test_rolls, initial: dict, args) -> tuple[Outcome, bool]:
    display = TestEveryEpoch(test_rolls, args.target, initial)
    config = TrainConfig(cell="gru", data=str(data), params=PARAMS, max_minutes=args.max_minutes,
                         seed=args.seed, device="cpu")
    try:
        summary = train(config, work / "runs" / "gru", display=display)
        display.out.stopped = summary["stopped"]
    except TargetReached:
        pass
    return display.out, display.same_init


def line(out: Outcome, target: float, minutes: float) -> str:
    speed = f"{out.frames / max(out.train_seconds, 1e-9):,.0f} frames/s"
    if out.reached:
        seconds, epoch = out.reached
        return f"{out.name:9}: {speed}, test NLL <= {target:g} after {seconds:.1f} s (epoch {epoch})"
    why = f"in {minutes:g} min" if out.stopped == "time limit" else \
        f"({out.stopped} after {out.epochs} epochs, {out.clock:.1f} s)"
    return f"{out.name:9}: {speed}, test NLL <= {target:g} not reached {why}, best {out.best_test:.3f}"


def verdict(seq: Outcome, base: Outcome) -> str:
    if seq.reached and base.reached:
        ratio = base.reached[0] / seq.reached[0]
        if ratio >= 1:
            return f"seqgate reaches the target {ratio:.1f}x sooner"
        return f"the baseline reaches the target {1 / ratio:.1f}x sooner than seqgate"
    if seq.reached:
        return (f"seqgate reaches the target at least {base.clock / seq.reached[0]:.1f}x sooner "
                f"(the baseline never did in {base.clock:.0f} s)")
    if base.reached:
        if seq.stopped == "time limit":
            return (f"the baseline reaches the target at least {seq.clock / base.reached[0]:.1f}x sooner "
                    f"(seqgate never did in {seq.clock:.0f} s)")
        return (f"seqgate stopped ({seq.stopped}) without reaching the target; "
                f"the baseline reached it after {base.reached[0]:.1f} s")
    return "neither reached the target"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mat", type=Path, help="JSB_Chorales.mat (default: shared/datasets)")
    parser.add_argument("--target", type=float, default=8.54, help="test NLL to reach (default 8.54)")
    parser.add_argument("--max-minutes", type=float, default=10.0, help="training clock limit per method")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    mat = args.mat or Path(__file__).resolve().parents[2] / "shared" / "datasets" / "JSB_Chorales.mat"
    if not mat.is_file():
        sys.exit(f"benchmark file not found: {mat} (give --mat)")
    with tempfile.TemporaryDirectory(prefix="seqgate-train-speed-") as tmp:
        work = Path(tmp)
        data = work / "jsb.npz"
        prepare_dataset([mat], data)
        dataset = load_dataset(data)
        train_rolls, test_rolls = dataset.split("train"), dataset.split("test")
        hidden = hidden_for_params("gru", PARAMS, head=DEFAULT_HEAD)
        print(f"JSB Chorales: {sum(map(len, train_rolls)):,} training frames, {len(train_rolls)} pieces; "
              f"GRU hidden {hidden} ({new_model(train_rolls, hidden, args.seed).n_parameters():,} params), "
              f"CPU, target test NLL {args.target:g}, limit {args.max_minutes:g} min each", flush=True)

        base, initial = run_baseline(train_rolls, test_rolls, hidden, args)
        seq, same_init = run_seqgate(data, work, test_rolls, initial, args)

    print(f"threads: seqgate {seq.threads}, baseline {base.threads}; "
          f"initial weights {'identical' if same_init else 'DIFFERENT'}")
    print(line(seq, args.target, args.max_minutes))
    print(line(base, args.target, args.max_minutes))
    print(verdict(seq, base))


if __name__ == "__main__":
    main()
