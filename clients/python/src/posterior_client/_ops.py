"""Every client operation, written once for both the sync and the async
client.

An operation is a generator: it yields a ``Call`` (an RPC and its request),
receives the response (or has the call's ``PosteriorError`` thrown into it)
and finally returns the Python value. ``Client`` drives it with blocking
calls, ``AsyncClient`` with awaits (``_client.Driver``/``_aio.AsyncDriver``),
so what a method sends, how it converts, and how it reconciles a retried
write exist once. The drivers only send, retry and map errors.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

import grpc
from google.protobuf.message import Message

from . import _convert as cv
from ._pb import bandit_pb2 as bpb
from ._pb import optimizer_pb2 as opb
from ._types import (
    Decision,
    ExperimentListing,
    GateResult,
    HistoryPoint,
    ParamValue,
    Rewarded,
    StudyState,
    Summary,
    Trial,
    Verdict,
)
from .errors import FailedPrecondition, PosteriorError, ResourceExhausted, Unavailable

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)
T = TypeVar("T")


@dataclass(frozen=True)
class Rpc(Generic[Req, Resp]):
    """One RPC. ``retry``: whether Unavailable/ResourceExhausted may be
    retried, i.e. whether sending the request twice is the same as sending it
    once (see the table below for why each is or is not)."""

    path: str
    request: type[Req]
    response: type[Resp]
    retry: bool


def _b(method: str, req: type[Req], resp: type[Resp], retry: bool) -> Rpc[Req, Resp]:
    return Rpc(f"/posterior.v1.Bandits/{method}", req, resp, retry)


def _o(method: str, req: type[Req], resp: type[Resp], retry: bool) -> Rpc[Req, Resp]:
    return Rpc(f"/posterior.v1.Optimizer/{method}", req, resp, retry)


# Reads are retried. Creates are idempotent server-side (an identical
# re-create is a success), so are AddArm/RetireArm/AbandonTrial (a repeat is
# a no-op), Reward by decision id and RewardAggregate (exactly once per
# decision id / request id within the dedupe window), and Observe (a second
# Observe of a trial is FAILED_PRECONDITION, never a double count; `tell`
# reconciles that case below).
# Not retried:
# - Choose: it is on the caller's request path, where a fallback arm now is
#   better than a backoff; and an answer that was served but lost still
#   counts as a decision in the experiment's history.
# - Reward by arm: applied on every call, no dedupe: a retry after a lost
#   answer would count the outcome twice.
# - Suggest, EnqueueTrial, AddTrial: each call creates trials; a retry after
#   a lost answer leaves an extra pending/queued/completed trial.
# - Delete*: a retry after a lost success would report NOT_FOUND.
CREATE_EXPERIMENT = _b(
    "CreateExperiment", bpb.CreateExperimentRequest, bpb.CreateExperimentResponse, True
)
GET_EXPERIMENT = _b("GetExperiment", bpb.GetExperimentRequest, bpb.GetExperimentResponse, True)
LIST_EXPERIMENTS = _b(
    "ListExperiments", bpb.ListExperimentsRequest, bpb.ListExperimentsResponse, True
)
DELETE_EXPERIMENT = _b(
    "DeleteExperiment", bpb.DeleteExperimentRequest, bpb.DeleteExperimentResponse, False
)
ADD_ARM = _b("AddArm", bpb.AddArmRequest, bpb.AddArmResponse, True)
RETIRE_ARM = _b("RetireArm", bpb.RetireArmRequest, bpb.RetireArmResponse, True)
CHOOSE = _b("Choose", bpb.ChooseRequest, bpb.ChooseResponse, False)
REWARD_BY_DECISION = _b("Reward", bpb.RewardRequest, bpb.RewardResponse, True)
REWARD_BY_ARM = _b("Reward", bpb.RewardRequest, bpb.RewardResponse, False)
REWARD_AGGREGATE = _b(
    "RewardAggregate", bpb.RewardAggregateRequest, bpb.RewardAggregateResponse, True
)
GET_VERDICT = _b("GetVerdict", bpb.GetVerdictRequest, bpb.GetVerdictResponse, True)
GATE = _b("Gate", bpb.GateRequest, bpb.GateResponse, True)
HISTORY = _b(
    "GetExperimentHistory",
    bpb.GetExperimentHistoryRequest,
    bpb.GetExperimentHistoryResponse,
    True,
)
CREATE_STUDY = _o("CreateStudy", opb.CreateStudyRequest, opb.CreateStudyResponse, True)
GET_STUDY = _o("GetStudy", opb.GetStudyRequest, opb.GetStudyResponse, True)
LIST_STUDIES = _o("ListStudies", opb.ListStudiesRequest, opb.ListStudiesResponse, True)
DELETE_STUDY = _o("DeleteStudy", opb.DeleteStudyRequest, opb.DeleteStudyResponse, False)
SUGGEST = _o("Suggest", opb.SuggestRequest, opb.SuggestResponse, False)
OBSERVE = _o("Observe", opb.ObserveRequest, opb.ObserveResponse, True)
ABANDON = _o("AbandonTrial", opb.AbandonTrialRequest, opb.AbandonTrialResponse, True)
ENQUEUE = _o("EnqueueTrial", opb.EnqueueTrialRequest, opb.EnqueueTrialResponse, False)
ADD_TRIAL = _o("AddTrial", opb.AddTrialRequest, opb.AddTrialResponse, False)


@dataclass(frozen=True)
class Call:
    """What an operation asks its driver to send."""

    rpc: Rpc[Any, Any]
    request: Message


#: An operation returning T.
Op = Generator[Call, Any, T]


def call(rpc: Rpc[Req, Resp], request: Req) -> Generator[Call, Any, Resp]:
    """``resp = yield from call(RPC, req)``: typed sugar for one RPC."""
    resp = yield Call(rpc, request)
    return cast(Resp, resp)


@dataclass(frozen=True)
class Retry:
    """Backoff for retryable codes. At most ``max_attempts`` sends, waiting
    ``initial_backoff * multiplier**k`` (capped at ``max_backoff``, with
    jitter so clients do not retry in lockstep) between them. The defaults
    wait 1.3 to 2.6 s in all (0.05 + 0.1 + ... + 1.0, each halved at
    random): long enough to ride out a server restart or a shed burst,
    short enough that a real outage reaches the caller soon (each attempt
    also has the client's ``timeout``)."""

    max_attempts: int = 7
    initial_backoff: float = 0.05
    max_backoff: float = 1.0
    multiplier: float = 2.0

    def delay(self, rpc: Rpc[Any, Any], error: PosteriorError, attempt: int) -> float | None:
        """Seconds to wait before resending after ``attempt`` (1-based)
        failed with ``error``; None: give up and raise."""
        if not rpc.retry or attempt >= self.max_attempts:
            return None
        if not isinstance(error, (Unavailable, ResourceExhausted)):
            return None
        cap = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        return random.uniform(cap / 2, cap)


# Channel options: reconnect quickly after the server comes back (gRPC's
# default first reconnect backoff is 1 s, which would eat the retry budget),
# and keep messages up to the server's default limit.
CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
]


def make_channel(grpc_module: Any, target: str, tls: bool | grpc.ChannelCredentials) -> Any:
    """A channel from ``grpc`` or ``grpc.aio`` (same constructors).
    ``target`` is ``host:port``; an ``http://`` or ``https://`` prefix (the
    CLI's ``--server`` form) is accepted, ``https://`` meaning TLS."""
    addr = target
    use_tls = tls is True
    if target.startswith("https://"):
        addr, use_tls = target[len("https://") :], True
    elif target.startswith("http://"):
        addr = target[len("http://") :]
    addr = addr.rstrip("/")
    if isinstance(tls, grpc.ChannelCredentials):
        return grpc_module.secure_channel(addr, tls, options=CHANNEL_OPTIONS)
    if use_tls:
        creds = grpc.ssl_channel_credentials()
        return grpc_module.secure_channel(addr, creds, options=CHANNEL_OPTIONS)
    return grpc_module.insecure_channel(addr, options=CHANNEL_OPTIONS)


class Settings:
    """What ``Client`` and ``AsyncClient`` share: the call options and one
    multi-callable per RPC, made on first use."""

    def __init__(
        self,
        grpc_module: Any,
        target: str,
        api_key: str | None,
        timeout: float,
        tls: bool | grpc.ChannelCredentials,
        retry: Retry | None,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self.retry = retry or Retry()
        self._metadata = (("x-api-key", api_key),) if api_key else None
        self._channel: Any = make_channel(grpc_module, target, tls)
        self._callables: dict[str, Any] = {}

    def _callable(self, rpc: Rpc[Any, Any]) -> Any:
        c = self._callables.get(rpc.path)
        if c is None:
            c = self._channel.unary_unary(
                rpc.path,
                request_serializer=rpc.request.SerializeToString,
                response_deserializer=rpc.response.FromString,
            )
            self._callables[rpc.path] = c
        return c


# --- bandit operations ---------------------------------------------------------


def create_experiment(
    name: str, arms: Sequence[str], model: str, options: Mapping[str, Any]
) -> Op[None]:
    yield from call(CREATE_EXPERIMENT, cv.create_experiment_request(name, arms, model, options))


def choose(experiment: str, unit_id: str | None, eligible: Sequence[str] | None) -> Op[Decision]:
    r = yield from call(CHOOSE, cv.choose_request(experiment, unit_id, eligible))
    return cv.decision(r)


def reward(experiment: str, decision_id: str, value: float) -> Op[Rewarded]:
    req = bpb.RewardRequest(experiment=experiment, decision_id=decision_id, value=value)
    return cv.rewarded((yield from call(REWARD_BY_DECISION, req)))


def reward_arm(experiment: str, arm: str, value: float) -> Op[Rewarded]:
    req = bpb.RewardRequest(experiment=experiment, arm=arm, value=value)
    return cv.rewarded((yield from call(REWARD_BY_ARM, req)))


def reward_aggregate(
    experiment: str, arm: str, count: int, sum: float, sum_squares: float, request_id: str | None
) -> Op[Rewarded]:
    # A fresh id per call unless the caller has one of its own (e.g. the id
    # of the batch job it summarizes): retries of this call reuse it, so the
    # server applies it exactly once.
    req = bpb.RewardAggregateRequest(
        experiment=experiment,
        arm=arm,
        count=count,
        sum=sum,
        sum_squares=sum_squares,
        request_id=request_id or uuid.uuid4().hex,
    )
    return cv.rewarded((yield from call(REWARD_AGGREGATE, req)))


def summary(name: str, threshold: float | None) -> Op[Summary]:
    req = bpb.GetExperimentRequest(name=name)
    if threshold is not None:
        req.threshold = threshold
    return cv.summary((yield from call(GET_EXPERIMENT, req)))


def verdict(name: str) -> Op[Verdict]:
    return cv.verdict((yield from call(GET_VERDICT, bpb.GetVerdictRequest(name=name))))


def gate(
    experiment: str,
    baseline: str,
    candidate: str,
    margin: float,
    slo: float | None,
    min_rewards: int,
    confidence: float,
) -> Op[GateResult]:
    req = bpb.GateRequest(
        experiment=experiment,
        baseline=baseline,
        candidate=candidate,
        margin=margin,
        min_rewards=min_rewards,
        confidence=confidence,
    )
    if slo is not None:
        req.slo = slo
    return cv.gate_result((yield from call(GATE, req)))


def history(name: str, since_ms: int | None) -> Op[list[HistoryPoint]]:
    req = bpb.GetExperimentHistoryRequest(name=name)
    if since_ms is not None:
        req.since_ms = since_ms
    return cv.history((yield from call(HISTORY, req)))


def add_arm(experiment: str, arm: str) -> Op[bool]:
    r = yield from call(ADD_ARM, bpb.AddArmRequest(experiment=experiment, arm=arm))
    return r.created


def retire_arm(experiment: str, arm: str) -> Op[None]:
    yield from call(RETIRE_ARM, bpb.RetireArmRequest(experiment=experiment, arm=arm))


def delete_experiment(name: str) -> Op[None]:
    yield from call(DELETE_EXPERIMENT, bpb.DeleteExperimentRequest(name=name))


def experiments_page(token: str) -> Op[tuple[list[ExperimentListing], str]]:
    r = yield from call(LIST_EXPERIMENTS, bpb.ListExperimentsRequest(page_token=token))
    return [cv.listing(e) for e in r.experiments], r.next_page_token


def studies_page(token: str) -> Op[tuple[list[str], str]]:
    r = yield from call(LIST_STUDIES, opb.ListStudiesRequest(page_token=token))
    return list(r.names), r.next_page_token


# --- study operations ------------------------------------------------------------


@dataclass
class StudyCache:
    """What a study handle remembers of the definition (a study's space and
    objectives never change after creation): parameter kinds, to give int
    parameters back as ints, and the objective names, to map a list of
    values onto them."""

    name: str
    kinds: cv.Kinds | None = None
    objectives: list[str] = field(default_factory=list)

    def learn(self, study: opb.Study) -> None:
        self.kinds = cv.kinds(study)
        self.objectives = cv.objective_names(study)


def create_study(cache: StudyCache, req: opb.CreateStudyRequest) -> Op[bool]:
    r = yield from call(CREATE_STUDY, req)
    cache.learn(r.study)
    return r.created


def _kinds(cache: StudyCache) -> Op[cv.Kinds]:
    if cache.kinds is None:
        r = yield from call(GET_STUDY, opb.GetStudyRequest(name=cache.name))
        cache.learn(r.study)
    assert cache.kinds is not None
    return cache.kinds


def get_study(cache: StudyCache) -> Op[StudyState]:
    r = yield from call(GET_STUDY, opb.GetStudyRequest(name=cache.name))
    cache.learn(r.study)
    return cv.study_state(r)


def ask(cache: StudyCache, n: int) -> Op[list[Trial]]:
    kinds = yield from _kinds(cache)
    r = yield from call(SUGGEST, opb.SuggestRequest(study=cache.name, count=n))
    return [cv.trial(t, kinds) for t in r.trials]


def trial_id(trial: Trial | int) -> int:
    return trial if isinstance(trial, int) else trial.trial_id


def observe(
    cache: StudyCache,
    trial: Trial | int,
    value: cv.Outcome | None,
    metrics: Mapping[str, float] | None,
    failed: bool,
) -> Op[Trial]:
    kinds = yield from _kinds(cache)
    v, m = cv.outcome(value, metrics, cache.objectives)
    tid = trial_id(trial)
    req = opb.ObserveRequest(study=cache.name, trial_id=tid, value=v, metrics=m, failed=failed)
    try:
        r = yield from call(OBSERVE, req)
    except FailedPrecondition as e:
        # A retried Observe whose first attempt was applied (its answer was
        # lost) is refused as "already observed": if the trial now holds
        # exactly this outcome, that first attempt was ours.
        if e.attempts < 2:
            raise
        s = yield from call(GET_STUDY, opb.GetStudyRequest(name=cache.name))
        want = "FAILED" if failed else "COMPLETED"
        for t in s.trials:
            if t.trial_id == tid and opb.TrialState.Name(t.state) == want:
                got = cv.trial(t, kinds)
                if failed or (got.metrics == m and (cache.objectives or got.value == v)):
                    return got
        raise
    return cv.trial(r.trial, kinds)


def abandon(cache: StudyCache, trial: Trial | int, reason: str | None) -> Op[Trial]:
    kinds = yield from _kinds(cache)
    req = opb.AbandonTrialRequest(study=cache.name, trial_id=trial_id(trial))
    if reason is not None:
        req.reason = reason
    r = yield from call(ABANDON, req)
    return cv.trial(r.trial, kinds)


def enqueue(cache: StudyCache, params: Mapping[str, ParamValue]) -> Op[Trial]:
    kinds = yield from _kinds(cache)
    req = opb.EnqueueTrialRequest(study=cache.name, params=cv.params_to_pb(params))
    r = yield from call(ENQUEUE, req)
    return cv.trial(r.trial, kinds)


def add_trial(
    cache: StudyCache,
    params: Mapping[str, ParamValue],
    value: cv.Outcome | None,
    metrics: Mapping[str, float] | None,
    failed: bool,
) -> Op[Trial]:
    kinds = yield from _kinds(cache)
    v, m = cv.outcome(value, metrics, cache.objectives)
    req = opb.AddTrialRequest(
        study=cache.name, params=cv.params_to_pb(params), value=v, metrics=m, failed=failed
    )
    r = yield from call(ADD_TRIAL, req)
    return cv.trial(r.trial, kinds)


def delete_study(name: str) -> Op[None]:
    yield from call(DELETE_STUDY, opb.DeleteStudyRequest(name=name))
