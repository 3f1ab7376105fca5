"""Log lines for machines: one JSON object per line, each carrying the id of its request.

With several workers behind a proxy, the lines of a hundred requests interleave in one stream.
A log collector (journald, Docker's log driver, Loki, CloudWatch) reads JSON without guessing,
and `request_id` finds every line the app wrote for one request (nginx's own lines carry it too
once its log_format adds $request_id):

  {"time": "2026-12-06 10:12:03,456", "level": "WARNING", "logger": "app.deps", "pid": 4121,
   "request_id": "8f14e45fceea467a9c8e1c5b2a7d3e10", "message": "token refused: ..."}

The id comes from the X-Request-ID header (nginx sends one with every request), or is made
here; asgi-correlation-id's middleware (main.py) keeps it for the request and sends it back.
"""

import logging.config

from asgi_correlation_id import CorrelationIdFilter
from pythonjsonlogger.core import RESERVED_ATTRS


def configure_logging(level: str = "INFO") -> None:
    """Every logger of the process (the app's, uvicorn's) writes JSON lines to stdout.

    Like logging.basicConfig, it leaves logging alone when the root logger already has a
    handler: whoever runs the app (a test runner, `uvicorn --log-config`) has set it up.
    """
    if logging.getLogger().handlers:
        return
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            # Puts the id of the request being served (or None) on every record: record.correlation_id.
            "request_id": {"()": CorrelationIdFilter},
        },
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d %(correlation_id)s %(message)s",
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger",
                                  "process": "pid", "correlation_id": "request_id"},
                # uvicorn adds a coloured copy of some messages: not for a log file.
                "reserved_attrs": [*RESERVED_ATTRS, "color_message"],
            },
        },
        "handlers": {
            "stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout",
                       "formatter": "json", "filters": ["request_id"]},
        },
        # uvicorn gives its loggers handlers of their own (plain text): take them away, so that
        # their lines, the access log among them, reach the root's JSON handler instead.
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": True},
            # /readyz asks Alembic for the database's revision each time a probe asks (every few
            # seconds), and Alembic says at INFO which database it talks to, each time: two lines
            # of noise per probe. Its warnings still show.
            "alembic": {"level": "WARNING"},
        },
        "root": {"level": level, "handlers": ["stdout"]},
    })
