"""The blocking client: ``Client``, ``Experiment`` and ``Study``.

Each method is one line over an operation of ``_ops`` (shared with the
async client); this module only sends, retries and maps errors."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import grpc

from . import _convert as cv
from . import _ops as ops
from ._types import (
    Decision,
    ExperimentListing,
    GateResult,
    HistoryPoint,
    ParamValue,
    Recommendation,
    Rewarded,
    StudyState,
    Summary,
    Trial,
    Verdict,
)
from .errors import PosteriorError, from_rpc_error

T = TypeVar("T")


class Client(ops.Settings):
    """A posterior server over gRPC (both services on one channel).

    ``target`` is ``host:port`` (``https://host:port`` also means TLS);
    ``api_key`` is sent as ``x-api-key`` on every call; ``timeout`` (seconds)
    bounds each attempt of each call; ``tls=True`` uses the system roots,
    or pass ``grpc.ssl_channel_credentials(...)`` for a private CA or a
    client certificate. ``retry`` bounds the retries of Unavailable and
    ResourceExhausted for the calls that are safe to resend.

    Use as a context manager, or call ``close()``.
    """

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        api_key: str | None = None,
        timeout: float = 10.0,
        tls: bool | grpc.ChannelCredentials = False,
        *,
        retry: ops.Retry | None = None,
    ) -> None:
        super().__init__(grpc, target, api_key, timeout, tls, retry)

    @property
    def channel(self) -> grpc.Channel:
        """The gRPC channel (e.g. for the raw stubs of ``posterior_client._pb``)."""
        return self._channel  # type: ignore[no-any-return]

    # --- plumbing --------------------------------------------------------------

    def _send(self, c: ops.Call) -> Any:
        fn = self._callable(c.rpc)
        attempt = 1
        while True:
            try:
                return fn(c.request, timeout=self.timeout, metadata=self._metadata)
            except grpc.RpcError as e:
                err = from_rpc_error(e, attempt)
            wait = self.retry.delay(c.rpc, err, attempt)
            if wait is None:
                raise err
            time.sleep(wait)
            attempt += 1

    def _run(self, op: ops.Op[T]) -> T:
        """Drive an operation: send each call it yields, send back the
        response or throw the error into it."""
        try:
            c = next(op)
            while True:
                try:
                    resp = self._send(c)
                except PosteriorError as err:
                    c = op.throw(err)
                else:
                    c = op.send(resp)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- bandits ---------------------------------------------------------------

    def create_experiment(
        self, name: str, arms: Sequence[str], model: str = "bernoulli", **options: Any
    ) -> Experiment:
        """Create experiment ``name`` with ``arms`` (``model`` "bernoulli" or
        "gaussian"); ``options`` are any other CreateExperimentRequest
        fields in their JSON shape (``goal="minimize"``, ``stopping={...}``,
        ``control_arm=...``). Re-creating an identical experiment succeeds;
        a different one under the same name raises AlreadyExists."""
        self._run(ops.create_experiment(name, arms, model, options))
        return Experiment(self, name)

    def experiment(self, name: str) -> Experiment:
        """A handle on an existing experiment (no call is made)."""
        return Experiment(self, name)

    def experiments(self) -> Iterator[ExperimentListing]:
        """Every experiment, in name order, fetching page after page."""
        token = ""
        while True:
            page, token = self._run(ops.experiments_page(token))
            yield from page
            if not token:
                return

    def delete_experiment(self, name: str) -> None:
        """Delete an experiment and its evidence."""
        self._run(ops.delete_experiment(name))

    # --- studies ---------------------------------------------------------------

    def create_study(
        self,
        name: str,
        parameters: Sequence[Mapping[str, Any]] | None = None,
        objective: str | Mapping[str, Any] | None = None,
        constraints: Sequence[Mapping[str, Any]] | None = None,
        *,
        objectives: Sequence[str | Mapping[str, Any]] | None = None,
        **options: Any,
    ) -> Study:
        """Create study ``name``. Arguments in the proto3 JSON shape the HTTP
        API takes: ``parameters=[{"name": "n", "int": {"low": 1, "high":
        50}}]``, ``objective={"name": "loss", "goal": "MINIMIZE"}`` (a bare
        name means minimize), ``constraints=[{"metric": "p95_ms",
        "upper_bound": 200}]``; ``objectives=[...]`` (2 to 4) instead of
        ``objective`` for a multi-objective study; ``options``: ``seed``,
        ``n_initial``, ``acquisition``, ``metrics``, ``max_pending``,
        ``trial_timeout_seconds``, ``reference_point``."""
        req = cv.create_study_request(name, parameters, objective, constraints, objectives, options)
        study = Study(self, name)
        self._run(ops.create_study(study._cache, req))
        return study

    def create_study_from_file(self, path: str | Path, name: str | None = None) -> Study:
        """Create a study from the CLI's TOML study file (``posterior study
        create NAME --space FILE``); ``name`` defaults to the file's stem."""
        name = name if name is not None else Path(path).stem
        study = Study(self, name)
        self._run(ops.create_study(study._cache, cv.study_file_request(path, name)))
        return study

    def study(self, name: str) -> Study:
        """A handle on an existing study (no call is made until used)."""
        return Study(self, name)

    def studies(self) -> Iterator[str]:
        """Every study name, in name order, fetching page after page."""
        token = ""
        while True:
            names, token = self._run(ops.studies_page(token))
            yield from names
            if not token:
                return

    def delete_study(self, name: str) -> None:
        """Delete a study and its trials."""
        self._run(ops.delete_study(name))


class Experiment:
    """A bandit experiment: ``choose`` an arm, ``reward`` the decision."""

    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self.name = name

    def __repr__(self) -> str:
        return f"Experiment({self.name!r})"

    def choose(self, unit_id: str | None = None, eligible: Sequence[str] | None = None) -> Decision:
        """Which arm now (one Thompson draw per eligible arm). ``unit_id``
        keeps a unit on its arm for sticky experiments; ``eligible`` limits
        the arms for this call. Not retried: on Unavailable serve your own
        default arm."""
        return self.client._run(ops.choose(self.name, unit_id, eligible))

    def reward(self, decision_id: str, value: float) -> Rewarded:
        """Reward a decision (exactly once: retried safely; a repeat comes
        back with ``duplicate=True``)."""
        return self.client._run(ops.reward(self.name, decision_id, value))

    def reward_arm(self, arm: str, value: float) -> Rewarded:
        """Reward an arm directly (bulk ingestion; applied on every call, so
        never retried)."""
        return self.client._run(ops.reward_arm(self.name, arm, value))

    def reward_aggregate(
        self,
        arm: str,
        count: int,
        sum: float,
        sum_squares: float = 0.0,
        request_id: str | None = None,
    ) -> Rewarded:
        """Many outcomes at once by their sufficient statistics. Exactly once
        per ``request_id`` (a fresh one per call by default; pass your own to
        make re-runs of a job idempotent)."""
        return self.client._run(
            ops.reward_aggregate(self.name, arm, count, sum, sum_squares, request_id)
        )

    def summary(self, threshold: float | None = None) -> Summary:
        """Every arm's posterior; with ``threshold``, P(mean > threshold)."""
        return self.client._run(ops.summary(self.name, threshold))

    def verdict(self) -> Verdict:
        """RUNNING, WINNER or INCONCLUSIVE by the stopping rule."""
        return self.client._run(ops.verdict(self.name))

    def gate(
        self,
        baseline: str,
        candidate: str,
        margin: float = 0.0,
        slo: float | None = None,
        *,
        min_rewards: int = 0,
        confidence: float = 0.0,
    ) -> GateResult:
        """A canary gate: is ``candidate`` worse than ``baseline`` by more
        than ``margin`` (or beyond ``slo``)? ``min_rewards``/``confidence``:
        0 means the server's defaults (100, 0.95)."""
        return self.client._run(
            ops.gate(self.name, baseline, candidate, margin, slo, min_rewards, confidence)
        )

    def history(self, since_ms: int | None = None) -> list[HistoryPoint]:
        """The recorded history points, oldest first."""
        return self.client._run(ops.history(self.name, since_ms))

    def add_arm(self, arm: str) -> bool:
        """Add an arm (at the prior); False when it was already active."""
        return self.client._run(ops.add_arm(self.name, arm))

    def retire_arm(self, arm: str) -> None:
        """Never choose ``arm`` again (its evidence stays visible)."""
        self.client._run(ops.retire_arm(self.name, arm))

    def delete(self) -> None:
        """Delete the experiment."""
        self.client._run(ops.delete_experiment(self.name))


class Study:
    """A Bayesian optimization study: ``ask`` for trials, ``tell`` outcomes."""

    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self.name = name
        self._cache = ops.StudyCache(name)

    def __repr__(self) -> str:
        return f"Study({self.name!r})"

    def ask(self, n: int = 1) -> list[Trial]:
        """``n`` new PENDING trials (queued ones first). Fewer when a finite
        space runs out. Not retried (each call creates trials)."""
        return self.client._run(ops.ask(self._cache, n))

    def tell(
        self,
        trial: Trial | int,
        value: cv.Outcome | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> Trial:
        """Report a trial's outcome: ``value`` is the objective, or with
        several objectives a list of values in their order (or a dict by
        name); ``metrics`` are named metrics (every constrained one is
        required). Retried safely: a trial is observed once."""
        return self.client._run(ops.observe(self._cache, trial, value, metrics, False))

    def fail(self, trial: Trial | int, metrics: Mapping[str, float] | None = None) -> Trial:
        """The run failed: the configuration is infeasible."""
        return self.client._run(ops.observe(self._cache, trial, None, metrics, True))

    def abandon(self, trial: Trial | int, reason: str | None = None) -> Trial:
        """Give up on a pending or queued trial (leaves the model)."""
        return self.client._run(ops.abandon(self._cache, trial, reason))

    def enqueue(self, params: Mapping[str, ParamValue]) -> Trial:
        """Queue a configuration: the next ``ask`` hands it out first."""
        return self.client._run(ops.enqueue(self._cache, params))

    def add_trial(
        self,
        params: Mapping[str, ParamValue],
        value: cv.Outcome | None = None,
        metrics: Mapping[str, float] | None = None,
        *,
        failed: bool = False,
    ) -> Trial:
        """Record a finished trial that did not come from ``ask`` (e.g. past
        runs): COMPLETED with ``value``, or FAILED."""
        return self.client._run(ops.add_trial(self._cache, params, value, metrics, failed))

    def get(self) -> StudyState:
        """Definition, trials, best, recommendation and Pareto front, in one
        call."""
        return self.client._run(ops.get_study(self._cache))

    def best(self) -> Trial | None:
        """The best observed feasible trial (None before one exists)."""
        return self.get().best

    def recommended(self) -> Recommendation | None:
        """The feasible observed trial with the best posterior mean."""
        return self.get().recommended

    def pareto_front(self) -> list[Trial]:
        """Several objectives: the non-dominated completed feasible trials."""
        return self.get().pareto_front

    def trials(self) -> list[Trial]:
        """Every trial, in trial order."""
        return self.get().trials

    def delete(self) -> None:
        """Delete the study."""
        self.client._run(ops.delete_study(self.name))
