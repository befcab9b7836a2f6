"""Rule hosts the install's CA may sign for: never a public suffix.

A rule host becomes a permitted subtree of the install's name-constrained CA (ca.py). `*.co.uk` or
`*.github.io` (or `co.uk` itself: a subtree covers every name below it) would let that CA sign for every
site under the suffix, millions of them, and route all of them through the proxy. The Public Suffix List
(the `publicsuffix2` package mitmproxy uses, with its bundled copy: no network) says which names are
suffixes; an unknown top-level name counts as one too.
"""

from __future__ import annotations

import functools

from publicsuffix2 import PublicSuffixList


@functools.cache
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList()


def host_key(host: str) -> str:
    """How hosts are compared everywhere: lower case, no trailing dot."""
    return host.lower().rstrip(".")


def public_suffix_problem(pattern: str) -> str | None:
    """Why a rule host pattern may not be used (one line), or None when it names one site's own domain."""
    base = host_key(pattern).removeprefix("*.")
    if not base:
        return f"host {pattern!r} names no domain"
    if _suffixes().get_tld(base, wildcard=True) == base:
        what = "covers every site under" if pattern.startswith("*.") else "is"
        return (f"host {pattern!r} {what} the public suffix {base!r}: the CA would then sign for every site "
                "under it; name the platform's own domain instead")
    return None


@functools.lru_cache(maxsize=1024)
def registrable_domain(host: str) -> str:
    """The site a host belongs to (eTLD+1 by the Public Suffix List): www.x.com and api.x.com are both x.com.
    An IP address or a bare suffix is its own site."""
    import ipaddress

    h = host_key(host)
    try:
        ipaddress.ip_address(h.strip("[]"))
        return h
    except ValueError:
        pass
    return _suffixes().get_sld(h, wildcard=True) or h
