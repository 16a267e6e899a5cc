"""The commands that talk to Meta's Graph API: tenants' outbound settings and tokens, `catalog sync`,
`media fetch`, and the outbound worker and its requests.

Like every command, each loads what it uses when it runs (cli/main.py): building the parser imports
nothing but argparse.
"""

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from runtime.config import WorkerConfig

if TYPE_CHECKING:
    from models.db import Database
    from outbound.config import GraphConfig
    from outbound.graph import GraphClient

Handler = Callable[[argparse.Namespace], int]
SWITCHES = {
    # option -> whatsapp_business_settings column
    "mark_read": "mark_read_on_receipt",
    "typing_indicator": "typing_indicator",
    "confirm_orders": "confirm_orders",
    "download_media": "download_media",
}
TEXTS = {
    "confirmation_text": "order_confirmation_text",
    "confirmation_template": "order_confirmation_template",
    "language": "language_code",
}


def _db() -> "Database":
    from cli.main import _db as migrated_db

    return migrated_db()


def _tenant(db: "Database", phone_number_id: str) -> tuple[int, str | None, str | None]:
    """(tenant id, its WABA id, its encrypted token) for a phone number id; TenantError when unknown."""
    from sqlalchemy import select

    from cli.tenants import TenantError
    from models import WhatsAppBusinessSettings as Settings

    with db.session() as session:
        row = session.execute(
            select(Settings.tenant_id, Settings.waba_id, Settings.access_token_encrypted).where(
                Settings.phone_number_id == phone_number_id
            )
        ).first()
    if row is None:
        raise TenantError(
            f"no tenant has phone number id {phone_number_id}: add it with `wahooks tenants add`"
        )
    return row.tenant_id, row.waba_id, row.access_token_encrypted


def _client(config: "GraphConfig", tenant_id: int, encrypted: str | None) -> "GraphClient":
    from outbound.graph import GraphClient

    return GraphClient(config.graph_url, config.tokens.for_tenant(tenant_id, encrypted))


def _update_settings(db: "Database", phone_number_id: str, values: dict[str, object]) -> None:
    from sqlalchemy import update

    from models import WhatsAppBusinessSettings as Settings

    _tenant(db, phone_number_id)
    with db.session() as session:
        session.execute(update(Settings).where(Settings.phone_number_id == phone_number_id).values(**values))


def cmd_configure(args: argparse.Namespace) -> int:
    values: dict[str, object] = {column: getattr(args, o) for o, column in SWITCHES.items()}
    values |= {column: getattr(args, o) for o, column in TEXTS.items()}
    values = {column: value for column, value in values.items() if value is not None}
    if args.confirmation_template == "":
        values["order_confirmation_template"] = None  # --confirmation-template '' goes back to the text
    if not values:
        sys.stderr.write("wahooks tenants configure: nothing to change (see --help)\n")
        return 2
    _update_settings(_db(), args.phone_number_id, values)
    print(f"{args.phone_number_id}: " + ", ".join(f"{c} = {v!r}" for c, v in sorted(values.items())))
    return 0


def cmd_set_token(args: argparse.Namespace) -> int:
    """The token is read from standard input, never from the command line (which `ps` shows)."""
    from outbound.config import GraphConfig

    db = _db()
    if args.clear:
        _update_settings(db, args.phone_number_id, {"access_token_encrypted": None})
        print(f"{args.phone_number_id}: own token removed (WHATSAPP_ACCESS_TOKEN is used)")
        return 0
    token = sys.stdin.readline().strip()
    if not token:
        sys.stderr.write("wahooks tenants set-token: give the token on standard input\n")
        return 2
    encrypted = GraphConfig.from_env().tokens.encrypt(token)
    _update_settings(db, args.phone_number_id, {"access_token_encrypted": encrypted})
    print(f"{args.phone_number_id}: token stored, encrypted")
    return 0


def cmd_rotate_tokens(args: argparse.Namespace) -> int:
    from sqlalchemy import select, update

    from models import WhatsAppBusinessSettings as Settings
    from outbound.config import GraphConfig

    tokens = GraphConfig.from_env().tokens
    with _db().session() as session:
        rows = session.execute(
            select(Settings.id, Settings.access_token_encrypted).where(
                Settings.access_token_encrypted.is_not(None)
            )
        ).all()
        for settings_id, encrypted in rows:
            rotated = tokens.rotate(encrypted or "")  # never empty: the query takes only tokens set
            session.execute(
                update(Settings).where(Settings.id == settings_id).values(access_token_encrypted=rotated)
            )
    print(f"{len(rows)} tokens re-encrypted with the first key of WAHOOKS_TOKEN_KEYS")
    return 0


def cmd_catalog_sync(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import MofNCompleteColumn, Progress

    from cli.catalog import CatalogError
    from outbound import catalog
    from outbound.config import GraphConfig

    db = _db()
    config = GraphConfig.from_env()
    tenant_id, waba_id, encrypted = _tenant(db, args.phone_number_id)
    client = _client(config, tenant_id, encrypted)
    if args.catalog_id:
        catalog_ids = [args.catalog_id]
    elif waba_id:
        catalog_ids = catalog.catalogs_of(client, waba_id)
    else:
        raise CatalogError(
            f"{args.phone_number_id} has no WABA id to find its catalogs by: give --catalog-id"
        )
    bar = Progress(*Progress.get_default_columns(), MofNCompleteColumn(), console=Console(stderr=True))

    class Bar(catalog.Progress):
        def catalog(self, catalog_id: str, size: int | None) -> None:
            self.task = bar.add_task(f"catalog {catalog_id}", total=size)

        def page(self, products: int) -> None:
            bar.advance(self.task, products)

    with bar:
        summary = catalog.sync(db, client, tenant_id, catalog_ids, Bar())
    for skipped in summary.skipped:
        print(f"skipped {skipped}")
    print(summary.line())
    return 0


def cmd_media_fetch(args: argparse.Namespace) -> int:
    from outbound import media
    from outbound.config import GraphConfig

    db = _db()
    config = GraphConfig.from_env()
    folder = args.dir or config.require_media_dir()
    with db.session() as session:
        found = media.subject(session, args.wamid)
    tenant_id, _, encrypted = _tenant(db, found.phone_number_id or "")
    client = _client(config, tenant_id, encrypted)
    info, path = media.fetch(
        client, found.media_id, found.phone_number_id, folder / str(tenant_id), config.media_max_bytes
    )
    with db.session() as session:
        media.record(session, found.message_id, info, path)
    print(f"{path} ({info.size} bytes, {info.mime_type or 'unknown type'}, sha256 {info.sha256} checked)")
    return 0


def cmd_outbound_worker(args: argparse.Namespace) -> int:
    from outbound import runner, services
    from outbound.config import OutboundConfig

    svc = services.OutboundServices.build(OutboundConfig.from_env())
    services.install(svc)
    runner.run(svc, burst=args.burst)
    return 0


def cmd_outbound_status(args: argparse.Namespace) -> int:
    from sqlalchemy import func, select

    from outbound.intents import TABLE

    with _db().session() as session:
        rows = session.execute(
            select(TABLE.c.kind, TABLE.c.state, func.count())
            .group_by(TABLE.c.kind, TABLE.c.state)
            .order_by(TABLE.c.kind, TABLE.c.state)
        ).all()
        problems = session.execute(
            select(TABLE.c.id, TABLE.c.kind, TABLE.c.state, TABLE.c.subject_wamid, TABLE.c.error)
            .where(TABLE.c.state.in_(["failed", "unknown"]))
            .order_by(TABLE.c.id.desc())
            .limit(args.limit)
        ).all()
    for kind, state, count in rows:
        print(f"{kind:20} {state:8} {count}")
    for request_id, kind, state, wamid, error in problems:
        print(f"#{request_id} {kind} {state} {wamid}: {error or '-'}")
    return 0


def cmd_outbound_retry(args: argparse.Namespace) -> int:
    """Put failed or unknown requests back on the queue. For an unknown send, that is the operator's word
    that it did not go out (no status of it arrived)."""
    from rq import Queue

    from outbound import intents
    from outbound.config import outbound_queue_name
    from outbound.hook import enqueue_requests
    from runtime.redis_client import worker_client

    reset = intents.resend(_db(), args.request_ids)
    if reset:
        redis = worker_client(WorkerConfig.from_env().redis_url)
        enqueue_requests(Queue(outbound_queue_name(), connection=redis), reset)
    print(f"{len(reset)} requests back on the queue")
    return 0


def add_tenant_commands(tenants: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = tenants.add_parser("configure", help="turn a tenant's outbound features on or off")
    p.set_defaults(handler=cmd_configure)
    p.add_argument("--phone-number-id", required=True)
    for option, what in (
        ("mark-read", "mark each new inbound message read"),
        ("typing-indicator", "with a typing indicator, for a message under 25 s old"),
        ("confirm-orders", "send each new order one confirmation"),
        ("download-media", "download each new message's media to WAHOOKS_MEDIA_DIR"),
    ):
        p.add_argument(f"--{option}", action=argparse.BooleanOptionalAction, default=None, help=what)
    p.add_argument("--confirmation-text", help="the confirmation's text: $items, $total, $name are filled in")
    p.add_argument(
        "--confirmation-template", help="an approved template to confirm with instead ('' for none)"
    )
    p.add_argument("--language", help="the template's language code (default en)")
    p = tenants.add_parser(
        "set-token", help="store a tenant's own Graph API token (read from stdin), encrypted"
    )
    p.set_defaults(handler=cmd_set_token)
    p.add_argument("--phone-number-id", required=True)
    p.add_argument("--clear", action="store_true", help="remove it: WHATSAPP_ACCESS_TOKEN is used")
    tenants.add_parser(
        "rotate-tokens", help="re-encrypt every stored token with the first WAHOOKS_TOKEN_KEYS key"
    ).set_defaults(handler=cmd_rotate_tokens)


def add_catalog_commands(catalog: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = catalog.add_parser("sync", help="read the tenant's catalogs from Meta's Graph API into the database")
    p.set_defaults(handler=cmd_catalog_sync)
    p.add_argument("--phone-number-id", required=True)
    p.add_argument("--catalog-id", help="only this catalog (default: every catalog of the tenant's WABA)")


def add_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    group = sub.add_parser("media", help="message media", description="message media")
    msub = group.add_subparsers(dest="media_command", required=True)
    p = msub.add_parser("fetch", help="download a message's media, checked against Meta's size and SHA-256")
    p.set_defaults(handler=cmd_media_fetch)
    p.add_argument("wamid")
    p.add_argument("--dir", type=Path, help="where to save it (default: WAHOOKS_MEDIA_DIR)")
    group = sub.add_parser("outbound", help="the Graph API calls made for new messages and orders")
    osub = group.add_subparsers(dest="outbound_command", required=True)
    p = osub.add_parser("worker", help="run the outbound queue's worker (DATABASE_URL, REDIS_URL)")
    p.set_defaults(handler=cmd_outbound_worker)
    p.add_argument("--burst", action="store_true", help="stop when the queue is empty")
    p = osub.add_parser("status", help="outbound requests by kind and state, and the last failed or unknown")
    p.set_defaults(handler=cmd_outbound_status)
    p.add_argument("--limit", type=int, default=20)
    p = osub.add_parser("retry", help="put failed or unknown requests back on the queue")
    p.set_defaults(handler=cmd_outbound_retry)
    p.add_argument("request_ids", nargs="+", type=int)
