"""A small PNG chart of a queue number over time (the "History" button of /status).

matplotlib is imported lazily (it is slow to import and only this view needs it) and used
without pyplot (no global state: safe in ``asyncio.to_thread``). Dates are formatted by
``locales.formats`` (Babel), so month names are Russian or Kazakh, not matplotlib's English."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence

from locales import gettext
from locales.formats import format_date, format_number
from services.calendar import ALMATY

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIN_SPAN = dt.timedelta(days=3)


def _date_pattern(span: dt.timedelta) -> str:
    # A long span shows months ("сент. 2026"), a short one days ("7 сент.").
    return "LLL y" if span > dt.timedelta(days=120) else "d MMM"


def render_history_png(points: Sequence[tuple[dt.datetime, int]], lang: str, title: str) -> bytes:
    """A step line of the number (y, inverted: the front of the queue is up) over time (x).

    ``points`` are (moment, number from that moment on), oldest first, as
    ``services.queue.number_history`` gives them."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, DayLocator, date2num, num2date
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    moments = [p[0] for p in points]
    numbers = [p[1] for p in points]
    if len(moments) == 1:  # one point: a flat line
        moments.append(moments[0] + MIN_SPAN)
        numbers.append(numbers[0])

    fig = Figure(figsize=(6.4, 3.4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if moments:
        ax.step([date2num(m) for m in moments], numbers, where="post", color="#1f6fb2", linewidth=2)
        ax.plot([date2num(moments[-1])], [numbers[-1]], marker="o", color="#1f6fb2")
        low, high = min(numbers), max(numbers)
        pad = max(1, round((high - low) * 0.1))
        ax.set_ylim(high + pad, max(low - pad, 0.5))  # inverted: number 1 is at the top
        span = moments[-1] - moments[0]
        if span < MIN_SPAN:  # a few hours of history: still a readable axis of days
            ax.set_xlim(date2num(moments[-1] - MIN_SPAN), date2num(moments[-1] + MIN_SPAN / 20))
            span = MIN_SPAN
        pattern = _date_pattern(span)
        # Whole days at least: a tick every few hours would repeat the same date.
        ax.xaxis.set_major_locator(DayLocator(interval=max(1, span.days // 6), tz=ALMATY)
                                   if span.days <= 14 else AutoDateLocator(minticks=3, maxticks=7, tz=ALMATY))
        ax.xaxis.set_major_formatter(FuncFormatter(
            lambda x, _pos: format_date(lang, num2date(x), pattern)))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _pos: format_number(lang, int(round(y)))))
    ax.set_ylabel(gettext(lang, "Queue number"))
    ax.set_xlabel(gettext(lang, "Date"))
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
