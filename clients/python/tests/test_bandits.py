"""Every bandit method of the sync client against the real server."""

from __future__ import annotations

import time

import pytest

import posterior_client as pc


def test_choose_reward_exactly_once(client: pc.Client, name: str) -> None:
    e = client.create_experiment(name, ["a", "b", "c"])
    assert isinstance(e, pc.Experiment) and e.name == name
    d = e.choose()
    assert d.arm in ("a", "b", "c")
    assert d.decision_id and not d.fallback
    assert 0.0 < d.propensity <= 1.0
    first = e.reward(d.decision_id, 1.0)
    assert first == pc.Rewarded(d.arm, False)
    # A repeat of the same decision is acknowledged, not applied.
    assert e.reward(d.decision_id, 1.0) == pc.Rewarded(d.arm, True)
    s = e.summary()
    assert s.arm(d.arm).rewards == 1
    assert sum(a.rewards for a in s.arms) == 1


def test_choose_eligible_and_unit(client: pc.Client, name: str) -> None:
    e = client.create_experiment(name, ["a", "b", "c"], sticky_seconds=3600)
    for _ in range(10):
        assert e.choose(eligible=["b"]).arm == "b"
    first = e.choose(unit_id="user-1").arm
    # Sticky: the unit keeps its arm.
    assert all(e.choose(unit_id="user-1").arm == first for _ in range(5))
    with pytest.raises(pc.NotFound):
        e.choose(eligible=["nope"])
    with pytest.raises(pc.InvalidArgument):
        e.choose(eligible="a")  # type: ignore[arg-type]


def test_reward_arm_and_aggregate(client: pc.Client, name: str) -> None:
    e = client.create_experiment(name, ["a", "b"], model="gaussian")
    assert e.reward_arm("a", 2.5) == pc.Rewarded("a", False)
    # Two calls by arm are both applied (no dedupe).
    e.reward_arm("a", 3.5)
    r = e.reward_aggregate("b", count=4, sum=10.0, sum_squares=30.0, request_id="job-7")
    assert r == pc.Rewarded("b", False)
    assert e.reward_aggregate("b", 4, 10.0, 30.0, request_id="job-7").duplicate
    # Without a request id every call gets a fresh one: applied each time.
    e.reward_aggregate("b", 1, 2.0, 4.0)
    s = e.summary()
    assert s.model == "GAUSSIAN"
    assert s.arm("a").rewards == 2
    assert s.arm("b").rewards == 5
    assert s.arm("a").mean == pytest.approx(3.0, abs=0.1)


def test_summary_threshold_verdict_gate_history(client: pc.Client, name: str) -> None:
    e = client.create_experiment(
        name,
        ["base", "cand"],
        goal="minimize",
        control_arm="base",
        stopping={"prob_best": 0.9, "min_rewards_per_arm": 10},
        description="canary",
        labels={"team": "sre"},
    )
    e.reward_aggregate("base", 200, 2.0)
    e.reward_aggregate("cand", 200, 40.0)
    s = e.summary(threshold=0.05)
    assert s.definition["goal"] == "MINIMIZE_REWARD"
    assert s.definition["labels"] == {"team": "sre"}
    assert s.definition["stopping"]["min_rewards_per_arm"] == 10
    assert isinstance(s.definition["created_ms"], int) and s.definition["created_ms"] > 0
    assert s.prob_best_draws > 0
    cand = s.arm("cand")
    assert cand.prob_above_threshold is not None and cand.prob_above_threshold > 0.99
    assert cand.lift_mean is not None and cand.lift_mean > 1.0
    assert s.arm("base").lift_mean is not None
    assert e.summary().arm("cand").prob_above_threshold is None
    v = e.verdict()
    assert v.status == "WINNER" and v.winner == "base", v
    assert {a.name for a in v.arms} == {"base", "cand"}
    g = e.gate("base", "cand", margin=0.01, slo=0.05)
    assert g.verdict == "FAIL", g
    assert g.prob_slo_breach is not None and g.prob_slo_breach > 0.99
    assert (g.baseline_rewards, g.candidate_rewards) == (200, 200)
    assert e.gate("base", "cand", margin=0.01).prob_slo_breach is None
    ok = e.gate("cand", "base", margin=0.01, min_rewards=100, confidence=0.9)
    assert ok.verdict == "PASS", ok
    h = e.history()
    assert isinstance(h, list)
    assert all(isinstance(p, pc.HistoryPoint) for p in h)
    assert e.history(since_ms=2**62) == []


def test_arms_lifecycle_and_delete(client: pc.Client, name: str) -> None:
    e = client.create_experiment(name, ["a", "b"])
    # Identical re-create: success; a different one: AlreadyExists.
    client.create_experiment(name, ["a", "b"])
    with pytest.raises(pc.AlreadyExists):
        client.create_experiment(name, ["a", "b", "c"])
    assert e.add_arm("c") is True
    assert e.add_arm("c") is False
    e.retire_arm("a")
    s = e.summary()
    assert s.arm("a").retired and not s.arm("c").retired
    assert all(e.choose().arm != "a" for _ in range(20))
    e.delete()
    with pytest.raises(pc.NotFound):
        client.experiment(name).summary()


def test_experiments_iterates_every_page(client: pc.Client, name: str) -> None:
    # The default page holds 100 names: 105 span two pages.
    names = [f"{name}-{i:03d}" for i in range(105)]
    for n in names:
        client.create_experiment(n, ["a", "b"], description=n)
    listed = [x for x in client.experiments() if x.name.startswith(name)]
    assert [x.name for x in listed] == names
    assert all(x.arms == 2 and x.status == "RUNNING" and x.model == "BERNOULLI" for x in listed)
    assert listed[3].description == names[3]
    for n in names:
        client.delete_experiment(n)


def test_bad_options_name_the_field(client: pc.Client, name: str) -> None:
    with pytest.raises(pc.InvalidArgument, match="bogus"):
        client.create_experiment(name, ["a"], bogus=1)
    with pytest.raises(pc.InvalidArgument):
        client.create_experiment(name, "ab")
    with pytest.raises(pc.InvalidArgument) as ei:
        client.create_experiment(name, ["a", "a"])
    # The server's message, with the code.
    assert ei.value.code.name == "INVALID_ARGUMENT"
    assert "arm" in ei.value.message


def test_history_points(client: pc.Client, name: str) -> None:
    """The servers of these tests record a point a second."""
    e = client.create_experiment(name, ["a", "b"])
    for _ in range(5):
        e.reward(e.choose(eligible=["a"]).decision_id, 1.0)
    deadline = time.monotonic() + 10
    points: list[pc.HistoryPoint] = []
    while time.monotonic() < deadline:
        points = e.history()
        if points and points[-1].arms[0].rewards == 5:
            break
        time.sleep(0.2)
    assert points, "no history point within 10 s"
    last = points[-1]
    assert [a.name for a in last.arms] == ["a", "b"]
    assert last.arms[0].rewards == 5 and last.arms[1].rewards == 0
    assert sum(a.decisions for p in points for a in p.arms if a.name == "a") == 5
    assert last.time_ms > 0
    assert all(p.time_ms > last.time_ms for p in e.history(since_ms=last.time_ms + 1))
