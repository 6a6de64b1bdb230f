"""One process trains a run at a time: a per-run lock in the run cache.

Two sweeps (or a sweep and ``scaling train``) on the same ``--out`` would otherwise train every shared run
twice. Before training, :func:`harness.train.train` takes ``<out>/checkpoints/<run id>.lock``; a process
that finds it held skips the run (:class:`RunBusy`) and the sweep waits for the other one's record at the
end, so concurrent sweeps share the work.

The lock is an advisory ``flock`` on that file, so the kernel releases it when its owner ends, ``kill -9``
included: no stale lock needs breaking. The file stays (empty of meaning once unlocked) and names its
last owner (pid, host, start time) for the message others print. ``flock`` works on local filesystems and
on NFSv4 (Linux emulates it with POSIX locks there); where ``fcntl`` does not exist (Windows) runs are not
locked, as before.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from .errors import UserError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


class RunBusy(UserError):
    """The run is being trained by another process right now."""

    def __init__(self, run_id: str, owner: dict):
        self.run_id, self.owner = run_id, owner
        who = f"pid {owner.get('pid', '?')} on {owner.get('host', '?')}" if owner else "another process"
        since = f" since {owner['started_utc']}" if owner.get("started_utc") else ""
        super().__init__(f"run {run_id[:16]} is being trained by {who}{since}; its record will appear when it ends")


def lock_path(out: str | os.PathLike, run_id: str) -> Path:
    return Path(out) / "checkpoints" / f"{run_id[:16]}.lock"


class RunLock:
    """``with RunLock(out, run_id):`` holds the run's lock or raises :class:`RunBusy` at once (never blocks)."""

    def __init__(self, out: str | os.PathLike, run_id: str):
        self.path, self.run_id, self._fd = lock_path(out, run_id), run_id, None

    def __enter__(self) -> RunLock:
        if fcntl is None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunBusy(self.run_id, read_owner(self.path)) from None
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "started_utc": _utc_now()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(owner).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


def is_locked(out: str | os.PathLike, run_id: str) -> bool:
    """Whether some process holds the run's lock now (False where locks are not supported)."""
    path = lock_path(out, run_id)
    if fcntl is None or not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the shared lock if it was taken
    return False


def read_owner(path: Path) -> dict:
    try:
        owner = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
