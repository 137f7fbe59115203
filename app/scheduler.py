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

from connectors.registry import live_connector
from connectors.sync import poll_shop
from flows import lease
from flows.consent import push_unsubscribes
from flows.engine import TickBusy, deliver_due, tick

from .db import connect
from .runs import finish_run, start_run
from .timeutil import utcnow

log = logging.getLogger("winback.scheduler")
LEASE = "scheduler"
# Short, and renewed between shops: a scheduler that was killed blocks the next one for at most this.
LEASE_SECONDS = 120
DELIVERY_SECONDS = 60
_HOLDER = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def tick_all(app, now=None, holder=_HOLDER) -> dict | None:
    """One round over every shop, if this scheduler holds the lease; None when another one does.

    One shop's trouble (credentials that cannot be decrypted, a platform that is down, bad data)
    is logged, recorded as a failed run on that shop's dashboard, and the round goes on."""
    db = connect(app.config["DATABASE"])
    try:
        if not lease.acquire(db, LEASE, holder, ttl_seconds=LEASE_SECONDS):
            log.info("scheduler: another scheduler holds the lease")
            return None
        results = {}
        for shop in _shops(db):
            lease.acquire(db, LEASE, holder, ttl_seconds=LEASE_SECONDS)  # heartbeat between shops
            try:
                connector = live_connector(app, shop)
                if connector is not None:
                    poll_shop(app, db, shop, connector)
                results[shop["handle"]] = tick(app, db, shop, now or utcnow(), connector=connector,
                                               realtime=now is None)
                if connector is not None:
                    push_unsubscribes(db, shop, connector)
            except TickBusy as exc:
                results[shop["handle"]] = {"skipped": str(exc)}
            except Exception as exc:  # noqa: BLE001 - one shop's trouble must not stop the others
                log.exception("scheduler: shop %s failed", shop["handle"])
                error = f"{type(exc).__name__}: {exc}"
                results[shop["handle"]] = {"error": error}
                try:
                    finish_run(db, start_run(db, shop["id"], "tick"), error=error)
                except Exception:  # noqa: BLE001 - recording it must not stop the round either
                    log.exception("scheduler: recording the failure of %s failed", shop["handle"])
        return results
    finally:
        db.close()


def deliver_all(app, holder=_HOLDER) -> dict | None:
    """Between rounds: every shop with email delivery sends what fell due since (continuous
    delivery, paced by each shop's rate, not a per-tick ceiling)."""
    db = connect(app.config["DATABASE"])
    try:
        if not lease.acquire(db, LEASE, holder, ttl_seconds=LEASE_SECONDS):
            return None
        results = {}
        for shop in _shops(db):
            try:
                results[shop["handle"]] = deliver_due(app, db, shop, utcnow(), live_connector(app, shop))
            except TickBusy as exc:
                results[shop["handle"]] = {"skipped": str(exc)}
            except Exception as exc:  # noqa: BLE001 - one shop's trouble must not stop the others
                log.exception("scheduler: delivering for shop %s failed", shop["handle"])
                results[shop["handle"]] = {"error": f"{type(exc).__name__}: {exc}"}
        return results
    finally:
        db.close()


def _shops(db):
    # A platform shop without credentials is not connected (never, or uninstalled): leave it be.
    return list(db.query("SELECT * FROM shops WHERE platform IN ('demo', 'import') OR credentials IS NOT NULL"
                         " ORDER BY id"))


def start(app):
    """Start the background scheduler: the full round every TICK_SECONDS (the first at once), and
    delivery of what fell due every DELIVERY_SECONDS in between; returns it."""
    # Only serve and worker schedule: the other commands do not pay for loading APScheduler.
    from apscheduler.schedulers.background import BackgroundScheduler
    interval = int(app.config.get("TICK_SECONDS", 900))
    every = int(app.config.get("DELIVERY_SECONDS", DELIVERY_SECONDS))
    sched = BackgroundScheduler(timezone="UTC")
    sched.add_job(_in_context(app, tick_all), "interval", seconds=interval, max_instances=1, coalesce=True,
                  next_run_time=utcnow(), id="tick_all")
    sched.add_job(_in_context(app, deliver_all), "interval", seconds=every, max_instances=1, coalesce=True,
                  id="deliver_all")
    sched.start()
    log.info("scheduler: ticking every %s s, delivering every %s s", interval, every)
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
