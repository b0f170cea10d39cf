"""Where a claim on PostgreSQL starts looking: at the last job this store claimed, for a few
seconds at a time, rather than at the oldest queued job.

Claims take the oldest due job from ix_jobs_claimable, which holds only queued jobs. But on
PostgreSQL a job that left `queued` stays in that index as a dead entry until VACUUM: on a
queue of a million jobs worked through and not yet vacuumed, every claim from the start
would step over hundreds of thousands of them (20 ms a claim, where a vacuumed index takes
0.02 ms). Starting at the last claimed id skips them; a full search from the start every
`TTL` seconds, whenever nothing is found above the floor, and a floor lowered by every job
this store puts back in the queue keep the order "oldest due job first", give or take a job
that another process put back below the floor within the last `TTL` seconds. SQLite deletes
index entries at once: there the floor stays at 0; so it does for a store that acts for no
runner (`retry`, `cancel` and other commands claim nothing, and tests see the exact order).
"""

from __future__ import annotations

import time


class ClaimFloor:
    TTL = 5.0
    """Seconds between full searches from the oldest queued job."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._floor = 0
        self._since = 0.0
        # The lowest job put back since the last `lowest()`: a claim running meanwhile must
        # not raise the floor above it when it ends.
        self._put_back: int | None = None

    def lowest(self) -> int:
        """The lowest job id a claim needs to look at now (0: all of them)."""
        self._put_back = None
        if not self.enabled or time.monotonic() - self._since > self.TTL:
            return 0
        return self._floor

    def claimed(self, job_id: int, searched_from: int) -> None:
        """A claim that looked from `searched_from` took `job_id`: no due job below it."""
        if searched_from == 0:
            self._since = time.monotonic()
            self._floor = job_id
        else:
            self._floor = max(self._floor, job_id)
        if self._put_back is not None:
            self._floor = min(self._floor, self._put_back)
            self._put_back = None

    def requeued(self, job_id: int) -> None:
        """This store put `job_id` back in the queue: claims must see it again."""
        self._floor = min(self._floor, job_id)
        self._put_back = job_id if self._put_back is None else min(self._put_back, job_id)
