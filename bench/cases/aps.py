"""Plain APScheduler, the peer of ``quest serve`` in figures 4, 5 and 6.

    python -m bench.cases.aps fire START END     # 1 s interval job; prints lateness as JSON
    python -m bench.cases.aps idle SECONDS       # eleven jobs on the seed scripts' schedules
    python -m bench.cases.aps scale FOLDER       # import FOLDER's job modules, add one job each
    python -m bench.cases.aps list FOLDER        # the same, then print every job's next run

``START``/``END`` are Unix times: the job fires every second at half past the second (between
quest's slots, which sit on whole seconds) and the fires scheduled in [START, END) are reported.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apscheduler.events import EVENT_JOB_SUBMITTED
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger


def noop() -> None:
    return None


def fire(start: float, end: float) -> None:
    scheduled: list[float] = []
    started: list[float] = []
    lock = threading.Lock()

    def job() -> None:
        now = time.time()
        with lock:
            started.append(now)

    def submitted(event: Any) -> None:
        with lock:
            scheduled.extend(t.timestamp() for t in event.scheduled_run_times)

    first = datetime.fromtimestamp(int(time.time()) + 1.5, UTC)
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_listener(submitted, EVENT_JOB_SUBMITTED)
    scheduler.add_job(job, IntervalTrigger(seconds=1, start_date=first), misfire_grace_time=None)
    scheduler.start()
    time.sleep(max(0.0, end - time.time() + 1.0))
    scheduler.shutdown(wait=True)
    pairs = [
        (s, (t - s) * 1000)
        for s, t in zip(sorted(scheduled), sorted(started), strict=False)
        if start <= s < end
    ]
    print(json.dumps({"samples": pairs}))


SEED_TRIGGERS = [
    CronTrigger.from_crontab("5 0 * * *", timezone="UTC"),
    IntervalTrigger(hours=1),
    CronTrigger.from_crontab("0 3 * * *", timezone="UTC"),
    CronTrigger.from_crontab("0 6 1 * *", timezone="UTC"),
    IntervalTrigger(minutes=5),
    IntervalTrigger(minutes=10),
    IntervalTrigger(seconds=30),
    CronTrigger.from_crontab("0 2 * * sun", timezone="UTC"),
    IntervalTrigger(minutes=1),
    CronTrigger.from_crontab("0 8 * * *", timezone="America/New_York"),
    IntervalTrigger(minutes=15),
]


def idle(seconds: float) -> None:
    scheduler = BackgroundScheduler(timezone="UTC")
    for trigger in SEED_TRIGGERS:
        scheduler.add_job(noop, trigger)
    scheduler.start()
    print("ready", flush=True)
    time.sleep(seconds)
    scheduler.shutdown(wait=True)


def _load(folder: Path) -> BackgroundScheduler:
    """Import every job module of *folder* and add its job with its trigger."""
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.start(paused=True)
    for path in sorted(folder.glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"aps_jobs.{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        kind, value = module.SCHEDULE
        if kind == "cron":
            trigger: Any = CronTrigger.from_crontab(value, timezone="UTC")
        else:
            trigger = IntervalTrigger(seconds=value)
        scheduler.add_job(module.run, trigger, id=path.stem, name=path.stem)
    return scheduler


def scale(folder: Path) -> None:
    scheduler = _load(folder)
    scheduler.resume()
    print(f"ready {len(scheduler.get_jobs())}", flush=True)
    sys.stdin.read()
    scheduler.shutdown(wait=False)


def list_jobs(folder: Path) -> None:
    scheduler = _load(folder)
    for job in scheduler.get_jobs():
        print(f"{job.id}  {job.trigger}  next {job.next_run_time:%Y-%m-%d %H:%M:%S %Z}")
    scheduler.shutdown(wait=False)


def main(argv: list[str]) -> None:
    mode = argv[0]
    if mode == "fire":
        fire(float(argv[1]), float(argv[2]))
    elif mode == "idle":
        idle(float(argv[1]))
    elif mode == "scale":
        scale(Path(argv[1]))
    elif mode == "list":
        list_jobs(Path(argv[1]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
