"""Background jobs (sync, refresh, run-flows). The jobs arrive with the flow engine (issue #4);
until then the scheduler starts with none, so `serve` and `worker` already have their final shape."""
import logging
import time

log = logging.getLogger("winback.scheduler")
JOBS = []  # (function(app), seconds between runs); filled by the features that need ticks


def start(app):
    """Start the jobs in a background scheduler inside `app`; returns it (None without jobs)."""
    if not JOBS:
        log.info("scheduler: no periodic jobs yet")
        return None
    from apscheduler.schedulers.background import BackgroundScheduler
    sched = BackgroundScheduler(timezone="UTC")
    for func, seconds in JOBS:
        sched.add_job(_in_context(app, func), "interval", seconds=seconds, max_instances=1, coalesce=True)
    sched.start()
    return sched


def run_forever(app):
    """Run the scheduler in the foreground until interrupted (`winback worker`)."""
    sched = start(app)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        if sched:
            sched.shutdown()


def _in_context(app, func):
    def job():
        with app.app_context():
            func(app)
    return job
