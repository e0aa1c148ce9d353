"""Every study method of the sync client against the real server."""

from __future__ import annotations

from pathlib import Path

import pytest

import posterior_client as pc

SPACE = [
    {"name": "n", "int": {"low": 1, "high": 50}},
    {"name": "lr", "float": {"low": 1e-4, "high": 0.1, "log": True}},
    {"name": "mem", "ordinal": {"values": [128, 256, 512]}},
    {"name": "arch", "categorical": {"values": ["x86", "arm"]}},
]


def check_types(t: pc.Trial) -> None:
    """int for int parameters, float for floats and ordinals, str for
    categoricals (bool is an int subclass: excluded explicitly)."""
    assert type(t.params["n"]) is int and 1 <= t.params["n"] <= 50
    assert type(t.params["lr"]) is float and 1e-4 <= t.params["lr"] <= 0.1
    assert type(t.params["mem"]) is float and t.params["mem"] in (128.0, 256.0, 512.0)
    assert type(t.params["arch"]) is str and t.params["arch"] in ("x86", "arm")


def test_ask_tell_loop(client: pc.Client, name: str) -> None:
    s = client.create_study(
        name,
        parameters=SPACE,
        objective={"name": "loss", "goal": "MINIMIZE"},
        constraints=[{"metric": "p95_ms", "upper_bound": 200}],
        seed=7,
        n_initial=4,
    )
    assert isinstance(s, pc.Study)
    trials = s.ask(n=3)
    assert len(trials) == 3
    assert len({t.trial_id for t in trials}) == 3
    for t in trials:
        check_types(t)
        assert t.state == "PENDING" and t.value is None
    done = s.tell(trials[0], 1.25, metrics={"p95_ms": 100})
    assert done.state == "COMPLETED" and done.value == 1.25
    assert done.metrics == {"p95_ms": 100.0}
    # By id as well as by Trial.
    assert s.tell(trials[1].trial_id, 0.5, {"p95_ms": 300}).state == "COMPLETED"
    failed = s.fail(trials[2])
    assert failed.state == "FAILED" and failed.value is None
    # A trial is observed once.
    with pytest.raises(pc.FailedPrecondition):
        s.tell(trials[0], 9.0, {"p95_ms": 1})
    # A second handle learns the space from the server (ints stay ints).
    again = client.study(name)
    all_trials = again.trials()
    assert [t.trial_id for t in all_trials] == [t.trial_id for t in trials]
    for t in all_trials:
        check_types(t)
    t4 = again.ask()[0]
    check_types(t4)
    best = s.best()
    # trials[1] is better but infeasible (p95_ms 300 > 200).
    assert best is not None and best.trial_id == trials[0].trial_id
    rec = s.recommended()
    assert rec is not None and rec.trial.trial_id == trials[0].trial_id and rec.std >= 0
    assert s.pareto_front() == []
    state = s.get()
    assert state.definition["objective"] == {"name": "loss", "goal": "MINIMIZE"}
    assert state.hypervolume is None and not state.exhausted


def test_abandon_enqueue_add_trial(client: pc.Client, name: str) -> None:
    s = client.create_study(name, parameters=SPACE, objective="loss", seed=1)
    t = s.ask()[0]
    ab = s.abandon(t, reason="spot instance preempted")
    assert ab.state == "ABANDONED" and ab.reason == "spot instance preempted"
    # Abandoning again is a no-op.
    assert s.abandon(t).state == "ABANDONED"
    q = s.enqueue({"n": 3, "lr": 0.01, "mem": 256, "arch": "arm"})
    assert q.state == "QUEUED"
    assert q.params == {"n": 3, "lr": 0.01, "mem": 256.0, "arch": "arm"}
    check_types(q)
    # The next ask hands the queued configuration out first.
    nxt = s.ask()[0]
    assert nxt.trial_id == q.trial_id and nxt.state == "PENDING"
    added = s.add_trial({"n": 10, "lr": 0.001, "mem": 512, "arch": "x86"}, 0.125, {"aux": 2})
    assert added.state == "COMPLETED" and added.value == 0.125 and added.metrics == {"aux": 2.0}
    check_types(added)
    bad = s.add_trial({"n": 11, "lr": 0.001, "mem": 512, "arch": "x86"}, failed=True)
    assert bad.state == "FAILED"
    with pytest.raises(pc.InvalidArgument, match="arch"):
        s.enqueue({"n": 3, "lr": 0.01, "mem": 256, "arch": "sparc"})
    with pytest.raises(pc.InvalidArgument, match="params.n"):
        s.enqueue({"n": [1], "lr": 0.01, "mem": 256, "arch": "arm"})  # type: ignore[dict-item]
    states = [t.state for t in s.trials()]
    assert states == ["ABANDONED", "PENDING", "COMPLETED", "FAILED"]
    s.delete()
    assert name not in list(client.studies())


def test_multi_objective_pareto_front(client: pc.Client, name: str) -> None:
    s = client.create_study(
        name,
        parameters=[{"name": "x", "float": {"low": 0, "high": 1}}],
        objectives=[{"name": "cost", "goal": "MINIMIZE"}, {"name": "acc", "goal": "MAXIMIZE"}],
    )
    a = s.add_trial({"x": 0.1}, [1.0, 0.5])
    s.add_trial({"x": 0.2}, {"cost": 2.0, "acc": 0.9})
    s.add_trial({"x": 0.3}, [3.0, 0.4])  # dominated by the first
    assert a.metrics == {"cost": 1.0, "acc": 0.5}
    t = s.ask()[0]
    s.tell(t, [0.5, 0.1])
    front = s.pareto_front()
    assert {p.params["x"] for p in front} == {0.1, 0.2, t.params["x"]}
    st = s.get()
    assert st.hypervolume is not None and st.hypervolume > 0
    assert len(st.reference_point) == 2
    with pytest.raises(pc.InvalidArgument, match="objectives"):
        s.tell(s.ask()[0], [1.0])


def test_create_study_shapes(client: pc.Client, name: str) -> None:
    # camelCase (proto3 JSON) and snake_case are both accepted, as by the HTTP API.
    client.create_study(
        name,
        parameters=[{"name": "n", "int": {"low": 1, "high": 8, "step": 1}}],
        objective={"name": "y", "goal": "MAXIMIZE"},
        maxPending=4,
        trial_timeout_seconds=60,
    )
    st = client.study(name).get()
    assert st.definition["max_pending"] == 4
    assert st.definition["trial_timeout_seconds"] == 60
    with pytest.raises(pc.InvalidArgument, match="intt"):
        client.create_study(name + "x", parameters=[{"name": "n", "intt": {}}], objective="y")
    # The server's own validation, by code.
    with pytest.raises(pc.InvalidArgument):
        client.create_study(
            name + "y", parameters=[{"name": "n", "int": {"low": 5, "high": 1}}], objective="y"
        )


SPACE_FILE = """
objective = { name = "cost_uusd", goal = "minimize" }
n_initial = 8
acquisition = "log_ei"
seed = 42
metrics = ["p95_ms", "throughput"]
trial_timeout_seconds = 3600
max_pending = 64

[[parameters]]
name = "memory_mb"
ordinal = [128, 256, 512, 1024, 2048]

[[parameters]]
name = "arch"
categorical = ["x86", "arm"]

[[parameters]]
name = "learning_rate"
float = { low = 1e-4, high = 0.1, log = true }

[[parameters]]
name = "batch"
int = { low = 8, high = 256, log = true }

[[parameters]]
name = "heap_mb"
int = { low = 128, high = 1024, step = 64 }

[[constraints]]
metric = "p95_ms"
upper_bound = 200

[[constraints]]
metric = "throughput"
lower_bound = 100
"""


def test_create_study_from_file(client: pc.Client, name: str, tmp_path: Path) -> None:
    """The example of src/space_file.rs (the CLI's format)."""
    p = tmp_path / f"{name}.toml"
    p.write_text(SPACE_FILE)
    s = client.create_study_from_file(p)
    assert s.name == name
    d = s.get().definition
    assert [x["name"] for x in d["parameters"]] == [
        "memory_mb", "arch", "learning_rate", "batch", "heap_mb"
    ]
    assert d["parameters"][4]["int"] == {"low": 128, "high": 1024, "log": False, "step": 64}
    assert d["constraints"][1] == {"metric": "throughput", "lower_bound": 100.0}
    assert (d["n_initial"], d["seed"], d["max_pending"]) == (8, 42, 64)
    t = s.ask()[0]
    assert type(t.params["batch"]) is int and type(t.params["heap_mb"]) is int
    assert (t.params["heap_mb"] - 128) % 64 == 0
    assert type(t.params["memory_mb"]) is float
    # With an explicit name; and shape errors name the key, as the CLI's do.
    assert client.create_study_from_file(p, name=name + "-b").name == name + "-b"
    p.write_text(SPACE_FILE + "bogus = 1\n")
    with pytest.raises(pc.InvalidArgument, match="bogus"):
        client.create_study_from_file(p)
    p.write_text('objective = { name = "c" }\n[[parameters]]\nname = "x"\n')
    with pytest.raises(pc.InvalidArgument, match=r"parameters\[0\]"):
        client.create_study_from_file(p)
    for text, match in [
        ('objective = { name = "c" }\n[[parameters]]\nint = { low = 1, high = 2 }\n',
         r"parameters\[0\]: missing field 'name'"),
        ('objective = { goal = "minimize" }\nparameters = []\n', "objective: missing field 'name'"),
        ('objective = { name = "c" }\n', "missing field 'parameters'"),
        ('objective = { name = "c" }\nparameters = 5\n', "parameters: expected an array"),
        ('objective = { name = "c" }\n[[parameters]]\nname = "x"\nint = { low = 1 }\n',
         r"parameters\[0\].int: missing field 'high'"),
        ('objective = { name = "c", goal = "up" }\nparameters = []\n', "objective.goal"),
        ('objective = { name = "c" }\nparameters = []\n[[constraints]]\nmetric = "m"\n',
         r"constraints\[0\] \(m\): upper_bound, lower_bound or both"),
        ("objective = {", r"\.toml: "),  # not TOML: the file and the parser's words
    ]:
        p.write_text(text)
        with pytest.raises(pc.InvalidArgument, match=match):
            client.create_study_from_file(p)
