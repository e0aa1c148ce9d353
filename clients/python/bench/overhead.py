#!/usr/bin/env python3
"""What the client adds to Choose: ``Experiment.choose()`` against a raw
grpcio stub call (``BanditsStub.Choose``) on the same channel, same server,
same timeout and metadata, interleaved call by call so both see the same
server and machine load.

    python clients/python/bench/overhead.py [--target HOST:PORT] [--calls N]

Without --target it starts ``posterior serve`` itself (memory store, port
0) from --bin (default target/debug/posterior). Prints the median and p90
per call of each path and their differences in microseconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import posterior_client as pc
from posterior_client._pb import bandit_pb2, bandit_pb2_grpc

REPO = Path(__file__).resolve().parents[3]


def quantile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", help="a running server (default: start one)")
    p.add_argument("--bin", default=str(REPO / "target" / "debug" / "posterior"))
    p.add_argument("--calls", type=int, default=5000, help="calls per path")
    a = p.parse_args()

    proc = None
    target = a.target
    if target is None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("POSTERIOR_")}
        env.update(POSTERIOR_STORE="memory", POSTERIOR_LOG="warn")
        proc = subprocess.Popen(
            [a.bin, "serve", "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("posterior listening on "):
            sys.exit(f"overhead: the server did not start: {line!r}")
        target = line.rsplit(" ", 1)[1].strip()
    try:
        with pc.Client(target) as client:
            name = f"bench-overhead-{os.getpid()}"
            exp = client.create_experiment(name, ["a", "b", "c"])
            stub = bandit_pb2_grpc.BanditsStub(client.channel)

            def raw() -> None:
                req = bandit_pb2.ChooseRequest(experiment=name)
                stub.Choose(req, timeout=client.timeout, metadata=None)

            def wrapped() -> None:
                exp.choose()

            for _ in range(300):  # warm up the channel and both code paths
                raw()
                wrapped()
            t_raw: list[float] = []
            t_client: list[float] = []
            clock = time.perf_counter_ns
            for _ in range(a.calls):
                t0 = clock()
                raw()
                t1 = clock()
                wrapped()
                t2 = clock()
                t_raw.append((t1 - t0) / 1e3)
                t_client.append((t2 - t1) / 1e3)
            client.delete_experiment(name)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()

    med_r, med_c = statistics.median(t_raw), statistics.median(t_client)
    p90_r, p90_c = quantile(t_raw, 0.9), quantile(t_client, 0.9)
    print(f"{a.calls} Choose calls per path, interleaved, server {target}")
    print(f"raw grpcio stub : median {med_r:8.1f} us   p90 {p90_r:8.1f} us")
    print(f"Client.choose   : median {med_c:8.1f} us   p90 {p90_c:8.1f} us")
    print(f"added by Client : median {med_c - med_r:+8.1f} us   p90 {p90_c - p90_r:+8.1f} us")
    # Each pair ran back to back: the median of the paired differences is
    # the least sensitive to load drifting during the run.
    paired = statistics.median(c - r for c, r in zip(t_client, t_raw))
    print(f"median of paired differences: {paired:+.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
