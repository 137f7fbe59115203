"""Reading in a second process: a child reads and prepares batches of orders while the caller writes.

A large import spends about half its time reading and converting records (CSV or JSON parsing,
dates, amounts) and half in SQLite. The child runs a record source and `store.prepare_orders` and
sends each prepared batch (plain tuples, cheap to pickle; with `stage`, its orders and lines as a
small SQLite database: connectors/staging.py) through a bounded queue; the caller's ShopWriter
writes them, one short transaction per batch, on its own connection. Both run at once on
two cores, and the database is only ever written by the caller.

multiprocessing rather than a thread: the parsing is Python code and would share the GIL with the
writer. The "spawn" start method: the caller may run threads (scheduler, web server), which a
forked child would inherit in an unknown state.
"""
from __future__ import annotations

import gc
import multiprocessing
import pickle
import queue
from itertools import islice
from typing import Callable, Iterator

from . import staging
from .store import PreparedOrders, prepare_orders

# Prepared batches waiting in the queue: enough to keep the writer busy, few enough to keep memory
# bounded (a batch of 30,000 orders is some 30 MB of tuples).
QUEUE_BATCHES = 2
_CONTEXT = multiprocessing.get_context("spawn")


def _produce(source: Callable, args: tuple, timezone: str, currency: str, batch_size: int, out, stage=False):
    """The child: run `source(*args)` -> (records, summary function), send prepared batches (staged
    ones with `stage`), then ("done", summary()); an exception goes to the caller as ("error", exception)."""
    gc.disable()  # millions of short-lived acyclic objects: reference counting frees them
    try:
        records, summary = source(*args)
        it = iter(records)
        while batch := list(islice(it, batch_size)):
            # A staged batch leaves the writer time to spare: it checks the email addresses then.
            prepared = prepare_orders(batch, timezone, currency, check_addresses=not stage)
            del batch
            if stage:
                prepared = staging.stage(prepared)
            # Pickled here rather than by the queue's thread: the batch is freed before the next
            # one is read, so the process holds one batch at a time.
            data = pickle.dumps(prepared, pickle.HIGHEST_PROTOCOL)
            del prepared
            out.put(("batch", data))
        out.put(("done", summary()))
    except BaseException as exc:  # noqa: BLE001 - every failure is the caller's to report
        try:
            pickle.dumps(exc)
        except Exception:  # noqa: BLE001 - an exception that cannot cross processes: its message can
            exc = RuntimeError(f"{type(exc).__name__}: {exc}")
        out.put(("error", exc))
    out.close()
    out.join_thread()


class Pipeline:
    """Prepared batches of `source(*args)`'s orders, read in a child process.

    `source` is a module-level function (the child imports it) returning (an iterator of
    OrderRecords, a function giving a picklable summary of the reading once it is done). Iterate
    over the pipeline to get PreparedOrders (with `stage`: staging.StagedOrders, for
    `ShopWriter.write_staged`); `summary` is set when the iteration ends. An exception in the child
    is raised here; leaving the iteration early stops the child.
    """

    def __init__(self, source: Callable, args: tuple, *, timezone: str, currency: str, batch_size: int,
                 stage: bool = False):
        self.source, self.args = source, args
        self.timezone, self.currency, self.batch_size = timezone, currency, batch_size
        self.stage = stage
        self.summary = None

    def __iter__(self) -> Iterator[PreparedOrders | staging.StagedOrders]:
        out = _CONTEXT.Queue(maxsize=QUEUE_BATCHES)
        child = _CONTEXT.Process(
            target=_produce, name="winback-import-reader", daemon=True,
            args=(self.source, self.args, self.timezone, self.currency, self.batch_size, out, self.stage))
        child.start()
        try:
            while True:
                kind, value = self._next(out, child)
                if kind == "batch":
                    yield pickle.loads(value)
                elif kind == "done":
                    self.summary = value
                    return
                else:
                    raise value
        finally:
            if child.is_alive():
                child.terminate()
            child.join()
            out.close()
            out.cancel_join_thread()

    @staticmethod
    def _next(out, child):
        while True:
            try:
                return out.get(timeout=1)
            except queue.Empty:
                if child.is_alive():
                    continue
            try:  # the child may have sent its last message just before it ended
                return out.get(timeout=1)
            except queue.Empty:
                raise RuntimeError(f"the reading process ended unexpectedly (exit code {child.exitcode})") \
                    from None
