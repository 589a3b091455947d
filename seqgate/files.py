"""Atomic file writing, shared by every stage.

Every file seqgate writes goes to a temporary name in the destination folder and is renamed into
place, so a crash or Ctrl-C never leaves a half-written file where a good one was. A disk that
fills up (or a quota, or a file-size limit) while a file is written is the user's to fix: it is
refused in one line, and the file that was there before is left as it was.

Two commands writing the same file at once each write their own temporary file (mkstemp names
them apart) and rename it into place: the last rename wins, whole, and a reader opening the file
at any moment gets either the old file or the new one, never a mixture.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

from seqgate.errors import UserError

# errno values that mean "no room to write": a full disk, a quota, a file-size limit (RLIMIT_FSIZE;
# Python ignores SIGXFSZ, so the write fails with EFBIG instead of killing the process).
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def cannot_write(path: str | os.PathLike, error: OSError) -> UserError:
    """The one-line refusal for a write of `path` that failed, saying what became of the old file."""
    path = Path(path)
    kept = f"the {path.name} that was there is kept" if path.exists() else "nothing was written there"
    return UserError(f"cannot write {path}: {error.strerror or error} ({kept})")


@contextlib.contextmanager
def refusing_no_room(path: str | os.PathLike) -> Iterator[None]:
    """Run a block that writes toward `path` (scratch files included): running out of room in it
    is refused in one line naming `path`; any other error passes through as it is."""
    try:
        yield
    except OSError as error:
        if error.errno not in NO_ROOM:
            raise
        raise cannot_write(path, error) from None


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside `path`; on success rename it onto `path`, else remove it.

    A failure of the write itself (no room while the caller writes; any error while flushing,
    syncing, closing or renaming) is refused in one line, with `path` as it was before."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise cannot_write(path, error) from None
    written = False  # whether the caller's block has ended: an OSError after that is the write's own
    try:
        with refusing_no_room(path), os.fdopen(fd, mode) as handle:
            yield handle
            written = True
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates the file 0600; give it the permissions an ordinary open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)
        os.replace(tmp_name, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        if written and isinstance(error, OSError):
            raise cannot_write(path, error) from None
        raise


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line (a log's record) to `path`, unbuffered. A failed append is cut back off,
    so the file never ends in half a line, and refused in one line."""
    path = Path(path)
    data = memoryview((line + "\n").encode())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as error:
        raise cannot_write(path, error) from None
    try:
        size = os.fstat(fd).st_size
        while data:  # a write may be short (at a size limit, on a nearly full disk)
            data = data[os.write(fd, data):]
    except OSError as error:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
        raise cannot_write(path, error) from None
    finally:
        os.close(fd)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path, "w") as handle:
        handle.write(text)


def write_json_atomic(path: str | os.PathLike, data) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
