"""Liveness and readiness, from checks the service hands over as callables.

Alive: the process answers at all. Ready: it can do its job, so a load
balancer may send it mail: a trust snapshot is loaded and the spool accepts
writes (a full or read-only spool would make every message a 451).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

Check = Callable[[], bool]


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    failing: tuple[str, ...]  # names of the checks that failed, in declaration order

    def as_text(self) -> str:
        return "ready\n" if self.ready else "not ready: " + ", ".join(self.failing) + "\n"


def evaluate(checks: Mapping[str, Check]) -> Readiness:
    """Run every check; a check that raises counts as failed rather than taking the endpoint down."""
    failing = []
    for name, check in checks.items():
        try:
            passed = bool(check())
        except Exception:  # a probe's own failure is a "no", never a crash of the endpoint
            passed = False
        if not passed:
            failing.append(name)
    return Readiness(not failing, tuple(failing))


def readiness_checks(snapshot_loaded: Check, spool_writable: Check) -> dict[str, Check]:
    return {"trust-snapshot": snapshot_loaded, "spool-writable": spool_writable}


def directory_writable(directory: Path) -> Check:
    """A check that creates and removes a probe file in `directory`.

    An actual write is the only honest test: permission bits say nothing
    for root, and a read-only mount or a full disk show only when writing.
    For the spool, pass its tmp/ directory: recovery empties it, so a probe
    left by a crash does not last.
    """

    def check() -> bool:
        probe = directory / f".ready-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError:
            return False
        try:
            os.write(fd, b"ready")
            return True
        except OSError:  # ENOSPC, EDQUOT, EIO...
            return False
        finally:
            os.close(fd)
            probe.unlink(missing_ok=True)

    return check
