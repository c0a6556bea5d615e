"""The verification workers: processes fed over pipes, replaced when they die, stopped on close."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import os
import signal
import time
from pathlib import Path

import pytest

from relay.core.limits import MessageLimits
from relay.smtp.decide import Accepted, Judgement, Refused, Transaction
from relay.smtp.replies import Refusal
from relay.smtp.verifier import Verifier
from relay.smtp.workers import WorkerLost
from tests.smtp.helpers import basic_spec, gated_load, load_spec, make_gate, make_pki, message, spec_loader, write_spec

SENDER, RCPT = "alice@hospital.test", "bob@hospital.test"
TX = Transaction(SENDER, (RCPT,), None)
NOW = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("verifier")
    return write_spec(d / "spec.json", basic_spec(make_pki(d / "tls"), 9))


async def _judge(verifier: Verifier, spec: Path, raw: bytes) -> Judgement:
    return await verifier.judge(raw, TX, load_spec(spec), NOW)


@pytest.mark.parametrize("workers", [0, 1])
def test_workers_and_threads_judge_alike(spec, workers):
    async def go() -> list[Judgement]:
        verifier = Verifier(spec_loader(spec), workers, MessageLimits(), 50)
        try:
            return await asyncio.gather(
                _judge(verifier, spec, message(SENDER, [RCPT])), _judge(verifier, spec, b"From: <a@b.test>\nbare LF\r\n\r\n")
            )
        finally:
            verifier.close()

    accepted, refused = asyncio.run(go())
    assert isinstance(accepted.outcome, Accepted) and not accepted.outcome.signed
    assert isinstance(refused.outcome, Refused) and refused.outcome.code is Refusal.BARE_LINE_ENDING


@pytest.mark.parametrize("workers", [0, 1])
def test_the_limits_given_at_start_are_the_ones_judged_by(spec, workers):
    async def go() -> Judgement:
        verifier = Verifier(spec_loader(spec), workers, MessageLimits(), 0)  # not even one Received: field
        try:
            return await _judge(verifier, spec, b"Received: from a\r\n" + message(SENDER, [RCPT]))
        finally:
            verifier.close()

    judged = asyncio.run(go())
    assert isinstance(judged.outcome, Refused) and judged.outcome.code is Refusal.MAIL_LOOP


def test_a_dead_worker_fails_only_the_messages_it_held(spec, tmp_path):
    gate = make_gate(tmp_path / "gate")

    async def go() -> None:
        verifier = Verifier(functools.partial(gated_load, spec, gate), 1, MessageLimits(), 50)
        try:
            # One worker holds two messages (the first blocks it in the loader); the third waits in the pool.
            tasks = [asyncio.ensure_future(_judge(verifier, spec, message(SENDER, [RCPT]))) for _ in range(3)]
            pid = int(await asyncio.to_thread((gate / "holding").read_text))
            assert verifier.worker_pids == [pid]
            (gate / "open").touch()
            os.kill(pid, signal.SIGKILL)
            results = await asyncio.gather(*tasks, return_exceptions=True)
            assert [type(r) for r in results[:2]] == [WorkerLost, WorkerLost]
            assert isinstance(results[2], Judgement) and isinstance(results[2].outcome, Accepted)
            assert len(verifier.worker_pids) == 1 and verifier.worker_pids != [pid]  # a fresh worker took over
        finally:
            verifier.close()

    asyncio.run(go())


def test_a_worker_stuck_on_a_task_is_stopped_and_replaced(spec, tmp_path):
    from relay.smtp.verifier import _Judging
    from relay.smtp.workers import WorkerPool

    gate = make_gate(tmp_path / "gate")

    async def go() -> None:
        factory = functools.partial(_Judging, functools.partial(gated_load, spec, gate), MessageLimits(), 50)
        pool = WorkerPool(factory, 1, task_timeout=0.5)
        try:
            stuck = pool.submit((TX, "any", NOW), message(SENDER, [RCPT]))  # the loader blocks for good
            pid = int(await asyncio.to_thread((gate / "holding").read_text))
            with pytest.raises(WorkerLost, match="took longer than 0.5 s"):
                await asyncio.wait_for(stuck, 30)
            (gate / "open").touch()
            judged = await asyncio.wait_for(pool.submit((TX, "any", NOW), message(SENDER, [RCPT])), 30)
            assert isinstance(judged.outcome, Accepted) and pool.pids != [pid]
        finally:
            pool.close()

    asyncio.run(go())


def test_a_worker_busy_for_longer_than_the_task_timeout_is_not_stopped(spec):
    from relay.smtp.verifier import _Judging
    from relay.smtp.workers import WorkerPool

    async def go() -> None:
        pool = WorkerPool(functools.partial(_Judging, spec_loader(spec), MessageLimits(), 50), 1, task_timeout=30)
        try:
            # Started and warm first: a task's time counts from when it is sent, and a
            # worker's start on a loaded machine could take longer than the short timeout.
            await asyncio.wait_for(pool.submit((TX, "any", NOW), message(SENDER, [RCPT])), 30)
            assert pool._task_timeout == 30  # the attribute the pool reads for each task sent
            pool._task_timeout = 1.0
            pids, started, answered = pool.pids, time.monotonic(), 0
            while time.monotonic() - started < 2.2:  # tasks back to back, two held at a time: never idle
                pair = [pool.submit((TX, "any", NOW), message(SENDER, [RCPT])) for _ in range(2)]
                for judged in await asyncio.wait_for(asyncio.gather(*pair), 30):
                    assert isinstance(judged.outcome, Accepted)
                    answered += 1
            assert pool.pids == pids and answered > 2  # each task's own time counted, not the worker's
            await asyncio.sleep(1.2)  # idle past the task timeout: holding nothing, it is not overdue
            assert pool.pids == pids
        finally:
            pool.close()

    asyncio.run(go())


def test_an_error_in_the_worker_reaches_the_caller(spec, tmp_path):
    async def go() -> None:
        later = tmp_path / "later.json"
        verifier = Verifier(spec_loader(later), 1, MessageLimits(), 50)
        try:
            pids = verifier.worker_pids
            with pytest.raises(FileNotFoundError):
                await _judge(verifier, spec, message(SENDER, [RCPT]))
            later.write_bytes(spec.read_bytes())
            assert isinstance((await _judge(verifier, spec, message(SENDER, [RCPT]))).outcome, Accepted)
            assert verifier.worker_pids == pids  # the same worker carried on
        finally:
            verifier.close()

    asyncio.run(go())


def test_close_stops_the_workers(spec):
    async def go() -> list[int]:
        verifier = Verifier(spec_loader(spec), 2, MessageLimits(), 50)
        await _judge(verifier, spec, message(SENDER, [RCPT]))
        pids = verifier.worker_pids
        verifier.close()
        with pytest.raises(WorkerLost):
            await _judge(verifier, spec, message(SENDER, [RCPT]))
        return pids

    pids = asyncio.run(go())
    assert len(pids) == 2 and not any(Path(f"/proc/{pid}").exists() for pid in pids)
