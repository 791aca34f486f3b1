"""How much the reliability tests try: bounded for CI, more with LOOKALIKE_LONG_TESTS=1.

The figures each test measured are collected here and written, at the end of the run, to
the file named by LOOKALIKE_RELIABILITY_REPORT (if set), which docs/reliability.md quotes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

LONG = os.environ.get("LOOKALIKE_LONG_TESTS", "").lower() in ("1", "true", "yes")


def scaled(ci: int, long: int) -> int:
    """`ci` cases normally, `long` with LOOKALIKE_LONG_TESTS=1."""
    return long if LONG else ci


def record(name: str, **figures: Any) -> None:
    """Print a test's figures (shown with -s or on failure) and add them to the report."""
    print(f"\n[reliability] {name}: {figures}")
    target = os.environ.get("LOOKALIKE_RELIABILITY_REPORT")
    if not target:
        return
    path = Path(target)
    report = json.loads(path.read_text()) if path.is_file() else {}
    report[name] = figures
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
