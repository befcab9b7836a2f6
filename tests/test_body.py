"""Body decoding: every compression, charset and breakage, bounded, never raising."""

import codecs
import gzip
import zlib

import brotli
import pytest
from consentwatch.detect.body import zstd  # the same zstd module the detectors read with

from consentwatch.detect.body import read_body

HTML = "<html><body><p>Caf\u00e9 \u2014 Use my data for training</p></body></html>"


@pytest.mark.parametrize("enc,compress", [
    ("gzip", gzip.compress),
    ("br", brotli.compress),
    ("zstd", lambda b: zstd.compress(b)),
    ("deflate", zlib.compress),
    ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as some servers send
    ("gzip, br", lambda b: brotli.compress(gzip.compress(b))),
])
def test_compressions(enc, compress):
    text, _ = read_body(compress(HTML.encode()), "text/html; charset=utf-8", enc)
    assert text == HTML


def test_truncated_gzip_gives_what_was_there():
    data = gzip.compress(HTML.encode() * 200)
    text, _ = read_body(data[: len(data) // 2], "text/html", "gzip")
    assert text and text.startswith("<html>")


@pytest.mark.parametrize("enc, compress", [
    ("gzip", gzip.compress), ("br", brotli.compress), ("zstd", zstd.compress),
])
def test_a_stream_cut_in_half_gives_most_of_its_first_half(enc, compress):
    # a page whose transfer broke off: the switch in its first third must still be read
    page = "".join(f"<p>setting {i} is on</p>" for i in range(100_000)).encode()
    data = compress(page)
    text, _ = read_body(data[: len(data) // 2], "text/html", enc)
    assert text and page.decode().startswith(text) and len(text) > len(page) // 3


@pytest.mark.parametrize("enc", ["gzip", "br", "zstd", "deflate"])
def test_garbage_labelled_compressed_is_refused(enc):
    text, note = read_body(b"\x00\xff" * 500, "text/html", enc)
    assert text is None and note


def test_mislabelled_plain_body_is_read():
    text, note = read_body(HTML.encode(), "text/html", "gzip")
    assert text == HTML and "not compressed" in note


def test_unknown_encoding_is_a_note_not_an_exception():
    assert read_body(b"xyz", "text/html", "compress")[0] is None


def test_decompression_bomb_is_capped():
    bomb = gzip.compress(b"<p>" + b"a" * 50_000_000)
    text, _ = read_body(bomb, "text/html", "gzip", limit=1_000_000)
    assert len(text) <= 1_000_000


@pytest.mark.parametrize("data,ct", [
    (HTML.encode("cp1252", "replace"), "text/html; charset=windows-1252"),
    (HTML.encode("latin-1", "replace"), "text/html; charset=ISO-8859-1"),
    (codecs.BOM_UTF16_LE + HTML.encode("utf-16-le"), "text/html"),
    (HTML.encode("utf-16-be"), "text/html; charset=utf-16be"),
    (b'<meta charset="windows-1252">' + HTML.encode("cp1252", "replace"), "text/html"),
    (HTML.encode(), "text/html; charset=no-such-charset"),
])
def test_charsets(data, ct):
    text, _ = read_body(data, ct, "")
    assert "Use my data for training" in text
    assert "Caf\u00e9" in text or "Caf" in text


def test_empty_body():
    assert read_body(b"", "text/html", "") == (None, "empty body")
