"""Reading a .npz from a stranger: what it allocates is bounded by what the file holds.

np.load trusts each member's header: a header that claims 10^12 items makes numpy allocate them
before reading a byte. Here every member's header is read first and checked against the expected
dtype and dimensions, against the member's size in the zip directory, and against what its
compressed bytes can expand to (deflate: at most ~1032 to 1), and the archive's sizes against the
file's own; only then is the member read, and it must hold exactly what its header said, no more
and no less (which makes zipfile check its CRC too), and no member may appear twice. Pickled
objects are never read. Nothing here knows what the arrays mean (dataset.py checks that).
"""

from __future__ import annotations

import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

# The most one compressed byte can become under deflate (1032:1), with room for headers.
DEFLATE_MAX_RATIO = 1100
MAX_HEADER_BYTES = 10_000


class BadNpz(Exception):
    """The file is not an .npz of the expected arrays; the message says which member and why."""


def read_npz(path: Path, expected: dict[str, tuple[str, int]], required: set[str]) -> dict[str, np.ndarray]:
    """The members named in `expected` ({name: (dtype kind and size such as "u1", "i8", "U" for
    any unicode width, number of dimensions)}); `required` must all be there, others may be.
    Members not in `expected` are left unread. Raises BadNpz."""
    file_size = path.stat().st_size
    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                if name in arrays:  # np.load would take the last of the two, this reader the first
                    raise BadNpz(f"member {name} is there twice")
                if name not in expected:
                    continue
                if info.compress_size > file_size:
                    raise BadNpz(f"member {name} claims {info.compress_size:,} bytes in a file of {file_size:,}")
                with archive.open(info) as member:
                    arrays[name] = _read_member(member, name, info, *expected[name])
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError,
            UnicodeDecodeError, MemoryError, SyntaxError, tokenize.TokenError) as error:
        # numpy parses a member's header with Python's tokenizer: a flipped bit there can surface
        # as a TokenError (an unclosed bracket) or a SyntaxError, not only a ValueError
        raise BadNpz(f"{type(error).__name__}: {str(error)[:160]}") from None
    missing = sorted(required - set(arrays))
    if missing:
        raise BadNpz(f"no {', '.join(missing)} array")
    return arrays


def _read_member(member, name: str, info: zipfile.ZipInfo, kind: str, ndim: int) -> np.ndarray:
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(member, max_header_size=MAX_HEADER_BYTES)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(member, max_header_size=MAX_HEADER_BYTES)
    else:
        raise BadNpz(f"member {name} has an unknown .npy version {version}")
    found = dtype.str[1:] if dtype.kind != "U" else "U"
    if dtype.hasobject or found != kind or len(shape) != ndim:
        raise BadNpz(f"member {name} is {dtype.str} with {len(shape)} dimensions, "
                     f"expected {kind} with {ndim}")
    if dtype.kind == "U" and dtype.itemsize > 4 * MAX_HEADER_BYTES:
        raise BadNpz(f"member {name} has strings of {dtype.itemsize // 4:,} characters")
    count = 1
    for length in shape:
        count *= int(length)
    nbytes = count * dtype.itemsize
    header_bytes = member.tell() if member.seekable() else 0
    limit = info.file_size if info.compress_type == zipfile.ZIP_STORED else \
        min(info.file_size, DEFLATE_MAX_RATIO * info.compress_size + MAX_HEADER_BYTES)
    if nbytes > limit:
        raise BadNpz(f"member {name} claims {count:,} items, more than its {info.compress_size:,} bytes hold")
    data = member.read(nbytes)
    if len(data) != nbytes:
        raise BadNpz(f"member {name} ends after {len(data) + header_bytes:,} bytes, its header "
                     f"promised {nbytes + header_bytes:,}")
    # Reading on to the end also makes zipfile check the member's CRC.
    if member.read(1):
        raise BadNpz(f"member {name} holds bytes past the {count:,} items its header promised")
    array = np.frombuffer(data, dtype=dtype)
    return array.reshape(shape, order="F" if fortran else "C")
