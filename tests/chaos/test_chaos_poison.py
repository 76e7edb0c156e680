"""Chaos tests of bad and hostile messages against a running consumer (RELIABILITY R15, R17, R21, R22, R23, R27),
on every persistent storage.

The poison is written straight into the store (``ledger_poison``: ``queues['default'].storage.enqueue``), the
way a compromised producer, a corrupted store or an attacker with write access would: random bytes, truncated
JSON, a missing task name, an unknown task, ``os.system`` as a task name, a flipped byte, other keys, 10 MiB, a
compression bomb, and pickles whose unpickling would create a marker file.
"""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import pytest

from tests.support.deployments import (
    ChaosLab,
    eventually,
)

pytestmark = [pytest.mark.slow, pytest.mark.chaos, pytest.mark.timeout(120)]


def test_r15_poison_is_dead_lettered_with_its_reason_and_the_consumer_goes_on(
    chaos_lab: ChaosLab, kind: str, tmp_path: Path
) -> None:
    deployment = chaos_lab.deploy(kind)
    marker = tmp_path / "marker"
    consumer = deployment.consumer("--workers", "2")
    pid = consumer.pid
    eventually(lambda: " starting" in consumer.log(), 30, what="the consumer started")
    cases = deployment.poison(marker)
    good = deployment.enqueue(10)["ids"]
    unstorable = deployment.enqueue(1, "--task", "unserializable", "--start", "20")["ids"][0]
    failing = deployment.enqueue(1, "--task", "fail_with", "--start", "21")["ids"][0]

    eventually(lambda: deployment.finished() == {*range(10), 20, 21}, 60, what="the good tasks finished")
    stats = eventually(
        lambda: (s := deployment.stats())["dead"] == len(cases) and s, 60, interval=0.2, what="every dead letter"
    )
    assert (stats["pending"], stats["in_flight"]) == (0, 0), stats
    letters = {letter["sha"]: letter for letter in stats["dead_letters"]}
    for case in cases:  # R15: each one a dead letter, with its reason
        letter = letters[case["sha"]]
        assert letter["reason"] == case["reason"], (case["label"], letter)
        assert letter["detail"] and letter["attempts"] == 1, (case["label"], letter)
    assert consumer.alive and consumer.pid == pid, consumer.log()
    assert not marker.exists(), "a payload ran code (R22)"
    assert deployment.events("canary") == [], "a module named in a payload was imported (R23)"
    assert not any(e["n"] >= 990 for e in deployment.events("started")), "a refused message ran (R21)"
    assert Counter(e["n"] for e in deployment.events("finished")) == Counter([*range(10), 20, 21])
    assert [e["id"] for e in sorted(deployment.events("started"), key=lambda e: e["n"]) if e["n"] < 10] == good

    # R27: every dead letter logged with its reason, and signalled
    log = consumer.log()
    for reason, count in Counter(case["reason"] for case in cases).items():
        assert log.count(f"dead-lettered ({reason})") == count, reason
    dead_signals = [e for e in deployment.events("signal") if e["signal"] == "dead-lettered"]
    assert Counter(e["args"][0] for e in dead_signals) == Counter(case["reason"] for case in cases)

    # R17: a return value that cannot be stored is a failed result with a clear error, not a crash.
    # R23: a failed result raises TaskException; the exception it records is rebuilt only from a module already
    # imported, so reading one that names the canary module neither imports it nor rebuilds it.
    results = deployment.results(unstorable, failing, plant="planted-error")
    assert results[unstorable]["raised"] == "TaskException"
    assert "returned a value that cannot be stored" in results[unstorable]["error"]
    assert results[failing] == {
        "error": "LedgerError('ledger task 21 failed on purpose')",
        "type": "tests.ledgerapp.tasks.LedgerError",
        "raised": "TaskException",
        "rebuilt": "LedgerError",
    }
    assert results["planted-error"]["raised"] == "TaskException"
    assert results["planted-error"]["rebuilt"] is None
    assert results["_canary_imported"] is False

    consumer.signal(signal.SIGTERM)
    assert consumer.wait(30) == 0, consumer.log()


def test_r22_a_pickle_queue_never_loads_an_unverified_pickle(chaos_lab: ChaosLab, kind: str, tmp_path: Path) -> None:
    """With ``SERIALIZER = "pickle"`` (signing on), pickles that are unsigned or signed with another key are
    dead-lettered as bad signatures before anything is unpickled; signed pickles of this project run (the
    control shows that the marker payload does create the file when a pickle is loaded)."""
    deployment = chaos_lab.deploy(kind, TASKS_Q_SERIALIZER="pickle")
    marker = tmp_path / "marker"
    cases = deployment.poison(marker, "--only-pickle")
    deployment.enqueue(3)
    consumer = deployment.consumer("--burst", "--workers", "2")
    assert consumer.wait(60) == 0, consumer.log()
    assert deployment.finished() == {0, 1, 2}
    stats = deployment.stats()
    assert sorted(letter["reason"] for letter in stats["dead_letters"]) == sorted(c["reason"] for c in cases)
    assert {c["reason"] for c in cases} == {"bad_signature"}
    assert not marker.exists(), "an unverified pickle was loaded"

    # the control: the same payload, signed with this project's key, is loaded (so the marker test is live)
    deployment.poison(marker, "--control")
    consumer = deployment.consumer("--burst")
    assert consumer.wait(60) == 0, consumer.log()
    assert marker.exists()
