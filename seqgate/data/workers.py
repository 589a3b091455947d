"""A process pool that survives a task crashing or hanging its worker; nothing here knows MIDI.

A malformed input can crash (segfault) or hang a C++ parser, so tasks run in worker processes the
parent watches. The parent hands a worker a chunk of tasks and gets one answer for the chunk (a
message per task cost more than parsing a small MIDI file). Before each task the worker writes
which one it is on, and since when, into 16 bytes of memory it shares with the parent, so the
parent always knows which task is in flight without a message. If a worker dies, or spends longer
than `timeout` on one task, the parent kills it, reports that one task as Lost, and hands the
rest of its chunk (the tasks done before it too: their results died with the worker) to a fresh
worker.

A worker is forked from the parent when that is safe (Linux, a single thread, torch not loaded):
it starts in milliseconds with the `preload` modules already imported. Otherwise it is a fresh
interpreter (`python -c`, ~0.2 s to start), never a fork of a process whose threads might hold
locks. Either way the worker talks over two plain pipes and the shared memory (a 16-byte unlinked
file both map), and runs the same loop, _worker_loop, which calls the chunk function named
"module:function" as function(tasks, options, starting).
"""

from __future__ import annotations

import faulthandler
import importlib
import mmap
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

# Test hook, read when a pool starts and handed to its workers: "crash:a.mid,hang:b.mid" makes the
# worker given a task whose base name is a.mid abort (as a segfaulting parser would), or hang.
FAULT_ENV = "SEQGATE_TEST_FAULT"
# The most tasks in one chunk: large enough that a message per chunk costs little beside the
# tasks, small enough to share the last chunks out evenly and to redo little after a crash.
MAX_CHUNK = 64
# What a worker shares with the parent, two doubles: the task of its chunk it is on, and
# time.monotonic() when it began it (CLOCK_MONOTONIC, one clock for every process of the machine).
# Each is written as one aligned 8-byte store (struct.pack_into would not do: it zero-fills the
# bytes before writing them, and the parent, reading meanwhile, saw a task begun at time 0).
_PROGRESS_BYTES = 16


def _progress_view(mapped: mmap.mmap) -> memoryview:
    return memoryview(mapped).cast("d")


@dataclass(frozen=True)
class Lost:
    """A task that gave no result: its worker crashed ("crash") or took too long ("timeout") on
    it, or the chunk function raised while on it ("error"); detail says how."""

    kind: str
    detail: str


def fork_is_safe() -> bool:
    """Forking copies one thread only: safe while this process has no other threads (or torch)."""
    return sys.platform == "linux" and threading.active_count() == 1 and "torch" not in sys.modules


def faults_from_env() -> dict[str, str]:
    """The test hook: {task base name: "crash" or "hang"} from SEQGATE_TEST_FAULT."""
    faults = {}
    for item in filter(None, os.environ.get(FAULT_ENV, "").split(",")):
        kind, _, name = item.partition(":")
        faults[name] = kind
    return faults


class _Worker:
    """One parser process, the parent's ends of its two pipes, and the memory they share."""

    def __init__(self, setup, others: list[_Worker]):
        from multiprocessing.connection import Connection

        task_read, task_write = os.pipe()
        answer_read, answer_write = os.pipe()
        self.progress_file = tempfile.TemporaryFile()
        self.progress_file.truncate(_PROGRESS_BYTES)
        progress_fd = self.progress_file.fileno()
        self.mapped = mmap.mmap(progress_fd, _PROGRESS_BYTES)
        self.progress = _progress_view(self.mapped)
        if fork_is_safe():
            # The child must not keep the other workers' pipe ends open, or they would never
            # see end-of-file when the parent goes away.
            parent_ends = [task_write, answer_read] + [fd for w in others for fd in w.fds()]
            self.process = _ForkedProcess(lambda: _worker_loop(task_read, answer_write, progress_fd), parent_ends)
        else:
            package_root = str(Path(__file__).resolve().parents[2])  # the folder holding seqgate/
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(
                filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from seqgate.data.workers import _worker_main; _worker_main()",
                 str(task_read), str(answer_write), str(progress_fd)],
                pass_fds=(task_read, answer_write, progress_fd), stdin=subprocess.DEVNULL, env=env)
        os.close(task_read)
        os.close(answer_write)
        self.tasks = Connection(task_write, readable=False)
        self.answers = Connection(answer_read, writable=False)
        self.tasks.send(setup)
        self.ready = False  # set once the worker says its imports are done
        self.chunk: list[int] = []  # the indices of the tasks it has, until it answers

    def hand(self, chunk: list[int], tasks: list[str]) -> None:
        """Give it a chunk of tasks; its progress reads as "the first, from now" until it starts."""
        self.chunk = chunk
        self.progress[1], self.progress[0] = time.monotonic(), 0
        try:
            self.tasks.send(tasks)
        except OSError:
            pass  # it died; the pool sees that and blames the first task of the chunk

    def on(self) -> tuple[int, float]:
        """(the task of its chunk it is on, time.monotonic() when it began it)."""
        # The worker writes the time, then the task: a task read here began at the time read
        # after it, or later.
        position = int(self.progress[0])
        since = self.progress[1]
        return min(max(position, 0), max(len(self.chunk) - 1, 0)), since

    def fds(self) -> list[int]:
        return [c.fileno() for c in (self.tasks, self.answers) if not c.closed]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.tasks.close()
        self.answers.close()
        self.progress.release()
        self.mapped.close()
        self.progress_file.close()


class _ForkedProcess:
    """Just enough of subprocess.Popen (poll, kill, wait) for a worker made with os.fork()."""

    def __init__(self, run, close_in_child: list[int]):
        self.returncode = None
        self.pid = os.fork()
        if self.pid == 0:  # the child: run, then leave without the parent's exit handlers
            code = 1
            try:
                faulthandler.disable()  # a parser crash is reported by the parent, no dump
                for fd in close_in_child:
                    os.close(fd)
                run()
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
            time.sleep(0.002)
        return self.returncode


class WorkerPool:
    """Run function(tasks, options, starting) on chunks of the tasks in `n_workers` watched processes.

    function: "module:name" of a module-level function, importable in a fresh interpreter. It
           gets a list of tasks (strings), must call starting(k) before it begins tasks[k], and
           returns one result for the chunk; work after its last starting() counts as that task's.
    tasks: a sequence of strings (file paths, say), read by index as they go out; the test hook
           matches their base names.
    preload: modules imported here before the workers fork, so each starts with them loaded.
    chunk: tasks per chunk (default: up to MAX_CHUNK, fewer on a short list, to balance the load).
    """

    def __init__(self, function: str, tasks: Sequence[str], options, n_workers: int, timeout: float,
                 preload: tuple[str, ...] = (), chunk: int | None = None):
        self.tasks, self.timeout = tasks, timeout
        self.setup = (function, options, faults_from_env())
        # Tasks go out in order (next_task counts them); a lost chunk's other tasks go out again
        # first. A counter, not a queue of every index: a corpus can hold 10^5 files.
        self.next_task, self.returned = 0, deque()
        self.chunk = chunk or max(1, min(MAX_CHUNK, len(tasks) // (n_workers * 8)))
        if fork_is_safe():
            for module in (function.partition(":")[0], *preload):
                importlib.import_module(module)  # imported once here, inherited by every fork
        self.workers: list[_Worker] = []
        for _ in range(n_workers):
            self.workers.append(_Worker(self.setup, self.workers))

    def results(self):
        """Yield (indices, outcome) as the workers finish chunks: the function's result for the
        tasks at those indices, or a Lost for one task (its index alone)."""
        from multiprocessing.connection import wait

        while True:
            for worker in self.workers:
                if worker.ready and not worker.chunk and self._pending():
                    self._feed(worker)
            starting = [w for w in self.workers if not w.ready]
            busy = [w for w in self.workers if w.chunk]
            if not busy and not starting:
                return
            timeout = None
            if busy:
                timeout = max(0.0, min(w.on()[1] for w in busy) + self.timeout - time.monotonic())
            wait([w.answers for w in starting + busy], timeout=timeout)
            for worker in starting + busy:
                yield from self._collect(worker)

    def _pending(self) -> int:
        return len(self.returned) + len(self.tasks) - self.next_task

    def _feed(self, worker: _Worker) -> None:
        chunk = [self.returned.popleft() for _ in range(min(self.chunk, len(self.returned)))]
        fresh = min(self.chunk - len(chunk), len(self.tasks) - self.next_task)
        chunk.extend(range(self.next_task, self.next_task + fresh))
        self.next_task += fresh
        worker.hand(chunk, [self.tasks[i] for i in chunk])

    def _collect(self, worker: _Worker):
        died = False
        try:
            while worker.answers.poll():
                message = worker.answers.recv()
                if message == "ready":
                    worker.ready = True
                    continue
                kind, outcome = message
                if kind == "error":  # the function raised: that task is lost, the worker is fine
                    yield self._lose(worker, Lost("error", outcome))
                    continue
                chunk, worker.chunk = worker.chunk, []
                yield chunk, outcome
        except (EOFError, OSError):
            died = True
        if not worker.ready:
            if died:  # no task was ever given to it: a broken installation, not a bad input
                worker.kill()
                raise RuntimeError(f"a worker process failed to start "
                                   f"(exit code {worker.process.returncode})")
            return
        if died:
            reason = Lost("crash", f"its worker died (exit code {worker.process.poll()})")
        elif worker.chunk and time.monotonic() - worker.on()[1] > self.timeout:
            reason = Lost("timeout", f"timed out after {self.timeout:g} s")
        else:
            return
        if worker.chunk:
            yield self._lose(worker, reason)
        worker.kill()
        others = [w for w in self.workers if w is not worker]
        self.workers[self.workers.index(worker)] = _Worker(self.setup, others)

    def _lose(self, worker: _Worker, reason: Lost) -> tuple[list[int], Lost]:
        """The task the worker is on is lost; the rest of its chunk goes out again first."""
        position, _ = worker.on()
        chunk, worker.chunk = worker.chunk, []
        self.returned.extendleft(reversed(chunk[:position] + chunk[position + 1:]))
        return [chunk[position]], reason

    def close(self) -> None:
        """Let idle workers exit; kill busy ones (we are here on an error or Ctrl-C)."""
        for worker in self.workers:
            if worker.chunk:
                worker.kill()
                continue
            try:
                worker.tasks.send(None)
            except OSError:
                pass
        deadline = time.monotonic() + 2.0
        for worker in self.workers:
            try:
                worker.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            worker.kill()


def _worker_main() -> None:
    """Entry point of a worker started as a fresh interpreter: descriptors in argv."""
    _worker_loop(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))


def _worker_loop(task_fd: int, answer_fd: int, progress_fd: int) -> None:
    """Run the chunk function on each chunk received, answer once per chunk, until told to stop."""
    from multiprocessing.connection import Connection

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    tasks = Connection(task_fd, writable=False)
    answers = Connection(answer_fd, readable=False)
    progress = _progress_view(mmap.mmap(progress_fd, _PROGRESS_BYTES))
    function_name, options, faults = tasks.recv()
    module, _, name = function_name.partition(":")
    function = getattr(importlib.import_module(module), name)
    answers.send("ready")
    while True:
        try:
            chunk = tasks.recv()
        except EOFError:  # the parent is gone
            return
        if chunk is None:
            return

        def starting(k: int, chunk=chunk) -> None:
            progress[1] = time.monotonic()
            progress[0] = k
            fault = faults.get(os.path.basename(chunk[k]))
            if fault == "crash":
                os.abort()  # as a segfaulting parser would
            if fault == "hang":
                time.sleep(10**6)

        try:
            answer = ("done", function(chunk, options, starting))
        except Exception as error:  # a bug on one input must not stop the others
            answer = ("error", f"{type(error).__name__}: {error}")
        answers.send(answer)
