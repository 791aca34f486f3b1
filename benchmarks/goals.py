"""Issue 17's goals as `make bench` checks them: each benchmark records the figure it
measured for a goal, and `python -m benchmarks` prints them all in one table at the end.

A benchmark calls `record(...)`; the record goes to a JSON file in the directory named
by `BENCH_GOALS_DIR` (set by `python -m benchmarks`), and nowhere when it is unset.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

GOALS_DIR_VARIABLE = "BENCH_GOALS_DIR"


@dataclass(frozen=True)
class GoalFigure:
    goal: str  # "1", "1 (local stack)", "3", ...
    target: str  # what the issue asks, in words: "≤ 1.0 s"
    measured: str  # the median, with its unit
    met: bool
    benchmark: str


def record(figure: GoalFigure) -> None:
    """Keep `figure` for the summary of `python -m benchmarks` (if it is running)."""
    directory = os.environ.get(GOALS_DIR_VARIABLE)
    if not directory:
        return
    path = Path(directory) / f"{figure.benchmark}.json"
    kept = json.loads(path.read_text()) if path.is_file() else []
    kept.append(asdict(figure))
    path.write_text(json.dumps(kept, ensure_ascii=False, indent=1))


def collected(directory: Path) -> list[GoalFigure]:
    """Every figure recorded in `directory`, ordered by goal."""
    figures = [GoalFigure(**raw) for path in sorted(directory.glob("*.json"))
               for raw in json.loads(path.read_text())]
    return sorted(figures, key=lambda figure: figure.goal)


def table(figures: list[GoalFigure]) -> str:
    """The goals as a Markdown table: goal, target, measured median, met."""
    lines = ["| goal | target | measured | met | benchmark |", "|---|---|---|---|---|"]
    lines += [f"| {f.goal} | {f.target} | {f.measured} | {'yes' if f.met else 'NO'} "
              f"| {f.benchmark} |" for f in figures]
    return "\n".join(lines)
