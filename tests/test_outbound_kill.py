"""A real outbound worker (the Procfile's `outbound:` line) SIGKILLed after Meta took a send and before its
answer was recorded: no second send. The replacement worker finds the request still `sending` under the
same RQ job (reaped from the dead worker's lease and retried), marks it `unknown`, and its sweeper
settles it from the status webhook that carries the send's `biz_opaque_callback_data`."""

import sys
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import select

from models import OutboundRequest
from outbound import reconcile
from outbound.tokens import Tokens
from tests.conftest import Backend
from tests.fake_graph import FakeGraph, body, order_message, status
from tests.processes import wait_until
from tests.test_outbound import ORDER_ITEMS, PNID, TOKEN, Outbound
from throwaway import Child, procfile_command, start, stop_all

pytestmark = pytest.mark.slow


def request_of(outbound: Outbound) -> OutboundRequest:
    with outbound.backend.db.session() as session:
        return session.scalars(select(OutboundRequest)).one()


def test_a_send_is_never_made_twice_when_its_worker_dies_mid_call(
    postgres_url: str, postgres_backend: Backend, graph: FakeGraph, tmp_path: Path
) -> None:
    outbound = Outbound(postgres_backend, graph, tmp_path, Tokens(default=TOKEN))
    outbound.configure(confirm_orders=True)
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",  # `wahooks`, as the Procfile names it
        "DATABASE_URL": postgres_url,
        "REDIS_URL": postgres_backend.redis_url,
        "WAHOOKS_QUEUE": outbound.pipeline.services.queue.name,
        "WHATSAPP_GRAPH_URL": graph.url,
        "WHATSAPP_ACCESS_TOKEN": TOKEN,
        "LOG_LEVEL": "INFO",
    }
    logs = Path(tempfile.mkdtemp(prefix="wahooks-outbound-"))
    children: list[Child] = []

    def worker(name: str) -> Child:
        """The Procfile's `outbound:` line, as a platform runs it."""
        children.append(start(name, procfile_command("outbound", env), env, logs / f"{name}.log"))
        return children[-1]

    try:
        with graph.hold_sends():
            outbound.pipeline.replay(body(PNID, messages=[order_message("wamid.ORDER-KILL", ORDER_ITEMS)]))
            first = worker("first")
            assert graph.send_arrived.wait(30), first.log_tail()
            assert request_of(outbound).state == "sending"
            first.kill()  # Meta has the send; no worker will ever read its answer
        second = worker("second")
        wait_until(
            lambda: request_of(outbound).state == "unknown", 40, "the retried job to find the send in doubt"
        )
        assert len(graph.sends) == 1
        request = request_of(outbound)
        callback = reconcile.callback_data(request.id)
        outbound.pipeline.replay(body(PNID, statuses=[status("wamid.FAKE-SENT-1", "sent", callback)]))
        wait_until(lambda: request_of(outbound).state == "done", 20, "the sweeper to reconcile the send")
        assert request_of(outbound).result_wamid == "wamid.FAKE-SENT-1"
        assert len(graph.sends) == 1, second.log_tail()
    finally:
        stop_all(children, grace_seconds=10)
