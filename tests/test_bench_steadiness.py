"""bench/run_all.py's steadiness gate: the README's throughput tables are rewritten only from a run on a steady
machine, judged over the probes before and after the run together."""

from __future__ import annotations

from pathlib import Path

from script_support import load_script

BENCH = Path(__file__).resolve().parents[1] / "bench" / "run_all.py"


def load_bench():
    return load_script(BENCH, "bench_run_all")


def test_a_probe_whose_runs_agree_is_steady():
    run_all = load_bench()
    assert run_all.steady((168, 173, 184))
    assert ", steady" in run_all.steadiness_line((168, 173, 184))


def test_a_probe_whose_slowest_run_is_far_off_is_not():
    run_all = load_bench()
    assert not run_all.steady((172, 192, 328))
    assert "NOT steady" in run_all.steadiness_line((172, 192, 328))


def test_two_steady_probes_at_different_speeds_are_not_steady_together():
    run_all = load_bench()
    before, after = (168, 173, 184), (310, 329, 337)  # both seen on 2026-12-02, a minute apart
    assert run_all.steady(before) and run_all.steady(after)
    assert not run_all.steady(before, after)
