"""The local API the browser extension talks to: REST + WebSocket on 127.0.0.1 (aiohttp, mitmproxy's loop).

app.py routes, auth.py the one middleware (Host, Origin, token, CORS), hub.py WebSocket fan-out,
pac.py the PAC script, server.py the mitmproxy addon that runs it all.
"""
