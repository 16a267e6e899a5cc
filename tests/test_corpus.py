"""Every sample payload, replayed through HTTP, Redis, a worker and the database, leaves the expected rows."""

import hashlib
import itertools
from collections import Counter
from decimal import Decimal

import pytest

from tests import tables
from tests.conftest import PAYLOADS, Pipeline, empty_tables, load_expected, seed

CASES = sorted(p.stem for p in PAYLOADS.glob("*.json"))
SEQUENCES = sorted(p.name for p in (PAYLOADS / "sequences").iterdir())


def _sequence(name: str) -> list[bytes]:
    return [p.read_bytes() for p in sorted((PAYLOADS / "sequences" / name).glob("*.json"))]


@pytest.mark.parametrize("case", CASES)
def test_case_lands_as_expected(pipeline: Pipeline, case: str) -> None:
    body = (PAYLOADS / f"{case}.json").read_bytes()
    expected = load_expected(f"{case}.json")
    pipeline.replay(body)
    tables.assert_state(pipeline.services.db, expected)
    assert tables.outcomes(pipeline.services.db) == {hashlib.sha256(body).hexdigest(): expected["outcome"]}


@pytest.mark.parametrize("case", CASES)
def test_redelivery_changes_nothing(pipeline: Pipeline, case: str) -> None:
    body = (PAYLOADS / f"{case}.json").read_bytes()
    pipeline.replay(body)
    first = tables.snapshot(pipeline.services.db)
    pipeline.replay(body)
    pipeline.replay(body)
    assert tables.snapshot(pipeline.services.db) == first


@pytest.mark.parametrize("name", SEQUENCES)
def test_sequence_in_every_order(pipeline: Pipeline, name: str) -> None:
    """Out-of-order statuses: every arrival order ends in the same state and the same counts."""
    expected = load_expected(f"sequences/{name}.json")
    bodies = _sequence(name)
    states = []
    for order in itertools.permutations(bodies):
        _reset(pipeline)
        for body in order:
            pipeline.replay(body)  # one delivery at a time: the order really is the arrival order
        tables.assert_state(pipeline.services.db, expected)
        states.append(tables.snapshot(pipeline.services.db))
    assert all(state == states[0] for state in states)


def test_duplicate_body_is_queued_once(pipeline: Pipeline) -> None:
    body = (PAYLOADS / "text_reply.json").read_bytes()
    assert (PAYLOADS / "duplicate_of_text.json").read_bytes() == body
    pipeline.deliver(body, body, body)
    assert pipeline.services.inbox.depth() == 1
    pipeline.drain()
    tables.assert_state(pipeline.services.db, load_expected("text_reply.json"))


def test_whole_corpus_in_one_run(pipeline: Pipeline) -> None:
    """All cases together: every case's rows are there and each day's numbers are the sum of the cases'."""
    pipeline.replay(*(p.read_bytes() for p in sorted(PAYLOADS.rglob("*.json"))))
    expectations = [load_expected(f"{c}.json") for c in CASES if c != "duplicate_of_text"]
    expectations += [load_expected(f"sequences/{s}.json") for s in SEQUENCES]
    assert set(tables.messages(pipeline.services.db)) == {
        m["wamid"] for e in expectations for m in e["messages"]
    }
    assert set(tables.orders(pipeline.services.db)) == {o["wamid"] for e in expectations for o in e["orders"]}
    assert tables.analytics(pipeline.services.db) == _sum_analytics(expectations)


def _sum_analytics(expectations: list[dict]) -> dict:  # type: ignore[type-arg]
    total: dict[str, dict[str, Counter[str]]] = {}
    for expected in expectations:
        for tenant, days in tables.expected_analytics(expected).items():
            for day, counters in days.items():
                total.setdefault(tenant, {}).setdefault(day, Counter()).update(counters)
    return {
        tenant: {
            day: {k: Decimal(v).normalize() if k == "order_revenue" else v for k, v in c.items()}
            for day, c in days.items()
        }
        for tenant, days in total.items()
    }


def _reset(pipeline: Pipeline) -> None:
    empty_tables(pipeline.services.db)
    seed(pipeline.services.db)
