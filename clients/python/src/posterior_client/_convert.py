"""Python values <-> protobuf messages, shared by the sync and async clients.

Request builders take what the public methods take and return a request
message; response converters take a response message and return the
dataclasses of ``_types``. Dicts in the proto3 JSON shape (what the HTTP API
takes) go through ``google.protobuf.json_format.ParseDict`` into the request
message itself, so the accepted shape is exactly the server's.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from ._pb import bandit_pb2 as bpb
from ._pb import optimizer_pb2 as opb
from ._types import (
    ArmSummary,
    ArmVerdict,
    Decision,
    ExperimentListing,
    GateResult,
    HistoryArm,
    HistoryPoint,
    ParamValue,
    Recommendation,
    Rewarded,
    StudyState,
    Summary,
    Trial,
    Verdict,
)
from .errors import InvalidArgument

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: A JSON-shaped value (what ``ParseDict`` accepts).
JsonDict = Mapping[str, Any]

#: The kind of each parameter of a study: "float", "int", "ordinal" or
#: "categorical". Needed to give int parameters back as Python ints.
Kinds = dict[str, str]


def parse_into(msg: Message, fields: JsonDict, what: str) -> None:
    """Fill ``msg`` from a proto3-JSON-shaped dict (field names in
    snake_case or lowerCamelCase). A bad shape is InvalidArgument naming the
    field, raised before anything is sent."""
    try:
        json_format.ParseDict(dict(fields), msg)
    except json_format.ParseError as e:
        raise InvalidArgument(f"{what}: {e}") from None


_INT64 = (FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT64)


def _int64_to_int(desc: Any, d: dict[str, Any]) -> None:  # desc: a message Descriptor (python or upb)
    """proto3 JSON writes 64-bit integers as strings (JavaScript numbers
    cannot hold them); Python ints can, so give them back as ints."""
    for f in desc.fields:
        v = d.get(f.name)
        if v is None:
            continue
        if f.message_type is not None:
            if f.message_type.GetOptions().map_entry:
                continue  # no map in these messages holds messages or int64s
            for item in v if isinstance(v, list) else [v]:
                _int64_to_int(f.message_type, item)
        elif f.cpp_type in _INT64:
            d[f.name] = [int(x) for x in v] if isinstance(v, list) else int(v)


def to_dict(msg: Message) -> dict[str, Any]:
    """A message as a dict with proto field names and every default (64-bit
    integers as ints, not the strings of proto3 JSON)."""
    d = json_format.MessageToDict(
        msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    _int64_to_int(msg.DESCRIPTOR, d)
    return d


# --- bandits -----------------------------------------------------------------

_REWARD_GOALS = {"MINIMIZE": "MINIMIZE_REWARD", "MAXIMIZE": "MAXIMIZE_REWARD"}


def create_experiment_request(
    name: str, arms: Sequence[str], model: str, options: JsonDict
) -> bpb.CreateExperimentRequest:
    """``options`` are any other fields of CreateExperimentRequest in their
    JSON shape (e.g. ``goal="minimize_reward"``, ``stopping={"prob_best":
    0.99}``, ``beta_prior={"alpha": 1, "beta": 9}``). Enum values may be
    given in any case; ``goal`` also takes ``"minimize"``/``"maximize"``."""
    if isinstance(arms, str):
        raise InvalidArgument("arms: a list of arm names, not one string")
    fields: dict[str, Any] = {"name": name, "arms": list(arms), "model": model.upper()}
    for k, v in options.items():
        if k in ("goal", "policy") and isinstance(v, str):
            v = v.upper()
            if k == "goal":
                v = _REWARD_GOALS.get(v, v)
        fields[k] = v
    req = bpb.CreateExperimentRequest()
    parse_into(req, fields, "create_experiment")
    return req


def choose_request(
    experiment: str, unit_id: str | None, eligible: Sequence[str] | None
) -> bpb.ChooseRequest:
    if isinstance(eligible, str):
        raise InvalidArgument("eligible: a list of arm names, not one string")
    return bpb.ChooseRequest(
        experiment=experiment, unit_id=unit_id or "", eligible_arms=eligible or ()
    )


def decision(r: bpb.ChooseResponse) -> Decision:
    return Decision(r.arm, r.decision_id, r.propensity, r.fallback)


def rewarded(r: bpb.RewardResponse | bpb.RewardAggregateResponse) -> Rewarded:
    return Rewarded(r.arm, r.duplicate)


def _opt(msg: Message, name: str) -> Any:
    """An optional (proto3 ``optional``) field: None when absent."""
    return getattr(msg, name) if msg.HasField(name) else None


def arm_summary(a: bpb.ArmSummary) -> ArmSummary:
    return ArmSummary(
        name=a.name,
        retired=a.retired,
        rewards=a.rewards,
        evidence=a.evidence,
        mean=a.mean,
        lower=a.lower,
        upper=a.upper,
        prob_best=a.prob_best,
        expected_loss=a.expected_loss,
        alpha=a.alpha,
        beta=a.beta,
        mu=a.mu,
        kappa=a.kappa,
        prob_above_threshold=_opt(a, "prob_above_threshold"),
        lift_mean=_opt(a, "lift_mean"),
        lift_lower=_opt(a, "lift_lower"),
        lift_upper=_opt(a, "lift_upper"),
    )


def summary(r: bpb.GetExperimentResponse) -> Summary:
    return Summary(
        name=r.experiment.name,
        model=bpb.RewardModel.Name(r.experiment.model),
        arms=[arm_summary(a) for a in r.arms],
        prob_best_draws=r.prob_best_draws,
        definition=to_dict(r.experiment),
    )


def verdict(r: bpb.GetVerdictResponse) -> Verdict:
    return Verdict(
        status=bpb.GetVerdictResponse.Status.Name(r.status),
        winner=r.winner or None,
        reason=r.reason,
        arms=[ArmVerdict(a.name, a.prob_best, a.expected_loss, a.rewards) for a in r.arms],
    )


def gate_result(r: bpb.GateResponse) -> GateResult:
    return GateResult(
        verdict=bpb.GateResponse.Verdict.Name(r.verdict),
        prob_candidate_worse=r.prob_candidate_worse,
        prob_slo_breach=_opt(r, "prob_slo_breach"),
        baseline_rewards=r.baseline_rewards,
        candidate_rewards=r.candidate_rewards,
        reason=r.reason,
    )


def history(r: bpb.GetExperimentHistoryResponse) -> list[HistoryPoint]:
    return [
        HistoryPoint(
            p.time_ms,
            [
                HistoryArm(
                    a.name, a.rewards, a.evidence, a.mean, a.lower, a.upper, a.prob_best, a.decisions
                )
                for a in p.arms
            ],
        )
        for p in r.points
    ]


def listing(e: bpb.ExperimentListing) -> ExperimentListing:
    return ExperimentListing(
        name=e.name,
        model=bpb.RewardModel.Name(e.model),
        arms=e.arms,
        rewards=e.rewards,
        status=bpb.GetVerdictResponse.Status.Name(e.status),
        description=e.description,
        labels=dict(e.labels),
    )


# --- studies -----------------------------------------------------------------


def _objective(o: str | JsonDict) -> JsonDict:
    """An objective as a dict; a bare name means minimize it."""
    return {"name": o} if isinstance(o, str) else o


def create_study_request(
    name: str,
    parameters: Sequence[JsonDict] | None,
    objective: str | JsonDict | None,
    constraints: Sequence[JsonDict] | None,
    objectives: Sequence[str | JsonDict] | None,
    options: JsonDict,
) -> opb.CreateStudyRequest:
    """Every argument in the proto3 JSON shape of CreateStudyRequest (as the
    HTTP API takes it), e.g. ``{"name": "n", "int": {"low": 1, "high":
    50}}`` and ``{"name": "loss", "goal": "MINIMIZE"}``."""
    fields: dict[str, Any] = {"name": name, "parameters": list(parameters or [])}
    if objective is not None:
        fields["objective"] = _objective(objective)
    if objectives is not None:
        fields["objectives"] = [_objective(o) for o in objectives]
    if constraints is not None:
        fields["constraints"] = list(constraints)
    fields.update(options)
    req = opb.CreateStudyRequest()
    parse_into(req, fields, "create_study")
    return req


def study_file_request(path: str | Path, name: str) -> opb.CreateStudyRequest:
    """The CLI's study file (``posterior study create NAME --space FILE``,
    src/space_file.rs) as the request creating study ``name``. Like the CLI,
    this checks the file's shape only (unknown keys are errors naming them);
    the values are the server's to validate."""
    where = str(path)
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise InvalidArgument(f"{where}: {e}") from None

    def bad(msg: str) -> InvalidArgument:
        return InvalidArgument(f"{where}: {msg}")

    def only(d: Any, allowed: set[str], at: str, required: tuple[str, ...] = ()) -> None:
        if not isinstance(d, dict):
            raise bad(f"{at}expected a table, got {type(d).__name__}")
        extra = sorted(set(d) - allowed)
        if extra:
            raise bad(f"{at}unknown field {extra[0]!r}, expected one of {sorted(allowed)}")
        for key in required:
            if key not in d:
                raise bad(f"{at}missing field {key!r}")

    def tables(key: str) -> list[Any]:
        v = doc.get(key, [])
        if not isinstance(v, list):
            raise bad(f"{key}: expected an array of tables ([[{key}]])")
        return v

    only(
        doc,
        {
            "objective",
            "n_initial",
            "acquisition",
            "seed",
            "metrics",
            "trial_timeout_seconds",
            "max_pending",
            "parameters",
            "constraints",
        },
        "",
        ("objective", "parameters"),
    )
    obj = doc["objective"]
    only(obj, {"name", "goal"}, "objective: ", ("name",))
    goal = str(obj.get("goal", "minimize")).lower()
    if goal not in ("minimize", "maximize"):
        raise bad(f'objective.goal: must be "minimize" or "maximize", got {goal!r}')
    acq = str(doc.get("acquisition", "log_ei")).lower()
    if acq not in ("log_ei", "ucb", "pi"):
        raise bad(f"acquisition: must be log_ei, ucb or pi, got {acq!r}")
    params: list[dict[str, Any]] = []
    for i, p in enumerate(tables("parameters")):
        only(p, {"name", "float", "int", "ordinal", "categorical"}, f"parameters[{i}]: ", ("name",))
        kinds = [k for k in ("float", "int", "ordinal", "categorical") if k in p]
        if len(kinds) != 1:
            raise bad(
                f"parameters[{i}] ({p.get('name', '')}): exactly one of float, int, "
                "ordinal, categorical is required"
            )
        kind = kinds[0]
        value = p[kind]
        if kind in ("float", "int"):
            only(value, {"low", "high", "log", "step"}, f"parameters[{i}].{kind}: ",
                 ("low", "high"))
            value = dict(value)
        elif isinstance(value, list):
            value = {"values": value}
        else:
            raise bad(f"parameters[{i}].{kind}: expected an array of values")
        params.append({"name": p["name"], kind: value})
    constraints: list[dict[str, Any]] = []
    for i, c in enumerate(tables("constraints")):
        only(c, {"metric", "upper_bound", "lower_bound"}, f"constraints[{i}]: ", ("metric",))
        if "upper_bound" not in c and "lower_bound" not in c:
            raise bad(
                f"constraints[{i}] ({c.get('metric', '')}): upper_bound, lower_bound "
                "or both is required"
            )
        constraints.append(dict(c))
    fields: dict[str, Any] = {
        "name": name,
        "parameters": params,
        "objective": {"name": obj["name"], "goal": goal.upper()},
        "constraints": constraints,
        "acquisition": acq.upper(),
    }
    for k in ("n_initial", "seed", "metrics", "trial_timeout_seconds", "max_pending"):
        if k in doc:
            fields[k] = doc[k]
    req = opb.CreateStudyRequest()
    parse_into(req, fields, where)
    return req


def kinds(study: opb.Study) -> Kinds:
    return {p.name: p.WhichOneof("kind") or "" for p in study.parameters}


def objective_names(study: opb.Study) -> list[str]:
    """Several objectives' names, in order (empty for one objective)."""
    return [o.name for o in study.objectives]


def param_value(name: str, v: opb.Value, kinds: Kinds) -> ParamValue:
    if v.WhichOneof("kind") == "category":
        return v.category
    if kinds.get(name) == "int":
        # The wire carries every number as a double; int parameters are
        # whole numbers within 2^53, so rounding is exact.
        return int(round(v.number))
    return v.number


def trial(t: opb.Trial, kinds: Kinds) -> Trial:
    return Trial(
        trial_id=t.trial_id,
        params={k: param_value(k, v, kinds) for k, v in sorted(t.params.items())},
        state=opb.TrialState.Name(t.state),
        value=_opt(t, "value"),
        metrics=dict(t.metrics),
        suggested_ms=t.suggested_ms,
        observed_ms=t.observed_ms,
        reason=t.reason,
    )


def study_state(r: opb.GetStudyResponse) -> StudyState:
    k = kinds(r.study)
    rec = (
        Recommendation(trial(r.recommended.trial, k), r.recommended.mean, r.recommended.std)
        if r.HasField("recommended")
        else None
    )
    return StudyState(
        name=r.study.name,
        definition=to_dict(r.study),
        trials=[trial(t, k) for t in r.trials],
        best=trial(r.best, k) if r.HasField("best") else None,
        recommended=rec,
        pareto_front=[trial(t, k) for t in r.pareto_front],
        hypervolume=_opt(r, "hypervolume"),
        reference_point=list(r.reference_point),
        exhausted=r.exhausted,
        calibration=_opt(r, "calibration"),
    )


def params_to_pb(params: Mapping[str, ParamValue]) -> dict[str, opb.Value]:
    """A configuration for EnqueueTrial/AddTrial: str -> category, numbers ->
    number (the server snaps them to the space and names a bad one)."""
    out: dict[str, opb.Value] = {}
    for k, v in params.items():
        if isinstance(v, str):
            out[k] = opb.Value(category=v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = opb.Value(number=float(v))
        else:
            raise InvalidArgument(
                f"params.{k}: must be an int, float or str, got {type(v).__name__}"
            )
    return out


#: What tell/add_trial take as the outcome: one number, or one per objective
#: of a multi-objective study (a sequence in the study's objective order, or
#: a mapping by objective name).
Outcome = Union[float, Sequence[float], Mapping[str, float]]


def outcome(
    value: Outcome | None, metrics: Mapping[str, float] | None, objectives: Sequence[str]
) -> tuple[float, dict[str, float]]:
    """The (value, metrics) pair of Observe/AddTrial. With several
    objectives the server reads each objective's value from ``metrics``
    under its name, so a sequence or mapping of values goes there."""
    m = dict(metrics or {})
    if value is None:
        return 0.0, m
    if isinstance(value, Mapping):
        m.update({k: float(v) for k, v in value.items()})
        return 0.0, m
    if isinstance(value, Sequence) and not isinstance(value, str):
        vals = list(value)
        if len(vals) != len(objectives):
            raise InvalidArgument(
                f"value: {len(vals)} values for {len(objectives)} objectives {list(objectives)}"
            )
        m.update({k: float(v) for k, v in zip(objectives, vals)})
        return 0.0, m
    v = float(value)
    if math.isnan(v):
        raise InvalidArgument("value: must be a number, got NaN")
    return v, m
