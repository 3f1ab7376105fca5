"""nginx in front of a lesson's workers, without Docker: what `make run`, the tests and the bench use.

A lesson's nginx.conf (lesson 25 on) is the part of nginx's configuration inside `http { }`,
with ${PROXY_PORT}, ${APP_ADDRESS} (the API's workers) and ${STREAMS_ADDRESS} (the workers of the
streamed answers and the sockets) to fill in, as the nginx image fills in a template. Here
it is filled in and wrapped in a main configuration of our own: every file nginx writes (pid,
temporary bodies) goes into a fresh private folder, errors go to stderr, and when this runs as
root nginx runs as the unprivileged user `nobody`, on a port above 1024, like any other server.

Debian's package `nginx` provides the binary; .ci/run installs it.
"""

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from shared.ground.paths import listens_on

USER = "nobody"
PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
MAIN_CONFIG = """\
daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log stderr warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    client_body_temp_path {folder}/client_body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {folder}/site.conf;
}}
"""


class ProxyError(Exception):
    """nginx could not start: the message says why (its own error lines included)."""


def binary() -> str | None:
    """The nginx program: on the PATH, or where Debian puts it (/usr/sbin is not on every PATH)."""
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    return found if os.access(found, os.X_OK) else None


def render(template: str, **values: str) -> str:
    """The template with each ${NAME} replaced by values[NAME]; a name not given is an error."""
    missing = sorted({name for name in PLACEHOLDER.findall(template) if name not in values})
    if missing:
        raise ProxyError(f"nginx.conf uses ${{{missing[0]}}}, which is not given")
    return PLACEHOLDER.sub(lambda m: str(values[m[1]]), template)


class Nginx:
    """nginx on 127.0.0.1:port in front of app_address and streams_address (host:port each: the
    two groups of workers; the same address twice is one group for all), with the lesson's nginx.conf.

    .start() returns once it listens; .stop() ends it (SIGQUIT: open requests finish first) and
    removes its folder. .proc is the master process; its stderr holds nginx's error lines.
    """

    def __init__(self, template: Path, port: int, app_address: str, streams_address: str,
                 host: str = "127.0.0.1"):
        self.template, self.port, self.host = template, port, host
        self.app_address, self.streams_address = app_address, streams_address
        self.folder: Path | None = None
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10) -> "Nginx":
        if not self.template.is_file():
            raise ProxyError(f"no {self.template.name} in {self.template.parent}")
        # Filled in before the folder is made: a template that fails leaves nothing behind.
        site = render(self.template.read_text(), PROXY_PORT=f"{self.host}:{self.port}",
                      APP_ADDRESS=self.app_address, STREAMS_ADDRESS=self.streams_address)
        program = binary()
        if program is None:
            raise ProxyError("nginx is not installed (apt-get install nginx)")
        self.folder = Path(tempfile.mkdtemp(prefix="aic-nginx-"))
        (self.folder / "site.conf").write_text(site)
        (self.folder / "nginx.conf").write_text(MAIN_CONFIG.format(folder=self.folder))
        as_user = {}
        if os.geteuid() == 0:  # never a server as root: nginx runs as nobody, in a folder it owns
            user = pwd.getpwnam(USER)
            for path in [self.folder, *self.folder.iterdir()]:
                os.chown(path, user.pw_uid, user.pw_gid)
            as_user = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        self.proc = subprocess.Popen(
            [program, "-e", "stderr", "-p", str(self.folder), "-c", str(self.folder / "nginx.conf")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            **as_user)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                errors = self.proc.stderr.read().strip()
                self.stop()
                raise ProxyError(f"nginx did not start: {errors}")
            with socket.socket() as s:
                # its own master listening, not another program that took the port (paths.listens_on)
                if s.connect_ex((self.host, self.port)) == 0 and listens_on(self.proc.pid, self.port):
                    return self
            time.sleep(0.05)
        self.stop()
        raise ProxyError(f"nginx did not listen on {self.host}:{self.port} within {timeout} s")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: a fast shutdown (SIGQUIT would wait for open sockets)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.proc.stderr.close()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
