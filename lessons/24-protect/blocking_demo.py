"""Why one blocking call inside `async def` makes every user wait: run it and see.

    python blocking_demo.py

It starts a tiny app on a free port with three endpoints that each wait one second, sends 5
(then 50) requests to one of them at the same time, and meanwhile asks a fourth endpoint,
/ping, how it is doing. The times it prints are measured on your machine.
"""

import asyncio
import socket
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import uvicorn
from fastapi import FastAPI

app = FastAPI()


# async def runs on the event loop, the one thread that serves every request. time.sleep
# holds that thread for a whole second: nothing else runs meanwhile, not even /ping.
@app.get("/async-blocking")
async def async_blocking():
    time.sleep(1)  # noqa: ASYNC251 - on purpose: stands for requests.get, a sync client, ...
    return {"waited": 1}


# await hands the loop back while waiting: the loop serves others during the second.
@app.get("/async-awaiting")
async def async_awaiting():
    await asyncio.sleep(1)  # stands for `await client.chat.completions.create(...)` with AsyncOpenAI
    return {"waited": 1}


# A plain def runs in a worker thread (FastAPI keeps a pool of 40), so blocking there is fine
# for a while: the loop stays free. It costs one thread per request in flight.
@app.get("/sync-blocking")
def sync_blocking():
    time.sleep(1)
    return {"waited": 1}


@app.get("/ping")
async def ping():
    return {"pong": True}


def get(url: str) -> float:
    started = time.perf_counter()
    urllib.request.urlopen(url, timeout=30).read()
    return time.perf_counter() - started


def measure(base: str, path: str, users: int = 5) -> None:
    with ThreadPoolExecutor(users + 1) as pool:
        started = time.perf_counter()
        waits = [pool.submit(get, base + path) for _ in range(users)]
        time.sleep(0.1)  # let the five requests arrive first
        ping = get(base + "/ping")
        [w.result() for w in waits]
        total = time.perf_counter() - started
    print(f"{path:<16} {users:>2} requests at once took {total:4.1f} s; /ping meanwhile took {ping:4.2f} s")


def main() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    for path, users in (("/async-blocking", 5), ("/async-awaiting", 5), ("/sync-blocking", 5),
                        ("/async-awaiting", 50), ("/sync-blocking", 50)):
        measure(base, path, users)
    server.should_exit = True


if __name__ == "__main__":
    main()
