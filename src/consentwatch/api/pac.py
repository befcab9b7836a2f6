"""The PAC script: rule hosts go to the proxy, everything else DIRECT (the first of three layers)."""

from __future__ import annotations

import json

from ..ca import SELFTEST_HOST


def pac_script(host_patterns: list[str], proxy_port: int, proxy_host: str = "127.0.0.1") -> str:
    # the self-test host too: the extension and the user open it to prove the route (answered by the proxy itself)
    exact = sorted({h for h in host_patterns if not h.startswith("*.")} | {SELFTEST_HOST})
    suffixes = sorted({"." + h[2:] for h in host_patterns if h.startswith("*.")})
    proxy = f"PROXY {proxy_host}:{int(proxy_port)}; DIRECT"
    return (
        "// consentwatch: only the platforms in the rule database go through the local proxy.\n"
        f"var EXACT = {json.dumps({h: 1 for h in exact})};\n"
        f"var SUFFIXES = {json.dumps(suffixes)};\n"
        "function FindProxyForURL(url, host) {\n"
        "  host = host.toLowerCase();\n"
        "  if (host.charAt(host.length - 1) == \".\") host = host.substring(0, host.length - 1);\n"
        f"  if (EXACT.hasOwnProperty(host)) return {json.dumps(proxy)};\n"
        "  for (var i = 0; i < SUFFIXES.length; i++) {\n"
        "    var s = SUFFIXES[i];\n"
        "    if (host.length > s.length && host.substring(host.length - s.length) == s)"
        f" return {json.dumps(proxy)};\n"
        "  }\n"
        "  return \"DIRECT\";\n"
        "}\n"
    )
