"""The asyncio client: ``AsyncClient``, ``AsyncExperiment``, ``AsyncStudy``.

The same methods as ``Client`` (``await`` them; ``experiments()`` and
``studies()`` are async iterators), driving the same operations of ``_ops``
over a ``grpc.aio`` channel: only sending and sleeping differ."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import grpc
import grpc.aio

from . import _convert as cv
from . import _ops as ops
from ._client import Client, Experiment, Study
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


class AsyncClient(ops.Settings):
    """``Client`` for asyncio: same arguments, same methods, awaited. Create
    it inside the running event loop; ``async with`` or ``await close()``."""

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        api_key: str | None = None,
        timeout: float = 10.0,
        tls: bool | grpc.ChannelCredentials = False,
        *,
        retry: ops.Retry | None = None,
    ) -> None:
        super().__init__(grpc.aio, target, api_key, timeout, tls, retry)

    @property
    def channel(self) -> grpc.aio.Channel:
        """The ``grpc.aio`` channel."""
        return self._channel  # type: ignore[no-any-return]

    async def _send(self, c: ops.Call) -> Any:
        fn = self._callable(c.rpc)
        attempt = 1
        while True:
            try:
                return await fn(c.request, timeout=self.timeout, metadata=self._metadata)
            except grpc.RpcError as e:
                err = from_rpc_error(e, attempt)
            wait = self.retry.delay(c.rpc, err, attempt)
            if wait is None:
                raise err
            await asyncio.sleep(wait)
            attempt += 1

    async def _run(self, op: ops.Op[T]) -> T:
        """As ``Client._run``, awaiting each call."""
        try:
            c = next(op)
            while True:
                try:
                    resp = await self._send(c)
                except PosteriorError as err:
                    c = op.throw(err)
                else:
                    c = op.send(resp)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def close(self) -> None:
        """Close the channel."""
        await self.channel.close(None)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def create_experiment(
        self, name: str, arms: Sequence[str], model: str = "bernoulli", **options: Any
    ) -> AsyncExperiment:
        """As ``Client.create_experiment``."""
        await self._run(ops.create_experiment(name, arms, model, options))
        return AsyncExperiment(self, name)

    def experiment(self, name: str) -> AsyncExperiment:
        """A handle on an existing experiment (no call is made)."""
        return AsyncExperiment(self, name)

    async def experiments(self) -> AsyncIterator[ExperimentListing]:
        """Every experiment, in name order, fetching page after page."""
        token = ""
        while True:
            page, token = await self._run(ops.experiments_page(token))
            for e in page:
                yield e
            if not token:
                return

    async def delete_experiment(self, name: str) -> None:
        await self._run(ops.delete_experiment(name))

    async def create_study(
        self,
        name: str,
        parameters: Sequence[Mapping[str, Any]] | None = None,
        objective: str | Mapping[str, Any] | None = None,
        constraints: Sequence[Mapping[str, Any]] | None = None,
        *,
        objectives: Sequence[str | Mapping[str, Any]] | None = None,
        **options: Any,
    ) -> AsyncStudy:
        """As ``Client.create_study``."""
        req = cv.create_study_request(name, parameters, objective, constraints, objectives, options)
        study = AsyncStudy(self, name)
        await self._run(ops.create_study(study._cache, req))
        return study

    async def create_study_from_file(self, path: str | Path, name: str | None = None) -> AsyncStudy:
        """As ``Client.create_study_from_file``."""
        name = name if name is not None else Path(path).stem
        study = AsyncStudy(self, name)
        await self._run(ops.create_study(study._cache, cv.study_file_request(path, name)))
        return study

    def study(self, name: str) -> AsyncStudy:
        """A handle on an existing study (no call is made until used)."""
        return AsyncStudy(self, name)

    async def studies(self) -> AsyncIterator[str]:
        """Every study name, in name order, fetching page after page."""
        token = ""
        while True:
            names, token = await self._run(ops.studies_page(token))
            for n in names:
                yield n
            if not token:
                return

    async def delete_study(self, name: str) -> None:
        await self._run(ops.delete_study(name))


class AsyncExperiment:
    """``Experiment`` for asyncio."""

    def __init__(self, client: AsyncClient, name: str) -> None:
        self.client = client
        self.name = name

    def __repr__(self) -> str:
        return f"AsyncExperiment({self.name!r})"

    async def choose(
        self, unit_id: str | None = None, eligible: Sequence[str] | None = None
    ) -> Decision:
        return await self.client._run(ops.choose(self.name, unit_id, eligible))

    async def reward(self, decision_id: str, value: float) -> Rewarded:
        return await self.client._run(ops.reward(self.name, decision_id, value))

    async def reward_arm(self, arm: str, value: float) -> Rewarded:
        return await self.client._run(ops.reward_arm(self.name, arm, value))

    async def reward_aggregate(
        self,
        arm: str,
        count: int,
        sum: float,
        sum_squares: float = 0.0,
        request_id: str | None = None,
    ) -> Rewarded:
        return await self.client._run(
            ops.reward_aggregate(self.name, arm, count, sum, sum_squares, request_id)
        )

    async def summary(self, threshold: float | None = None) -> Summary:
        return await self.client._run(ops.summary(self.name, threshold))

    async def verdict(self) -> Verdict:
        return await self.client._run(ops.verdict(self.name))

    async def gate(
        self,
        baseline: str,
        candidate: str,
        margin: float = 0.0,
        slo: float | None = None,
        *,
        min_rewards: int = 0,
        confidence: float = 0.0,
    ) -> GateResult:
        return await self.client._run(
            ops.gate(self.name, baseline, candidate, margin, slo, min_rewards, confidence)
        )

    async def history(self, since_ms: int | None = None) -> list[HistoryPoint]:
        return await self.client._run(ops.history(self.name, since_ms))

    async def add_arm(self, arm: str) -> bool:
        return await self.client._run(ops.add_arm(self.name, arm))

    async def retire_arm(self, arm: str) -> None:
        await self.client._run(ops.retire_arm(self.name, arm))

    async def delete(self) -> None:
        await self.client._run(ops.delete_experiment(self.name))


class AsyncStudy:
    """``Study`` for asyncio."""

    def __init__(self, client: AsyncClient, name: str) -> None:
        self.client = client
        self.name = name
        self._cache = ops.StudyCache(name)

    def __repr__(self) -> str:
        return f"AsyncStudy({self.name!r})"

    async def ask(self, n: int = 1) -> list[Trial]:
        return await self.client._run(ops.ask(self._cache, n))

    async def tell(
        self,
        trial: Trial | int,
        value: cv.Outcome | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> Trial:
        return await self.client._run(ops.observe(self._cache, trial, value, metrics, False))

    async def fail(self, trial: Trial | int, metrics: Mapping[str, float] | None = None) -> Trial:
        return await self.client._run(ops.observe(self._cache, trial, None, metrics, True))

    async def abandon(self, trial: Trial | int, reason: str | None = None) -> Trial:
        return await self.client._run(ops.abandon(self._cache, trial, reason))

    async def enqueue(self, params: Mapping[str, ParamValue]) -> Trial:
        return await self.client._run(ops.enqueue(self._cache, params))

    async def add_trial(
        self,
        params: Mapping[str, ParamValue],
        value: cv.Outcome | None = None,
        metrics: Mapping[str, float] | None = None,
        *,
        failed: bool = False,
    ) -> Trial:
        return await self.client._run(ops.add_trial(self._cache, params, value, metrics, failed))

    async def get(self) -> StudyState:
        return await self.client._run(ops.get_study(self._cache))

    async def best(self) -> Trial | None:
        return (await self.get()).best

    async def recommended(self) -> Recommendation | None:
        return (await self.get()).recommended

    async def pareto_front(self) -> list[Trial]:
        return (await self.get()).pareto_front

    async def trials(self) -> list[Trial]:
        return (await self.get()).trials

    async def delete(self) -> None:
        await self.client._run(ops.delete_study(self.name))


# The async methods say what the sync ones say (one text, in _client).
for _async, _sync in ((AsyncClient, Client), (AsyncExperiment, Experiment), (AsyncStudy, Study)):
    for _name, _fn in vars(_async).items():
        if callable(_fn) and not _fn.__doc__ and getattr(_sync, _name, None) is not None:
            _fn.__doc__ = getattr(_sync, _name).__doc__
