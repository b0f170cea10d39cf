"""What `status` shows besides the counts, as plain records: the store's queries and the
SQLite snapshot (`runner.store.snapshot`) both return these."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class InvalidRow:
    """A manifest row a submit skipped as invalid, with its reasons."""

    batch: str
    line: int
    id: str | None
    problems: str


@dataclass(frozen=True)
class RunnerInfo:
    """One registered runner, as `status` and `account show` list it."""

    id: str
    host: str
    pid: int
    started: datetime
    heartbeat: datetime
    stale: bool
    in_flight: int  # jobs it has claimed: calls in flight and results to download
    leases: int


def this_host() -> str:
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
