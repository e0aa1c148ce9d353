"""`tell` after a retry whose first attempt landed but whose answer was lost.

posterior's Observe is not idempotent by reply: the second send of an
applied Observe is FAILED_PRECONDITION ("already observed"). The client
then reads the study and returns the trial if it holds exactly what was
sent. A lost answer cannot be produced on demand with the real server, so
an in-process gRPC server plays that one scenario: Observe fails with
UNAVAILABLE once (as if the connection dropped after the write), then says
FAILED_PRECONDITION; GetStudy shows the trial."""

from __future__ import annotations

from concurrent import futures
from typing import Any

import grpc
import pytest

import posterior_client as pc
from posterior_client._pb import optimizer_pb2 as opb

FAST = pc.Retry(max_attempts=3, initial_backoff=0.01, max_backoff=0.01)


class LostAnswer(grpc.GenericRpcHandler):
    def __init__(self, stored_value: float) -> None:
        self.stored_value = stored_value
        self.observes = 0

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = details.method  # type: ignore[attr-defined]

        def observe(req: opb.ObserveRequest, ctx: grpc.ServicerContext) -> Any:
            self.observes += 1
            if self.observes == 1:
                ctx.abort(grpc.StatusCode.UNAVAILABLE, "connection reset")
            ctx.abort(grpc.StatusCode.FAILED_PRECONDITION, "trial 1 is already COMPLETED")

        def get_study(req: opb.GetStudyRequest, ctx: grpc.ServicerContext) -> Any:
            study = opb.Study(name=req.name, parameters=[
                opb.Parameter(name="n", int=opb.IntRange(low=1, high=9))])
            trial = opb.Trial(trial_id=1, state=opb.COMPLETED, value=self.stored_value,
                              params={"n": opb.Value(number=4)})
            return opb.GetStudyResponse(study=study, trials=[trial])

        handlers = {
            "/posterior.v1.Optimizer/Observe": (observe, opb.ObserveRequest),
            "/posterior.v1.Optimizer/GetStudy": (get_study, opb.GetStudyRequest),
        }
        if method not in handlers:
            return None
        fn, req = handlers[method]
        return grpc.unary_unary_rpc_method_handler(
            fn, request_deserializer=req.FromString,
            response_serializer=lambda m: m.SerializeToString(),
        )


def serve(handler: LostAnswer) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def test_tell_recognises_its_own_landed_attempt() -> None:
    h = LostAnswer(stored_value=2.5)
    server, port = serve(h)
    try:
        with pc.Client(f"127.0.0.1:{port}", retry=FAST) as c:
            t = c.study("s").tell(1, 2.5)
        assert t.state == "COMPLETED" and t.value == 2.5 and t.params == {"n": 4}
        assert h.observes == 2
    finally:
        server.stop(0)


def test_tell_does_not_claim_another_outcome() -> None:
    h = LostAnswer(stored_value=9.0)  # someone else observed this trial
    server, port = serve(h)
    try:
        with pc.Client(f"127.0.0.1:{port}", retry=FAST) as c:
            with pytest.raises(pc.FailedPrecondition) as e:
                c.study("s").tell(1, 2.5)
        assert e.value.attempts == 2
    finally:
        server.stop(0)
