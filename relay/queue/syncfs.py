"""syncfs(2): one flush for every file written on a file system.

A batch of spool files is made durable by one syncfs instead of one fsync
each: the device is asked to flush once. Only trusted where the kernel
reports write-back errors through syncfs (Linux 5.8 and later); earlier
kernels return success even when a write was lost.

The file system descriptor is opened once and kept: syncfs reports every
write-back error since that descriptor was opened, even one another process
has already been told about, so no error slips between two batches.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import sys
from pathlib import Path
from typing import Callable

_FIRST_REPORTING = (5, 8)


def kernel_reports_errors(release: str | None = None) -> bool:
    """Whether syncfs fails when a write-back failed (Linux 5.8 and later)."""
    if release is None:
        if not sys.platform.startswith("linux"):
            return False
        release = os.uname().release
    found = re.match(r"(\d+)\.(\d+)", release)
    return found is not None and (int(found[1]), int(found[2])) >= _FIRST_REPORTING


def _libc_syncfs() -> Callable[[int], int] | None:
    try:
        function = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes, function.restype = [ctypes.c_int], ctypes.c_int
    return function  # type: ignore[no-any-return]


def unavailable_reason() -> str | None:
    """Why syncfs cannot be trusted here, or None when it can."""
    if not kernel_reports_errors():
        return "needs Linux 5.8 or later, whose syncfs reports lost writes"
    if _libc_syncfs() is None:
        return "the C library has no syncfs"
    return None


class FileSystemFlush:
    """Flushes the file system holding `directory`; raises OSError when a write was lost."""

    def __init__(self, directory: Path) -> None:
        function = _libc_syncfs()
        if function is None:
            raise OSError(0, "the C library has no syncfs")
        self._syncfs = function
        self._fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)

    def __call__(self) -> None:
        if self._syncfs(self._fd) != 0:
            number = ctypes.get_errno()
            raise OSError(number, os.strerror(number))
