"""Stress suite: many concurrent client processes against real daemons.

Sized for a 2-core CI machine by default. ``BROWSERD_STRESS_SCALE=F`` multiplies the
amounts of work; ``BROWSERD_SOAK=1`` is a soak run (scale 10 unless set otherwise).
"""

import os

import pytest

SOAK = os.environ.get("BROWSERD_SOAK") == "1"
SCALE = float(os.environ.get("BROWSERD_STRESS_SCALE", "10" if SOAK else "1"))


def scaled(n: int) -> int:
    return max(1, int(n * SCALE))


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/stress" in str(item.fspath):
            item.add_marker(pytest.mark.stress)
            item.add_marker(pytest.mark.timeout(int(1800 * max(1.0, SCALE))))


def percentile(values, q):
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]
