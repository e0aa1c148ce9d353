"""The values the client returns: plain frozen dataclasses, enums as their
proto names (``"COMPLETED"``, ``"WINNER"``...), optional proto fields as
``None`` when absent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

#: A parameter value: ``int`` for int parameters, ``float`` for float and
#: ordinal ones, ``str`` for categorical ones.
ParamValue = Union[int, float, str]


@dataclass(frozen=True, slots=True)
class Decision:
    """What ``choose`` decided. Pass ``decision_id`` to ``reward``.
    ``fallback`` is true when the server could not reach its store and
    served its configured fallback arm (then ``decision_id`` is empty)."""

    arm: str
    decision_id: str
    propensity: float
    fallback: bool = False


@dataclass(frozen=True, slots=True)
class Rewarded:
    """The arm a reward updated; ``duplicate`` when this decision (or
    aggregate request id) had already been applied: acknowledged, not
    applied again."""

    arm: str
    duplicate: bool


@dataclass(frozen=True, slots=True)
class ArmSummary:
    """The posterior of one arm (see ``ArmSummary`` in bandit.proto)."""

    name: str
    retired: bool
    rewards: int
    evidence: float
    mean: float
    lower: float
    upper: float
    prob_best: float
    expected_loss: float
    alpha: float
    beta: float
    mu: float
    kappa: float
    prob_above_threshold: float | None = None
    lift_mean: float | None = None
    lift_lower: float | None = None
    lift_upper: float | None = None


@dataclass(frozen=True, slots=True)
class Summary:
    """An experiment's definition and every arm's posterior.
    ``definition`` is the ``Experiment`` message as a dict (proto field
    names, defaults included)."""

    name: str
    model: str
    arms: list[ArmSummary]
    prob_best_draws: int
    definition: dict[str, Any]

    def arm(self, name: str) -> ArmSummary:
        """The summary of the arm called ``name`` (KeyError if none)."""
        for a in self.arms:
            if a.name == name:
                return a
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class ArmVerdict:
    name: str
    prob_best: float
    expected_loss: float
    rewards: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """``status`` is ``"RUNNING"``, ``"WINNER"`` or ``"INCONCLUSIVE"``;
    ``winner`` is None unless there is one."""

    status: str
    winner: str | None
    reason: str
    arms: list[ArmVerdict]


@dataclass(frozen=True, slots=True)
class GateResult:
    """``verdict`` is ``"PASS"``, ``"FAIL"`` or ``"INCONCLUSIVE"``."""

    verdict: str
    prob_candidate_worse: float
    prob_slo_breach: float | None
    baseline_rewards: int
    candidate_rewards: int
    reason: str


@dataclass(frozen=True, slots=True)
class HistoryArm:
    name: str
    rewards: int
    evidence: float
    mean: float
    lower: float
    upper: float
    prob_best: float
    decisions: int


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One point of an experiment's history (``time_ms``: Unix ms)."""

    time_ms: int
    arms: list[HistoryArm]


@dataclass(frozen=True, slots=True)
class ExperimentListing:
    """One experiment of ``client.experiments()``."""

    name: str
    model: str
    arms: int
    rewards: int
    status: str
    description: str
    labels: dict[str, str]


@dataclass(frozen=True, slots=True)
class Trial:
    """One trial of a study. ``params`` maps each parameter to an ``int``
    (int parameters), ``float`` (float and ordinal) or ``str``
    (categorical). ``state`` is PENDING, COMPLETED, FAILED, ABANDONED or
    QUEUED; ``value`` is the objective of a COMPLETED trial (the first
    objective's with several)."""

    trial_id: int
    params: dict[str, ParamValue]
    state: str
    value: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    suggested_ms: int = 0
    observed_ms: int = 0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Recommendation:
    """The feasible observed trial with the best posterior mean, with that
    mean and its standard deviation."""

    trial: Trial
    mean: float
    std: float


@dataclass(frozen=True, slots=True)
class StudyState:
    """Everything ``GetStudy`` returns about a study. ``definition`` is the
    ``Study`` message as a dict (proto field names)."""

    name: str
    definition: dict[str, Any]
    trials: list[Trial]
    best: Trial | None
    recommended: Recommendation | None
    pareto_front: list[Trial]
    hypervolume: float | None
    reference_point: list[float]
    exhausted: bool
    calibration: float | None
