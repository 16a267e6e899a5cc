"""Every sample payload, replayed through HTTP, Redis, a worker and the database, leaves the expected rows."""

import itertools

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
    event = tables.expected_event(body, expected)
    assert tables.events(pipeline.services.db) == {event["sha256"]: event}


@pytest.mark.parametrize("case", CASES)
def test_redelivery_changes_nothing_but_the_count_of_runs(pipeline: Pipeline, case: str) -> None:
    body = (PAYLOADS / f"{case}.json").read_bytes()
    pipeline.replay(body)
    first = tables.snapshot(pipeline.services.db)
    pipeline.replay(body)
    pipeline.replay(body)
    assert tables.snapshot(pipeline.services.db) == first
    event = tables.expected_event(body, load_expected(f"{case}.json"), times_processed=3)
    assert tables.events(pipeline.services.db) == {event["sha256"]: event}


@pytest.mark.parametrize("name", SEQUENCES)
def test_sequence_in_every_order(pipeline: Pipeline, name: str) -> None:
    """Out-of-order statuses: every arrival order ends in the same rows and the same counts."""
    expected = load_expected(f"sequences/{name}.json")
    bodies = _sequence(name)
    events = [tables.expected_event(body, expected) for body in bodies]
    for order in itertools.permutations(bodies):
        _reset(pipeline)
        for body in order:
            pipeline.replay(body)  # one delivery at a time: the order really is the arrival order
        tables.assert_state(pipeline.services.db, expected)
        assert tables.events(pipeline.services.db) == {e["sha256"]: e for e in events}


def test_duplicate_body_is_queued_once(pipeline: Pipeline) -> None:
    body = (PAYLOADS / "text_reply.json").read_bytes()
    assert (PAYLOADS / "duplicate_of_text.json").read_bytes() == body
    pipeline.deliver(body, body, body)
    assert pipeline.services.inbox.depth() == 1
    pipeline.drain()
    tables.assert_state(pipeline.services.db, load_expected("text_reply.json"))


def test_whole_corpus_in_one_run(pipeline: Pipeline) -> None:
    """All cases together: each case's rows as when alone, and each day's numbers the sum of the cases'."""
    files = {case: [PAYLOADS / f"{case}.json"] for case in CASES if case != "duplicate_of_text"}
    files |= {name: sorted((PAYLOADS / "sequences" / name).glob("*.json")) for name in SEQUENCES}
    expectations = {case: load_expected(f"{case}.json") for case in CASES if case in files}
    expectations |= {name: load_expected(f"sequences/{name}.json") for name in SEQUENCES}
    pipeline.replay(*(p.read_bytes() for p in sorted(PAYLOADS.rglob("*.json"))))

    wanted = tables.expected_union(list(expectations.values()))
    tables.assert_same_rows(tables.snapshot(pipeline.services.db), wanted)

    events = [
        tables.expected_event(path.read_bytes(), expectations[case])
        for case, paths in files.items()
        for path in paths
    ]
    assert tables.events(pipeline.services.db) == {e["sha256"]: e for e in events}


def _reset(pipeline: Pipeline) -> None:
    empty_tables(pipeline.services.db)
    seed(pipeline.services.db)
