"""Retries across a server restarted mid-loop: the embedded store on the
same port, the server down when the reward is sent. Rewards by decision id
are retried (exactly once on the server), so none is lost and none counted
twice."""

from __future__ import annotations

import threading

import pytest

import posterior_client as pc
from conftest import Server

ROUNDS = 45
# Rounds at which the server goes down between choose and reward: a crash
# (SIGKILL) and a graceful stop.
OUTAGES = {10: "kill", 25: "stop"}


def choose(e: pc.Experiment) -> pc.Decision:
    """Choose is not retried by the client (a caller would serve a default
    arm); this loop wants a real decision, so it retries itself."""
    for _ in range(100):
        try:
            return e.choose()
        except pc.Unavailable:
            threading.Event().wait(0.05)
    raise AssertionError("the server did not come back")


def test_rewards_survive_restarts(fresh_server: Server, name: str) -> None:
    srv = fresh_server
    # ~6 s of backoff in all: a debug server restarts well within it.
    retry = pc.Retry(max_attempts=12, initial_backoff=0.05, max_backoff=0.8)
    with pc.Client(srv.target, timeout=5, retry=retry) as c:
        e = c.create_experiment(name, ["a", "b", "c"])
        decisions: list[pc.Decision] = []
        for i in range(ROUNDS):
            d = choose(e)
            decisions.append(d)
            restart = None
            if i in OUTAGES:
                srv.kill() if OUTAGES[i] == "kill" else srv.stop()
                # Back after 0.4 s on the same port, while reward() retries.
                restart = threading.Timer(0.4, srv.start)
                restart.start()
            r = e.reward(d.decision_id, 1.0)
            if restart:
                restart.join()
            assert r.arm == d.arm
            # The first delivery of a decision is applied. (A retry whose
            # first attempt was applied with its answer lost would come
            # back duplicate=True, and still count once.)
            assert not r.duplicate or i in OUTAGES
        assert srv.port == int(c.target.rsplit(":", 1)[1])
        # Every decision counted exactly once: none lost in the crashes,
        # none doubled by the retries...
        s = e.summary()
        assert sum(a.rewards for a in s.arms) == ROUNDS
        for arm in s.arms:
            assert arm.rewards == sum(d.arm == arm.name for d in decisions)
        # ...and a replay of all of them after another restart changes
        # nothing: the dedupe records are durable too.
        srv.restart()
        replay = [e.reward(d.decision_id, 1.0) for d in decisions]
        assert all(r.duplicate for r in replay)
        assert sum(a.rewards for a in e.summary().arms) == ROUNDS


def test_observe_retried_across_restart(fresh_server: Server, name: str) -> None:
    """tell() is retried too (a second Observe can never double count)."""
    srv = fresh_server
    retry = pc.Retry(max_attempts=12, initial_backoff=0.05, max_backoff=0.8)
    with pc.Client(srv.target, timeout=5, retry=retry) as c:
        s = c.create_study(name, parameters=[{"name": "n", "int": {"low": 1, "high": 9}}],
                           objective="y")
        t = s.ask()[0]
        srv.kill()
        restart = threading.Timer(0.4, srv.start)
        restart.start()
        done = s.tell(t, 3.0)
        restart.join()
        assert done.state == "COMPLETED" and done.value == 3.0
        assert [x.state for x in s.trials()] == ["COMPLETED"]
        with pytest.raises(pc.FailedPrecondition):
            s.tell(t, 4.0)
