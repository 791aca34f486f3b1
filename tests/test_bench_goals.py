"""`make bench`'s goals table: what each benchmark records comes out in one table."""

from __future__ import annotations

from benchmarks.goals import GOALS_DIR_VARIABLE, GoalFigure, collected, record, table


def test_recorded_figures_come_out_in_goal_order(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(GOALS_DIR_VARIABLE, str(tmp_path))
    record(GoalFigure("3", "≤ 1.5×", "1.38×", True, "stack_latency"))
    record(GoalFigure("1 (local stack)", "≤ 1.5 s later", "1.9 s later", False, "stack_latency"))
    record(GoalFigure("1", "≤ 1.0 s", "746 ms", True, "cold_start"))
    figures = collected(tmp_path)
    assert [f.goal for f in figures] == ["1", "1 (local stack)", "3"]
    lines = table(figures).splitlines()
    assert lines[2] == "| 1 | ≤ 1.0 s | 746 ms | yes | cold_start |"
    assert lines[3] == "| 1 (local stack) | ≤ 1.5 s later | 1.9 s later | NO | stack_latency |"


def test_nothing_is_written_outside_make_bench(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(GOALS_DIR_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    record(GoalFigure("3", "≤ 1.5×", "1.38×", True, "stack_latency"))
    assert list(tmp_path.iterdir()) == []
