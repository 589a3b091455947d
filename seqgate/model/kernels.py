"""seqgate's compiled CPU kernel: the GRU's time loops (gru_kernel.cpp), built once per machine with
torch's C++ extension tools and used wherever it loads.

Where it cannot be had (no C++ compiler or ninja, a build that fails, SEQGATE_COMPILE=0), the
Python loops in fast_rnn.py run instead, with the same results to float rounding; so nothing needs
it, and tests/test_fast_rnn.py checks both against nn.GRU. A build takes under a minute and is kept
in the user's cache folder, keyed by the source, torch and Python, so an upgrade builds afresh.

`gru_kernel()` builds on first use; `gru_kernel(build=False)` only loads a finished build, which is
what the model's forward uses, so that evaluate or sample never stall for a compile unannounced:
`seqgate train` builds it up front (prepare_gru_kernel), under a spinner that says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.machinery
import importlib.util
import os
import platform
import shutil
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Callable, ContextManager, Optional

import torch

SOURCE = Path(__file__).with_name("gru_kernel.cpp")
MODULE_NAME = "seqgate_gru_kernel"
SWITCH_VARIABLE = "SEQGATE_COMPILE"  # "0": never build or load the compiled kernel


def compile_flags() -> list[str]:
    """-O3 with omp simd (and no FP traps, which seqgate never enables) vectorises the fused loops
    (the exponential is written for it, see gru_kernel.cpp); AVX2 and FMA where torch itself runs
    them. Measured on the fused forward loop: 36 ns an element without, 9 with SSE, 2.5 with AVX2."""
    flags = ["-O3", "-fopenmp-simd", "-fno-trapping-math"]
    if platform.machine().lower() in ("x86_64", "amd64") and \
            torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        flags += ["-mavx2", "-mfma"]
    return flags

_loaded: dict[str, Optional[ModuleType]] = {}


def build_folder() -> Path:
    """Where this machine keeps the build: one folder per source, torch, Python and machine."""
    key = hashlib.sha256(b"\0".join([SOURCE.read_bytes(), torch.__version__.encode(),
                                     sys.version.encode(), platform.machine().encode(),
                                     " ".join(compile_flags()).encode()])).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "seqgate" / "kernels" / f"{MODULE_NAME}-{key}"


def _library(folder: Path) -> Optional[Path]:
    found = sorted(folder.glob(f"{MODULE_NAME}*.so")) + sorted(folder.glob(f"{MODULE_NAME}*.pyd"))
    return found[0] if found else None


def _import(library: Path) -> ModuleType:
    loader = importlib.machinery.ExtensionFileLoader(MODULE_NAME, str(library))
    spec = importlib.util.spec_from_file_location(MODULE_NAME, str(library), loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _build(folder: Path) -> ModuleType:
    from torch.utils import cpp_extension

    folder.mkdir(parents=True, exist_ok=True)
    # torch's build locks the folder, so two processes (torchrun ranks) starting at once build once.
    return cpp_extension.load(name=MODULE_NAME, sources=[str(SOURCE)], build_directory=str(folder),
                              extra_cflags=compile_flags(), verbose=False)


def switched_off() -> bool:
    return os.environ.get(SWITCH_VARIABLE, "1").strip() == "0"


BUILD_MESSAGE = "building the compiled CPU GRU, once on this machine (under a minute)"


def prepare_gru_kernel(status: Optional[Callable[[str], ContextManager]] = None) -> bool:
    """Build (or load) the GRU kernel ahead of use: True where it is in use. A build, when one is
    needed, runs inside status(BUILD_MESSAGE) (a spinner), so that the wait is said."""
    pending = not switched_off() and "gru" not in _loaded and _library(build_folder()) is None
    with status(BUILD_MESSAGE) if (status and pending) else contextlib.nullcontext():
        return gru_kernel() is not None


def gru_kernel(build: bool = True) -> Optional[ModuleType]:
    """The compiled GRU loops (forward, backward), or None where they cannot be had.

    build=False: only a finished build is loaded (None otherwise, and asked again next time)."""
    if "gru" in _loaded:
        return _loaded["gru"]
    if switched_off():
        return None
    folder = build_folder()
    library = _library(folder)
    if library is not None:
        try:
            _loaded["gru"] = _import(library)
            return _loaded["gru"]
        except ImportError:
            if not build:
                return None
            shutil.rmtree(folder, ignore_errors=True)  # a build cut off half-written: start again
    if not build:
        return None
    try:
        _loaded["gru"] = _build(folder)
    except Exception as error:  # no compiler, no ninja, a failed build: the Python loops serve
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        warnings.warn(f"seqgate: the compiled CPU GRU is not available ({reason}); "
                      f"using the slower Python loops", RuntimeWarning, stacklevel=2)
        _loaded["gru"] = None
    return _loaded["gru"]
