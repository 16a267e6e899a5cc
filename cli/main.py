"""`wahooks`: migrate, run a worker, manage tenants and catalogs, replay payloads, recover failures."""

import argparse
import os
import sys
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli import outbound as outbound_commands  # its parser imports nothing but argparse
from runtime import logs
from runtime.config import ConfigError, WorkerConfig, database_url

# Each command imports what it uses when it runs, so that every command starts on the runtime dependencies
# alone and loads nothing it does not need; `wahooks dev` is the one that needs the [embedded] extra.
if TYPE_CHECKING:
    from rq import Queue

    from models.db import Database

EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EMBEDDED_EXTRA = "pip install 'wahooks[embedded]'"


def _db() -> "Database":
    from models.db import Database

    db = Database(database_url())
    db.check_schema()
    return db


def cmd_migrate(args: argparse.Namespace) -> int:
    from cli.migrate import upgrade

    upgrade(database_url(), sql=args.sql)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from rq import Queue

    from outbound import hook as outbound_hook
    from outbound.config import outbound_queue_name
    from workers import runner, services

    svc = services.Services.build(WorkerConfig.from_env())
    services.install(svc)
    # New messages' Graph API requests go to the outbound queue once their batch commits.
    outbound_hook.install(Queue(outbound_queue_name(), connection=svc.redis))
    runner.run(svc, burst=args.burst)
    return 0


def cmd_tenants_add(args: argparse.Namespace) -> int:
    from cli import tenants

    new = tenants.NewTenant(args.name, args.phone_number_id, args.waba_id, args.display_phone_number)
    print(f"tenant {tenants.add(_db(), new)} added: {args.name} ({args.phone_number_id})")
    return 0


def cmd_tenants_list(args: argparse.Namespace) -> int:
    from cli import tenants

    rows = tenants.listing(_db())
    print(f"{'id':>4}  {'name':24} {'phone_number_id':18} {'waba_id':18} {'display':16} active")
    for tid, name, pnid, waba, display, active in rows:
        print(
            f"{tid:>4}  {name:24} {pnid:18} {waba or '-':18} {display or '-':16} {'yes' if active else 'no'}"
        )
    return 0


def cmd_api_keys_create(args: argparse.Namespace) -> int:
    from api import keys

    made = keys.create(_db(), args.tenant, args.name)
    print(f"API key {made.id} for {made.tenant} ({made.name}); it is shown this once, keep it secret:")
    print(made.key)
    return 0


def cmd_api_keys_list(args: argparse.Namespace) -> int:
    from api import keys

    print(f"{'id':>4}  {'tenant':24} {'name':24} {'key':16} {'created':20} {'last used':20} revoked")
    for k in keys.listing(_db(), args.tenant):
        print(
            f"{k.id:>4}  {k.tenant:24} {k.name:24} {k.prefix + '…':16} {_when(k.created_at):20}"
            f" {_when(k.last_used_at):20} {_when(k.revoked_at)}"
        )
    return 0


def cmd_api_keys_revoke(args: argparse.Namespace) -> int:
    from api import keys

    revoked = keys.revoke(_db(), args.key_id)
    print(f"API key {revoked.id} of {revoked.tenant} ({revoked.name}) revoked at {_when(revoked.revoked_at)}")
    return 0


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else "-"


def cmd_catalog_import(args: argparse.Namespace) -> int:
    from cli import catalog

    result = catalog.import_catalog(_db(), args.phone_number_id, args.catalog_id, args.file)
    print(f"catalog {args.catalog_id}: {result.created} products created, {result.updated} updated")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from cli import replay

    secret = args.secret or os.environ.get("WHATSAPP_APP_SECRET", "").split(",")[0].strip()
    if not secret:
        raise ConfigError(
            "WHATSAPP_APP_SECRET is not set and no --secret was given: replay must sign its posts"
        )
    files = replay.payload_files(args.paths)
    counts = replay.replay(args.url, files, secret, concurrency=args.concurrency)
    print("  ".join(f"{status}: {n}" for status, n in sorted(counts.items())) or "no files")
    return 0 if all(status.startswith("2") for status in counts) else 1


def _queue() -> "Queue":
    """The processing queue, without the database engine a whole worker's services would build."""
    from rq import Queue

    from runtime.redis_client import worker_client

    config = WorkerConfig.from_env()
    return Queue(config.queue, connection=worker_client(config.redis_url))


def cmd_failed(args: argparse.Namespace) -> int:
    from cli import failures

    jobs = failures.failed_jobs(_queue())
    for job in jobs:
        ended = job.ended_at.isoformat(timespec="seconds") if job.ended_at else "-"
        print(f"{job.id}  {ended}  {job.bodies} bodies  {job.error}")
    print(f"{len(jobs)} failed jobs")
    return 0


def cmd_requeue_failed(args: argparse.Namespace) -> int:
    from cli import failures

    print(f"{failures.requeue(_queue(), args.job_ids)} jobs requeued")
    return 0


def cmd_reprocess(args: argparse.Namespace) -> int:
    from cli import failures
    from workers.tenants import TenantDirectory

    config = WorkerConfig.from_env(
        dict(os.environ, REDIS_URL=os.environ.get("REDIS_URL") or "redis://unused")
    )
    directory = TenantDirectory(config.default_phone_number_id, config.default_business_name)
    counts = failures.reprocess(_db(), directory, include_processed=args.all, since=args.since)
    print("  ".join(f"{outcome}: {n}" for outcome, n in sorted(counts.items())) or "nothing to reprocess")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from cli import prune

    db = _db()
    try:
        done = prune.prune(
            db, args.older_than, args.outcome or prune.DEFAULT_OUTCOMES, args.batch, args.dry_run
        )
    finally:
        db.dispose()
    before = done.cutoff.isoformat(timespec="seconds")
    if args.dry_run:
        print(f"{done.deleted} bodies processed before {before} would be deleted (dry run)")
    else:
        print(f"{done.deleted} bodies processed before {before} deleted in {done.batches} batches")
    return 0


def _age(text: str) -> timedelta:
    from cli.prune import parse_age

    try:
        return parse_age(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def cmd_analytics(args: argparse.Namespace) -> int:
    from cli import analytics

    db = _db()
    try:
        result = analytics.report(db, args.tenant, args.since, args.until)
    finally:
        db.dispose()
    analytics.show(result, args.format)
    if args.chart:
        from cli import charts  # matplotlib, loaded only for a chart

        for path in charts.write(args.chart, result):
            sys.stderr.write(f"chart: {path}\n")  # stdout stays the report alone, for a pipe
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from cli import doctor

    results = doctor.diagnose(os.environ)
    print(doctor.as_json(results) if args.json else doctor.as_text(results))
    return doctor.exit_status(results, strict=args.strict)


CONSOLE_THREADS = 4  # requests in flight at once: a page and its chart for a couple of operators


def cmd_console(args: argparse.Namespace) -> int:
    from runtime.config import ConsoleConfig
    from webhook import serve  # granian's command line, its lines in the app's log format

    ConsoleConfig.from_env()  # off unless CONSOLE_TOKEN is set: refused here, naming it
    _db().dispose()  # reachable and migrated, said once, before the port is bound
    serve.main(
        [
            "--interface", "wsgi", "--no-ws", "--workers", "1",
            "--blocking-threads", str(CONSOLE_THREADS), "--workers-kill-timeout", "5",
            "--host", args.host, "--port", str(args.port),
            "console.wsgi:app",
        ]
    )  # fmt: skip
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    try:
        from cli import embedded
    except ModuleNotFoundError as error:
        if error.name != "fakeredis":
            raise
        sys.stderr.write(f"wahooks dev: the in-process Redis it runs on is not installed: {EMBEDDED_EXTRA}\n")
        return EXIT_USAGE
    url = args.database_url or embedded.default_database_url()
    if not args.demo:
        embedded.serve(url, 8000 if args.port is None else args.port)
        return 0
    result = embedded.demo(url, args.port or 0)
    _print_demo(result)
    return 0


def _print_demo(result: dict[str, Any]) -> None:
    print("\nHTTP answers: " + "  ".join(f"{k}: {v}" for k, v in sorted(result["http"].items())))
    print("\nwebhook_events by outcome: " + "  ".join(f"{o}: {n}" for o, n in result["events"]))
    print("\nwhatsapp_messages by direction and type:")
    for direction, message_type, n in result["messages"]:
        print(f"  {direction:9} {message_type:22} {n}")
    print("\nwhatsapp_orders:")
    for wamid, total in result["orders"]:
        print(f"  {wamid:48} {total}")
    print("\nwhatsapp_analytics (tenant, date, received, sent, delivered, read, failed, orders, revenue):")
    for row in result["analytics"]:
        print("  " + "  ".join(str(v) for v in row))
    print("\nanalytics charts (wahooks analytics --chart):")
    for path in result["charts"]:
        print(f"  {path}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wahooks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(
        name: str, handler: Callable[[argparse.Namespace], int], help: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(handler=handler)
        return p

    p = command("migrate", cmd_migrate, "upgrade the database at DATABASE_URL to the latest migration")
    p.add_argument("--sql", action="store_true", help="print the SQL instead of running it")
    p = command("worker", cmd_worker, "process queued webhooks (DATABASE_URL, REDIS_URL)")
    p.add_argument("--burst", action="store_true", help="stop when the queue is empty")

    # Command groups: argparse requires one of their subcommands, whose handlers run.
    group = sub.add_parser("tenants", help="manage tenants", description="manage tenants")
    tsub = group.add_subparsers(dest="tenants_command", required=True)
    add = tsub.add_parser("add", help="add a tenant and its WhatsApp business number")
    add.set_defaults(handler=cmd_tenants_add)
    add.add_argument("--name", required=True)
    add.add_argument("--phone-number-id", required=True)
    add.add_argument("--waba-id")
    add.add_argument("--display-phone-number")
    tsub.add_parser("list", help="list tenants").set_defaults(handler=cmd_tenants_list)
    outbound_commands.add_tenant_commands(tsub)

    group = sub.add_parser("catalog", help="manage product catalogs", description="manage product catalogs")
    csub = group.add_subparsers(dest="catalog_command", required=True)
    imp = csub.add_parser("import", help="import products from a CSV: retailer_id,name,price,currency")
    imp.set_defaults(handler=cmd_catalog_import)
    imp.add_argument("--phone-number-id", required=True)
    imp.add_argument("--catalog-id", required=True)
    imp.add_argument("file", type=Path)
    outbound_commands.add_catalog_commands(csub)
    outbound_commands.add_commands(sub)

    group = sub.add_parser(
        "api-keys", help="manage tenants' REST API keys", description="manage tenants' REST API keys"
    )
    ksub = group.add_subparsers(dest="api_keys_command", required=True)
    create = ksub.add_parser("create", help="make a key for a tenant (shown once, stored hashed)")
    create.set_defaults(handler=cmd_api_keys_create)
    create.add_argument("--tenant", required=True, help="phone number id or tenant name")
    create.add_argument("--name", required=True, help="what the key is for, e.g. 'shop back office'")
    listing = ksub.add_parser("list", help="list keys: tenant, name, first characters, last use, revocation")
    listing.set_defaults(handler=cmd_api_keys_list)
    listing.add_argument("--tenant", help="phone number id or tenant name (default: every tenant)")
    revoke = ksub.add_parser("revoke", help="refuse a key from now on")
    revoke.set_defaults(handler=cmd_api_keys_revoke)
    revoke.add_argument("key_id", type=int)

    p = command("replay", cmd_replay, "POST payload files or folders to a webhook URL, signed as Meta signs")
    p.add_argument("url")
    p.add_argument("paths", nargs="+", type=Path)
    p.add_argument("--secret", help="app secret to sign with (default: WHATSAPP_APP_SECRET)")
    p.add_argument("--concurrency", type=int, default=4)

    command("failed", cmd_failed, "list failed jobs and their errors")
    p = command("requeue-failed", cmd_requeue_failed, "put failed jobs back on the queue")
    p.add_argument("job_ids", nargs="*", help="only these jobs (default: all)")
    p = command("reprocess", cmd_reprocess, "run stored webhook bodies through processing again")
    p.add_argument("--all", action="store_true", help="also bodies already processed (default: the rest)")
    p.add_argument("--since", type=datetime.fromisoformat, help="only bodies received since (ISO 8601)")

    p = command("prune", cmd_prune, "delete raw webhook bodies processed longer ago than an age, in batches")
    p.add_argument("--older-than", type=_age, required=True, metavar="AGE", help="e.g. 90d, 36h, 12w")
    p.add_argument(
        "--outcome",
        action="append",
        choices=("processed", "ignored", "partial"),
        help="bodies with this outcome (repeatable; default: processed); failed bodies are never pruned",
    )
    p.add_argument("--batch", type=int, default=1000, help="rows deleted per transaction (default 1000)")
    p.add_argument("--dry-run", action="store_true", help="only count the bodies that would be deleted")

    p = command("analytics", cmd_analytics, "daily counters, delivery and read rates, orders and revenue")
    p.add_argument("--tenant", help="phone number id or tenant name (default: every tenant)")
    p.add_argument(
        "--since", type=date.fromisoformat, help="first UTC day, YYYY-MM-DD (default: first stored)"
    )
    p.add_argument("--until", type=date.fromisoformat, help="last UTC day, inclusive (default: last stored)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument(
        "--chart", type=Path, metavar="FILE.png", help="also draw the daily series (one file a tenant)"
    )

    p = command("doctor", cmd_doctor, "check configuration, PostgreSQL, Redis, workers, failed jobs and lag")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--strict", action="store_true", help="exit 1 on warnings too")

    p = command(
        "console", cmd_console, "serve the operator's status page and queue dashboard (CONSOLE_TOKEN)"
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: keep it private)"
    )
    p.add_argument("--port", type=int, default=8001, help="default 8001")

    p = command("dev", cmd_dev, "run the whole pipeline in-process: SQLite, in-process Redis, one worker")
    p.add_argument("--port", type=int, help="default 8000 (--demo: any free port)")
    p.add_argument("--database-url", help="default: sqlite:///./wahooks-dev.db")
    p.add_argument("--demo", action="store_true", help="replay the bundled samples, print the tables, exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # The demo's own summary is the point; its per-body log lines would bury it.
    quiet = args.command == "dev" and args.demo and "LOG_LEVEL" not in os.environ
    logs.configure(
        level="WARNING" if quiet else None, fmt="text" if args.command in ("dev", "replay") else None
    )
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        explained = _explain(error)
        if explained is None:
            raise
        status, message = explained
        sys.stderr.write(f"wahooks {args.command}: {message}\n")
        return status


def _explain(error: Exception) -> tuple[int, str] | None:
    """The exit status and one line for an error the operator can act on; None for a bug (a traceback)."""
    if isinstance(error, ConfigError):
        return EXIT_USAGE, str(error)
    # Imported here, not at start, so that a command loads only what it uses (the one raised is loaded).
    from redis.exceptions import RedisError
    from sqlalchemy.exc import OperationalError

    from cli.analytics import AnalyticsError
    from cli.catalog import CatalogError
    from cli.tenants import TenantError
    from models.db import SchemaOutOfDate

    if isinstance(error, SchemaOutOfDate | TenantError | CatalogError | AnalyticsError):
        return EXIT_USAGE, str(error)
    explained = _explain_outbound(error)
    if explained is not None:
        return explained
    if isinstance(error, OperationalError):
        reason = str(error.orig).strip().splitlines()[0] if error.orig else type(error).__name__
        return EXIT_UNAVAILABLE, f"cannot reach the database at DATABASE_URL: {reason}"
    if isinstance(error, RedisError):
        return EXIT_UNAVAILABLE, f"cannot reach Redis at REDIS_URL: {error}"
    return None


def _explain_outbound(error: Exception) -> tuple[int, str] | None:
    """The Graph API commands' errors (catalog sync, media fetch, tokens)."""
    from outbound.graph import GraphError, GraphProtocolError, GraphUnavailable, OutcomeUnknown
    from outbound.media import MediaError, NoMedia
    from outbound.prices import PriceError
    from outbound.tokens import TokenError

    if isinstance(error, TokenError | NoMedia):
        return EXIT_USAGE, str(error)
    if isinstance(error, GraphUnavailable):
        return EXIT_UNAVAILABLE, f"cannot reach the Graph API at WHATSAPP_GRAPH_URL: {error}"
    if isinstance(error, GraphError | GraphProtocolError | OutcomeUnknown | MediaError | PriceError):
        return 1, str(error)
    return None


if __name__ == "__main__":
    sys.exit(main())
