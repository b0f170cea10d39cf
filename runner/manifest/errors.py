"""How a manifest is refused: a list of line-numbered problems, or a file that cannot be read."""

from __future__ import annotations

from runner.manifest.rows import Problem

MAX_PROBLEMS = 50  # problems listed; the rest are counted


class ManifestError(Exception):
    """The manifest cannot be queued. `problems` holds the first few, `count` all of them."""

    def __init__(self, problems: list[Problem], count: int | None = None) -> None:
        self.problems = problems[:MAX_PROBLEMS]
        self.count = len(problems) if count is None else count
        super().__init__(self.describe())

    def describe(self) -> str:
        lines = [str(p) for p in self.problems]
        if self.count > len(self.problems):
            lines.append(f"... and {self.count - len(self.problems)} more problems")
        return "\n".join(lines)


class ManifestFormatError(Exception):
    """The manifest cannot even be read as asked: unknown format, bad --base-url.

    Not a ValueError: a caller that takes ValueError for a bad database URL must not take
    this for one.
    """
