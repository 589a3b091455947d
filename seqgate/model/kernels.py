"""seqgate's compiled CPU kernel: the time loops of the GRU and the tanh RNN (rnn_loops.cpp), built
once per machine with torch's C++ extension tools and used wherever it loads.

Where it cannot be had (no C++ compiler or ninja, a build that fails, SEQGATE_COMPILE=0), the
Python loops in fast_rnn.py run instead, with the same results to float rounding; so nothing needs
it, and tests/test_fast_rnn.py checks both against nn.GRU and nn.RNN. A build takes under a minute
and is kept in the user's cache folder, keyed by the source, torch and Python, so an upgrade builds
afresh.

`compiled_loops()` builds on first use; `compiled_loops(build=False)` only loads a finished build,
which is what the model's forward uses, so that evaluate or sample never stall for a compile
unannounced: `seqgate train` builds it up front (prepare_compiled_loops), under a spinner that says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.machinery
import importlib.util
import logging
import os
import platform
import shutil
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Callable, ContextManager, Optional

import torch

from seqgate.files import write_text_atomic

SOURCE = Path(__file__).with_name("rnn_loops.cpp")
MODULE_NAME = "seqgate_rnn_loops"
SWITCH_VARIABLE = "SEQGATE_COMPILE"  # "0": never build or load the compiled kernel


def compile_flags() -> list[str]:
    """-O3 with omp simd (and no FP traps, which seqgate never enables) vectorises the fused loops
    (the exponential is written for it, see rnn_loops.cpp); AVX2 and FMA where torch itself runs
    them. Measured on the fused forward loop: 36 ns an element without, 9 with SSE, 2.5 with AVX2."""
    flags = ["-O3", "-fopenmp-simd", "-fno-trapping-math"]
    if platform.machine().lower() in ("x86_64", "amd64") and \
            torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        flags += ["-mavx2", "-mfma"]
    return flags

# MODULE_NAME: the loaded kernel, or None once a build failed; _NONE_BUILT: a build=False lookup
# found no finished build.
_loaded: dict[str, Optional[ModuleType]] = {}
_NONE_BUILT = f"{MODULE_NAME}:none-built"


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


class BuildUnavailable(Exception):
    """The compiled loops cannot be built here; the message says why in a few words."""


BUILD_LOG = "build-error.log"


def _build(folder: Path) -> ModuleType:
    from torch.utils import cpp_extension

    compiler = cpp_extension.get_cxx_compiler()  # $CXX, else c++
    if shutil.which(compiler) is None:
        raise BuildUnavailable(f"no C++ compiler: {compiler} not found")
    if not cpp_extension.is_ninja_available():
        raise BuildUnavailable("ninja not found")
    folder.mkdir(parents=True, exist_ok=True)
    # torch's extension tools log compiler-version advice of many lines: the failure is said once, below.
    torch_logger = logging.getLogger("torch.utils.cpp_extension")
    level = torch_logger.level
    torch_logger.setLevel(logging.ERROR)
    try:
        # torch's build locks the folder, so two processes (torchrun ranks) starting at once build once.
        return cpp_extension.load(name=MODULE_NAME, sources=[str(SOURCE)], build_directory=str(folder),
                                  extra_cflags=compile_flags(), verbose=False)
    except Exception as error:  # the compiler's own words go to a file: they run to pages
        write_text_atomic(folder / BUILD_LOG, f"{error}\n")
        raise BuildUnavailable(f"the build failed, see {folder / BUILD_LOG}") from error
    finally:
        torch_logger.setLevel(level)


def switched_off() -> bool:
    return os.environ.get(SWITCH_VARIABLE, "1").strip() == "0"


BUILD_MESSAGE = "building the compiled CPU loops of the GRU and tanh RNN, once on this machine (under a minute)"


def prepare_compiled_loops(status: Optional[Callable[[str], ContextManager]] = None,
                           say: Optional[Callable[[str], None]] = None) -> bool:
    """Build (or load) the compiled loops ahead of use: True where it is in use. A build, when one is
    needed, runs inside status(BUILD_MESSAGE) (a spinner), so that the wait is said; a build that
    fails is said in one line through say (a RuntimeWarning without it)."""
    pending = not switched_off() and MODULE_NAME not in _loaded and _library(build_folder()) is None
    with status(BUILD_MESSAGE) if (status and pending) else contextlib.nullcontext():
        return compiled_loops(on_failure=say) is not None


def compiled_loops(build: bool = True,
                   on_failure: Optional[Callable[[str], None]] = None) -> Optional[ModuleType]:
    """The compiled loops (gru_forward, gru_backward, tanh_forward, tanh_backward), or None where
    they cannot be had.

    build=False: only a finished build is loaded; None otherwise, remembered, so that the model's
    forward (which asks every call) does not hash the source and search the folder each time: this
    process then runs the Python loops until a build=True call builds or loads the kernel.
    A build that fails is said once, through on_failure(message) or else as a RuntimeWarning."""
    if MODULE_NAME in _loaded:
        return _loaded[MODULE_NAME]
    if switched_off() or (not build and _NONE_BUILT in _loaded):
        return None
    folder = build_folder()
    library = _library(folder)
    if library is not None:
        try:
            _loaded[MODULE_NAME] = _import(library)
            return _loaded[MODULE_NAME]
        except ImportError:
            if build:
                shutil.rmtree(folder, ignore_errors=True)  # a build cut off half-written: start again
    if not build:
        _loaded[_NONE_BUILT] = None
        return None
    try:
        _loaded[MODULE_NAME] = _build(folder)
    except Exception as error:  # no compiler, no ninja, a failed build: the Python loops serve
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        message = (f"the compiled CPU loops are not available ({reason}); using the slower Python loops "
                   f"(set {SWITCH_VARIABLE}=0 to skip the build)")
        if on_failure is not None:
            on_failure(message)
        else:
            warnings.warn(f"seqgate: {message}", RuntimeWarning, stacklevel=2)
        _loaded[MODULE_NAME] = None
    return _loaded[MODULE_NAME]
