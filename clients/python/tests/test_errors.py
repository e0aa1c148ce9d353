"""Every exception class, provoked from the real server, and the retry
policy for each (what is retried and what is not)."""

from __future__ import annotations

import asyncio
from concurrent import futures
import socket
import time
from pathlib import Path

import grpc
import pytest

import posterior_client as pc
from conftest import ADMIN_KEY, DECIDE_KEY, Server


def test_not_found_already_exists_invalid_argument(client: pc.Client, name: str) -> None:
    with pytest.raises(pc.NotFound) as nf:
        client.experiment(name).choose()
    assert isinstance(nf.value, pc.PosteriorError)
    assert nf.value.code == grpc.StatusCode.NOT_FOUND
    assert name in nf.value.message and nf.value.attempts == 1
    with pytest.raises(pc.NotFound):
        client.study(name).ask()
    client.create_study(name, parameters=[{"name": "x", "float": {"low": 0, "high": 1}}],
                        objective="y")
    with pytest.raises(pc.AlreadyExists):
        client.create_study(name, parameters=[{"name": "x", "float": {"low": 0, "high": 2}}],
                            objective="y")
    e = client.create_experiment(name, ["a", "b"])
    with pytest.raises(pc.InvalidArgument, match="value"):
        e.reward_arm("a", 2.0)  # BERNOULLI rewards are in [0, 1]


def test_failed_precondition_max_pending(client: pc.Client, name: str) -> None:
    s = client.create_study(name, parameters=[{"name": "x", "float": {"low": 0, "high": 1}}],
                            objective="y", max_pending=1)
    s.ask()
    with pytest.raises(pc.FailedPrecondition) as e:
        s.ask()
    # Suggest is never retried.
    assert e.value.attempts == 1


@pytest.fixture()
def keyed(tmp_path: Path) -> Server:
    srv = Server(tmp_path, "embedded", keys=[f"{ADMIN_KEY}:admin,decide,report",
                                               f"{DECIDE_KEY}:decide"])
    yield srv  # type: ignore[misc]
    srv.stop()


def test_unauthenticated_and_permission_denied(keyed: Server, name: str) -> None:
    with pc.Client(keyed.target) as anon:
        with pytest.raises(pc.Unauthenticated):
            anon.create_experiment(name, ["a", "b"])
    with pc.Client(keyed.target, api_key="wrong-key-0123456789") as bad:
        with pytest.raises(pc.Unauthenticated):
            list(bad.experiments())
    with pc.Client(keyed.target, api_key=ADMIN_KEY) as admin:
        e = admin.create_experiment(name, ["a", "b"])
        e.reward(e.choose().decision_id, 1.0)
    with pc.Client(keyed.target, api_key=DECIDE_KEY) as decide:
        e2 = decide.experiment(name)
        d = e2.choose()
        with pytest.raises(pc.PermissionDenied) as pd:
            e2.reward(d.decision_id, 1.0)
        assert "report" in pd.value.message.lower()
        with pytest.raises(pc.PermissionDenied):
            decide.create_experiment(name + "x", ["a", "b"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unavailable_retried_only_when_safe() -> None:
    """Nothing listens: reads are retried up to max_attempts, Choose is not."""
    retry = pc.Retry(max_attempts=3, initial_backoff=0.01, max_backoff=0.02)
    with pc.Client(f"127.0.0.1:{free_port()}", timeout=2, retry=retry) as c:
        with pytest.raises(pc.Unavailable) as read:
            c.experiment("x").summary()
        assert read.value.attempts == 3
        with pytest.raises(pc.Unavailable) as choose:
            c.experiment("x").choose()
        assert choose.value.attempts == 1
        with pytest.raises(pc.Unavailable) as by_id:
            c.experiment("x").reward("some-decision", 1.0)
        assert by_id.value.attempts == 3
        with pytest.raises(pc.Unavailable) as by_arm:
            c.experiment("x").reward_arm("a", 1.0)
        assert by_arm.value.attempts == 1
        with pytest.raises(pc.Unavailable) as suggest:
            c.study("s").ask()  # GetStudy first (a read): retried
        assert suggest.value.attempts == 3


def test_resource_exhausted_from_load_shedding(tmp_path: Path, name: str) -> None:
    """server.max_concurrent_requests = 1: a second request while one is in
    flight is shed at once with RESOURCE_EXHAUSTED. Choose is not retried,
    so the shed ones surface; reads ride it out with backoff."""
    srv = Server(tmp_path, "embedded", max_concurrent_requests=1)
    try:
        with pc.Client(srv.target) as c:
            c.create_experiment(name, [f"arm{i}" for i in range(20)])

        async def burst() -> tuple[list[object], list[object]]:
            async with pc.AsyncClient(srv.target) as ac:
                e = ac.experiment(name)
                chooses = asyncio.gather(*[e.choose() for _ in range(100)], return_exceptions=True)
                reads = asyncio.gather(*[e.summary() for _ in range(4)], return_exceptions=True)
                return list(await chooses), list(await reads)

        chooses, reads = asyncio.run(burst())
        shed = [r for r in chooses if isinstance(r, pc.ResourceExhausted)]
        ok = [r for r in chooses if isinstance(r, pc.Decision)]
        assert shed, "no request was shed"
        assert len(shed) + len(ok) == 100, chooses
        assert all(r.attempts == 1 for r in shed)
        assert "max_concurrent_requests" in shed[0].message
        # Every read succeeded in the end, through retries.
        assert all(isinstance(r, pc.Summary) for r in reads), reads
    finally:
        srv.stop()


class _Slow(grpc.GenericRpcHandler):
    """An in-process gRPC server answering GetVerdict after 2 s."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        def slow(req: bytes, ctx: grpc.ServicerContext) -> bytes:
            time.sleep(2)
            return b""

        return grpc.unary_unary_rpc_method_handler(slow)


def test_deadline_exceeded() -> None:
    """A server that does not answer in time: the client's timeout ends the
    call, and DeadlineExceeded is not retried. (posterior itself answers
    every call well within a timeout, hence a stand-in server here.)"""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((_Slow(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with pc.Client(f"127.0.0.1:{port}", timeout=0.3) as c:
            with pytest.raises(pc.DeadlineExceeded) as e:
                c.experiment("x").verdict()
            assert e.value.attempts == 1
    finally:
        server.stop(0)


def test_error_classes_exported() -> None:
    for cls in (pc.InvalidArgument, pc.NotFound, pc.AlreadyExists, pc.FailedPrecondition,
                pc.Unavailable, pc.ResourceExhausted, pc.Unauthenticated, pc.PermissionDenied):
        assert issubclass(cls, pc.PosteriorError)
    e = pc.NotFound("gone")
    assert str(e) == "NOT_FOUND: gone" and e.message == "gone"
