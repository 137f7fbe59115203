"""CSV downloads, streamed: the rows are written as the database hands them over.

Cells go through defusedcsv, a drop-in for the csv module that prefixes a text cell starting with
=, +, -, @, | or % with an apostrophe, so a name such as `=HYPERLINK(...)` stays text when the owner
opens the file in a spreadsheet (CSV injection); numbers are written as numbers.
"""
import io
from datetime import datetime, timezone

from defusedcsv import csv
from flask import Response, stream_with_context

BATCH = 500  # rows per chunk sent to the client


def csv_response(filename, header, make_rows) -> Response:
    """A streamed CSV download of `header` then the rows (lists) `make_rows()` yields, as `filename`.

    `make_rows` is called only when the body is sent: the view's database handle is closed by then,
    and the rows are read with the handle `get_db()` opens for the stream (Flask pushes the request's
    contexts again around it). The file starts with a UTF-8 byte order mark: without it Excel reads
    it as Latin-1 and garbles accented names."""
    def generate():
        rows = make_rows()
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        buffer.write("\ufeff")
        writer.writerow(header)
        for n, row in enumerate(rows, 1):
            writer.writerow(row)
            if n % BATCH == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    response = Response(stream_with_context(generate()), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"  # personal data
    return response


def stamp(now: datetime) -> str:
    """The date and time in a download's file name, e.g. 20261205-1640."""
    return now.astimezone(timezone.utc).strftime("%Y%m%d-%H%M")
