"""Metrics: the web's request counters (summed over the Procfile's processes), the queues' sizes, and a
worker's bodies, events, lag and analytics increments, served by its own exporter."""

import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
import requests
from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue

from models.analytics import COUNTERS
from runtime.config import ConfigError, WebConfig, metrics_port
from runtime.inbox import Inbox
from runtime.redis_client import web_client
from tests import tables
from tests.conftest import PAYLOADS, SECRET, VERIFY_TOKEN, Backend, Pipeline, seed
from tests.processes import free_port, wait_until
from tests.test_procfile import launch, stop, web_process
from tests.test_webhook import json_of_size, real_redis, signed
from webhook.app import create_app
from workers.jobs import job_data
from workers.parse import parse

__all__ = ["real_redis"]  # the fixture: the real Redis of the run, emptied before and after
TOKEN = "metrics-token-for-the-tests"
LIMIT = 16 * 1024
TEXT = (PAYLOADS / "text_reply.json").read_bytes()
SAMPLES = [
    (PAYLOADS / name).read_bytes()
    for name in (
        "batched_mixed.json",
        "text_reply.json",
        "order_known_products.json",
        "partial_unknown_and_no_metadata.json",
        "no_metadata.json",
        "midnight_straddle.json",
    )
]
OUTCOMES = ("accepted", "duplicate", "bad_signature", "bad_body", "too_large", "redis_unavailable")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples_of(families: Iterable[Metric]) -> Samples:
    """Every sample of these metrics, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in families
        for sample in family.samples
    }


def parsed(text: str) -> Samples:
    return samples_of(text_string_to_metric_families(text))


def requests_by_outcome(samples: Samples) -> dict[str, float]:
    return {
        dict(labels)["outcome"]: value
        for (name, labels), value in samples.items()
        if name == "wahooks_webhook_requests_total"
    }


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# The web, in this process


@pytest.fixture
def web_config() -> WebConfig:
    return WebConfig(
        redis_url="redis://unused",
        app_secrets=(SECRET,),
        verify_token=VERIFY_TOKEN,
        queue=f"metrics-{uuid.uuid4().hex[:6]}",
        max_body_bytes=LIMIT,
        metrics_token=TOKEN,
    )


@pytest.fixture
def up(web_config: WebConfig, real_redis: redis.Redis) -> FlaskClient:
    return create_app(web_config, redis=real_redis).test_client()


@pytest.fixture
def down(web_config: WebConfig) -> FlaskClient:
    """The app with the production web client pointing at a Redis that is not there."""
    return create_app(web_config, redis=web_client(f"redis://127.0.0.1:{free_port()}/0")).test_client()


def scrape(client: FlaskClient) -> Samples:
    response = client.get("/metrics", headers=bearer())
    assert response.status_code == 200
    return parsed(response.get_data(as_text=True))


def post(client: FlaskClient, body: bytes, secret: str = SECRET) -> int:
    return client.post("/webhook", data=body, headers=signed(body, secret)).status_code


# Each outcome: the client it needs, the request (after any that set the scene), the status it answers.
REQUESTS: dict[str, tuple[str, Callable[[FlaskClient], int], int]] = {
    "accepted": ("up", lambda c: post(c, TEXT), 200),
    "duplicate": ("up", lambda c: post(c, TEXT), 200),
    "bad_signature": ("up", lambda c: post(c, TEXT, secret="not-the-secret"), 403),
    "bad_body": ("up", lambda c: post(c, b"[1, 2]"), 400),
    "too_large": ("up", lambda c: post(c, json_of_size(LIMIT + 1)), 413),
    "redis_unavailable": ("down", lambda c: post(c, TEXT), 503),
}


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_each_answer_to_a_post_counts_once_under_its_outcome(
    outcome: str, request: pytest.FixtureRequest
) -> None:
    which, send, status = REQUESTS[outcome]
    client: FlaskClient = request.getfixturevalue(which)
    if outcome == "duplicate":
        assert post(client, TEXT) == 200  # the first copy, still waiting when its twin arrives
    before = requests_by_outcome(scrape(client))
    assert send(client) == status
    after = requests_by_outcome(scrape(client))
    assert set(after) == set(OUTCOMES)  # every outcome is shown from the start, at zero if need be
    assert {o: after[o] - before[o] for o in OUTCOMES} == {o: float(o == outcome) for o in OUTCOMES}


@pytest.mark.parametrize(
    "headers", [{}, bearer("wrong-token"), {"Authorization": TOKEN}], ids=["none", "wrong", "not-bearer"]
)
def test_metrics_are_not_found_without_the_token(up: FlaskClient, headers: dict[str, str]) -> None:
    response = up.get("/metrics", headers=headers)
    assert response.status_code == 404
    assert b"wahooks_" not in response.data


def test_metrics_are_not_found_when_no_token_is_configured(
    web_config: WebConfig, real_redis: redis.Redis
) -> None:
    app = create_app(WebConfig(web_config.redis_url, web_config.app_secrets, VERIFY_TOKEN), redis=real_redis)
    assert app.test_client().get("/metrics", headers=bearer("")).status_code == 404


def test_the_queues_sizes_are_read_from_redis_when_scraped(
    up: FlaskClient, web_config: WebConfig, real_redis: redis.Redis
) -> None:
    for number in range(3):
        assert post(up, b'{"n": %d}' % number) == 200
    queue = Queue(web_config.queue, connection=real_redis)
    jobs = queue.enqueue_many([job_data([b"{}"]), job_data([b"{}"])])
    queue.failed_job_registry.add(jobs[0], ttl=60)
    label = frozenset({("queue", web_config.queue)})
    samples = scrape(up)
    assert samples[("wahooks_inbox_depth", label)] == Inbox(real_redis, web_config.queue).depth() == 3
    assert samples[("wahooks_queue_jobs", label)] == queue.count == 2
    assert samples[("wahooks_failed_jobs", label)] == 1


def test_a_scrape_with_redis_down_still_shows_the_counters(down: FlaskClient) -> None:
    assert post(down, TEXT) == 503
    samples = scrape(down)
    assert requests_by_outcome(samples)["redis_unavailable"] >= 1
    assert not any(name == "wahooks_inbox_depth" for name, _ in samples)


# The fields that name people, phone numbers and messages (long values only: an "id" may be short).
PRIVATE = re.compile(
    rb'"(?:wa_id|from|recipient_id|phone_number_id|display_phone_number|id)"\s*:\s*"([^"]{8,})"'
)


def private_strings(body: bytes) -> set[str]:
    """What a payload holds that must never become a label: phone numbers, user ids and wamids."""
    return {value.decode() for value in PRIVATE.findall(body)}


def test_no_secret_or_phone_number_or_wamid_is_ever_shown(up: FlaskClient) -> None:
    for body in SAMPLES:
        post(up, body)
    text = up.get("/metrics", headers=bearer()).get_data(as_text=True)
    hidden = {SECRET, VERIFY_TOKEN, TOKEN}.union(*(private_strings(body) for body in SAMPLES))
    assert len(hidden) > 10  # the samples do hold phone numbers and wamids
    assert [value for value in hidden if value in text] == []


# The Procfile's web: its processes' counters summed


@pytest.fixture
def multiprocess_directory(tmp_path: Path) -> Path:
    directory = tmp_path / "metrics"
    directory.mkdir()
    return directory


@pytest.mark.slow
def test_a_scrape_of_the_procfile_web_counts_the_requests_every_process_answered(
    redis_url: str, real_redis: redis.Redis, tmp_path: Path, multiprocess_directory: Path
) -> None:
    settings = {"METRICS_TOKEN": TOKEN, "PROMETHEUS_MULTIPROC_DIR": str(multiprocess_directory)}
    with web_process(redis_url, tmp_path / "web.log", **settings) as web:
        bodies = [b'{"n": %d}' % n for n in range(200)]
        with ThreadPoolExecutor(16) as pool:  # concurrent connections: both processes answer some
            statuses = [response.status_code for response in pool.map(web.post, bodies)]
        assert statuses == [200] * len(bodies)
        per_process = [
            requests_by_outcome(samples_of(MultiProcessCollector.merge([str(f)])))["accepted"]
            for f in multiprocess_directory.glob("counter_*.db")
        ]
        assert sum(1 for count in per_process if count) == 2, "one process answered every request"
        metrics_url = f"http://127.0.0.1:{web.port}/metrics"
        for _ in range(6):  # each scrape is answered by one process or the other: each sums both
            text = requests.get(metrics_url, headers=bearer(), timeout=5).text
            assert requests_by_outcome(parsed(text))["accepted"] == len(bodies)
        assert requests.get(metrics_url, timeout=5).status_code == 404


# A worker: what it processed, its lag, its analytics increments


def worker_sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def worker_counts() -> dict[str, float]:
    """The worker metrics of this process (the pipeline's worker runs in it)."""
    counts = {
        f"bodies {outcome}": worker_sample("wahooks_bodies_processed_total", outcome=outcome)
        for outcome in ("processed", "partial", "ignored", "failed")
    }
    counts |= {
        f"events {outcome}": worker_sample("wahooks_events_processed_total", outcome=outcome)
        for outcome in ("applied", "set_aside", "failed")
    }
    counts |= {
        f"increments {c}": worker_sample("wahooks_analytics_increments_total", counter=c) for c in COUNTERS
    }
    counts["lag"] = worker_sample("wahooks_lag_seconds_count")
    counts["batches"] = worker_sample("wahooks_batch_processing_seconds_count")
    counts["body times"] = worker_sample("wahooks_body_processing_seconds_count")
    return counts


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {key: after[key] - before[key] for key in after if after[key] != before[key]}


def test_a_worker_counts_what_it_processed_as_the_tables_record_it(pipeline: Pipeline) -> None:
    before = worker_counts()
    pipeline.replay(*SAMPLES)
    counted = delta(before, worker_counts())
    db = pipeline.services.db
    updates = sum(change.update_count for body in SAMPLES for change in parse(body).changes)
    outcomes = Counter(tables.outcomes(db).values())
    increments = Counter()
    for days in tables.analytics(db).values():
        for counters in days.values():
            increments.update({c: n for c, n in counters.items() if c in COUNTERS})
    assert {o: counted.get(f"bodies {o}", 0) for o in outcomes} == dict(outcomes)
    assert counted["events applied"] + counted.get("events set_aside", 0) == updates
    assert counted["events set_aside"] > 0  # the unknown phone number's and the metadata-less updates
    assert {c: counted.get(f"increments {c}", 0) for c in increments} == dict(increments)
    assert sum(v for k, v in counted.items() if k.startswith("increments")) == sum(increments.values())
    assert counted["lag"] == updates
    assert counted["body times"] == len(SAMPLES)
    assert 1 <= counted["batches"] <= len(SAMPLES)


def test_a_redelivered_body_counts_no_analytics_increment_twice(pipeline: Pipeline) -> None:
    pipeline.replay(*SAMPLES)
    before = worker_counts()
    pipeline.replay(*SAMPLES)
    counted = delta(before, worker_counts())
    assert not any(key.startswith("increments") for key in counted)
    assert counted["bodies processed"] + counted.get("bodies partial", 0) + counted.get(
        "bodies ignored", 0
    ) == len(SAMPLES)


# A worker process: its own exporter


@pytest.mark.slow
def test_a_worker_process_serves_its_metrics_on_its_port(
    postgres_backend: Backend, tmp_path: Path, redis_url: str
) -> None:
    seed(postgres_backend.db)
    port = free_port()
    with web_process(redis_url, tmp_path / "web.log") as web:
        worker_env = {
            "REDIS_URL": redis_url,
            "DATABASE_URL": postgres_backend.db.engine.url.render_as_string(hide_password=False),
            "WAHOOKS_QUEUE": web.queue,
            "WAHOOKS_METRICS_PORT": str(port),
        }
        worker = launch("worker", worker_env, tmp_path / "worker.log")
        try:
            for body in SAMPLES:
                assert web.post(body).status_code == 200
            wait_until(
                lambda: len(tables.outcomes(postgres_backend.db)) == len(SAMPLES), 30, "the bodies stored"
            )
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        finally:
            stop(worker)
    samples = parsed(text)
    bodies = sum(v for (name, _), v in samples.items() if name == "wahooks_bodies_processed_total")
    assert bodies == len(SAMPLES)
    hidden = {SECRET, VERIFY_TOKEN}.union(*(private_strings(body) for body in SAMPLES))
    # Names, labels and help texts only: a sample's float (0.100000000000002) may hold any digits.
    words = "\n".join(line.rsplit(" ", 1)[0] for line in text.splitlines())
    assert [value for value in hidden if value in words] == []


# Configuration


@pytest.mark.parametrize("value", ["nine", "0", "-1", "65536"])
def test_a_bad_metrics_port_is_named(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^WAHOOKS_METRICS_PORT "):
        metrics_port({"WAHOOKS_METRICS_PORT": value})


def test_no_metrics_port_means_no_exporter() -> None:
    assert metrics_port({}) is None


def test_a_metrics_directory_that_is_not_there_is_named(tmp_path: Path) -> None:
    env = {
        "REDIS_URL": "redis://localhost:6379/0",
        "WHATSAPP_APP_SECRET": SECRET,
        "WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "missing"),
    }
    with pytest.raises(ConfigError, match=r"^PROMETHEUS_MULTIPROC_DIR "):
        WebConfig.from_env(env)
