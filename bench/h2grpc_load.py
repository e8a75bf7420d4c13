"""h2grpc (bench/h2grpc/h2grpc.c): prepared gRPC requests, a different one
per call if need be, from C.

h2load sends one body only; the Python generator can send any but costs the
machine about as much CPU per call as the empty RPC's server does. h2grpc is
h2load's idea with a file of request frames: every run whose requests can be
made before the clock starts (distinct tokens to verify or revoke, logins,
the same request over and over) goes through it, over several connections
so that the kernel spreads them over the server's workers. It checks each
answer's gRPC status and, where given, the first bytes of its message.
"""

from __future__ import annotations

import contextlib
import json
import resource
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from .measure import CpuMeter, RunResult

SOURCE = Path(__file__).with_name("h2grpc") / "h2grpc.c"
EXIT_EXHAUSTED = 3


def build(workdir: Path) -> Path | None:
    """Compile h2grpc into ``workdir``; None when gcc or libnghttp2's header is missing."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        return None
    exe = workdir / "h2grpc"
    done = subprocess.run(
        [gcc, "-O2", "-Wall", "-Wextra", "-o", str(exe), str(SOURCE), "-lnghttp2"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        return None
    return exe


def frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message: uncompressed flag, big-endian length."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def run(
    exe: Path,
    name: str,
    port: int,
    path: str,
    requests: Sequence[bytes],
    *,
    cycle: bool,
    expect: bytes,
    connections: int,
    concurrency: int,
    warmup: float,
    seconds: float,
    workdir: Path,
    server_cpu: Callable[[], float],
    loop_cpu: Callable[[], float] | None = None,
    on_window: Callable[[], None] = lambda: None,
    prefix: Sequence[str] = (),
) -> RunResult:
    """One run: ``requests`` in order (again from the start only with ``cycle``).
    ``prefix`` goes before the command (``taskset -c 1``, say)."""
    file = workdir / "requests.bin"
    file.write_bytes(b"".join(frame(r) for r in requests))
    argv = [
        *prefix, str(exe), "--host", "127.0.0.1", "--port", str(port), "--path", path, "--requests", str(file),
        "--connections", str(connections), "--in-flight", str(concurrency),
        "--warmup", str(warmup), "--duration", str(seconds),
    ]  # fmt: skip
    if cycle:
        argv.append("--cycle")
    if expect:
        argv += ["--expect-prefix", expect.hex()]
    meter = CpuMeter(server_cpu, loop_cpu)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The window opens after the warm-up: meter the server over it alone.
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=warmup)
    meter.start()
    on_window()
    out, err = proc.communicate(timeout=warmup + seconds + 60)
    cpu = meter.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode == EXIT_EXHAUSTED:
        raise RuntimeError(f"{name}: h2grpc ran out of prepared requests ({len(requests)})")
    if proc.returncode != 0:
        raise RuntimeError(f"{name}: h2grpc exited {proc.returncode}: {err.strip()[-2000:]}")
    report = json.loads(out)
    errors = {str(k): int(v) for k, v in report["error_kinds"].items()}
    result = RunResult(
        name=name,
        tool=f"h2grpc, {connections} connections, {concurrency} streams",
        rate=float(report["rate"]),
        calls=int(report["calls"]),
        seconds=float(report["window_s"]),
        p50_ms=float(report["p50_ms"]),
        p99_ms=float(report["p99_ms"]),
        errors=errors,
        server_cpu=cpu,
        loop_cpu=meter.loop,
        machine_cpu=meter.machine,
        postgres_cpu=meter.postgres,
        load_cpu=(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / (warmup + seconds),
    )
    if report.get("first_error"):
        result.notes.append(f"first error: {report['first_error']}")
    return result
