"""The asyncio client: every method, against the real server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import posterior_client as pc
from conftest import Server
from test_studies import SPACE, SPACE_FILE, check_types


async def test_bandit_methods(server: Server, name: str) -> None:
    async with pc.AsyncClient(server.target) as c:
        e = await c.create_experiment(name, ["a", "b"], control_arm="a")
        assert isinstance(e, pc.AsyncExperiment)
        # Many decisions at once on one channel.
        ds = await asyncio.gather(*[e.choose(unit_id=f"u{i}") for i in range(20)])
        assert all(d.arm in ("a", "b") for d in ds)
        rs = await asyncio.gather(*[e.reward(d.decision_id, 1.0) for d in ds])
        assert not any(r.duplicate for r in rs)
        assert (await e.reward(ds[0].decision_id, 1.0)).duplicate
        assert (await e.choose(eligible=["b"])).arm == "b"
        await e.reward_arm("b", 0.0)
        assert not (await e.reward_aggregate("a", 10, 1.0, request_id="r1")).duplicate
        assert (await e.reward_aggregate("a", 10, 1.0, request_id="r1")).duplicate
        s = await e.summary(threshold=0.5)
        assert sum(a.rewards for a in s.arms) == 20 + 1 + 10
        assert s.arm("b").lift_mean is not None
        assert (await e.verdict()).status in ("RUNNING", "WINNER")
        g = await e.gate("a", "b", margin=0.05, slo=0.9)
        assert g.verdict in ("PASS", "FAIL", "INCONCLUSIVE") and g.prob_slo_breach is not None
        assert isinstance(await e.history(), list)
        assert await e.add_arm("c") is True
        await e.retire_arm("c")
        assert (await e.summary()).arm("c").retired
        names = [x.name async for x in c.experiments()]
        assert name in names
        await e.delete()
        with pytest.raises(pc.NotFound):
            await e.verdict()
        await c.create_experiment(name + "-x", ["a", "b"])
        await c.delete_experiment(name + "-x")


async def test_study_methods(server: Server, name: str, tmp_path: Path) -> None:
    async with pc.AsyncClient(server.target) as c:
        s = await c.create_study(name, parameters=SPACE, objective="loss", seed=3)
        assert isinstance(s, pc.AsyncStudy)
        ts = await s.ask(n=2)
        for t in ts:
            check_types(t)
        assert (await s.tell(ts[0], 2.0)).state == "COMPLETED"
        assert (await s.fail(ts[1])).state == "FAILED"
        t = (await s.ask())[0]
        assert (await s.abandon(t, "preempted")).reason == "preempted"
        q = await s.enqueue({"n": 5, "lr": 0.001, "mem": 128, "arch": "x86"})
        assert q.state == "QUEUED" and type(q.params["n"]) is int
        a = await s.add_trial({"n": 6, "lr": 0.001, "mem": 128, "arch": "x86"}, 1.0)
        assert a.state == "COMPLETED"
        best = await s.best()
        assert best is not None and best.trial_id == a.trial_id
        rec = await s.recommended()
        assert rec is not None
        assert await s.pareto_front() == []
        assert len(await s.trials()) == 5
        assert (await s.get()).name == name
        with pytest.raises(pc.FailedPrecondition):
            await s.tell(ts[0], 1.0)
        # A fresh handle by name.
        again = c.study(name)
        check_types((await again.trials())[0])
        assert name in [n async for n in c.studies()]
        p = tmp_path / "space.toml"
        p.write_text(SPACE_FILE)
        f = await c.create_study_from_file(p, name=name + "-file")
        check_types_file = (await f.ask())[0]
        assert type(check_types_file.params["batch"]) is int
        await f.delete()
        await c.delete_study(name)
        with pytest.raises(pc.NotFound):
            await s.ask()
