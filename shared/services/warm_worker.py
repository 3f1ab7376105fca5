"""The command pytest-xdist starts for each worker of a make check (testrun.spread), in place of
a new interpreter: it asks the warm server (warm.py) to fork the worker from the packages it has
loaded, hands it this process's stdin, stdout and stderr (the pipes xdist talks over), its
environment and its folder, and waits for it to end.

A new interpreter per worker imports pytest, FastAPI, SQLAlchemy and openai again: 1.3 s of CPU
or more each, three workers at once on two cores, before the first test runs. Nothing in
pytest-xdist or execnet forks workers from a loaded process, hence these lines.

Started as `python -S warm_worker.py FOLDER -u -c CODE` (execnet appends `-u -c CODE`, the code
that makes the process a worker). -S: this process loads nothing but the standard library, in
milliseconds. When no server answers, or it refuses (only a check's pytest forked by the server
may have its workers forked there too: they join its process group, so that Ctrl-C and the time
limit stop them with it), this process becomes the interpreter xdist would have started.
"""

import json
import os
import signal
import socket
import sys


def main(folder: str, interpreter_args: list[str]) -> None:
    conn = socket.socket(socket.AF_UNIX)
    try:
        conn.settimeout(30)  # a fork takes milliseconds; see warm.run on a busy machine
        conn.connect(os.path.join(folder, "check.sock"))
        request = {"worker": {"argv": interpreter_args, "env": dict(os.environ), "cwd": os.getcwd(),
                              "sid": os.getsid(0), "pgid": os.getpgid(0)}}
        socket.send_fds(conn, [json.dumps(request).encode() + b"\n"], [0, 1, 2])
        lines = conn.makefile("rb")
        if "pid" not in json.loads(lines.readline() or b"{}"):  # refused, or the server is out of date
            raise OSError
    except (OSError, ValueError):
        conn.close()
        os.execv(sys.executable, [sys.executable, *interpreter_args])
    # The worker is in this process group too: Ctrl-C reaches it there, not through here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn.settimeout(None)
    status = 1  # a worker that ends without a word was killed
    for line in lines:
        status = json.loads(line).get("status", status)
    sys.exit(status)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
