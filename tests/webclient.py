"""`web`: the one HTTP client the tests call live servers with (uvicorn, nginx, the coach).

httpx2.get() and its siblings make a new Client for each call, and with it an SSL context that
loads the system's certificates (25-30 ms of CPU, for a plain http:// URL): a third of lesson
24's test process went there. `web` makes its context once. It keeps no connection alive
(max_keepalive_connections=0), so each request opens a connection of its own as those calls did
(either of two workers may take it), and no server in the course sets a cookie for it to keep.
"""

import httpx2

web = httpx2.Client(limits=httpx2.Limits(max_keepalive_connections=0))
