"""Work and memory stay bounded whatever the body: 50 MB pages, compression bombs (tracemalloc, not time)."""

import gzip
import tracemalloc

import pytest

from consentwatch.detect import Detector
from consentwatch.rules import load_pack, shipped_pack

URL = "https://www.linkedin.com/mypreferences/d/settings/data-for-ai-improvement"
CHUNK = (b'<div class="x"><span>Use my data for training content creation AI models</span>'
         b'<input type=checkbox checked></div>\n')
BIG = b"<html><body>" + CHUNK * (50_000_000 // len(CHUNK))


@pytest.mark.parametrize("max_bytes", [1 << 20, 8 << 20])
@pytest.mark.parametrize("encoding", ["", "gzip"])
def test_memory_is_bounded_by_max_bytes_not_by_the_body(max_bytes, encoding):
    body = gzip.compress(BIG, 1) if encoding else BIG
    detector = Detector(load_pack(shipped_pack()), max_bytes=max_bytes, memo_size=0)
    tracemalloc.start()
    try:
        obs = detector.detect(URL, "text/html", body, encoding)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [f.kind for f in obs.findings] == ["toggle_on"]  # it did read the (first max_bytes of the) page
    # a copy, the decoded text and its lower-cased twin, plus parsing: a few times max_bytes, never 50 MB
    assert peak < 4 * max_bytes + (2 << 20), f"peak {peak / 1e6:.1f} MB for max_bytes {max_bytes / 1e6:.1f} MB"
