"""A small Prometheus registry: counters and latency histograms per RPC, and
gauges read at scrape time. Plain Python, no client library needed."""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping

# Seconds; Verify lives in the first few buckets, password logins further up.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self._calls: dict[tuple[str, str], int] = defaultdict(int)
        self._hist: dict[str, list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self._sums: dict[str, float] = defaultdict(float)
        self._gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        self._families: dict[str, tuple[str, str, str, Callable[[], Mapping[str, float]]]] = {}
        #: Verify's answers by reason ("active" or an inactive reason): one
        #: increment a call, the hot path's whole cost for this.
        self.verify_outcomes: Counter[str] = Counter()

    def observe(self, method: str, code: str, seconds: float) -> None:
        self._calls[(method, code)] += 1
        self._hist[method][bisect.bisect_left(BUCKETS, seconds)] += 1
        self._sums[method] += seconds

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self._gauges[name] = (help_text, read)

    def family(
        self, name: str, help_text: str, kind: str, label: str, read: Callable[[], Mapping[str, float]]
    ) -> None:
        """A counter or gauge with one label, its values read at scrape time."""
        self._families[name] = (help_text, kind, label, read)

    def render(self) -> str:
        """The text exposition format (version 0.0.4)."""
        out = [
            "# HELP authsvc_rpc_total RPCs handled, by method and status code.",
            "# TYPE authsvc_rpc_total counter",
        ]
        for (method, code), n in sorted(self._calls.items()):
            out.append(f'authsvc_rpc_total{{method="{method}",code="{code}"}} {n}')
        out += [
            "# HELP authsvc_rpc_seconds RPC latency.",
            "# TYPE authsvc_rpc_seconds histogram",
        ]
        for method, counts in sorted(self._hist.items()):
            running = 0
            for bound, n in zip((*BUCKETS, float("inf")), counts, strict=True):
                running += n
                le = "+Inf" if bound == float("inf") else repr(bound)
                out.append(f'authsvc_rpc_seconds_bucket{{method="{method}",le="{le}"}} {running}')
            out.append(f'authsvc_rpc_seconds_sum{{method="{method}"}} {self._sums[method]:.6f}')
            out.append(f'authsvc_rpc_seconds_count{{method="{method}"}} {running}')
        for name, (help_text, read) in sorted(self._gauges.items()):
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {read():g}"]
        outcomes = self.verify_outcomes
        families: dict[str, tuple[str, str, str, Callable[[], Mapping[str, float]]]] = {
            "authsvc_verify_total": ("Verify answers, by outcome.", "counter", "outcome", lambda: outcomes),
            **self._families,
        }
        for name, (help_text, kind, label, values) in sorted(families.items()):
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
            out += [f'{name}{{{label}="{key}"}} {n:g}' for key, n in sorted(values().items())]
        return "\n".join(out) + "\n"
