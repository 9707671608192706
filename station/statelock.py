"""One station per state directory: an OS lock on `station.lock` in it.

A station (`station run`, every `station sim` that keeps its books in a directory) takes an
exclusive `flock` on the lock file before it opens the database, and writes its PID into the
file once it holds the lock. A second station on the same directory finds the lock taken and
refuses at once, naming the first one's PID. The kernel drops the lock when its open file
description is closed: at an orderly stop (`StateLock.release`), and when the holder dies,
however it dies (SIGKILL, a crash, a power cut), so there is never a stale lock to clean up.
The PID in the file is only information: it is read when the lock is taken by someone else,
never trusted as the lock itself.

flock locks belong to an open file description, not to a process: two stations in one process
on the same directory conflict too. Commands that only read the database (`station records`,
`station backup`, `station doctor`, `station pin status`) and `station pin set` (one committed
transaction, the PIN the console reads at each login) do not take it.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

LOCK_NAME = "station.lock"


class StateDirInUse(Exception):
    """Another station holds the state directory."""

    def __init__(self, directory: Path, pid: int | None) -> None:
        self.directory = directory
        self.pid = pid
        who = f"the station with PID {pid}" if pid is not None else "another station (its PID is not known yet)"
        super().__init__(
            f"the state directory {directory} is in use by {who}; stop it first, or give this one "
            "another state directory with --state-dir"
        )


class StateLock:
    """The exclusive lock on one state directory, held until `release()` or the holder's death."""

    def __init__(self, directory: Path, fd: int) -> None:
        self.directory = directory
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, directory: str | Path) -> StateLock:
        """Take the directory's lock now or raise StateDirInUse (never waits for the holder).
        OSError when the lock file cannot be opened (a read-only or missing directory)."""
        directory = Path(directory)
        fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateDirInUse(directory, holder_pid(directory)) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # the lock is what counts; the PID is only for the message of a second station
        return cls(directory, fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Close the lock file: the kernel drops the lock, as it does when the holder dies.
        Idempotent. The file stays (removing it would let two stations lock two different files)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def holder_pid(directory: str | Path, wait_s: float = 0.5) -> int | None:
    """The PID the holder wrote into the lock file, or None. The holder writes it right after
    taking the lock: an empty file is read again for up to `wait_s`."""
    path = Path(directory) / LOCK_NAME
    deadline = time.monotonic() + wait_s
    while True:
        try:
            text = path.read_text(encoding="ascii", errors="replace").strip()
        except OSError:
            return None
        if text:
            return int(text) if text.isdigit() else None
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.02)
