"""make run: a lesson's folder served with everything it needs, until Ctrl-C stops it all.

The app runs in uvicorn --reload (its manifest `app`, main:app by default), the pages of
frontend/ in http.server, the offline coach when the lesson needs an LLM and no key is set.
A folder with an nginx.conf (lesson 25 on) runs in its production shape instead, behind nginx on
the API's port (services/proxy.py): two groups of WORKERS uvicorn workers each (no reload), the
API's on WORKERS_PORT and those of the streamed answers and the sockets on STREAMS_PORT; where
nginx is not installed, one group alone on the API's port, and one line says so.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from shared.ground import devdb
from shared.ground.manifest import Lesson
from shared.ground.paths import ROOT, port_free, shown
from shared.services import proxy
from shared.services.database import NotReady, prepare
from shared.services.settings import (
    API_PORT,
    COACH_PORT,
    PAGES_PORT,
    STREAMS_PORT,
    WORKERS_PORT,
    folder_settings,
    llm_setup,
)

# The production shape (a folder with nginx.conf): in each group as many workers as the course's
# machines have cores, and the bound on a graceful stop (uvicorn --timeout-graceful-shutdown, s).
WORKERS = 2
GRACE = 10


class CannotRun(Exception):
    """make run cannot start; the message is what to do."""


def page_origin(settings: dict) -> tuple[str, str]:
    """(base URL to print for the pages, a note when the API would refuse them)."""
    if settings.get("CORS_ORIGINS") is None:
        return f"http://localhost:{PAGES_PORT}", ""  # the app's own default
    allowed = [o.strip().rstrip("/") for o in settings["CORS_ORIGINS"].split(",")]
    works = [f"http://{host}:{PAGES_PORT}" for host in ("localhost", "127.0.0.1")
             if f"http://{host}:{PAGES_PORT}" in allowed]
    if len(works) == 2:
        return works[0], ""
    if works:
        other = works[0].replace("localhost", "127.0.0.1") if "localhost" in works[0] else \
            works[0].replace("127.0.0.1", "localhost")
        return works[0], f"  (exactly this address: CORS_ORIGINS in .env does not list {other})"
    return (f"http://localhost:{PAGES_PORT}",
            f"  (CORS_ORIGINS in .env lists neither http://localhost:{PAGES_PORT} nor "
            f"http://127.0.0.1:{PAGES_PORT}: the pages cannot call the API)")


def run_folder(lesson: Lesson, folder: Path) -> None:
    """Serve `folder` (the lesson's snapshot, or a learner's copy of it) with what `lesson` needs,
    print where to find it all, and stop everything on Ctrl-C."""
    has_api = lesson.has_api(folder)
    has_pages = "frontend" in lesson.needs and (folder / "frontend").is_dir()
    needs_llm = "llm" in lesson.needs
    shaped = has_api and (folder / "nginx.conf").is_file()  # the production shape, lesson 25 on
    behind_nginx = shaped and proxy.binary() is not None
    ports = [API_PORT] + [PAGES_PORT] * has_pages + [WORKERS_PORT, STREAMS_PORT] * behind_nginx
    busy = [str(p) for p in ports if not port_free(p)]
    if busy:
        raise CannotRun(f"port {' and '.join(busy)} is already in use: stop the other server "
                        "(another make run?) first")
    try:
        prepare(lesson, folder)
    except (NotReady, devdb.DevDBError) as error:
        raise CannotRun(f"\n{error}\n") from None

    commands, app_env = [], dict(os.environ)
    where = "" if folder == lesson.path else f" ({shown(folder)})"
    print(f"\nLesson {lesson.number}: {lesson.title}{where}")
    if needs_llm:
        extra, llm_line, coach = llm_setup(folder)
        app_env.update(extra)
        if coach:
            if not port_free(COACH_PORT):
                raise CannotRun(f"port {COACH_PORT} is already in use: stop the other server "
                                "(another make run?) first")
            commands.append((coach, ROOT))
    if shaped:
        for port in [WORKERS_PORT, STREAMS_PORT] if behind_nginx else [API_PORT]:
            commands.append((["-m", "uvicorn", lesson.app, "--host", "127.0.0.1", "--port", str(port),
                              "--workers", str(WORKERS), "--timeout-graceful-shutdown", str(GRACE),
                              *lesson.server_options], folder))
        print(f"  API docs: http://localhost:{API_PORT}/docs  " + (
            f"(nginx on :{API_PORT} -> {WORKERS} uvicorn workers on :{WORKERS_PORT}, and for the streams "
            f"and sockets {WORKERS} on :{STREAMS_PORT})" if behind_nginx else
            f"(nginx is not installed, apt-get install nginx: {WORKERS} uvicorn workers on :{API_PORT} "
            "with no proxy in front)"))
    elif has_api:
        commands.append((["-m", "uvicorn", lesson.app, "--reload", "--host", "127.0.0.1",
                          "--port", str(API_PORT), *lesson.server_options], folder))
        print(f"  API docs: http://localhost:{API_PORT}/docs  (Swagger UI: try every endpoint)")
    else:
        commands.append((["-m", "http.server", str(API_PORT), "--bind", "127.0.0.1"], folder))
        print(f"  Page:     http://localhost:{API_PORT}/")
    if "db" in lesson.needs:
        server = devdb.settings()
        print(f"  Database: {server['dbname']} on {server['host']}:{server['port']} as {server['user']} "
              "(make psql opens a prompt)")
    if has_pages:
        commands.append((["-m", "http.server", str(PAGES_PORT), "--bind", "127.0.0.1"], folder / "frontend"))
        origin, note = page_origin(folder_settings(folder))
        pages = sorted(p.name for p in (folder / "frontend").glob("*.html"))
        print("  Pages:    " + "  ".join(f"{origin}/{p}" for p in pages) + note)
    if needs_llm:
        print(f"  LLM:      {llm_line}")
    print("Press Ctrl-C to stop.\n", flush=True)

    # Ctrl-C (SIGINT) or a plain `kill` (SIGTERM) stop everything started here, even when this
    # process was started in the background (where a shell would have it ignore SIGINT).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    children = [subprocess.Popen([sys.executable, *argv], cwd=cwd, env=app_env) for argv, cwd in commands]
    nginx = None
    try:
        if behind_nginx:
            nginx = proxy.Nginx(folder / "nginx.conf", API_PORT, f"127.0.0.1:{WORKERS_PORT}",
                                f"127.0.0.1:{STREAMS_PORT}").start()
            children.append(nginx.proc)
        while all(child.poll() is None for child in children):
            time.sleep(0.3)
    except KeyboardInterrupt:
        pass
    except proxy.ProxyError as error:
        print(error, file=sys.stderr)
    finally:
        # A terminal's Ctrl-C reached the children too; a second one would make them print tracebacks.
        deadline = time.monotonic() + 1
        while any(child.poll() is None for child in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        for child in children:
            try:
                # Workers let open answers finish first, for at most GRACE seconds.
                child.wait(timeout=GRACE + 2 if shaped else 5)
            except subprocess.TimeoutExpired:
                child.kill()
        if nginx is not None:
            nginx.stop()  # and its folder goes
    print("\nstopped.")
