"""A notice at dawn: the run's summary POSTed to a URL (`--notify`) and handed to a command
(`--on-finish`). Neither can fail the run: every problem is a warning, and both are bounded
in time and in tries."""

from __future__ import annotations

import json
import logging
import subprocess
from typing import Any

import aiohttp
import anyio

log = logging.getLogger(__name__)

NOTIFY_TRIES = 3
NOTIFY_TIMEOUT = 10.0  # seconds per try
ON_FINISH_TIMEOUT = 60.0


async def post_summary(url: str, summary: dict[str, Any], *, retry_delay: float = 2.0) -> bool:
    """POST the summary as JSON; True once a 2xx answer came, False after NOTIFY_TRIES."""
    timeout = aiohttp.ClientTimeout(total=NOTIFY_TIMEOUT)
    problem = ""
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for attempt in range(1, NOTIFY_TRIES + 1):
            try:
                async with session.post(url, json=summary) as resp:
                    if 200 <= resp.status < 300:
                        return True
                    problem = f"HTTP {resp.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if attempt < NOTIFY_TRIES:
                await anyio.sleep(retry_delay * attempt)
    log.warning("Could not notify %s after %d tries (%s).", url, NOTIFY_TRIES, problem)
    return False


async def run_on_finish(command: str, summary: dict[str, Any]) -> int | None:
    """Run `command` in the shell with the summary JSON on its standard input; its exit
    status, or None when it could not run or took longer than ON_FINISH_TIMEOUT."""
    payload = json.dumps(summary).encode()
    try:
        with anyio.fail_after(ON_FINISH_TIMEOUT):
            done = await anyio.run_process(
                command, input=payload, check=False, stdout=None, stderr=None
            )
    except TimeoutError:
        log.warning("--on-finish command took longer than %.0f s: stopped.", ON_FINISH_TIMEOUT)
        return None
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("--on-finish command could not run: %s", exc)
        return None
    if done.returncode != 0:
        log.warning("--on-finish command exited with %d.", done.returncode)
    return done.returncode
