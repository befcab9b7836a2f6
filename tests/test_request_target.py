"""host_of / url_of answer exactly what mitmproxy's pretty_host / pretty_url answer, for any Host header."""

from hypothesis import given, settings, strategies as st
from mitmproxy import http

from consentwatch.request_target import MAX_SPLITS, _SPLITS, header, host_of, url_of

LABEL = st.one_of(
    st.text(alphabet="abcXYZ019-_", min_size=0, max_size=8),
    st.sampled_from(["xn--bcher-kva", "xn--", "xn--zz", "www", "WWW", "a" * 63, "b" * 64, "", "münchen", "ä"]),
)
AUTHORITY = st.one_of(
    st.builds(lambda labels, dot, port: ".".join(labels) + dot + port,
              st.lists(LABEL, min_size=1, max_size=5), st.sampled_from(["", "."]),
              st.sampled_from(["", ":", ":80", ":443", ":8080", ":0", ":65535", ":65536", ":99999999", ":x", "::1"])),
    st.sampled_from(["[::1]", "[::1]:8080", "[fe80::1%eth0]:1", "127.0.0.1", "127.0.0.1:8443", "a b.example",
                     "www.linkedin.com:443", ("x" * 62 + ".") * 5, "host:", ":80", ".", "..", "a..b"]),
    st.text(max_size=20),
)


def request(authority: str | None, scheme: str = "https", method: str = "GET", http2: bool = False) -> http.Request:
    req = http.Request.make(method, f"{scheme}://origin.invalid:8443/a/b?q=1")
    req.headers.pop("host", None)  # start without one, whatever make() did
    if authority is not None and not http2:
        req.headers["host"] = authority
    if http2:
        req.http_version = "HTTP/2.0"
        req.authority = authority or ""
    return req


@settings(max_examples=1500, deadline=None)
@given(AUTHORITY, st.sampled_from(["http", "https"]), st.booleans())
def test_same_answers_as_mitmproxy(authority, scheme, http2):
    try:
        req = request(authority, scheme, http2=http2)
    except (ValueError, UnicodeError):
        return  # mitmproxy would not have built such a request
    if not http2 and (not authority or authority.isascii()):  # the header under test is the one in force
        assert (req.host_header or None) == (authority or None)
    assert host_of(req) == req.pretty_host
    assert url_of(req) == req.pretty_url


def test_common_cases():
    assert host_of(request("www.linkedin.com")) == "www.linkedin.com"
    assert host_of(request("www.linkedin.com:8443")) == "www.linkedin.com"
    assert url_of(request("www.linkedin.com")) == "https://www.linkedin.com/a/b?q=1"
    assert url_of(request("www.linkedin.com:8443")) == "https://www.linkedin.com:8443/a/b?q=1"
    assert url_of(request("www.linkedin.com:443", "http")) == "http://www.linkedin.com:443/a/b?q=1"
    assert host_of(request(None)) == "origin.invalid"  # no Host header: the request's own host
    assert host_of(request("[::1]:8080")) == "::1"
    assert url_of(request("www.linkedin.com:443", method="CONNECT")) == request(
        "www.linkedin.com:443", method="CONNECT").pretty_url


NAME = st.sampled_from([b"host", b"Host", b"HOST", b"content-type", b"Content-Type", b"x-a", b"hos", b"hostt"])
VALUE = st.one_of(st.binary(max_size=12), st.sampled_from([b"www.linkedin.com", b"text/html", b"\xff\xfe", b""]))


@settings(max_examples=800, deadline=None)
@given(st.lists(st.tuples(NAME, VALUE), max_size=6), st.sampled_from([b"host", b"content-type", b"x-b"]))
def test_header_reads_what_headers_get_reads(fields, name):
    headers = http.Headers(fields)
    assert header(headers, name) == headers.get(name.decode())


def test_the_memo_of_authorities_stays_bounded_and_answers_the_same():
    for i in range(MAX_SPLITS + 10):
        assert host_of(request(f"h{i}.example:8{i % 10}")) == f"h{i}.example"
        assert len(_SPLITS) <= MAX_SPLITS
    assert host_of(request("[::1]:8080")) == "::1" and host_of(request("[::1]:8080")) == "::1"
