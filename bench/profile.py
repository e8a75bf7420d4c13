"""Optional: py-spy samples of the server during each run (BENCH_PROFILE=1).

Writes collapsed stacks per run and a summary of where the samples fall.
Sampling takes CPU from the same cores, so figures of a profiled run are
not the ones to quote.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

PYSPY_RATE = 250


class Sampler:
    def __init__(self, enabled: bool, out_dir: Path) -> None:
        exe = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
        self.exe = exe if enabled else None
        self.out_dir = out_dir
        self._proc: subprocess.Popen[bytes] | None = None
        self._name = ""
        self._seconds = 0.0

    @property
    def active(self) -> bool:
        return self.exe is not None

    def start(self, name: str, pid: int, seconds: float) -> None:
        if self.exe is None:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._name, self._seconds = name, float(max(1, round(seconds)))
        # Active threads only (idle ones are left out), each sample charged to
        # the Python frame running, or calling into C (grpc, cryptography, argon2).
        self._proc = subprocess.Popen(
            [
                self.exe, "record", "--pid", str(pid), "--rate", str(PYSPY_RATE), "--format", "raw",
                "--duration", str(int(self._seconds)), "--nonblocking", "--threads",
                "--output", str(self.out_dir / f"{name}.collapsed"),
            ],
            stdout=subprocess.DEVNULL, stderr=(self.out_dir / f"{name}.py-spy.log").open("wb"),
        )  # fmt: skip

    def stop(self) -> None:
        if self._proc is None:
            return
        try:
            self._proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self._proc.terminate()
            self._proc.wait()
        self._proc = None
        log = self.out_dir / f"{self._name}.py-spy.log"
        if log.exists() and log.stat().st_size == 0:
            log.unlink()
        collapsed = self.out_dir / f"{self._name}.collapsed"
        if collapsed.exists():
            text = summarise(collapsed, PYSPY_RATE * self._seconds)
            (self.out_dir / f"{self._name}.summary.txt").write_text(text)


def summarise(collapsed: Path, possible: float, top: int = 35) -> str:
    """Where the active samples fall: per thread (with how busy it was), then
    self and inclusive share per function for the event loop's thread."""
    threads: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    main = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        thread, frames = frames[0].split(": ", 1)[-1], frames[1:]
        threads[thread] += n
        if thread == "MainThread" and frames:
            main += n
            self_time[frames[-1]] += n
            for f in set(frames):
                inclusive[f] += n
    if not threads:
        return "no samples\n"
    lines = [f"active samples per thread (of {possible:.0f} possible each):"]
    lines += [f"  {100 * n / possible:5.1f}% busy  {t}" for t, n in threads.most_common()]
    if main:
        lines += ["", "MainThread (the event loop), self time:"]
        lines += [f"  {100 * n / main:5.1f}%  {f}" for f, n in self_time.most_common(top)]
        lines += ["", "MainThread, inclusive time:"]
        lines += [f"  {100 * n / main:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(lines) + "\n"
