"""The analytics chart: one PNG per tenant, drawn by matplotlib's non-interactive Agg canvas.

Imported only when a chart is asked for: matplotlib takes longer to load than the rest of a command.
"""

from datetime import date
from pathlib import Path

import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import ConciseDateFormatter, DayLocator
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from cli.analytics import RATES, Report, Series, short_name
from models.analytics import COUNTERS, ORDERS_COUNT

DayArray = npt.NDArray[np.datetime64]
MESSAGE_COUNTERS = tuple(c for c in COUNTERS if c != ORDERS_COUNT)
MAX_DATE_TICKS = 12
BESIDE = (1.08, 1.0)  # legends right of the panels, where they never hide a point


def figure(series: Series, since: date | None, until: date | None) -> Figure:
    """Three panels sharing the dates: messages per counter, delivery and read rates, orders and revenue."""
    # A Figure with its own Agg canvas, not pyplot: no GUI backend, no global state between charts.
    fig = Figure(figsize=(12, 9), layout="constrained")
    FigureCanvasAgg(fig)
    messages, rates, orders = fig.subplots(3, 1, sharex=True)
    fig.suptitle(f"{series.tenant.name} ({series.tenant.phone_number_id}), {since} to {until}")
    # numpy's datetime64, which matplotlib draws as dates and its type stubs accept (a date list is not).
    dates = np.array([day.date for day in series.days], dtype="datetime64[D]")
    _messages_panel(messages, series, dates)
    _rates_panel(rates, series, dates)
    _orders_panel(orders, series, dates)
    # Whole days only: the default locator puts 12:00 ticks between the days of a short range.
    locator = DayLocator(interval=max(1, len(dates) // MAX_DATE_TICKS))
    orders.xaxis.set_major_locator(locator)
    orders.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    return fig


def _messages_panel(axes: Axes, series: Series, dates: DayArray) -> None:
    for counter in MESSAGE_COUNTERS:
        counts = [day.counts[counter] for day in series.days]
        axes.plot(dates, counts, marker="o", label=short_name(counter))
    axes.set_ylabel("messages per day")
    _counts_axis(axes)
    axes.legend(loc="upper left", bbox_to_anchor=BESIDE)


def _rates_panel(axes: Axes, series: Series, dates: DayArray) -> None:
    highest = 100.0
    for counter in RATES.values():
        # A day with nothing sent has no rate: NaN leaves a gap rather than draw a false 0 %.
        rates = [day.rate(counter) for day in series.days]
        percent = [float("nan") if rate is None else 100 * rate for rate in rates]
        highest = max([highest, *(100 * rate for rate in rates if rate is not None)])
        axes.plot(dates, percent, marker="o", label=f"{short_name(counter)} / sent")
    axes.set_ylabel("% of the day's sent")
    axes.set_ylim(0, highest * 1.05)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=BESIDE)


def _orders_panel(axes: Axes, series: Series, dates: DayArray) -> None:
    axes.bar(dates, [day.counts[ORDERS_COUNT] for day in series.days], color="tab:gray", label="orders")
    axes.set_ylabel("orders")
    _counts_axis(axes)
    revenue = axes.twinx()
    revenue.plot(
        dates, [float(day.revenue) for day in series.days], color="tab:green", marker="o", label="revenue"
    )
    revenue.set_ylabel("revenue, all currencies summed")
    revenue.set_ylim(bottom=0)
    bars, line = axes.get_legend_handles_labels(), revenue.get_legend_handles_labels()
    axes.legend(bars[0] + line[0], bars[1] + line[1], loc="upper left", bbox_to_anchor=BESIDE)


def _counts_axis(axes: Axes) -> None:
    """Whole numbers from 0, with a light grid."""
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)


def chart_paths(path: Path, result: Report) -> list[Path]:
    """PATH itself for one tenant; for several, one file each: PATH's stem, -phone_number_id, .png."""
    if len(result.series) == 1:
        return [path]
    return [path.with_name(f"{path.stem}-{s.tenant.phone_number_id}{path.suffix}") for s in result.series]


def write(path: Path, result: Report) -> list[Path]:
    """Draw each tenant's series into its file; return the files written."""
    paths = chart_paths(path, result)
    for series, target in zip(result.series, paths, strict=True):
        figure(series, result.since, result.until).savefig(target, dpi=100)
    return paths
