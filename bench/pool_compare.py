"""Is seqgate's own crash- and hang-proof process pool (workers.py) as fast and as safe as pebble's?

    pip install pebble
    python bench/make_test_midi.py CORPUS --count 10000
    python bench/pool_compare.py CORPUS [--workers 2] [--timeout 3] [--repeat 3]
                                        [--crash 5] [--hang 5] [--pebble-start fork]

Every MIDI file under CORPUS, plus --crash and --hang copies of one of them named so that the
worker given them aborts (as a segfaulting parser would) or sleeps forever, spread evenly through
the list, is parsed with seqgate.prepare.parse_midi_chunk (the task `seqgate prepare` runs) by:

  seqgate WorkerPool       the pool `seqgate prepare` uses (chunks of up to workers.MAX_CHUNK files,
                           one answer a chunk, the file in progress in shared memory), with its test hook;
  pebble schedule/file     pebble.ProcessPool, one future per file, --timeout per file;
  pebble map chunk=K       pool.map(..., chunksize=K, timeout=...), pebble's fast path: the chunk is
                           pebble's task, so its timeout applies to the chunk, and a crash or a
                           hang loses the chunk (one exception in place of its K results);
  pebble chunk=K+retry     one future per chunk of K files; the files of a chunk that crashed or
                           timed out are run again one per future, so only the bad file is lost.

pebble's workers run a wrapper here that does what seqgate's test hook does. Both start workers
by forking this process (as `seqgate prepare` does on Linux) with symusic already imported;
--pebble-start forkserver makes pebble's come from a forkserver instead (pebble forks replacement
workers from one of its threads, so its `fork` forks a multi-threaded process).

Each line: the pool's wall time from its creation to its close (worker start-up counts, and so
does the time lost to the hanging files, about --hang x --timeout / --workers), files per second,
and the CPU seconds it used in this process (pebble's threads included) + in its workers (unknown
for a forkserver's), which other jobs on the machine disturb less than the wall time. Every normal
file must give the same result (pitches and frame_counts of the roll, or the same skip reason) in
every pool; a pool is "safe" if it loses exactly the crash and hang files, as a crash and a
timeout. Runs are interleaved, best of --repeat per pool. With hanging files the timeouts dominate
the time; --crash 0 --hang 0 measures the pools' plain throughput.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import TimeoutError as FutureTimeout
from itertools import zip_longest
from pathlib import Path

import numpy as np

from seqgate.data.prepare import PARSER_PRELOAD, PARSER_TASK, parse_midi_chunk
from seqgate.data.roll import SparseMidiRoll
from seqgate.settings import PrepareConfig
from seqgate.data.workers import FAULT_ENV, MAX_CHUNK, Lost, WorkerPool, fork_is_safe

OPTIONS = PrepareConfig()  # what `seqgate prepare` gives its parser workers by default


# ---- the pools: each returns, for every file in order, a SparseMidiRoll, a skip reason or a Lost

def run_seqgate(files: list[str], faults: dict[str, str], workers: int, timeout: float) -> list:
    if not fork_is_safe():
        sys.exit("this process has threads, so seqgate would not fork its workers; cannot compare")
    os.environ[FAULT_ENV] = ",".join(f"{kind}:{name}" for name, kind in faults.items())
    results: list = [None] * len(files)
    pool = WorkerPool(PARSER_TASK, files, OPTIONS, workers, timeout, preload=PARSER_PRELOAD)
    try:
        for indices, outcome in pool.results():
            for index, result in zip(indices, per_file(outcome, len(indices))):
                results[index] = result
    finally:
        pool.close()
        del os.environ[FAULT_ENV]
    return results


def per_file(outcome, n: int) -> list:
    """A chunk's outcome -> for each of its n files a SparseMidiRoll, a skip reason or a Lost."""
    if isinstance(outcome, Lost):
        return [outcome] * n
    rolls, reasons = outcome
    pieces = iter(range(len(rolls)))
    return [reason if reason is not None else rolls.piece(next(pieces)) for reason in reasons]


def pebble_chunk(chunk: list[tuple[str, str | None]], options: tuple) -> list:
    """What seqgate's worker does with a chunk and its test hook, for pebble's workers."""
    def starting(k: int) -> None:
        if chunk[k][1] == "crash":
            os.abort()  # as a segfaulting parser would
        if chunk[k][1] == "hang":
            time.sleep(10**6)

    try:
        return per_file(parse_midi_chunk([path for path, _ in chunk], options, starting), len(chunk))
    except Exception as error:  # a bug must not fail the pool
        return [Lost("error", f"{type(error).__name__}: {error}")] * len(chunk)


def pebble_task(path: str, options: tuple, fault: str | None):
    return pebble_chunk([(path, fault)], options)[0]


def lost_from(error: BaseException, timeout: float) -> Lost:
    from pebble import ProcessExpired

    if isinstance(error, ProcessExpired):
        return Lost("crash", f"its worker died (exit code {error.exitcode})")
    if isinstance(error, FutureTimeout):
        return Lost("timeout", f"timed out after {timeout:g} s")
    return Lost("error", f"{type(error).__name__}: {error}")


PEBBLE_START = "fork"  # or "forkserver" (--pebble-start)


def pebble_pool(workers: int):
    from pebble import ProcessPool

    context = multiprocessing.get_context(PEBBLE_START if fork_is_safe() else "spawn")
    if context.get_start_method() == "forkserver":
        context.set_forkserver_preload(["symusic", "seqgate.data.prepare", "seqgate.data.roll"])
    return ProcessPool(max_workers=workers, context=context)


def run_pebble_schedule(files, faults, workers, timeout) -> list:
    with pebble_pool(workers) as pool:
        futures = [pool.schedule(pebble_task, args=(f, OPTIONS, faults.get(os.path.basename(f))),
                                 timeout=timeout) for f in files]
        results = []
        for future in futures:
            try:
                results.append(future.result())
            except Exception as error:
                results.append(lost_from(error, timeout))
    return results


def run_pebble_map(files, faults, workers, timeout, chunksize) -> list:
    """pool.map yields one item per file, except one exception in place of a whole chunk that
    crashed or timed out: the rest of that chunk is lost and must be skipped to stay in step."""
    from pebble import ProcessExpired

    n = len(files)
    with pebble_pool(workers) as pool:
        items = pool.map(pebble_task, files, [OPTIONS] * n,
                         [faults.get(os.path.basename(f)) for f in files],
                         timeout=timeout, chunksize=chunksize).result()
        results: list = []
        while len(results) < n:
            try:
                results.append(next(items))
            except StopIteration:
                break
            except (ProcessExpired, FutureTimeout) as error:
                chunk_end = min(n, (len(results) // chunksize + 1) * chunksize)
                results += [lost_from(error, timeout)] * (chunk_end - len(results))
            except Exception as error:  # the task raised: that file only
                results.append(lost_from(error, timeout))
    if len(results) != n:
        sys.exit(f"pebble map gave {len(results)} results for {n} files")
    return results


def run_pebble_chunks(files, faults, workers, timeout, chunksize) -> list:
    def task(index):
        return files[index], faults.get(os.path.basename(files[index]))

    results: list = [None] * len(files)
    with pebble_pool(workers) as pool:
        chunks = [range(s, min(s + chunksize, len(files))) for s in range(0, len(files), chunksize)]
        futures = [(c, pool.schedule(pebble_chunk, args=([task(i) for i in c], OPTIONS),
                                     timeout=timeout)) for c in chunks]
        retries = []
        for chunk, future in futures:
            try:
                results[chunk.start:chunk.stop] = future.result()
            except Exception:  # crashed or timed out: try each of its files alone
                for index in chunk:
                    path, fault = task(index)
                    retries.append((index, pool.schedule(pebble_task, args=(path, OPTIONS, fault),
                                                         timeout=timeout)))
        for index, future in retries:
            try:
                results[index] = future.result()
            except Exception as error:
                results[index] = lost_from(error, timeout)
    return results


# ---- running and checking

def cpu_seconds() -> tuple[float, float]:
    """CPU seconds so far of this process (all threads) and of its workers that have ended."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time(), children.ru_utime + children.ru_stime


def same(a, b) -> bool:
    if isinstance(a, SparseMidiRoll) and isinstance(b, SparseMidiRoll):
        return (np.array_equal(a.pitches, b.pitches)
                and np.array_equal(a.frame_counts, b.frame_counts))
    return type(a) is type(b) and a == b  # both the same skip reason


def check(results: list, reference: list, fault_at: dict[int, str]) -> tuple[Counter, int, int]:
    """(kinds of the files lost, good files lost, good files whose result differs)."""
    kinds, good_lost, differ = Counter(), 0, 0
    for index, result in enumerate(results):
        expected = {"crash": "crash", "hang": "timeout"}.get(fault_at.get(index))
        if isinstance(result, Lost):
            kinds[result.kind] += 1
            good_lost += expected is None
            differ += expected is not None and result.kind != expected
        elif expected is not None or not same(result, reference[index]):
            differ += 1
    return kinds, good_lost, differ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds a file may take")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--crash", type=int, default=5, help="files that crash their worker")
    parser.add_argument("--hang", type=int, default=5, help="files that hang their worker")
    parser.add_argument("--chunksize", type=int, default=MAX_CHUNK,
                        help=f"files per pebble chunk (seqgate's own chunk is at most {MAX_CHUNK})")
    parser.add_argument("--pebble-start", choices=["fork", "forkserver"], default="fork")
    args = parser.parse_args()
    global PEBBLE_START
    PEBBLE_START = args.pebble_start
    import pebble
    import symusic  # noqa: F401  imported before any fork, as seqgate's preload does

    normal = sorted(str(p) for p in args.folder.rglob("*") if p.suffix.lower() in (".mid", ".midi"))
    if not normal:
        sys.exit(f"no MIDI files under {args.folder}")
    for path in normal:
        Path(path).read_bytes()  # into the page cache before anything is timed

    with tempfile.TemporaryDirectory() as tmp:
        files, faults, fault_at = list(normal), {}, {}
        kinds = [k for pair in zip_longest(["crash"] * args.crash, ["hang"] * args.hang)
                 for k in pair if k]  # crash, hang, crash, hang...
        for j, kind in enumerate(kinds):  # evenly through the list, after normal files
            name = f"pool-compare-{kind}-{j}.mid"
            shutil.copy(normal[0], Path(tmp) / name)
            files.insert((j + 1) * len(files) // (len(kinds) + 1), str(Path(tmp) / name))
            faults[name] = kind
        fault_at = {i: faults[os.path.basename(f)] for i, f in enumerate(files)
                    if os.path.basename(f) in faults}

        k, w, t = args.chunksize, args.workers, args.timeout
        pools = {
            "seqgate WorkerPool": lambda: run_seqgate(files, faults, w, t),
            "pebble schedule/file": lambda: run_pebble_schedule(files, faults, w, t),
            f"pebble map chunk={k}": lambda: run_pebble_map(files, faults, w, t, k),
            f"pebble chunk={k}+retry": lambda: run_pebble_chunks(files, faults, w, t, k),
        }
        names = list(pools)
        best, used = {name: float("inf") for name in names}, {}
        outcome, reference = {}, None
        for r in range(args.repeat):
            for name in names[r % len(names):] + names[:r % len(names)]:  # a new order each round
                start, cpu = time.perf_counter(), cpu_seconds()
                results = pools[name]()
                wall = time.perf_counter() - start
                if wall < best[name]:
                    best[name], used[name] = wall, [b - a for a, b in zip(cpu, cpu_seconds())]
                if reference is None:  # seqgate's first run: normal files only are compared
                    reference = results
                lost, good_lost, differ = check(results, reference, fault_at)
                _, worst_lost, worst_differ = outcome.get(name, (None, 0, 0))
                outcome[name] = (lost, max(good_lost, worst_lost), max(differ, worst_differ))

    n = len(files)
    print(f"{n} files ({len(normal)} + {args.crash} crash + {args.hang} hang), {args.workers} "
          f"workers, timeout {args.timeout:g} s, best of {args.repeat}, {os.cpu_count()} cores, "
          f"pebble {pebble.__version__} ({PEBBLE_START if fork_is_safe() else 'spawn'})")
    safe = {}
    for name in names:
        lost, good_lost, differ = outcome[name]
        safe[name] = good_lost == 0 and differ == 0
        why = ", ".join(f"{count} {kind}" for kind, count in sorted(lost.items())) or "none"
        verdict = ("safe: lost only the crash/hang files" if safe[name] else
                   f"UNSAFE: {good_lost} good files lost, {differ} results wrong")
        parent, workers = used[name]
        workers = f"{workers:5.2f}"
        if name.startswith("pebble") and PEBBLE_START == "forkserver":
            workers = "  n/a"  # the forkserver's children, not ours: getrusage cannot see them
        print(f"{name:24s} {best[name]:6.2f} s {n / best[name]:6.0f} files/s  CPU {parent:4.2f} + "
              f"{workers} s  lost {sum(lost.values())} ({why})  {verdict}")
    base = names[0]
    safe_pebble = [name for name in names[1:] if safe[name]]
    if not safe[base]:
        print("verdict: seqgate's pool itself lost good files or gave wrong results")
    elif not faults:
        fastest = min(names[1:], key=best.get)
        print(f"verdict (no crash/hang files, so speed only): the fastest pebble pool ({fastest}) "
              f"runs at {best[base] / best[fastest]:.2f}x seqgate's speed")
    elif not safe_pebble:
        print("verdict: no pebble configuration was as safe as seqgate's pool")
    else:
        fastest = min(safe_pebble, key=best.get)
        ratio = best[base] / best[fastest]
        unsafe = [name for name in names[1:] if not safe[name]]
        print(f"verdict: the fastest safe pebble pool ({fastest}) runs at {ratio:.2f}x seqgate's "
              f"speed ({'faster' if ratio > 1.02 else 'slower' if ratio < 0.98 else 'the same'})"
              + (f"; not safe: {', '.join(unsafe)}" if unsafe else "")
              + "; every normal file's result identical where given"
              * all(o[2] == 0 for o in outcome.values()))


if __name__ == "__main__":
    main()
