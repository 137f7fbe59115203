"""sqlite-utils, loaded without numpy.

sqlite-utils imports numpy whenever it is installed (sqlite_utils/db.py), only to map numpy's scalar
types to column types for the tables it creates from Python values. Winback creates its tables in
app/migrations.py and never writes through sqlite-utils' table API, so it needs none of that, while
numpy costs every command a tenth of a second to load (`winback explain` must answer in a blink). The
modules that compute with numpy (flows/scores.py, ...) import it themselves, when they run.
"""
import sys


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
