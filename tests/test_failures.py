"""A body that cannot be processed never holds back its batch, says why, and ends in RQ's failed registry."""

from rq import Queue
from rq.job import Job
from sqlalchemy import select

from models import WebhookEvent
from runtime.inbox import body_digest
from tests import tables
from tests.conftest import PAYLOADS, Pipeline, load_expected
from workers.jobs import job_data

BROKEN = b'["a JSON array is not a webhook"]'


def _event(pipeline: Pipeline, body: bytes) -> WebhookEvent:
    with pipeline.services.db.session() as session:
        return session.scalars(select(WebhookEvent).where(WebhookEvent.sha256 == body_digest(body))).one()


def _enqueue(queue: Queue, bodies: list[bytes]) -> None:
    queue.enqueue_many([job_data(bodies)])


def _exhaust_retries(queue: Queue) -> Job:
    """Make the pending retry the last one and run it now, as the retry schedule eventually would."""
    (job_id,) = queue.scheduled_job_registry.get_job_ids() + queue.get_job_ids()
    job = Job.fetch(job_id, connection=queue.connection)
    job.retries_left = 0
    job.save()
    if job_id in queue.scheduled_job_registry:
        queue.scheduled_job_registry.remove(job)
        queue.enqueue_job(job)
    return job


def test_bad_body_is_split_out_and_its_siblings_complete(pipeline: Pipeline) -> None:
    good = (PAYLOADS / "text_reply.json").read_bytes()
    queue = pipeline.services.queue
    _enqueue(queue, [BROKEN, good])
    pipeline.drain()
    tables.assert_state(pipeline.services.db, load_expected("text_reply.json"))
    failed = _event(pipeline, BROKEN)
    assert failed.outcome == "failed"
    assert failed.error is not None and "NotAWebhook" in failed.error
    # The bad body now has a job of its own, waiting for its retry (or already due and queued again).
    waiting = queue.scheduled_job_registry.get_job_ids() + queue.get_job_ids()
    assert [Job.fetch(j, connection=queue.connection).args for j in waiting] == [([BROKEN],)]


def test_a_body_out_of_retries_lands_in_the_failed_registry(pipeline: Pipeline) -> None:
    queue = pipeline.services.queue
    _enqueue(queue, [BROKEN])
    pipeline.drain()
    job = _exhaust_retries(queue)
    pipeline.drain()
    assert queue.failed_job_registry.get_job_ids() == [job.id]
    job.refresh()
    assert "BodyFailed" in (job.exc_info or "")
    assert _event(pipeline, BROKEN).outcome == "failed"
