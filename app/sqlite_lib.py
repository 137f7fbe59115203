"""The SQLite library as Winback uses it: sqlite-utils loaded without numpy, and SQLite's memory
statistics turned off.

sqlite-utils imports numpy whenever it is installed (sqlite_utils/db.py), only to map numpy's scalar
types to column types for the tables it creates from Python values. Winback creates its tables in
app/migrations.py and never writes through sqlite-utils' table API, so it needs none of that, while
numpy costs every command a tenth of a second to load (`winback explain` must answer in a blink). The
modules that compute with numpy (flows/scores.py, ...) import it themselves, when they run.
"""
import ctypes
import sqlite3
import sys
import threading


def load_sqlite_utils():
    """The `sqlite_utils` module; loaded first here, it loads without numpy."""
    if "sqlite_utils" in sys.modules or "numpy" in sys.modules:
        import sqlite_utils
        return sqlite_utils
    # None in sys.modules makes `import numpy` raise ImportError, as if numpy were not installed; the
    # module is first loaded by `import app` (app/db.py), before any thread that could import numpy.
    sys.modules["numpy"] = None
    try:
        import sqlite_utils
    finally:
        del sys.modules["numpy"]
    return sqlite_utils


sqlite_utils = load_sqlite_utils()


SQLITE_CONFIG_MEMSTATUS = 9  # sqlite3.h
_configured = threading.Lock()
_state = {"done": False}


def without_memory_statistics() -> bool:
    """Turn SQLite's memory statistics off before the process's first connection; returns whether
    they are off.

    SQLite recommends building without them (SQLITE_DEFAULT_MEMSTATUS=0, "Recommended Compile-time
    Options"), but Debian's library and Python's builds keep them on, and Python's sqlite3 offers no
    way to set them. With them on, every allocation of every connection takes one process-wide mutex:
    two threads that each run a query (a refresh's line rules beside its snapshot; two requests) each
    ran 2-3 times slower than alone. So they are set through ctypes, on the library the `_sqlite3`
    module itself uses. A setting takes effect only between sqlite3_shutdown and sqlite3_initialize,
    and shutting down is safe only while SQLite holds no memory at all, i.e. no connection is open
    anywhere in the process: otherwise (or on another system than Linux, where calling a C function
    with variable arguments through ctypes is not portable) the statistics stay on and all still works.
    """
    with _configured:
        if _state["done"]:
            return _state["off"]
        _state["done"], _state["off"] = True, False
        if not sys.platform.startswith("linux"):
            return False
        try:
            import _sqlite3
            lib = ctypes.CDLL(_sqlite3.__file__)  # its symbols, or those of the libsqlite3 it links
            lib.sqlite3_memory_used.restype = ctypes.c_int64
            probe = sqlite3.connect(":memory:")
            counting = lib.sqlite3_memory_used() > 0  # 0 while the statistics are off
            probe.close()
            if not counting or lib.sqlite3_memory_used() != 0:
                _state["off"] = not counting
                return _state["off"]
            _state["off"] = (lib.sqlite3_shutdown() == 0
                             and lib.sqlite3_config(SQLITE_CONFIG_MEMSTATUS, ctypes.c_int(0)) == 0)
            lib.sqlite3_initialize()
        except (OSError, AttributeError):
            pass
        return _state["off"]
