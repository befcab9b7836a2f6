"""Bytes on the wire -> text a detector can read, with a hard cap on work and memory.

Bodies come from strangers: compression may be truncated, corrupt, mis-labelled or a bomb, and the
charset may be anything. Every path here either returns (text, note) or (None, reason); nothing raises.
"""

from __future__ import annotations

import codecs
import re
import zlib

import sys

import brotli

# mitmproxy's own choice: the standard library's zstd from 3.14 on, its backport below.
if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

DEFAULT_MAX_BYTES = 8 * 1024 * 1024  # decoded bytes inspected per response (option consentwatch_max_bytes)


class BodyError(Exception):
    pass


def _gunzip(data: bytes, limit: int, wbits: int = 16 + zlib.MAX_WBITS) -> bytes:
    d = zlib.decompressobj(wbits)
    out = d.decompress(data, limit)
    # a truncated stream still yields what was there; that is fine for reading labels
    return out


def _inflate(data: bytes, limit: int) -> bytes:
    # "deflate" is zlib-wrapped by the RFC, raw deflate in practice often enough: try both.
    try:
        return _gunzip(data, limit, zlib.MAX_WBITS)
    except zlib.error:
        return _gunzip(data, limit, -zlib.MAX_WBITS)


def _unbrotli(data: bytes, limit: int) -> bytes:
    # When its input runs out before the stream ends (a cut transfer), brotli's Python decoder hands over
    # one output buffer (~32 KB) per call and keeps the rest of what it decoded: calls with no more input
    # bring the rest out. A whole stream comes out in the first call.
    d = brotli.Decompressor()
    try:
        out = d.process(data, output_buffer_limit=limit)
        limited = True
    except TypeError:  # older brotli without output_buffer_limit: still bounded by the caller's check
        out, limited = d.process(data), False
    chunks, size = [out], len(out)
    while size < limit and not d.is_finished():
        try:
            out = d.process(b"", output_buffer_limit=limit - size) if limited else d.process(b"")
        except brotli.error:
            break  # corrupt further on: keep what decoded
        if not out:
            break
        chunks.append(out)
        size += len(out)
    return b"".join(chunks)[:limit]


def _unzstd(data: bytes, limit: int) -> bytes:
    # One decompressor per frame (a body may hold several); a cut stream gives what it decoded so far.
    chunks, size = [], 0
    d = zstd.ZstdDecompressor()
    while size < limit:
        try:
            out = d.decompress(data, limit - size)
        except zstd.ZstdError:
            if chunks:
                break  # corrupt further on (or trailing garbage): keep what decoded
            raise
        data = b""
        chunks.append(out)
        size += len(out)
        if d.eof:
            if not d.unused_data:
                break
            data, d = d.unused_data, zstd.ZstdDecompressor()
        elif d.needs_input:
            break  # truncated
    return b"".join(chunks)


_DECODERS = {"gzip": _gunzip, "x-gzip": _gunzip, "deflate": _inflate, "br": _unbrotli, "zstd": _unzstd}
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"))


def sniff_encoding(data: bytes) -> str | None:
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    return None


def decompress(data: bytes, content_encoding: str, limit: int) -> tuple[bytes, str]:
    """Undo Content-Encoding (a list, applied in order), at most `limit` output bytes.

    A label that does not fit the bytes (a proxy or a HAR export already decoded them) falls back to
    what the magic bytes say, then to the bytes as they are. Raises BodyError when nothing works.
    """
    encodings = [e.strip().lower() for e in content_encoding.split(",") if e.strip() and e.strip().lower() != "identity"]
    note = ""
    for enc in reversed(encodings):
        fn = _DECODERS.get(enc)
        if fn is None:
            raise BodyError(f"unsupported content-encoding {enc!r}")
        try:
            out = fn(data, limit)
        except (zlib.error, brotli.error, zstd.ZstdError) as e:
            sniffed = sniff_encoding(data)
            if sniffed and sniffed != enc:
                out, note = _DECODERS[sniffed](data, limit), f"labelled {enc}, was {sniffed}"
            elif _looks_textual(data):
                out, note = data[:limit], f"labelled {enc}, was not compressed"
            else:
                raise BodyError(f"corrupt {enc} body: {type(e).__name__}") from None
        if not out and data:
            if _looks_textual(data):
                out, note = data[:limit], f"labelled {enc}, was not compressed"
            else:
                raise BodyError(f"{enc} body decoded to nothing (truncated or corrupt)")
        data = out
    if not encodings:
        sniffed = sniff_encoding(data)
        if sniffed:  # compressed but unlabelled (e.g. a HAR export that dropped the header)
            try:
                data, note = _DECODERS[sniffed](data, limit), f"unlabelled {sniffed}"
            except (zlib.error, zstd.ZstdError):
                pass
    return data[:limit], note


def _looks_textual(data: bytes) -> bool:
    head = data[:512].lstrip()
    return head[:1] in (b"<", b"{", b"[") or head[:3] == codecs.BOM_UTF8


# A charset name is short; bounded, and one run of blanks and quotes after "=", so no two repeats share a run.
_CHARSET_PARAM = re.compile(r"charset\s*=[\s\"']*([A-Za-z0-9_.:-]{1,40})", re.I)
_META_CHARSET = re.compile(rb"<meta[^>]{0,200}?charset\s*=[\s\"']*([A-Za-z0-9_.:-]{1,40})", re.I)
_XML_ENCODING = re.compile(rb"<\?xml[^>]{0,100}encoding\s*=\s*[\"']([A-Za-z0-9_.:-]{1,40})", re.I)
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        info = codecs.lookup(name.strip().strip("\"'"))
    except LookupError:
        return None
    # WHATWG: latin-1 labels mean windows-1252, which is a superset and never fails to decode.
    return "cp1252" if info.name in ("latin-1", "iso8859-1", "ascii") else info.name


def choose_charset(data: bytes, content_type: str) -> str:
    """BOM, then the Content-Type charset, then <meta>/XML declaration, then UTF-16 sniffing, then UTF-8."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name
    m = _CHARSET_PARAM.search(content_type or "")
    if m and (c := _codec(m.group(1))):
        return c
    head = data[:4096]
    for rx in (_META_CHARSET, _XML_ENCODING):
        m2 = rx.search(head)
        if m2 and (c := _codec(m2.group(1).decode("ascii", "replace"))):
            # a page that is really UTF-16 cannot carry an ASCII <meta>; one that claims it is lying
            return "utf-8" if c.startswith("utf-16") or c.startswith("utf-32") else c
    if len(head) >= 4 and head.count(0) > len(head) // 4:
        return "utf-16-le" if head[1] == 0 else "utf-16-be"
    # JSON is UTF-8 by RFC 8259; most of the web is too
    return "utf-8"


def to_text(data: bytes, content_type: str) -> str:
    charset = choose_charset(data, content_type)
    try:
        return data.decode(charset, "replace")
    except (LookupError, ValueError):
        return data.decode("utf-8", "replace")


def read_body(raw: bytes | None, content_type: str, content_encoding: str, limit: int = DEFAULT_MAX_BYTES) -> tuple[str | None, str]:
    """(text, note) or (None, reason). Never raises on bad input."""
    if not raw:
        return None, "empty body"
    try:
        data, note = decompress(raw, content_encoding or "", limit)
    except BodyError as e:
        return None, str(e)
    except Exception as e:  # a decoder bug must not take the proxy down; report the type, never the content
        return None, f"undecodable body ({type(e).__name__})"
    if not data:
        return None, "empty body"
    return to_text(data, content_type), note
