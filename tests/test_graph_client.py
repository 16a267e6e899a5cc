"""The Graph API client against a fake Graph API on loopback: retries, throttling waits, typed errors,
timeouts, what may and may not be retried, paging, and where the token goes."""

import json
import random
import socket

import pytest

from outbound.graph import (
    GraphClient,
    GraphProtocolError,
    GraphUnavailable,
    OutcomeUnknown,
    PermanentGraphError,
    RetryPolicy,
    ThrottledError,
    TransientGraphError,
    Usage,
    retry_after_seconds,
)
from tests.fake_graph import Failure, FakeGraph, error_body

TOKEN = "EAAG-client-test-token-7f3a"
MESSAGES = "/100000000000001/messages"
READ = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.X"}


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def client(
    graph: FakeGraph, sleeps: Sleeps, url: str | None = None, read_timeout: float = 5.0
) -> GraphClient:
    return GraphClient(
        url or graph.url, TOKEN, sleep=sleeps, rng=random.Random(7), timeout=(1.0, read_timeout)
    )


def test_a_call_carries_the_token_in_its_header_only(graph: FakeGraph, sleeps: Sleeps) -> None:
    assert client(graph, sleeps).post(MESSAGES, READ, repeatable=True) == {"success": True}
    assert graph.tokens == {f"Bearer {TOKEN}"}
    assert all(TOKEN not in path for _, path, _ in graph.requests)
    assert sleeps == []


def test_a_5xx_is_retried_with_backoff_then_succeeds(graph: FakeGraph, sleeps: Sleeps) -> None:
    graph.fail(MESSAGES, Failure(500, error_body(2, "Service temporarily unavailable")), Failure(503, None))
    assert client(graph, sleeps).post(MESSAGES, READ, repeatable=True) == {"success": True}
    assert len(graph.calls("POST", MESSAGES)) == 3
    policy = RetryPolicy()
    # Equal jitter: each wait is between half its step and the step, so never a tight loop.
    assert policy.base_seconds / 2 <= sleeps[0] <= policy.base_seconds
    assert policy.base_seconds <= sleeps[1] <= 2 * policy.base_seconds


def test_throttling_waits_as_long_as_retry_after_says(graph: FakeGraph, sleeps: Sleeps) -> None:
    graph.fail(MESSAGES, Failure(429, error_body(130429, "Rate limit hit"), {"Retry-After": "2"}))
    client(graph, sleeps).post(MESSAGES, READ, repeatable=True)
    assert sleeps == [2.0]


def test_a_throttle_longer_than_a_worker_sleeps_is_handed_to_the_caller(
    graph: FakeGraph, sleeps: Sleeps
) -> None:
    usage = {
        "200000000000001": [
            {
                "type": "whatsapp",
                "call_count": 100,
                "total_cputime": 40,
                "total_time": 60,
                "estimated_time_to_regain_access": 3,
            }
        ]
    }
    graph.fail(
        MESSAGES,
        Failure(
            400, error_body(80007, "Rate limit issues"), {"X-Business-Use-Case-Usage": json.dumps(usage)}
        ),
    )
    with pytest.raises(ThrottledError) as raised:
        client(graph, sleeps).post(MESSAGES, READ, repeatable=False)
    assert raised.value.wait_seconds == 180.0  # Meta's minutes
    assert raised.value.code == 80007
    assert sleeps == [] and len(graph.calls("POST", MESSAGES)) == 1


def test_pair_rate_limit_on_a_send_is_retried_meta_refused_it(graph: FakeGraph, sleeps: Sleeps) -> None:
    graph.fail(MESSAGES, Failure(400, error_body(131056, "Pair rate limit hit")))
    send = {"messaging_product": "whatsapp", "to": "1555", "type": "text", "text": {"body": "hi"}}
    answer = client(graph, sleeps).post(MESSAGES, send, repeatable=False)
    assert answer["messages"][0]["id"].startswith("wamid.")
    assert len(graph.sends) == 2 and len(sleeps) == 1


def test_a_permanent_error_is_typed_and_never_retried(graph: FakeGraph, sleeps: Sleeps) -> None:
    body = error_body(131047, "Re-engagement message", subcode=2494010)
    body["error"]["error_data"] = {
        "messaging_product": "whatsapp",
        "details": "More than 24 hours have passed",
    }
    graph.fail(MESSAGES, Failure(400, body))
    with pytest.raises(PermanentGraphError) as raised:
        client(graph, sleeps).post(MESSAGES, READ, repeatable=True)
    error = raised.value
    assert (error.status, error.code, error.subcode, error.fbtrace_id) == (400, 131047, 2494010, "AbCdEf")
    assert str(error) == (
        "Graph API error 131047/2494010: Re-engagement message (More than 24 hours have passed)"
        " [HTTP 400, fbtrace_id AbCdEf]"
    )
    assert TOKEN not in str(error) and "Re-engagement" not in error.summary
    assert len(graph.calls("POST", MESSAGES)) == 1 and sleeps == []


def test_retries_are_bounded(graph: FakeGraph, sleeps: Sleeps) -> None:
    graph.fail(MESSAGES, *[Failure(500, error_body(1, "An unknown error occurred"))] * 10)
    with pytest.raises(TransientGraphError):
        client(graph, sleeps).post(MESSAGES, READ, repeatable=True)
    assert len(graph.calls("POST", MESSAGES)) == RetryPolicy().attempts
    assert len(sleeps) == RetryPolicy().attempts - 1


def test_a_send_that_got_a_5xx_may_have_gone_out_and_is_not_retried(graph: FakeGraph, sleeps: Sleeps) -> None:
    graph.fail(MESSAGES, Failure(500, error_body(131000, "Something went wrong")))
    with pytest.raises(OutcomeUnknown):
        client(graph, sleeps).post(MESSAGES, {"type": "text"}, repeatable=False)
    assert len(graph.calls("POST", MESSAGES)) == 1


def test_timeouts(graph: FakeGraph, sleeps: Sleeps) -> None:
    graph.fail(MESSAGES, *[Failure(200, {"success": True}, delay=0.6)] * 5)
    with pytest.raises(OutcomeUnknown):  # a send that timed out: Meta may have it
        client(graph, sleeps, read_timeout=0.2).post(MESSAGES, {"type": "text"}, repeatable=False)
    assert len(graph.calls("POST", MESSAGES)) == 1
    with pytest.raises(GraphUnavailable):  # a repeatable call is retried, within bounds
        client(graph, sleeps, read_timeout=0.2).post(MESSAGES, READ, repeatable=True)
    assert len(graph.calls("POST", MESSAGES)) == 1 + RetryPolicy().attempts


def test_a_connection_never_made_is_retried_even_for_a_send(sleeps: Sleeps) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = GraphClient(f"http://127.0.0.1:{port}/v26.0", TOKEN, sleep=sleeps, timeout=(0.5, 0.5))
    with pytest.raises(GraphUnavailable) as raised:
        dead.post(MESSAGES, {"type": "text"}, repeatable=False)
    assert len(sleeps) == RetryPolicy().attempts - 1
    assert TOKEN not in str(raised.value)


def test_pages_follow_the_cursors_to_the_end(graph: FakeGraph, sleeps: Sleeps) -> None:
    graph.catalog("300", 250, lambda i: {"id": str(i), "retailer_id": f"R{i}"})
    pages = list(client(graph, sleeps).pages("300/products", {"fields": "id,retailer_id", "limit": "100"}))
    assert [len(p) for p in pages] == [100, 100, 50]
    assert [p["retailer_id"] for page in pages for p in page] == [f"R{i}" for i in range(250)]
    afters = [path for m, path, _ in graph.requests if path.endswith("/products")]
    assert len(afters) == 3


def test_an_answer_that_is_not_meta_s_shape_is_a_protocol_error(graph: FakeGraph, sleeps: Sleeps) -> None:
    graph.fail("/300/products", Failure(200, {"items": []}))
    with pytest.raises(GraphProtocolError):
        list(client(graph, sleeps).pages("300/products", {}))


def test_the_token_is_never_sent_to_a_host_that_is_not_meta_s(graph: FakeGraph, sleeps: Sleeps) -> None:
    with pytest.raises(GraphProtocolError, match="refusing"):
        client(graph, sleeps).open_download("https://attacker.example/steal")
    assert graph.requests == []


@pytest.mark.parametrize(
    ("headers", "usage"),
    [
        ({}, Usage()),
        ({"X-App-Usage": '{"call_count":28,"total_time":25,"total_cputime":95}'}, Usage(95.0, None)),
        (
            {
                "X-Business-Use-Case-Usage": json.dumps(
                    {
                        "1": [{"call_count": 12, "total_time": 4, "estimated_time_to_regain_access": 0}],
                        "2": [{"type": "whatsapp", "call_count": 100, "estimated_time_to_regain_access": 2}],
                    }
                )
            },
            Usage(100.0, 120.0),
        ),
        ({"X-App-Usage": "not json", "X-Business-Use-Case-Usage": '{"1": "odd"}'}, Usage()),
    ],
)
def test_usage_headers(headers: dict[str, str], usage: Usage) -> None:
    assert Usage.parse(headers) == usage


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: no wait
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
