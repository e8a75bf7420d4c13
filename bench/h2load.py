"""h2load driving one gRPC method with one prepared request frame.

h2load (nghttp2) is C and far faster than the Python servers here, so it
cannot be what limits the rate. It only sends one body, so it serves the
runs where every call may carry the same request. It knows nothing of gRPC
status (always HTTP 200, the status is in the trailers), so a run counts the
response bytes, since a failed call carries no message, and a probe has
checked the answer to this exact request first.
"""

from __future__ import annotations

import re
import resource
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from .measure import CpuMeter, RunResult, percentile

_FINISHED = re.compile(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s")
_REQUESTS = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded")
_DATA = re.compile(r"traffic: .*?, [\d.]+\w*B \((\d+)\) data")


def available() -> str | None:
    """h2load's version line, or None when it is not installed."""
    exe = shutil.which("h2load")
    if exe is None:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout
    return out.strip() or "h2load"


def frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message: uncompressed flag, big-endian length."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def _h2load(url: str, body: Path, concurrency: int, extra: list[str]) -> str:
    argv = [
        "h2load", "-c", "1", "-m", str(concurrency), "-d", str(body),
        "-H", "content-type: application/grpc", "-H", "te: trailers", *extra, url,
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600)
    if done.returncode != 0 or "finished in" not in done.stdout:
        raise RuntimeError(f"h2load failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


def run(
    name: str,
    port: int,
    path: str,
    request: bytes,
    response_len: int,
    *,
    concurrency: int,
    warmup: float,
    seconds: float,
    workdir: Path,
    server_cpu: Callable[[], float],
    on_window: Callable[[], None] = lambda: None,
) -> RunResult:
    """A warm-up run, then the measured run on a fresh connection, so that the
    response bytes h2load counts belong to the measured calls only."""
    url = f"http://127.0.0.1:{port}{path}"
    body = workdir / f"{len(list(workdir.glob('*.bin')))}.bin"
    body.write_bytes(frame(request))
    log = body.with_suffix(".tsv")
    _h2load(url, body, concurrency, ["-D", f"{max(1, round(warmup * 1000))}ms"])
    meter = CpuMeter(server_cpu)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    meter.start()
    on_window()
    t0 = time.monotonic()
    out = _h2load(url, body, concurrency, ["-D", f"{max(1, round(seconds * 1000))}ms", f"--log-file={log}"])
    wall = time.monotonic() - t0
    cpu = meter.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finished, requests, data = _FINISHED.search(out), _REQUESTS.search(out), _DATA.search(out)
    assert finished is not None and requests is not None and data is not None
    elapsed = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
    done, succeeded = int(requests.group(3)), int(requests.group(4))
    # A call that failed in gRPC terms has a trailers-only answer: no message
    # bytes. (A call cut off by the end of the run may have its message and
    # not its trailers: so only a shortfall counts.)
    with_message = int(data.group(1)) // (response_len + 5)
    errors: dict[str, int] = {}
    if done - succeeded:
        errors["HTTP"] = done - succeeded
    if with_message < succeeded:
        errors["no message (gRPC error)"] = succeeded - with_message
    latencies = sorted(int(line.split("\t")[2]) / 1000 for line in log.read_text().splitlines() if line)
    load_cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / max(wall, 1e-9)
    return RunResult(
        name=name,
        tool=f"h2load, 1 connection, {concurrency} streams",
        rate=(succeeded - errors.get("no message (gRPC error)", 0)) / elapsed,
        calls=done,
        seconds=elapsed,
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
        errors=errors,
        server_cpu=cpu,
        machine_cpu=meter.machine,
        postgres_cpu=meter.postgres,
        load_cpu=load_cpu,
    )
