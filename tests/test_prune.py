"""`wahooks prune`: old raw bodies of the chosen outcomes go and nothing else, beside a worker too."""

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, func, select, update
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

from cli.main import EXIT_USAGE, main
from cli.prune import prune
from models import WebhookEvent, WhatsAppAnalytics, WhatsAppMessage
from models.db import Database
from models.events import FAILED, IGNORED, PARTIAL, PROCESSED
from runtime.inbox import body_digest
from tests import generate
from tests.conftest import Backend, seed
from workers.jobs import process
from workers.tenants import TenantDirectory

pytestmark = pytest.mark.usefixtures("root_logging")

UNKNOWN_NUMBER = b"199999999999999"
LONG_AGO = timedelta(days=100)


@dataclass
class Stored:
    db: Database
    digests: dict[tuple[str, bool], set[str]]  # (outcome, old) -> the digests of those bodies

    def old(self, *outcomes: str) -> set[str]:
        return set().union(*(self.digests[(o, True)] for o in outcomes))

    def everything(self) -> set[str]:
        return set().union(*self.digests.values())


def digests(db: Database) -> set[str]:
    with db.session() as session:
        return set(session.scalars(select(WebhookEvent.sha256)))


def count(db: Database, model: type) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def age(db: Database, chosen: set[str], by: timedelta = LONG_AGO) -> None:
    """Make these bodies' processing `by` old."""
    with db.session() as session:
        session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.sha256.in_(chosen))
            .values(processed_at=datetime.now(UTC) - by)
        )


@pytest.fixture
def stored(seeded: Backend, monkeypatch: pytest.MonkeyPatch) -> Stored:
    """Bodies of every outcome, some processed 100 days ago and some just now, written as a worker writes."""
    monkeypatch.setenv("DATABASE_URL", seeded.db.engine.url.render_as_string(hide_password=False))
    ours = generate.bodies(8, messages_per_body=2, statuses_per_body=1).bodies
    nobodys = [b.replace(generate.PHONE_NUMBER_ID.encode(), UNKNOWN_NUMBER) for b in ours[6:]]
    broken = [b"not json 1", b"not json 2"]
    process(seeded.db, TenantDirectory(), [*ours[:6], *nobodys, *broken], job_id=None)
    by = {
        (PROCESSED, True): ours[:2],
        (PARTIAL, True): ours[2:3],
        (PARTIAL, False): ours[3:4],
        (PROCESSED, False): ours[4:6],
        (IGNORED, True): nobodys[:1],
        (IGNORED, False): nobodys[1:],
        (FAILED, True): broken[:1],
        (FAILED, False): broken[1:],
    }
    found = {key: {body_digest(b) for b in bodies} for key, bodies in by.items()}
    with seeded.db.session() as session:
        # No sample body leaves a note, so two of them are made `partial` here.
        partial = found[(PARTIAL, True)] | found[(PARTIAL, False)]
        session.execute(update(WebhookEvent).where(WebhookEvent.sha256.in_(partial)).values(outcome=PARTIAL))
        outcomes = dict(session.execute(select(WebhookEvent.sha256, WebhookEvent.outcome)).all())
    assert {o for (o, _), ds in found.items() for d in ds if outcomes[d] != o} == set()
    age(seeded.db, set().union(*(ds for (_, old), ds in found.items() if old)))
    return Stored(seeded.db, found)


def wahooks(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["prune", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("options", "outcomes"),
    [
        ((), (PROCESSED,)),
        (("--outcome", "ignored"), (IGNORED,)),
        (
            ("--outcome", "processed", "--outcome", "partial", "--outcome", "ignored"),
            (PROCESSED, PARTIAL, IGNORED),
        ),
    ],
)
def test_prune_deletes_exactly_the_old_bodies_of_its_outcomes_and_again_nothing(
    stored: Stored, capsys: pytest.CaptureFixture[str], options: tuple[str, ...], outcomes: tuple[str, ...]
) -> None:
    messages = count(stored.db, WhatsAppMessage)
    code, out, _ = wahooks(capsys, "--older-than", "90d", "--batch", "1", *options)
    gone = stored.old(*outcomes)
    assert (code, out.split()[0], out.split()[-2:]) == (0, str(len(gone)), [str(len(gone)), "batches"])
    assert digests(stored.db) == stored.everything() - gone
    assert count(stored.db, WhatsAppMessage) == messages  # only raw bodies go
    again = wahooks(capsys, "--older-than", "90d", *options)
    assert (again[0], again[1].split()[0]) == (0, "0")
    assert digests(stored.db) == stored.everything() - gone


def test_a_dry_run_counts_and_deletes_nothing(stored: Stored, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = wahooks(capsys, "--older-than", "90d", "--dry-run")
    assert (code, out.split()[0]) == (0, str(len(stored.old(PROCESSED))))
    assert "would be deleted" in out
    assert digests(stored.db) == stored.everything()


@pytest.mark.parametrize(("older_than", "kept"), [("2400h", 0), ("15w", 1), ("101d", 1), ("99d", 0)])
def test_the_age_is_counted_from_the_last_processing(
    stored: Stored, capsys: pytest.CaptureFixture[str], older_than: str, kept: int
) -> None:
    """100 days ago is older than 2,400 hours and 99 days, younger than 15 weeks and 101 days."""
    wahooks(capsys, "--older-than", older_than)
    assert len(digests(stored.db) & stored.old(PROCESSED)) == kept * len(stored.old(PROCESSED))


@pytest.mark.parametrize("older_than", ["90", "90x", "0d", "-5d", "d", "1.5d", "90 days", ""])
def test_a_bad_age_fails_naming_the_option_and_the_form(
    capsys: pytest.CaptureFixture[str], older_than: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["prune", f"--older-than={older_than}"])  # "=": an argument may start with a dash
    err = capsys.readouterr().err
    assert exit_.value.code == EXIT_USAGE
    assert "--older-than" in err
    assert "e.g. 90d, 36h, 12w" in err


def test_failed_bodies_are_never_pruned(stored: Stored) -> None:
    with pytest.raises(ValueError, match="never pruned"):
        prune(stored.db, timedelta(days=90), outcomes=(PROCESSED, FAILED))
    assert digests(stored.db) == stored.everything()


# Beside a worker, on PostgreSQL


@pytest.fixture
def impatient_worker_db(postgres_backend: Backend) -> Iterator[Database]:
    """A second engine on the same database, as a worker process has, whose statements give up on a lock
    after a second: a prune that locked it out would fail the worker's batches."""
    db = Database(postgres_backend.db.engine.url.render_as_string(hide_password=False))

    def impatient(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '1s'")

    event.listen(db.engine, "connect", impatient)
    yield db
    db.dispose()


def test_prune_beside_a_writing_worker_deletes_the_old_and_loses_or_doubles_nothing(
    postgres_backend: Backend, impatient_worker_db: Database
) -> None:
    db = postgres_backend.db
    seed(db)
    old = generate.bodies(300, messages_per_body=1, statuses_per_body=0).bodies
    process(db, TenantDirectory(), old, job_id=None)
    age(db, {body_digest(b) for b in old})
    new = generate.bodies(200, messages_per_body=1, statuses_per_body=0, start=300).bodies
    redelivered = old[::6]  # Meta's redeliveries of old bodies, some while prune deletes them
    work = [[*new[i : i + 10], *redelivered[i // 4 : i // 4 + 3]] for i in range(0, len(new), 10)]
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            tenants = TenantDirectory()
            for batch in work:
                written = process(impatient_worker_db, tenants, batch, job_id="beside-prune")
                assert not written.failures, written.failures[0].error
        except BaseException as error:  # the test thread reports it
            failures.append(error)

    thread = threading.Thread(target=worker)
    thread.start()
    pruned = prune(db, timedelta(days=90), batch=7)
    thread.join()
    assert failures == []
    kept = {body_digest(b) for b in redelivered}
    assert digests(db) == {body_digest(b) for b in new} | kept
    assert len(old) - len(kept) <= pruned.deleted <= len(old)
    assert prune(db, timedelta(days=90)).deleted == 0
    with db.session() as session:
        received = session.scalar(select(func.sum(WhatsAppAnalytics.messages_received)))
    assert received == len(old) + len(new)  # a re-stored body counted nothing twice
