"""What the API's answers mean for the whole account, not one job: pause every call on
throttling, an outage or an activation still under way; shrink when someone else fills the
account; halt when every further call would fail the same way (or a pause lasts too long)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from runner.api.errors import ApiError
from runner.scheduler.leases import SharedSlots
from runner.scheduler.policy import Action
from runner.scheduler.settings import RunSettings, RunStats
from runner.scheduler.slots import AccountBackoff

log = logging.getLogger(__name__)

JOB_NUM_EXCEED = "RequestLimitExceeded.JobNumExceed"


class AccountWatch:
    def __init__(
        self,
        settings: RunSettings,
        backoff: AccountBackoff,
        slots: SharedSlots,
        stats: RunStats,
        halt: Callable[[ApiError], None],
    ) -> None:
        self.settings = settings
        self.backoff = backoff
        self.slots = slots
        self.stats = stats
        self._halt = halt
        self._activating_since: float | None = None
        self._outage_since: float | None = None  # the endpoint stopped answering then

    def on_success(self) -> None:
        """A paid result: the account works; pauses and shrinks start over."""
        self.backoff.on_success()
        self.slots.on_success()
        self._activating_since = None

    def react(self, action: Action, err: ApiError, in_flight_at_send: int) -> None:
        """What an error means for the whole account: pause, shrink, or stop."""
        if action is Action.BACKOFF:
            self.stats.throttled += 1
            delay = self.backoff.on_throttle()
            if err.code == JOB_NUM_EXCEED:
                self.slots.on_job_num_exceed(in_flight_at_send)
            log.debug("%s: pausing calls for %.1f s", err.code, delay)
        elif action is Action.WAIT:
            now = time.monotonic()
            if self._activating_since is None:
                self._activating_since = now
                log.warning("%s: the service is still being activated; waiting.", err.code)
            if now - self._activating_since >= self.settings.activation_limit:
                self._halt(err)
            else:
                self.backoff.pause(self.settings.activation_pause)
        elif action is Action.OUTAGE:
            now = time.monotonic()
            if self._outage_since is None:
                self._outage_since = now
                log.warning(
                    "The API endpoint does not answer (%s: %s). Pausing every call and probing "
                    "until it does; no job is charged. Halting if it lasts %s.",
                    err.code,
                    err.message,
                    _duration(self.settings.outage_limit),
                )
            if now - self._outage_since >= self.settings.outage_limit:
                self._halt(err)
            else:
                self.backoff.on_throttle()
        elif action is Action.HALT:
            self._halt(err)

    def endpoint_answers(self) -> None:
        if self._outage_since is not None:
            log.warning(
                "The API endpoint answers again after %s; resuming.",
                _duration(time.monotonic() - self._outage_since),
            )
            self._outage_since = None


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"
