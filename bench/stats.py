"""What the bench scripts share for their figures."""

from __future__ import annotations


def pct(values, p: float) -> float:
    """The p-th percentile of values (any order), interpolated linearly between the two nearest; nan if empty."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)
