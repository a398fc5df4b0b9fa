"""Metrics for operators (Prometheus) and the health rules of ``/api/v1/health`` and ``/healthz``.

The metrics live on a registry of our own (``Metrics.registry``), not prometheus_client's global
one: tests and several apps in one process never clash. ``METRICS`` is the process's; the hooks
(``bot.telegram.middlewares``, ``bot.delivery.sender``, ``bot.jobs``) and the endpoints look it up through
``current()`` at call time, so a test may swap in a fresh one.

Metric names (no personal data in any label: channels, update types, job names, outcomes):

* ``kezek_updates_total{type, outcome}``: Telegram updates handled; ``outcome`` is ``ok`` or
  ``error`` (the error boundary caught something).
* ``kezek_update_duration_seconds{type}``: how long handling an update took (histogram).
* ``kezek_outbox_due{channel}``: deliveries pending and due now (``channel`` telegram | email;
  ``router``: outbox notices not routed to deliveries yet). Computed at scrape time.
* ``kezek_outbox_oldest_due_seconds{channel}``: how long the oldest of those has been due.
* ``kezek_outbox_retrying{channel}``: deliveries pending after a refused try, due or not: a whole
  SMTP outage shows here while ``kezek_outbox_due`` is 0 between retries.
* ``kezek_deliveries_total{channel, result}``: sends tried, ``result`` sent | failed (given up) |
  retried (to be tried again later).
* ``kezek_sender_rounds_total{outcome}``: sender rounds (``bot.delivery.sender.drain_once``), ok | error.
* ``kezek_sender_last_success_timestamp_seconds``: Unix time the last sender round of this process
  finished without an error (0: none yet).
* ``kezek_jobs_total{job, outcome}``: scheduled jobs run (``sweep``, ``snapshot``, ``moves``),
  ok | error.
* ``kezek_database_up``: 1 when the last scrape's database read answered, else 0.

Health (``check_health``), judged on ONE read of the backlog (``services.health.due_backlog``):

* The database does not answer: unhealthy.
* A channel served by a sender in THIS process (``outbox_loop`` started here, or a round ran here;
  the router counts as served when any sender runs here) is stuck when something has been due on
  it for more than ``STUCK_AFTER`` (5 minutes) and no sender round finished successfully within the
  last ``STUCK_AFTER``: the sender loop hangs or every round fails (the database refusing writes,
  say). A backlog that a working sender is still draining (Telegram's 30 a second) is healthy.
* A channel no sender of this process serves (an API-only process; senders run elsewhere) is judged
  by the backlog's age alone, with the larger ``UNATTENDED_AFTER`` (30 minutes): nobody anywhere is
  sending. Ages are on the service clock (the sandbox's test clock in sandbox mode); the time
  since the last round is on the real monotonic clock."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

from services.health import ROUTER, Due

if TYPE_CHECKING:
    from services.kezek import Kezek

log = logging.getLogger("kezek.metrics")

# Something due for longer than this, with no successful sender round within it: stuck.
STUCK_AFTER = 300.0
# Where no sender runs in this process: stuck when something has been due for longer than this.
UNATTENDED_AFTER = 1800.0

# Update handling: a fast command takes milliseconds, a slow one waits on the database.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

OK, ERROR = "ok", "error"
DELIVERY_RESULTS = {"sent": "sent", "failed": "failed", "pending": "retried"}


class Metrics:
    """The process's metrics on a registry of their own, and what the health check needs to know
    about the senders of this process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.updates = Counter("kezek_updates", "Telegram updates handled, by update type and outcome.",
                               ["type", "outcome"], registry=r)
        self.update_seconds = Histogram("kezek_update_duration_seconds", "Time to handle a Telegram update.",
                                        ["type"], buckets=LATENCY_BUCKETS, registry=r)
        self.outbox_due = Gauge("kezek_outbox_due", "Deliveries pending and due now, by channel "
                                "(router: notices not routed yet); read at scrape time.", ["channel"], registry=r)
        self.outbox_oldest = Gauge("kezek_outbox_oldest_due_seconds", "How long the oldest due delivery of the "
                                   "channel has been due; read at scrape time.", ["channel"], registry=r)
        self.outbox_retrying = Gauge("kezek_outbox_retrying", "Deliveries pending after a refused try, due or "
                                     "not (an SMTP or Telegram outage), by channel.", ["channel"], registry=r)
        self.deliveries = Counter("kezek_deliveries", "Sends tried by the senders of this process, by channel "
                                  "and result (sent, failed: given up, retried: to be tried again).",
                                  ["channel", "result"], registry=r)
        self.sender_rounds = Counter("kezek_sender_rounds", "Sender rounds of this process, by outcome.",
                                     ["outcome"], registry=r)
        self.sender_last_success = Gauge("kezek_sender_last_success_timestamp_seconds",
                                         "Unix time the last sender round of this process finished without "
                                         "an error (0: none yet).", registry=r)
        self.jobs = Counter("kezek_jobs", "Scheduled jobs run (sweep, snapshot, moves), by outcome.",
                            ["job", "outcome"], registry=r)
        self.database_up = Gauge("kezek_database_up", "1 when the database answered the last scrape's read.",
                                 registry=r)
        # For the health check: the channels a sender of this process serves, and when (monotonic)
        # its last round finished without an error.
        self.sender_channels: set[str] = set()
        self.last_round: float | None = None

    # --- the hooks ------------------------------------------------------------------------------

    def update_handled(self, update_type: str, seconds: float, *, failed: bool) -> None:
        self.updates.labels(update_type, ERROR if failed else OK).inc()
        self.update_seconds.labels(update_type).observe(max(seconds, 0.0))

    def senders_started(self, channels: Iterable[str]) -> None:
        """A sender loop of this process serves ``channels`` from now on."""
        self.sender_channels.update(channels)

    def delivered(self, channel: str, counts: dict[str, int]) -> None:
        """The counts of one ``deliver_due`` round ({"sent", "pending", "failed"})."""
        for key, result in DELIVERY_RESULTS.items():
            n = int(counts.get(key, 0))
            if n:
                self.deliveries.labels(channel, result).inc(n)

    def sender_round(self, channels: Iterable[str], *, ok: bool) -> None:
        self.sender_channels.update(channels)
        self.sender_rounds.labels(OK if ok else ERROR).inc()
        if ok:
            self.last_round = time.monotonic()
            self.sender_last_success.set(time.time())

    def job_run(self, job: str, *, ok: bool) -> None:
        self.jobs.labels(job, OK if ok else ERROR).inc()

    # --- scrape time ----------------------------------------------------------------------------

    def set_backlog(self, backlog: dict[str, Due] | None) -> None:
        """The outbox gauges from a fresh read (None: the database did not answer; the gauges are
        dropped rather than left showing stale figures)."""
        self.database_up.set(0 if backlog is None else 1)
        if backlog is None:
            self.outbox_due.clear()
            self.outbox_oldest.clear()
            self.outbox_retrying.clear()
            return
        for channel, due in backlog.items():
            self.outbox_due.labels(channel).set(due.count)
            self.outbox_oldest.labels(channel).set(round(due.oldest_seconds, 3))
            if channel != ROUTER:
                self.outbox_retrying.labels(channel).set(due.retrying)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition text and its content type (Prometheus text format; OpenMetrics when the
        scraper's ``Accept`` asks for it)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


METRICS = Metrics()


def current() -> Metrics:
    """The process's metrics (looked up at call time: a test may replace ``METRICS``)."""
    return METRICS


async def read_backlog(kz: Kezek) -> dict[str, Due] | None:
    """The backlog in one read, or None when the database does not answer (logged: its kind only)."""
    try:
        return await kz.outbox_backlog()
    except Exception as exc:  # noqa: BLE001 - any failure of the database is "unavailable"
        log.warning("the database is unavailable (%s)", type(exc).__name__)
        return None


async def exposition(kz: Kezek | None, metrics: Metrics | None = None,
                     accept: str | None = None) -> tuple[bytes, str]:
    """Read the backlog (when there is a ``kz``) into the gauges, then render everything."""
    metrics = metrics or current()
    if kz is not None:
        metrics.set_backlog(await read_backlog(kz))
    return metrics.render(accept)


# --- health --------------------------------------------------------------------------------------

@dataclass
class Health:
    database: bool = True
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.database and not self.problems

    @property
    def senders_ok(self) -> bool:
        return not self.problems


def assess(backlog: dict[str, Due] | None, metrics: Metrics, *, now: float | None = None,
           stuck_after: float = STUCK_AFTER, unattended_after: float = UNATTENDED_AFTER) -> Health:
    """The health rules (module docstring) on a backlog read (None: the database did not answer)."""
    if backlog is None:
        return Health(database=False, problems=[])
    now = time.monotonic() if now is None else now
    served = set(metrics.sender_channels)
    if served:
        served.add(ROUTER)
    since_round = None if metrics.last_round is None else now - metrics.last_round
    problems = []
    for channel, due in sorted(backlog.items()):
        if not due.count:
            continue
        if channel in served:
            if due.oldest_seconds > stuck_after and (since_round is None or since_round > stuck_after):
                last = "no sender round has finished" if since_round is None else \
                    f"the last sender round finished {since_round:.0f} s ago"
                problems.append(f"{channel}: {due.count} due, the oldest for {due.oldest_seconds:.0f} s, "
                                f"and {last} (limit {stuck_after:.0f} s)")
        elif due.oldest_seconds > unattended_after:
            problems.append(f"{channel}: {due.count} due, the oldest for {due.oldest_seconds:.0f} s, and no "
                            f"sender in this process (limit {unattended_after:.0f} s)")
    return Health(database=True, problems=problems)


async def check_health(kz: Kezek, metrics: Metrics | None = None) -> Health:
    """Read the backlog once (also refreshing the outbox gauges) and judge it."""
    metrics = metrics or current()
    backlog = await read_backlog(kz)
    metrics.set_backlog(backlog)
    health = assess(backlog, metrics)
    if health.problems:
        log.warning("health: the senders are stuck: %s", "; ".join(health.problems))
    return health
