"""One recurrent layer's forward and backward pass on CPU: the compiled loops, the Python loops and torch.

    python bench/loop_speed.py                       # batch 16, window 128, hidden 64 100 128
    python bench/loop_speed.py --hidden 100 --threads 1

For the GRU and the tanh RNN, times seqgate's fast_rnn layer on its compiled loops (rnn_loops.cpp),
on its Python loops (as with SEQGATE_COMPILE=0), and torch's own nn.GRU / nn.RNN; nn.LSTM at the
same hidden size for reference (torch's oneDNN kernel). 88 inputs, as the piano roll has; the best
of 5 rounds of 50 passes, in milliseconds a pass. bench/cell_speed.py measures whole epochs.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from torch import nn

import seqgate.model.fast_rnn as fast_rnn
from seqgate.data.roll import N_KEYS
from seqgate.model.kernels import compiled_loops


def milliseconds(step, rounds: int = 5, passes: int = 50) -> float:
    for _ in range(passes // 2):
        step()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(passes):
            step()
        best = min(best, (time.perf_counter() - start) / passes * 1e3)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 100, 128])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    kernel = compiled_loops()
    if kernel is None:
        sys.exit("the compiled loops could not be built here (a C++ compiler and ninja are needed)")
    x = torch.randn(args.batch, args.window, N_KEYS)
    print(f"batch {args.batch}, window {args.window}, {args.threads} threads: ms a forward and backward pass")
    print(f"{'cell':5} {'hidden':>6} {'compiled':>9} {'python':>7} {'torch':>7} {'nn.LSTM':>8}")
    original = fast_rnn.compiled_loops
    for hidden in args.hidden:
        lstm = nn.LSTM(N_KEYS, hidden, batch_first=True)
        lstm_ms = milliseconds(lambda: lstm(x)[0].sum().backward())
        for cell, layer, fast, torch_forward in (
                ("gru", nn.GRU(N_KEYS, hidden, batch_first=True), fast_rnn.gru_forward, nn.GRU.forward),
                ("tanh", nn.RNN(N_KEYS, hidden, batch_first=True), fast_rnn.tanh_forward, nn.RNN.forward)):
            times = {}
            try:
                for name, loops in (("compiled", lambda build=False: kernel), ("python", lambda build=False: None)):
                    fast_rnn.compiled_loops = loops
                    times[name] = milliseconds(lambda: fast(layer, x)[0].sum().backward())
            finally:
                fast_rnn.compiled_loops = original
            times["torch"] = milliseconds(lambda: torch_forward(layer, x)[0].sum().backward())
            print(f"{cell:5} {hidden:>6} {times['compiled']:>9.2f} {times['python']:>7.2f} "
                  f"{times['torch']:>7.2f} {lstm_ms:>8.2f}")


if __name__ == "__main__":
    main()
