"""The tenant's daily analytics over a date range, as JSON or CSV: what `wahooks analytics` reports (the same
code, cli/analytics.py), for the key's tenant only."""

from apiflask import FileSchema, abort
from flask import Response
from sqlalchemy import select

from api.resource import tenant_session, v1
from api.schemas import AnalyticsOut, AnalyticsQuery
from cli import analytics
from models import Tenant, WhatsAppBusinessSettings

MAX_DAYS = 366  # one request's range at most: a year of days, leap or not
# The range's rules no schema can state, as a 422 names them (in detail.query.since).
AFTER_UNTIL = "after until"
TOO_LONG = f"at most {MAX_DAYS} days before until"
RANGE_RULES = (AFTER_UNTIL, TOO_LONG)


def _report(query: AnalyticsQuery) -> analytics.Report:
    session = tenant_session()
    tenant = session.execute(
        select(Tenant.id, Tenant.name, WhatsAppBusinessSettings.phone_number_id).join(
            WhatsAppBusinessSettings, WhatsAppBusinessSettings.tenant_id == Tenant.id
        )
    ).one()
    if query.since is not None and query.until is not None and query.since > query.until:
        abort(422, f"since {query.since} is after until {query.until}", {"query": {"since": [AFTER_UNTIL]}})
    report = analytics.report_in(session, [analytics.TenantRef(*tenant)], query.since, query.until)
    if (
        report.since is not None
        and report.until is not None
        and (report.until - report.since).days >= MAX_DAYS
    ):
        abort(
            422,
            f"{report.since} to {report.until} is more than {MAX_DAYS} days: give since and until",
            {"query": {"since": [TOO_LONG]}},
        )
    return report


@v1.get("/analytics/daily")
@v1.input(AnalyticsQuery, location="query", arg_name="query")
@v1.output(AnalyticsOut)
def daily(query: AnalyticsQuery) -> dict[str, object]:
    """Every UTC day of the range (at most 366), a day without a stored row as zeros. A missing bound is the
    first or last stored day; no stored day at all gives an empty list."""
    report = _report(query)
    (series,) = report.series
    return {
        "since": report.since,
        "until": report.until,
        "notes": [analytics.RATE_NOTE, analytics.REVENUE_NOTE],
        "days": [analytics.day_record(day) for day in series.days],
    }


@v1.get("/analytics/daily.csv")
@v1.input(AnalyticsQuery, location="query", arg_name="query")
@v1.output(FileSchema(type="string", format="binary"), content_type="text/csv")
def daily_csv(query: AnalyticsQuery) -> Response:
    """The same days as CSV, with the header `wahooks analytics --format csv` writes."""
    return Response(analytics.as_csv(_report(query)), mimetype="text/csv")
