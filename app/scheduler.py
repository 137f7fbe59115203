"""Background jobs: for every shop, sync (platform shops), refresh and one flow tick; webhook
processing runs beside them. APScheduler runs the jobs inside the app context, in `winback serve`
and `winback worker`. All state lives in SQLite, so a restart loses nothing, and a lease row makes
sure that of two schedulers on one database only one ticks.
"""
import logging
import os
import socket
import time
import uuid

from .db import connect
from .timeutil import utcnow

log = logging.getLogger("winback.scheduler")
LEASE = "scheduler"
_HOLDER = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def tick_all(app, now=None, holder=_HOLDER) -> dict | None:
    """One round over every shop, if this scheduler holds the lease; None when another one does."""
    from connectors.sync import sync_shop
    from flows import lease
    from flows.engine import TickBusy, tick
    from .cli import live_connector
    from .consent import push_unsubscribes
    interval = int(app.config.get("TICK_SECONDS", 900))
    db = connect(app.config["DATABASE"])
    try:
        if not lease.acquire(db, LEASE, holder, ttl_seconds=2 * interval):
            log.info("scheduler: another scheduler holds the lease")
            return None
        results = {}
        # A platform shop without credentials is not connected (never, or uninstalled): leave it be.
        for shop in list(db.query("SELECT * FROM shops WHERE platform IN ('demo', 'import')"
                                  " OR credentials IS NOT NULL ORDER BY id")):
            connector = live_connector(app, shop)
            try:
                if connector is not None:
                    try:
                        connector.prepare(db)
                    except Exception:  # noqa: BLE001 - the poll below still reconciles
                        log.warning("scheduler: preparing %s failed", shop["handle"], exc_info=True)
                    # The periodic poll: an incremental sync picks up what webhooks missed.
                    sync_shop(app, db, shop, connector=connector)
                results[shop["handle"]] = tick(app, db, shop, now or utcnow(), connector=connector)
                if connector is not None:
                    push_unsubscribes(db, shop, connector)
            except TickBusy as exc:
                results[shop["handle"]] = {"skipped": str(exc)}
            except Exception as exc:  # noqa: BLE001 - one shop's trouble must not stop the others
                log.exception("scheduler: shop %s failed", shop["handle"])
                results[shop["handle"]] = {"error": f"{type(exc).__name__}: {exc}"}
        return results
    finally:
        db.close()


def start(app):
    """Start the background scheduler (ticks every TICK_SECONDS, first one at once); returns it."""
    from apscheduler.schedulers.background import BackgroundScheduler
    interval = int(app.config.get("TICK_SECONDS", 900))
    sched = BackgroundScheduler(timezone="UTC")
    sched.add_job(_in_context(app, tick_all), "interval", seconds=interval, max_instances=1, coalesce=True,
                  next_run_time=utcnow(), id="tick_all")
    sched.start()
    log.info("scheduler: ticking every %s s", interval)
    return sched


def run_forever(app):
    """Run the scheduler in the foreground until interrupted (`winback worker`)."""
    sched = start(app)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sched.shutdown()


def _in_context(app, func):
    def job():
        with app.app_context():
            func(app)
    return job
