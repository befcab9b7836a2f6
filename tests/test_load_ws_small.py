"""bench/load_ws.py, small: 20 WebSocket clients on a real `consentwatch run`, new warnings through the proxy for
about 5 s; every client gets every warning. No timing assertions (CI machines vary); the figures come from
`python bench/load_ws.py` (200 clients, 100 warnings/s, 60 s)."""

from __future__ import annotations

from pathlib import Path

import pytest
from script_support import load_script

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[1] / "bench" / "load_ws.py"


def load_bench():
    return load_script(BENCH, "bench_load_ws")


def test_recording_has_one_new_warning_per_page(tmp_path):
    from consentwatch.pipeline import Watch

    bench = load_bench()
    watch = Watch(tmp_path)
    try:
        dates = set()
        for i in (0, 1, 365):
            [f] = watch.process(bench.notice_url(i), "text/html", bench.notice_page(i), host="www.linkedin.com")
            assert f.kind == "policy_update" and f.effective_date == bench.notice_date(i).isoformat()
            dates.add(f.effective_date)
        assert len(watch.state.list_warnings()) == len(dates) == 3
    finally:
        watch.close()


async def test_twenty_clients_get_every_warning():
    bench = load_bench()
    res = await bench.run_load(clients=20, rate=60, seconds=5, procs=0, drain=60)
    print(res.table())
    assert res.failed == 0 and res.sent == 300
    assert res.stored == res.sent
    assert res.closed == 0
    assert res.delivered == [res.sent] * 20, res.log_tail
    assert len(res.latencies_ms) == 20 * res.sent
    assert res.rss_kb, "no memory samples of consentwatch run"
