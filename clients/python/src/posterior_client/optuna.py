"""An Optuna sampler that asks a posterior study for its suggestions.

    import optuna
    from posterior_client import Client, Study as PosteriorStudy
    from posterior_client.optuna import PosteriorSampler

    study = optuna.create_study(sampler=PosteriorSampler(Client("127.0.0.1:50051")))
    study.optimize(objective, n_trials=50)

How Optuna's pieces map onto posterior's:

- The *relative search space* is Optuna's intersection search space (the
  parameters every completed trial has, with the same distribution), without
  single-valued distributions, as in Optuna's own GPSampler. Before any
  trial has completed it is empty, so the first trial (and every parameter
  outside the intersection: conditional, dynamic ones) is sampled by an
  independent sampler, ``RandomSampler`` by default.
- ``FloatDistribution(low, high, log, step)`` becomes a posterior float
  parameter with the same ``log``/``step``, ``IntDistribution`` an int one,
  ``CategoricalDistribution`` a categorical one whose levels are strings
  (``str(choice)``, or ``"<index>:<str(choice)>"`` when those are not
  distinct, empty or too long); values come back as the original Python
  objects (``int``, ``float``, ``str``, ``bool``, ``None``...).
- Parameter and constraint names that posterior does not accept (it takes
  ``[A-Za-z0-9_.-]``, at most 64 bytes) are spelled with the other
  characters replaced by ``_`` plus a short hash of the original name.
- The posterior study is created lazily, when the first trial with a
  non-empty relative search space starts: its name is ``study_name`` or
  ``optuna.<Optuna study name>``. Finished Optuna trials that posterior has
  not seen (the first, randomly sampled trials, trials added with
  ``study.add_trial``) are imported with AddTrial, so the model learns from
  every evaluation.
- Each trial asks posterior once (Suggest) in ``sample_relative``; the
  posterior trial id is kept in the Optuna trial's system attributes
  (``posterior:study``, ``posterior:trial_id``). ``after_trial`` reports the
  outcome: COMPLETE -> Observe, FAIL -> Observe with ``failed`` (posterior
  then treats that configuration as infeasible), PRUNED -> AbandonTrial.
  When posterior cannot suggest (a finite space entirely suggested, too
  many pending trials) the trial is sampled independently, with a warning.
  A trial whose parameters were not posterior's (e.g. fixed by
  ``study.enqueue_trial``) abandons its suggestion and is added with
  AddTrial instead. A non-finite objective value is reported as failed.
- Several objectives (``directions=[...]``, 2 to 4) become posterior's
  ``objectives``, named ``value0``, ``value1``... (or ``study.metric_names``
  when set before the posterior study is created).
- Constraints (``constraints_func`` given to this sampler, or
  ``trial.set_constraint(key, value)`` inside the objective) become
  posterior constraints ``constraint.<key> <= 0``: Optuna's "feasible iff
  every constraint value is <= 0". A completed trial without every
  constraint value is abandoned (posterior needs them to learn).

When the definition changes (the intersection search space shrinks because a
conditional parameter appeared, a constraint key appears, metric names are
set) a posterior study is immutable, so a new one is created, named with a
``-2``, ``-3``... suffix, and every finished trial that fits it is imported;
trials still running report to the study that suggested them and are added
to the new one when they fit it. The same rule
gives each Optuna study served by one sampler its own posterior study, and an
Optuna study resumed from persistent storage reconnects to the posterior
study its trials point at.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from optuna import logging as optuna_logging
from optuna.distributions import (
    BaseDistribution,
    CategoricalChoiceType,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler, RandomSampler
from optuna.samplers._base import _process_constraints_after_trial
from optuna.search_space import IntersectionSearchSpace
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from posterior_client import Client, Study as PosteriorStudy
from posterior_client.errors import AlreadyExists, FailedPrecondition

_logger = optuna_logging.get_logger(__name__)

__all__ = ["PosteriorSampler"]

#: Optuna trial system attributes linking a trial to its posterior trial.
STUDY_ATTR = "posterior:study"
TRIAL_ATTR = "posterior:trial_id"
PARAMS_ATTR = "posterior:params"
#: Study system attribute (one per posterior study): Optuna trial numbers
#: already imported into that posterior study (a finished trial's own
#: attributes can no longer be written).
IMPORTED_ATTR = "posterior:imported:"

# posterior's limits (src/bo/space.rs, src/bo/suggest.rs).
_MAX_NAME = 64
_MAX_PARAMETERS = 32
_MAX_LEVELS = 1024
_MAX_CATEGORY = 256
_MAX_ABS_INT = 2**53
_MAX_ABS_VALUE = 1e100
_MAX_OBJECTIVES = 4
_NAME_OK = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# How many `-k` suffixes to try before giving up on a name.
_MAX_SUFFIX = 1000

ParamValue = int | float | str


def _posterior_name(name: str, room: int = _MAX_NAME) -> str:
    """`name` if posterior accepts it within `room` bytes, else a readable
    spelling plus a hash of the original (distinct names stay distinct)."""
    if _NAME_OK.match(name) and len(name) <= room:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    readable = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[: room - 9]
    return f"{readable}-{digest}"


@dataclass(frozen=True)
class _Param:
    """One Optuna parameter as a posterior parameter, both ways."""

    optuna_name: str
    name: str
    distribution: BaseDistribution
    levels: tuple[str, ...] = ()

    def definition(self) -> dict[str, Any]:
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return {"name": self.name, "categorical": {"values": list(self.levels)}}
        if isinstance(d, IntDistribution):
            body: dict[str, Any] = {"low": d.low, "high": d.high, "log": d.log}
            if not d.log and d.step != 1:
                body["step"] = d.step
            return {"name": self.name, "int": body}
        assert isinstance(d, FloatDistribution)
        body = {"low": d.low, "high": d.high, "log": d.log}
        if d.step is not None:
            body["step"] = d.step
        return {"name": self.name, "float": body}

    def to_optuna(self, v: ParamValue) -> Any:
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return d.choices[self.levels.index(str(v))]
        if isinstance(d, IntDistribution):
            i = int(round(float(v)))
            i = d.low + round((i - d.low) / d.step) * d.step
            return min(max(i, d.low), d.high)
        assert isinstance(d, FloatDistribution)
        x = min(max(float(v), d.low), d.high)
        if d.step is not None:
            x = min(d.low + round((x - d.low) / d.step) * d.step, d.high)
        return x

    def to_posterior(self, v: Any) -> ParamValue:
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return self.levels[int(d.to_internal_repr(v))]
        if isinstance(d, IntDistribution):
            return int(v)
        return float(v)


def _levels(choices: Sequence[CategoricalChoiceType]) -> tuple[str, ...]:
    plain = [str(c) for c in choices]
    if len(set(plain)) == len(plain) and all(0 < len(s.encode()) <= _MAX_CATEGORY for s in plain):
        return tuple(plain)
    # `1` and `True`, `None` and `"None"`, long reprs: the index keeps them apart.
    return tuple(
        f"{i}:{s}".encode()[:_MAX_CATEGORY].decode(errors="ignore") for i, s in enumerate(plain)
    )


def _supported(d: BaseDistribution) -> bool:
    if d.single():
        return False
    if isinstance(d, CategoricalDistribution):
        return len(d.choices) <= _MAX_LEVELS
    if isinstance(d, IntDistribution):
        return abs(d.low) <= _MAX_ABS_INT and abs(d.high) <= _MAX_ABS_INT
    # posterior needs high - low finite (it scales the range to [0, 1]).
    return isinstance(d, FloatDistribution) and math.isfinite(d.high - d.low)


@dataclass(frozen=True)
class _Definition:
    """What a posterior study is created from; a change makes a new study."""

    params: tuple[_Param, ...]
    directions: tuple[StudyDirection, ...]
    objective_names: tuple[str, ...]
    constraint_keys: tuple[str, ...]

    def space(self) -> dict[str, BaseDistribution]:
        return {p.optuna_name: p.distribution for p in self.params}

    def constraint_metric(self, key: str) -> str:
        return _posterior_name(f"constraint.{key}")

    def request(self, seed: int, n_initial: int) -> dict[str, Any]:
        goals = ["MAXIMIZE" if d == StudyDirection.MAXIMIZE else "MINIMIZE" for d in self.directions]
        objectives = [{"name": n, "goal": g} for n, g in zip(self.objective_names, goals)]
        req: dict[str, Any] = {
            "parameters": [p.definition() for p in self.params],
            "constraints": [
                {"metric": self.constraint_metric(k), "upper_bound": 0.0} for k in self.constraint_keys
            ],
            "seed": seed,
            "n_initial": n_initial,
        }
        if len(objectives) == 1:
            req["objective"] = objectives[0]
        else:
            req["objectives"] = objectives
        return req


@dataclass
class _Link:
    """A posterior study serving (part of) an Optuna study."""

    name: str
    definition: _Definition
    handle: PosteriorStudy
    imported: set[int] = field(default_factory=set)
    # Every configuration of its finite space has been suggested.
    exhausted: bool = False


@dataclass
class _State:
    """Per Optuna study: the posterior studies it used, the current last."""

    links: dict[str, _Link] = field(default_factory=dict)
    current: _Link | None = None
    intersection: IntersectionSearchSpace = field(default_factory=IntersectionSearchSpace)
    # Constraint keys of the completed trials, and which trials were read.
    constraint_keys: set[str] = field(default_factory=set)
    scanned: set[int] = field(default_factory=set)


class PosteriorSampler(BaseSampler):
    """An Optuna sampler whose suggestions come from a posterior study
    (Gaussian-process Bayesian optimization run by the posterior service).

    Args:
        client: A connected :class:`posterior_client.Client`.
        study_name: The posterior study's name; default
            ``optuna.<Optuna study name>``. Later Optuna studies served by
            the same sampler, and later search spaces, get ``-2``, ``-3``...
        constraints_func: As in Optuna's samplers: a function of the
            finished trial returning constraint values, feasible iff all
            are ``<= 0``. ``trial.set_constraint`` works without it.
        seed: Seeds posterior's study (same seed and observations, same
            suggestions) and the independent sampler.
        n_initial: posterior's space-filling initial design size (0: the
            server's default). Imported trials count toward it.
        independent_sampler: Samples what posterior does not: the first
            trial, parameters outside the relative search space. Default
            ``RandomSampler(seed)``.
        warn_independent_sampling: Log a warning when a parameter is
            sampled independently once a posterior study serves the Optuna
            study (a conditional or dynamic parameter), as GPSampler does.

    ``seed=None`` gives posterior seed 0 (its suggestions then depend only
    on the observations) and an unseeded independent sampler. The client is
    the blocking :class:`posterior_client.Client` (Optuna calls samplers
    synchronously).
    """

    def __init__(
        self,
        client: Client,
        study_name: str | None = None,
        *,
        constraints_func: Callable[[FrozenTrial], Sequence[float]] | None = None,
        seed: int | None = None,
        n_initial: int = 0,
        independent_sampler: BaseSampler | None = None,
        warn_independent_sampling: bool = True,
    ) -> None:
        if study_name is not None and not _NAME_OK.match(study_name):
            raise ValueError(
                f"study_name: must be 1..=64 characters of [A-Za-z0-9_.-], got {study_name!r}"
            )
        if n_initial < 0:
            raise ValueError(f"n_initial: must be >= 0, got {n_initial}")
        self._client = client
        self._study_name = study_name
        self._constraints_func = constraints_func
        self._seed = 0 if seed is None else seed % 2**64
        self._n_initial = n_initial
        self._independent = independent_sampler or RandomSampler(seed=seed)
        self._warn_independent = warn_independent_sampling
        self._states: dict[tuple[int, int], _State] = {}
        # posterior study names this sampler serves, over all Optuna studies.
        self._claimed: dict[str, tuple[int, int]] = {}
        # Optuna's n_jobs > 1 calls a sampler from several threads.
        self._lock = threading.RLock()

    # ------------------------------------------------------------ Optuna API

    def reseed_rng(self) -> None:
        self._independent.reseed_rng()

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._independent.before_trial(study, trial)

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        with self._lock:
            space = self._state(study).intersection.calculate(study)
        chosen: dict[str, BaseDistribution] = {}
        for name in sorted(space):
            if _supported(space[name]) and len(chosen) < _MAX_PARAMETERS:
                chosen[name] = space[name]
        return chosen

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        if len(study.directions) > _MAX_OBJECTIVES:
            raise ValueError(
                f"directions: posterior optimizes at most {_MAX_OBJECTIVES} objectives, "
                f"got {len(study.directions)}"
            )
        with self._lock:
            link = self._link(study, self._definition(study, search_space))
        if link.exhausted:
            return {}
        try:
            asked = link.handle.ask(1)
        except FailedPrecondition as e:
            # Every configuration of a finite space suggested, or too many
            # pending trials: the trial goes on with the independent sampler
            # (and is added to posterior when it finishes).
            link.exhausted = "exhausted" in str(e)
            _logger.warning(f"posterior study {link.name!r}: {e}; sampling trial {trial.number} independently")
            return {}
        if not asked:
            return {}
        t = asked[0]
        storage, tid = study._storage, trial._trial_id
        storage.set_trial_system_attr(tid, STUDY_ATTR, link.name)
        storage.set_trial_system_attr(tid, TRIAL_ATTR, t.trial_id)
        storage.set_trial_system_attr(tid, PARAMS_ATTR, dict(t.params))
        return {p.optuna_name: p.to_optuna(t.params[p.name]) for p in link.definition.params}

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        if self._warn_independent:
            with self._lock:
                link = self._state(study).current
            if link is not None and not link.exhausted:  # exhaustion was said once
                _logger.warning(
                    f"Trial {trial.number}: parameter {param_name!r} is sampled by "
                    f"{type(self._independent).__name__}, not posterior study {link.name!r}: "
                    "it is not in every completed trial with the same distribution "
                    "(pass warn_independent_sampling=False to silence this)"
                )
        return self._independent.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        if self._constraints_func is not None:
            _process_constraints_after_trial(self._constraints_func, study, trial, state)
        self._independent.after_trial(study, trial, state, values)
        # The stored trial: constraints and attributes written since `trial` was frozen.
        fresh = study._storage.get_trial(trial._trial_id)
        with self._lock:
            st = self._state(study)
            linked = st.links.get(str(fresh.system_attrs.get(STUDY_ATTR, "")))
            if linked is not None and TRIAL_ATTR in fresh.system_attrs:
                tid = int(fresh.system_attrs[TRIAL_ATTR])
                suggested = fresh.system_attrs.get(PARAMS_ATTR, {})
                if self._evaluated_suggestion(linked.definition, fresh, suggested):
                    self._report(linked, tid, fresh, state, values)
                    current = st.current
                    if current is not None and current is not linked:
                        # Suggested before the definition changed: the
                        # current study learns from it too.
                        params = self._params(current.definition, fresh)
                        if params is not None and state in (TrialState.COMPLETE, TrialState.FAIL):
                            if self._add(current, params, fresh, state, values) is not None:
                                current.imported.add(fresh.number)
                                self._save_imported(study, current)
                    return
                # Optuna used other values (enqueue_trial, fixed params): the
                # suggestion was not evaluated; what was evaluated is added below.
                linked.handle.abandon(tid, reason="Optuna evaluated other parameters")
            link = st.current
            if link is None or state not in (TrialState.COMPLETE, TrialState.FAIL):
                return
            params = self._params(link.definition, fresh)
            if params is None:
                return
            added = self._add(link, params, fresh, state, values)
            if added is not None:
                study._storage.set_trial_system_attr(trial._trial_id, STUDY_ATTR, link.name)
                study._storage.set_trial_system_attr(trial._trial_id, TRIAL_ATTR, added)

    # ------------------------------------------------------------ internals

    def _state(self, study: Study) -> _State:
        key = (id(study._storage), study._study_id)
        st = self._states.get(key)
        if st is None:
            st = self._states[key] = _State()
        return st

    def _definition(self, study: Study, space: Mapping[str, BaseDistribution]) -> _Definition:
        params = []
        for name in sorted(space):
            d = space[name]
            levels = _levels(d.choices) if isinstance(d, CategoricalDistribution) else ()
            params.append(_Param(name, _posterior_name(name), d, levels))
        directions = tuple(study.directions)
        names = study.metric_names
        if names is not None and len(set(map(_posterior_name, names))) == len(names):
            objective_names = tuple(_posterior_name(n) for n in names)
        elif len(directions) == 1:
            objective_names = ("value",)
        else:
            objective_names = tuple(f"value{i}" for i in range(len(directions)))
        st = self._state(study)
        # Constraint keys only accumulate: each completed trial is read once
        # (reading them all every trial costs milliseconds at thousands).
        for t in study._get_trials(deepcopy=False, states=(TrialState.COMPLETE,), use_cache=True):
            if t.number not in st.scanned:
                st.scanned.add(t.number)
                st.constraint_keys.update(t.constraints)
        keys = tuple(sorted(st.constraint_keys))
        return _Definition(tuple(params), directions, objective_names, keys)

    def _link(self, study: Study, definition: _Definition) -> _Link:
        """The posterior study for `definition`: the current one, or a new
        (or resumed) one with the finished trials it has not seen imported."""
        st = self._state(study)
        if st.current is not None and st.current.definition == definition:
            return st.current
        key = (id(study._storage), study._study_id)
        base = self._study_name or _posterior_name(f"optuna.{study.study_name}")
        trials = study._get_trials(deepcopy=False, use_cache=False)
        request = definition.request(self._seed, self._n_initial)
        for k in range(1, _MAX_SUFFIX + 1):
            suffix = "" if k == 1 else f"-{k}"
            name = base[: _MAX_NAME - len(suffix)] + suffix
            if self._claimed.get(name, key) != key:
                continue  # another Optuna study of this sampler's
            try:
                handle = self._client.create_study(name, **request)
            except AlreadyExists:
                continue  # a different definition under that name
            ours = any(t.system_attrs.get(STUDY_ATTR) == name for t in trials)
            imported = study._storage.get_study_system_attrs(study._study_id).get(
                IMPORTED_ATTR + name
            )
            if not ours and imported is None and handle.trials():
                continue  # someone else's study with the same definition
            link = _Link(name, definition, handle, set(imported or []))
            self._claimed[name] = key
            st.links[name] = link
            st.current = link
            self._import(study, link, trials)
            return link
        raise RuntimeError(f"no free posterior study name {base}-k for k <= {_MAX_SUFFIX}")

    def _import(self, study: Study, link: _Link, trials: Sequence[FrozenTrial]) -> None:
        """AddTrial for each finished trial of `trials` that fits `link` and
        that it has not seen; recorded in a study attribute, so that a
        resumed study does not import them twice."""
        for t in trials:
            if t.state not in (TrialState.COMPLETE, TrialState.FAIL):
                continue
            if t.number in link.imported or t.system_attrs.get(STUDY_ATTR) == link.name:
                continue
            params = self._params(link.definition, t)
            if params is not None and self._add(link, params, t, t.state, t.values) is not None:
                link.imported.add(t.number)
        self._save_imported(study, link)

    @staticmethod
    def _save_imported(study: Study, link: _Link) -> None:
        study._storage.set_study_system_attr(
            study._study_id, IMPORTED_ATTR + link.name, sorted(link.imported)
        )

    @staticmethod
    def _params(definition: _Definition, t: FrozenTrial) -> dict[str, ParamValue] | None:
        """`t`'s parameters in posterior's terms, None unless it has every
        parameter of `definition` with the same distribution."""
        out: dict[str, ParamValue] = {}
        for p in definition.params:
            if t.distributions.get(p.optuna_name) != p.distribution:
                return None
            out[p.name] = p.to_posterior(t.params[p.optuna_name])
        return out

    @staticmethod
    def _evaluated_suggestion(
        definition: _Definition, t: FrozenTrial, suggested: Mapping[str, ParamValue]
    ) -> bool:
        """Whether `t` ran with the values posterior suggested (compared as
        Optuna values: exactly what `sample_relative` returned)."""
        try:
            return all(
                t.distributions.get(p.optuna_name) == p.distribution
                and t.params[p.optuna_name] == p.to_optuna(suggested[p.name])
                for p in definition.params
            )
        except (KeyError, ValueError):
            return False

    def _outcome(
        self, definition: _Definition, t: FrozenTrial, values: Sequence[float] | None
    ) -> tuple[float, dict[str, float]] | str:
        """(value, metrics) for Observe/AddTrial, or why there is none."""
        if values is None or len(values) != len(definition.objective_names):
            return "no objective values"
        if not all(math.isfinite(v) and abs(v) <= _MAX_ABS_VALUE for v in values):
            return "non-finite"
        metrics: dict[str, float] = {}
        constraints = t.constraints
        for key in definition.constraint_keys:
            if key not in constraints or not math.isfinite(constraints[key]):
                return f"constraint {key!r} missing"
            metrics[definition.constraint_metric(key)] = min(
                max(float(constraints[key]), -_MAX_ABS_VALUE), _MAX_ABS_VALUE
            )
        if len(values) == 1:
            return float(values[0]), metrics
        for name, v in zip(definition.objective_names, values):
            metrics[name] = float(v)
        return 0.0, metrics

    def _report(
        self,
        link: _Link,
        tid: int,
        t: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        if state == TrialState.COMPLETE:
            outcome = self._outcome(link.definition, t, values)
            if outcome == "non-finite":
                link.handle.fail(tid)
            elif isinstance(outcome, str):
                link.handle.abandon(tid, reason=f"Optuna trial {t.number}: {outcome}")
            else:
                link.handle.tell(tid, outcome[0], metrics=outcome[1])
        elif state == TrialState.FAIL:
            link.handle.fail(tid)
        else:
            link.handle.abandon(tid, reason=f"Optuna trial {t.number} {state.name.lower()}")

    def _add(
        self,
        link: _Link,
        params: dict[str, ParamValue],
        t: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> int | None:
        """AddTrial for an evaluation posterior did not suggest; its id."""
        outcome = self._outcome(link.definition, t, values)
        if state == TrialState.FAIL or outcome == "non-finite":
            added = link.handle.add_trial(params, None, failed=True)
        elif isinstance(outcome, str):
            return None
        else:
            added = link.handle.add_trial(params, outcome[0], metrics=outcome[1])
        return int(added.trial_id)

