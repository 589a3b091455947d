"""torchrun awareness: one training run spread over several processes, GPUs or machines.

torchrun starts one process per GPU (or per share of a CPU) and tells each, in its environment,
its RANK, the WORLD_SIZE and its LOCAL_RANK on its machine; a plain `seqgate train` sees none of
these and runs as the one process of a world of one, touching nothing here but `World()`.
In a world of several, gradients are averaged by DistributedDataParallel (nccl between GPUs, gloo
on CPU), every other number the processes must agree on is reduced here as sums (or a maximum),
never as an average of averages, and rank 0 alone writes files.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
import re
import signal
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from seqgate.errors import UserError

# The longest text (a run folder's path, or an error) that rank 0 can hand the other ranks.
BROADCAST_TEXT_BYTES = 4096

# How long a process waits in a collective for the others before giving up on them. A process that
# dies is seen by torchrun at once, which stops the rest; one that hangs (stopped, swapping, on a
# machine that dropped off the network) is not, and gloo's own default is 30 minutes. A minute is
# far longer than any step the processes take apart (rank 0 saving a checkpoint or the learning
# curves); $SEQGATE_PEER_TIMEOUT (seconds) sets it, for a slow shared file system say.
PEER_TIMEOUT_ENV = "SEQGATE_PEER_TIMEOUT"
DEFAULT_PEER_TIMEOUT_S = 60.0
# Words by which gloo and nccl say that a peer went away (they raise a plain RuntimeError).
LOST_PEER_SIGNS = ("Connection reset", "Connection closed", "Connection refused", "Broken pipe",
                   "Timed out", "timed out", "Socket", "NCCL communicator", "peer")


@dataclass(frozen=True)
class World:
    """This process's place among the processes of one training run."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")  # this process's: its model, batches and collectives

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.size > 1

    @property
    def label(self) -> str:
        """How this process names itself in a message: "" alone, "rank 1 of 2: " under torchrun."""
        return f"rank {self.rank} of {self.size}: " if self.is_distributed else ""

    def sum(self, values) -> np.ndarray:
        """The element-wise sum of `values` over every process (float64)."""
        values = np.asarray(values, dtype=np.float64)
        if not self.is_distributed:
            return values
        tensor = torch.from_numpy(values.copy()).to(self.device)
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
        return tensor.cpu().numpy()

    def max(self, value: float) -> float:
        """The largest `value` of any process, so that time limits decide alike everywhere."""
        if not self.is_distributed:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
        return float(tensor.item())

    def from_main(self, make_text):
        """Rank 0 calls make_text(); every rank returns its result. A UserError raised on rank 0
        is raised on every rank, so no process is left waiting for the others."""
        if not self.is_distributed:
            return make_text()
        buffer = torch.zeros(BROADCAST_TEXT_BYTES, dtype=torch.uint8)
        if self.is_main:
            try:
                text = "ok:" + make_text()
            except UserError as error:
                text = "error:" + str(error)
            encoded = text.encode()[:BROADCAST_TEXT_BYTES - 1]
            buffer[:len(encoded)] = torch.frombuffer(bytearray(encoded), dtype=torch.uint8)
        buffer = buffer.to(self.device)
        torch.distributed.broadcast(buffer, src=0)
        text = bytes(buffer.cpu().numpy()).rstrip(b"\0").decode(errors="replace")
        kind, _, text = text.partition(":")
        if kind == "error":
            raise UserError(text)
        return text

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """DistributedDataParallel around `module` in a world of several; `module` itself in one."""
        if not self.is_distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)


def pick_device(name: str) -> torch.device:
    """The device `--device NAME` means: "auto" takes a GPU when torch sees one."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but torch sees no CUDA GPU")
    return torch.device(name)


def join(device_name: str) -> World:
    """The world torchrun started this process in (process group joined), or a world of one.

    device_name: "auto", "cpu" or "cuda" as given to `seqgate train`; under torchrun a CUDA
    process takes the GPU of its LOCAL_RANK and talks nccl, a CPU process talks gloo.
    """
    device = pick_device(device_name)
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World(device=device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                             timeout=datetime.timedelta(seconds=peer_timeout_s()))
        atexit.register(_destroy_group)  # in case an exit bypasses leave() (see there)
    return World(rank, size, local_rank, device)


def peer_timeout_s() -> float:
    """PEER_TIMEOUT_ENV's seconds, else DEFAULT_PEER_TIMEOUT_S."""
    text = os.environ.get(PEER_TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_PEER_TIMEOUT_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise UserError(f"${PEER_TIMEOUT_ENV} must be a number of seconds above 0, not {text!r}")
    return seconds


def _peer_cause(error: BaseException) -> str:
    """The gist of a _lost_peer error, for one line: gloo's message without its source-file prefix
    and its advice ("[.../pair.cc:553] Connection closed by peer [127.0.0.1]:24272. This is...")."""
    text = re.sub(r"^\[[^\]]*\]\s*", "", str(error).strip().split("\n")[0])
    return text.split(". ")[0][:160] or type(error).__name__


def _lost_peer(error: BaseException) -> bool:
    """Whether `error`, raised in a world of several, says that another process went away."""
    return isinstance(error, torch.distributed.DistError) or (
        isinstance(error, RuntimeError) and any(sign in str(error) for sign in LOST_PEER_SIGNS))


@contextlib.contextmanager
def joined(device_name: str) -> Iterator[World]:
    """The world of join(), left on the way out: together after the block ends, at once after an
    error. In a world of several a UserError is named with this process's rank, and an error that
    says a peer went away becomes one line saying so, instead of gloo's traceback."""
    world = join(device_name)
    try:
        yield world
    except UserError as error:
        leave(world, together=False)
        raise UserError(world.label + str(error)) from None
    except RuntimeError as error:
        leave(world, together=False)
        if not (world.is_distributed and _lost_peer(error)):
            raise
        raise UserError(f"{world.label}lost contact with the other processes of this run ({_peer_cause(error)}); "
                        f"another one stopped or stopped answering, and its own line or torchrun's "
                        f"summary says which; last.pt holds the last finished epoch: continue with "
                        f"--resume") from None
    except BaseException:
        leave(world, together=False)
        raise
    leave(world)


def leave(world: World, together: bool = True) -> None:
    """Leave the process group. together: wait first until every process is done (rank 0 writes
    the run's last files after the loop), so none tears the group down under a peer still using
    it; False when leaving on an error or a signal, where a peer may never arrive.

    The group is destroyed whatever happens on the way (a failed barrier, a second SIGTERM:
    torchrun forwards its own to processes that a killpg already reached), since a process that
    exits with gloo's threads still alive is aborted at exit ("terminate called without an active
    exception", exit code -6) instead of ending with its own line and code."""
    if not (world.is_distributed and torch.distributed.is_initialized()):
        return
    try:
        if together:
            torch.distributed.barrier()
    finally:
        _destroy_group()


def _destroy_group() -> None:
    """destroy_process_group with Ctrl-C and SIGTERM held until it is done (they arrive after)."""
    if not torch.distributed.is_initialized():
        return
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no signal masks
        torch.distributed.destroy_process_group()
        return
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        torch.distributed.destroy_process_group()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def is_main_process() -> bool:
    """True unless torchrun started this process as a rank other than 0 (no process group needed:
    the CLI uses it to keep progress bars and tables to one process)."""
    return int(os.environ.get("RANK", "0")) == 0
