"""`wahooks analytics`: the daily counters that sample payloads replayed through the pipeline leave behind."""

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from matplotlib.image import imread

from cli import analytics, charts
from cli.main import EXIT_USAGE, main
from models.analytics import COUNTERS
from models.db import Database
from tests.conftest import PAYLOADS, TENANT_A, TENANT_B, Pipeline

# Tenant A: 11-11, 11-12, 11-13 and 11-14; tenant B: 11-12 and 11-15.
SAMPLES = ("order_with_note.json", "batched_mixed.json", "midnight_straddle.json", "tenant_b.json")
HEADER = (
    "tenant,phone_number_id,date,messages_received,messages_sent,messages_delivered,messages_read,"
    "messages_played,messages_failed,orders_count,delivered_rate,read_rate,order_revenue"
)
A = f"Acme,{TENANT_A.phone_number_id}"
B = f"Bravo,{TENANT_B.phone_number_id}"
EVERY_DAY = [
    f"{A},2026-11-11,1,0,0,0,0,0,1,,,57.5000",
    f"{A},2026-11-12,6,3,2,1,0,1,1,0.6667,0.3333,24.0000",
    f"{A},2026-11-13,1,1,0,0,0,0,0,0.0000,0.0000,0.0000",
    f"{A},2026-11-14,2,0,1,0,0,0,1,,,19.9900",
    f"{A},2026-11-15,0,0,0,0,0,0,0,,,0.0000",
    f"{B},2026-11-11,0,0,0,0,0,0,0,,,0.0000",
    f"{B},2026-11-12,5,2,1,1,0,0,0,0.5000,0.5000,0.0000",
    f"{B},2026-11-13,0,0,0,0,0,0,0,,,0.0000",
    f"{B},2026-11-14,0,0,0,0,0,0,0,,,0.0000",
    f"{B},2026-11-15,2,1,0,1,0,0,1,0.0000,1.0000,37.5000",
]

# Commands point the root logger at the current stderr: each test gets it back as it was.
pytestmark = pytest.mark.usefixtures("root_logging")

Wahooks = Callable[..., tuple[int, str, str]]


@pytest.fixture
def replayed(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> Database:
    """The samples through HTTP, the queue and a worker, into the database DATABASE_URL points at."""
    pipeline.replay(*((PAYLOADS / name).read_bytes() for name in SAMPLES))
    db = pipeline.services.db
    monkeypatch.setenv("DATABASE_URL", db.engine.url.render_as_string(hide_password=False))
    return db


@pytest.fixture
def wahooks(replayed: Database, capsys: pytest.CaptureFixture[str]) -> Wahooks:
    """Run `wahooks analytics ARGV`: exit status, stdout, stderr."""

    def run(*argv: str | Path) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["analytics", *map(str, argv)])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_csv_has_every_day_of_every_tenant_zeros_where_nothing_was_stored(wahooks: Wahooks) -> None:
    code, out, _ = wahooks("--format", "csv")
    assert code == 0
    assert out.splitlines() == [HEADER, *EVERY_DAY]


def test_the_csv_header_is_the_counter_table(wahooks: Wahooks) -> None:
    """A counter added to models/statuses.py shows up without a change here."""
    assert HEADER.split(",")[3:-3] == list(COUNTERS)
    assert wahooks("--format", "csv")[1].splitlines()[0] == HEADER


@pytest.mark.parametrize(
    ("bounds", "dates"),
    [
        (("--since", "2026-11-13", "--until", "2026-11-14"), ["2026-11-13", "2026-11-14"]),
        (("--since", "2026-11-15"), ["2026-11-15"]),
        (("--until", "2026-11-11"), ["2026-11-11"]),
        (("--since", "2026-11-16", "--until", "2026-11-17"), ["2026-11-16", "2026-11-17"]),
    ],
)
def test_the_range_is_inclusive_and_filled(
    wahooks: Wahooks, bounds: tuple[str, ...], dates: list[str]
) -> None:
    code, out, _ = wahooks("--format", "csv", "--tenant", "Acme", *bounds)
    assert code == 0
    rows = [row.split(",") for row in out.splitlines()[1:]]
    assert [row[2] for row in rows] == dates


def test_days_without_a_row_are_zeros_and_no_rate(wahooks: Wahooks) -> None:
    out = wahooks("--format", "csv", "--tenant", "Acme", "--since", "2026-11-16", "--until", "2026-11-17")[1]
    assert out.splitlines()[1:] == [
        f"{A},{day},0,0,0,0,0,0,0,,,0.0000" for day in ("2026-11-16", "2026-11-17")
    ]


@pytest.mark.parametrize("tenant", ["Bravo", TENANT_B.phone_number_id])
def test_json_for_one_tenant_by_name_or_number(wahooks: Wahooks, tenant: str) -> None:
    code, out, _ = wahooks(
        "--format", "json", "--tenant", tenant, "--since", "2026-11-12", "--until", "2026-11-13"
    )
    assert code == 0
    zeros = dict.fromkeys(COUNTERS, 0)
    assert json.loads(out) == {
        "since": "2026-11-12",
        "until": "2026-11-13",
        "notes": [analytics.RATE_NOTE, analytics.REVENUE_NOTE],
        "tenants": [
            {
                "name": "Bravo",
                "phone_number_id": TENANT_B.phone_number_id,
                "days": [
                    {
                        "date": "2026-11-12",
                        **zeros,
                        "messages_received": 5,
                        "messages_sent": 2,
                        "messages_delivered": 1,
                        "messages_read": 1,
                        "delivered_rate": 0.5,
                        "read_rate": 0.5,
                        "order_revenue": "0.0000",
                    },
                    {
                        "date": "2026-11-13",
                        **zeros,
                        "delivered_rate": None,
                        "read_rate": None,
                        "order_revenue": "0.0000",
                    },
                ],
            }
        ],
    }
    assert "sums every currency" in analytics.REVENUE_NOTE


def table_rows(out: str) -> dict[str, list[str]]:
    """The table's body rows by date, each cell stripped."""
    cells = (line.strip("│ ").split("│") for line in out.splitlines() if line.startswith("│"))
    return {row[0].strip(): [c.strip() for c in row[1:]] for row in cells}


def test_the_table_shows_counts_rates_as_percentages_and_revenue(wahooks: Wahooks) -> None:
    code, out, _ = wahooks("--tenant", TENANT_A.phone_number_id)
    assert code == 0
    assert f"Acme ({TENANT_A.phone_number_id}), 2026-11-11 to 2026-11-14" in out
    rows = table_rows(out)
    assert list(rows) == ["2026-11-11", "2026-11-12", "2026-11-13", "2026-11-14"]
    assert rows["2026-11-12"] == ["6", "3", "2", "1", "0", "1", "1", "66.7%", "33.3%", "24.00"]
    assert rows["2026-11-13"] == ["1", "1", "0", "0", "0", "0", "0", "0.0%", "0.0%", "0.00"]
    assert rows["2026-11-14"] == ["2", "0", "1", "0", "0", "0", "1", "-", "-", "19.99"]
    assert "sums every currency" in " ".join(out.split())


def test_every_tenant_gets_its_own_table(wahooks: Wahooks) -> None:
    out = wahooks()[1]
    assert f"Acme ({TENANT_A.phone_number_id}), 2026-11-11 to 2026-11-15" in out
    assert f"Bravo ({TENANT_B.phone_number_id}), 2026-11-11 to 2026-11-15" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--tenant", "Nobody"), "wahooks analytics: no tenant has the phone number id or name 'Nobody'"),
        (
            ("--since", "2026-11-15", "--until", "2026-11-14"),
            "wahooks analytics: --since 2026-11-15 is after --until 2026-11-14",
        ),
    ],
)
def test_a_wrong_selection_is_one_line_and_exit_2(
    wahooks: Wahooks, argv: tuple[str, ...], message: str
) -> None:
    code, out, err = wahooks(*argv)
    assert (code, out) == (EXIT_USAGE, "")
    assert err.splitlines()[-1] == message
    assert "Traceback" not in err


def test_the_figure_draws_every_series(replayed: Database) -> None:
    (series,) = analytics.report(replayed, "Acme", None, None).series
    messages, rates, orders, revenue = charts.figure(series, None, None).axes
    assert [line.get_label() for line in messages.get_lines()] == [
        "received", "sent", "delivered", "read", "played", "failed"
    ]  # fmt: skip
    assert [line.get_label() for line in rates.get_lines()] == ["delivered / sent", "read / sent"]
    assert [patch.get_height() for patch in orders.patches] == [1, 1, 0, 1]
    (line,) = revenue.get_lines()
    assert list(line.get_ydata()) == [57.5, 24.0, 0.0, 19.99]
    assert len(messages.get_lines()[0].get_xdata()) == len(series.days) == 4


def is_png(path: Path) -> bool:
    image = imread(path)
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and image.shape[0] > 500 and image.shape[1] > 500


def test_chart_for_one_tenant_is_the_file_named(wahooks: Wahooks, tmp_path: Path) -> None:
    code, out, err = wahooks("--tenant", "Acme", "--format", "csv", "--chart", tmp_path / "acme.png")
    assert code == 0
    assert out.startswith(HEADER)  # stdout stays the report
    assert err.splitlines()[-1] == f"chart: {tmp_path / 'acme.png'}"
    assert [p.name for p in tmp_path.iterdir()] == ["acme.png"]
    assert is_png(tmp_path / "acme.png")


def test_chart_for_every_tenant_is_one_file_each(wahooks: Wahooks, tmp_path: Path) -> None:
    code, _, err = wahooks("--chart", tmp_path / "daily.png")
    assert code == 0
    expected = [tmp_path / f"daily-{t.phone_number_id}.png" for t in (TENANT_A, TENANT_B)]
    assert err.splitlines()[-2:] == [f"chart: {path}" for path in expected]
    assert all(is_png(path) for path in expected)
