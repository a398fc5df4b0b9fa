"""Queue benchmark: load a city-sized queue through the real service path, then time the two
things parents and the registry do most — read one queue number (with its move since the last
look) and publish free seats (offers in queue order).

    python -m bot.bench.queue --applications 1000000 --db /tmp/kezek-bench.sqlite3

Everything goes through ``services.kezek.Kezek`` (validation, audit, queue events, outbox), so
the figures are what the bot, the API and the CLI get. The clock is frozen at a working day
inside the claim window (Monday 7 September 2026, 10:00 Almaty; moved one minute before the
second round of reads). The database is created fresh.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from services.calendar import ALMATY
from services.clock import FrozenClock
from services.kezek import Kezek
from services.validation import make_iin
from storage.db import Database
from storage.migrate import upgrade_async
from storage.models import Application

BENCH_NOW = dt.datetime(2026, 9, 7, 10, 0, tzinfo=ALMATY)  # Monday, working day, window open
KINDERGARTENS_PER_DISTRICT = 5
PRIVILEGE_SHARES = (("out_of_turn", 0.01), ("first", 0.04))  # ~5% privileged in all
PREFERRED_SHARE = 0.30  # ~30% list 1-3 preferred kindergartens
SEATS_PER_PUBLICATION = 10
VIEWER = "bench"


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def _summary_ms(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    return {
        "median_ms": round(_percentile(ms, 50), 3),
        "p99_ms": round(_percentile(ms, 99), 3),
        "max_ms": round(ms[-1], 3) if ms else float("nan"),
    }


def _remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        p = Path(str(path) + suffix)
        if p.exists():
            p.unlink()


class _World:
    """Deterministic synthetic registry data: districts, kindergartens, applications."""

    def __init__(self, rng: random.Random, districts: int, birth_years: int, now: dt.datetime) -> None:
        self.rng = rng
        self.now = now
        local_now = now.astimezone(ALMATY)
        # The registry accepts children born in the last 8 calendar years; the queue is for
        # the youngest `birth_years` full years (this year's newborns are few and join later).
        last = local_now.year - 1
        self.years = [last - i for i in range(birth_years)]
        if self.years[-1] < local_now.year - 8:
            raise ValueError(f"birth_years must be at most 8 (got {birth_years})")
        self.district_codes = [f"BD{d:02d}" for d in range(1, districts + 1)]
        self.kg_codes = {dc: [f"{dc}-KG{k}" for k in range(1, KINDERGARTENS_PER_DISTRICT + 1)]
                         for dc in self.district_codes}
        self.iin_serial: dict[dt.date, int] = {}
        self.latest_submission = local_now - dt.timedelta(hours=1)

    def district_rows(self) -> list[dict[str, Any]]:
        return [{"code": dc, "name_ru": f"Район {i}", "name_kk": f"{i} аудан"}
                for i, dc in enumerate(self.district_codes, 1)]

    def kindergarten_rows(self) -> list[dict[str, Any]]:
        return [{"code": kc, "district": dc, "name_ru": f"Ясли-сад {kc}", "name_kk": f"{kc} бөбекжай-бақша",
                 "address": f"ул. Абая, {i}", "languages": "ru,kk"}
                for dc, kcs in self.kg_codes.items() for i, kc in enumerate(kcs, 1)]

    def _iin(self, birth_date: dt.date, female: bool) -> str:
        # make_iin skips serials without a valid check digit, so continue after the one it used.
        serial = self.iin_serial.get(birth_date, 0)
        iin = make_iin(birth_date, serial, female=female)
        self.iin_serial[birth_date] = int(iin[7:11]) + 1
        return iin

    def application(self, n: int) -> dict[str, Any]:
        rng = self.rng
        year = rng.choice(self.years)
        birth_date = dt.date(year, 1, 1) + dt.timedelta(days=rng.randrange(365))
        # Registered after the birth certificate: mostly within months, some years later.
        delay_days = min(rng.expovariate(1 / 150), 6 * 365)
        local_day = dt.datetime.combine(birth_date, dt.time(0, 0), tzinfo=ALMATY)
        submitted = local_day + dt.timedelta(days=int(delay_days) + 1, seconds=rng.randrange(8 * 3600, 23 * 3600))
        if submitted > self.latest_submission:
            submitted = self.latest_submission - dt.timedelta(seconds=rng.randrange(30 * 86400))
        district = rng.choice(self.district_codes)
        roll = rng.random()
        privilege = "none"
        for name, share in PRIVILEGE_SHARES:
            if roll < share:
                privilege = name
                break
            roll -= share
        preferred: list[str] = []
        if rng.random() < PREFERRED_SHARE:
            preferred = rng.sample(self.kg_codes[district], rng.randint(1, 3))
        female = rng.random() < 0.5
        return {
            "number": f"Q{n:08d}",
            "child_iin": self._iin(birth_date, female),
            "child_name": f"Ребёнок {n}",
            "birth_date": birth_date.isoformat(),
            "district": district,
            "language": "kk" if rng.random() < 0.55 else "ru",
            "preferred_kindergartens": preferred,
            "privilege": privilege,
            "submitted_at": submitted.isoformat(timespec="seconds"),
            "phone": f"+7701{n % 10_000_000:07d}",
            "email": f"parent{n}@example.kz",
            "twin_group": None,
        }

    def batches(self, total: int, size: int) -> Iterator[list[dict[str, Any]]]:
        n = 0
        while n < total:
            count = min(size, total - n)
            yield [self.application(n + i + 1) for i in range(count)]
            n += count


async def run_queue_bench(
    db_path: str,
    applications: int = 1_000_000,
    districts: int = 20,
    birth_years: int = 7,
    seats: int = 10_000,
    reads: int = 2_000,
    seed: int = 1,
    out: Callable[[str], Any] = print,
    batch_size: int = 10_000,
    seats_per_publication: int = SEATS_PER_PUBLICATION,
) -> dict[str, Any]:
    """Run the queue benchmark on a fresh SQLite database at ``db_path``; return the figures."""
    if applications < 1 or seats < 0 or reads < 0 or batch_size < 1:
        raise ValueError("applications and batch_size must be positive; seats and reads not negative")
    path = Path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_db(path)
    url = f"sqlite:///{path}"
    rng = random.Random(seed)
    clock = FrozenClock(BENCH_NOW)
    world = _World(rng, districts, birth_years, clock.now())
    figures: dict[str, Any] = {
        "db_path": str(path), "applications": applications, "districts": districts,
        "birth_years": birth_years, "kindergartens": districts * KINDERGARTENS_PER_DISTRICT,
        "seed": seed, "batch_size": batch_size,
    }
    out(f"Kezek queue benchmark — SQLite {path}")
    out(f"  {applications:,} applications, {districts} districts x {birth_years} birth years "
        f"({world.years[-1]}–{world.years[0]}), {figures['kindergartens']} kindergartens, seed {seed}")

    t0 = time.perf_counter()
    await upgrade_async(url)
    figures["migrate_s"] = round(time.perf_counter() - t0, 3)

    db = Database(url)
    kz = Kezek(db, clock)
    try:
        await kz.upsert_districts(world.district_rows())
        await kz.upsert_kindergartens(world.kindergarten_rows())
        figures.update(await _load_phase(kz, db, world, applications, batch_size, out))
        figures.update(await _read_phase(kz, clock, rng, applications, reads, out))
        figures.update(await _publish_phase(kz, world, rng, seats, seats_per_publication, out))
    finally:
        await db.dispose()
    figures["db_size_mb"] = round(sum(
        os.path.getsize(p) for p in (str(path), str(path) + "-wal") if os.path.exists(p)) / 2**20, 1)

    verdict = {
        "read_p99_under_5ms": figures["read_p99_ms"] < 5.0 if figures["reads"] else None,
        # Judged at full size only: a small run is dominated by the first publication's warm-up.
        "seats_10k_under_10s": figures["publish_s"] * (10_000 / seats) < 10.0 if seats >= 10_000 else None,
    }
    figures["targets_met"] = verdict
    def said(ok: bool | None) -> str:
        return "not judged (run at full size)" if ok is None else ("met" if ok else "MISSED")

    out(f"Targets: read p99 < 5 ms: {said(verdict['read_p99_under_5ms'])}; "
        f"10,000 seats < 10 s: {said(verdict['seats_10k_under_10s'])}"
        + ("" if seats <= 10_000 else " (scaled to 10,000 seats)"))
    out(f"Database: {figures['db_size_mb']:,} MB")
    return figures


async def _load_phase(kz: Kezek, db: Database, world: _World, applications: int, batch_size: int,
                      out: Callable[[str], Any]) -> dict[str, Any]:
    """The load: ``applications`` rows through Kezek.import_applications in requests of
    ``batch_size``; its figures."""
    out(f"Loading through Kezek.import_applications in requests of {batch_size:,} rows…")
    import_s = 0.0
    gen_s = 0.0
    batch_rates: list[float] = []
    wall0 = time.perf_counter()
    last_report = wall0
    loaded = 0
    g0 = time.perf_counter()
    for rows in world.batches(applications, batch_size):
        t1 = time.perf_counter()
        gen_s += t1 - g0
        report = await kz.import_applications(rows)
        t2 = time.perf_counter()
        if report.created != len(rows):
            raise RuntimeError(f"import created {report.created} of {len(rows)} rows")
        import_s += t2 - t1
        batch_rates.append(len(rows) / (t2 - t1))
        loaded += len(rows)
        if t2 - last_report > 15 or loaded == applications:
            out(f"  {loaded:>10,} rows  {loaded / import_s:8,.0f} rows/s overall, "
                f"last request {batch_rates[-1]:8,.0f} rows/s")
            last_report = t2
        g0 = time.perf_counter()
    wall_s = time.perf_counter() - wall0
    figures: dict[str, Any] = {
        "load_s": round(import_s, 2),
        "load_rows_per_s": round(applications / import_s) if import_s else None,
        "load_wall_s": round(wall_s, 2),
        "load_generate_s": round(gen_s, 2),
        "load_first_request_rows_per_s": round(batch_rates[0]) if batch_rates else None,
        "load_last_request_rows_per_s": round(batch_rates[-1]) if batch_rates else None,
    }
    async with db.read() as session:
        waiting = (await session.execute(select(func.count()).select_from(Application).where(
            Application.status == "queued"))).scalar_one()
    figures["waiting"] = waiting
    out(f"  loaded {waiting:,} waiting applications in {import_s:.1f} s "
        f"= {figures['load_rows_per_s']:,} rows/s (service time; {wall_s:.1f} s wall incl. "
        f"{gen_s:.1f} s generating rows)")
    return figures


async def _read_phase(kz: Kezek, clock: FrozenClock, rng: random.Random, applications: int, reads: int,
                      out: Callable[[str], Any]) -> dict[str, Any]:
    """The reads: ``reads`` queue-number looks at a sample of the applications, each looked at
    twice (the second a minute later, which moves the recorded look); their figures."""
    distinct = max(1, min(applications, (reads + 1) // 2))
    sample = [f"Q{n:08d}" for n in rng.sample(range(1, applications + 1), distinct)]
    first: list[float] = []
    second: list[float] = []
    with_previous = 0
    for pass_no, bucket in ((1, first), (2, second)):
        if pass_no == 2:
            # A minute later, so the second look moves the recorded look (an UPDATE), as
            # it does for a parent who checks again.
            clock.advance(minutes=1)
        order = list(sample)
        rng.shuffle(order)
        for number in order:
            if len(first) + len(second) >= reads:
                break
            t1 = time.perf_counter()
            view = await kz.queue_view(number, viewer=VIEWER)
            bucket.append(time.perf_counter() - t1)
            if view.number is None:
                raise RuntimeError(f"{number} has no queue number")
            if pass_no == 2 and view.previous is not None:
                with_previous += 1
    all_reads = first + second
    s_all, s_first, s_second = _summary_ms(all_reads), _summary_ms(first), _summary_ms(second)
    out(f"Queue-number reads (Kezek.queue_view, viewer={VIEWER!r}, records the look): "
        f"{len(all_reads):,} reads of {distinct:,} applications")
    out(f"  all:         median {s_all['median_ms']:.2f} ms   p99 {s_all['p99_ms']:.2f} ms   "
        f"max {s_all['max_ms']:.2f} ms")
    out(f"  first look:  median {s_first['median_ms']:.2f} ms   p99 {s_first['p99_ms']:.2f} ms")
    out(f"  second look: median {s_second['median_ms']:.2f} ms   p99 {s_second['p99_ms']:.2f} ms "
        f"({with_previous:,} saw a previous look)")
    return {
        "reads": len(all_reads),
        "read_median_ms": s_all["median_ms"], "read_p99_ms": s_all["p99_ms"],
        "read_max_ms": s_all["max_ms"],
        "read_first_look_median_ms": s_first["median_ms"], "read_first_look_p99_ms": s_first["p99_ms"],
        "read_second_look_median_ms": s_second["median_ms"],
        "read_second_look_p99_ms": s_second["p99_ms"],
        "reads_with_previous_look": with_previous,
    }


async def _publish_phase(kz: Kezek, world: _World, rng: random.Random, seats: int, seats_per_publication: int,
                         out: Callable[[str], Any]) -> dict[str, Any]:
    """The seats: ``seats`` published through Kezek.publish_seats, ``seats_per_publication`` at a
    time in random kindergartens and birth years (each offered in queue order); their figures."""
    targets = [(kc, year) for kcs in world.kg_codes.values() for kc in kcs for year in world.years]
    publications: list[dict[str, Any]] = []
    left = seats
    while left > 0:
        kc, year = rng.choice(targets)
        count = min(seats_per_publication, left)
        publications.append({"kindergarten": kc, "birth_year": year,
                             "language": rng.choice(("ru", "kk")), "count": count})
        left -= count
    out(f"Publishing {seats:,} seats in {len(publications):,} publications "
        f"(Kezek.publish_seats, {seats_per_publication} seats each)…")
    per_pub: list[float] = []
    offers_made = 0
    t0 = time.perf_counter()
    last_report = t0
    for i, row in enumerate(publications, 1):
        t1 = time.perf_counter()
        result = await kz.publish_seats(row)
        t2 = time.perf_counter()
        per_pub.append(t2 - t1)
        offers_made += len(result.offers)
        if t2 - last_report > 15:
            out(f"  {i:>6,} publications, {offers_made:,} offers, {t2 - t0:.1f} s")
            last_report = t2
    publish_s = time.perf_counter() - t0
    s_pub = _summary_ms(per_pub)
    tenth = max(1, len(per_pub) // 10)
    figures: dict[str, Any] = {
        "seats": seats, "publications": len(publications), "offers_made": offers_made,
        "publish_s": round(publish_s, 3),
        "seats_per_s": round(seats / publish_s) if publish_s else 0,
        "publication_median_ms": s_pub["median_ms"], "publication_p99_ms": s_pub["p99_ms"],
        "publication_first_tenth_mean_ms": round(sum(per_pub[:tenth]) / tenth * 1000, 3),
        "publication_last_tenth_mean_ms": round(sum(per_pub[-tenth:]) / tenth * 1000, 3),
    }
    out(f"  {seats:,} seats published in {publish_s:.2f} s ({figures['seats_per_s']:,} seats/s), "
        f"{offers_made:,} offers made")
    out(f"  per publication: median {s_pub['median_ms']:.2f} ms   p99 {s_pub['p99_ms']:.2f} ms   "
        f"first tenth mean {figures['publication_first_tenth_mean_ms']:.2f} ms, "
        f"last tenth mean {figures['publication_last_tenth_mean_ms']:.2f} ms")
    return figures


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bot.bench.queue", description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="/tmp/kezek-bench.sqlite3", help="SQLite file (recreated)")
    parser.add_argument("--applications", type=int, default=1_000_000)
    parser.add_argument("--districts", type=int, default=20)
    parser.add_argument("--birth-years", type=int, default=7)
    parser.add_argument("--seats", type=int, default=10_000)
    parser.add_argument("--reads", type=int, default=2_000)
    parser.add_argument("--batch-size", type=int, default=10_000, help="rows per import request")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seats-per-publication", type=int, default=SEATS_PER_PUBLICATION)
    args = parser.parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # progress lines show up when piped to a file
    return asyncio.run(run_queue_bench(
        args.db, applications=args.applications, districts=args.districts,
        birth_years=args.birth_years, seats=args.seats, reads=args.reads, seed=args.seed,
        batch_size=args.batch_size, seats_per_publication=args.seats_per_publication,
    ))


if __name__ == "__main__":
    main()
