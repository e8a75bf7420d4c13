"""Log set-up: readable text, or with ``AUTHSVC_LOG_FORMAT=json`` one JSON
object a line (python-json-logger) for log pipelines; and the one line per
RPC (logger ``authsvc.rpc``).

What goes into a line is chosen field by field: method, status, duration,
peer, trace id, request id, subject. Never a request or response body, a
header, a token, a password, a code or a secret.
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from authsvc.domain.audit.record import last_event

rpc_log = logging.getLogger("authsvc.rpc")

#: Verify is the hot path (thousands a second from every service): its line is
#: at DEBUG, so that with INFO the cost is one level check. Every other RPC
#: logs at INFO.
QUIET_METHODS = frozenset({"Verify"})


def configure(level: str, fmt: str, worker: int | None = None) -> None:
    """Set up the root logger once, for ``authsvc serve`` and the CLI."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        static = {"worker": worker} if worker is not None else None
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                static_fields=static,
                datefmt="%Y-%m-%dT%H:%M:%S%z",
            )
        )
    else:
        where = f" worker {worker}" if worker is not None else ""
        handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s{where} %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def rpc_done(method: str, status: str, seconds: float, peer: str, trace_id: str) -> None:
    """The call's line; subject and request id come from the audit event it
    recorded, if any (``record.last_event``, local to the call's task)."""
    level = logging.DEBUG if method in QUIET_METHODS else logging.INFO
    if not rpc_log.isEnabledFor(level):
        return
    event = last_event.get()
    subject, request_id = (event.subject, event.request_id) if event is not None else ("", "")
    rpc_log.log(
        level,
        "%s %s %.1fms peer=%s subject=%s",
        method, status, seconds * 1000, peer, subject or "-",
        extra={
            "rpc_method": method, "status": status, "duration_ms": round(seconds * 1000, 3), "peer": peer,
            "trace_id": trace_id, "request_id": request_id, "subject": subject,
        },
    )  # fmt: skip
