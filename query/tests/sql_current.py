#!/usr/bin/env python3
"""Runs every SQL statement ecstatic-query sends on a current ClickHouse.

Development and CI run ClickHouse 18.16; production runs a current release.
The integration tests prove the SQL on 18.16; this script proves the same
statements (printed by the hidden `--print-sql-shapes` flag: the schema DDL,
then every query shape with example values) parse, type-check and run on
the ClickHouse inside PyPI's `chdb-core`, over a few seeded rows, and that
they give the same answers as the server at `ECSTATIC_TEST_CLICKHOUSE_URL`
(default `http://127.0.0.1:8123`) given the same rows.

    python3 query/tests/sql_current.py [path/to/ecstatic-query]

Needs `pip install chdb-core`. Exits non-zero, listing each failing
statement, if any fails or the two servers disagree.
"""

import os
import subprocess
import sys
import urllib.parse
import urllib.request

try:
    import chdb
    from chdb import session as chdb_session
except ImportError:
    sys.exit("chdb-core is missing: pip install chdb-core")

ROWS = [
    # site, time (UTC), request id, status, class, bytes, cache, edge, host,
    # path, referrer, country, browser, os, device, file type, bot, visitor
    (1, "2024-03-31 00:30:00", "a", 200, "2xx", 100, "HIT", "DE", "example.com",
     "/", "", "DE", "Chrome", "Windows", "desktop", "page", 0, 7),
    (1, "2024-03-31 01:30:00", "b", 304, "3xx", 0, "MISS", "DE", "example.com",
     "/it's", "google.com", "US", "Firefox", "Linux", "desktop", "page", 0, 8),
    (1, "2024-10-27 00:30:00", "c", 404, "4xx", 10, "HIT", "FR", "example.com",
     "/blog/x", "", "", "Other", "Other", "bot", "page", 1, 9),
]


def literal(value):
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


DATABASE = "query_sql_current"


class OldServer:
    """The development server (18.16), over HTTP."""

    def __init__(self):
        self.url = os.environ.get("ECSTATIC_TEST_CLICKHOUSE_URL", "http://127.0.0.1:8123")

    def query(self, sql):
        # LowCardinality needs this setting before 19.0 (see ecstatic-store).
        params = urllib.parse.urlencode({"allow_experimental_low_cardinality_type": "1"})
        request = urllib.request.Request(f"{self.url}/?{params}", data=sql.encode())
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.read().decode()
        except OSError as error:
            sys.exit(f"ClickHouse at {self.url} does not answer ({error}): "
                     "start it with scripts/clickhouse.sh start")


def rows_of(csv_text):
    return sorted(line for line in csv_text.splitlines() if line)


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/debug/ecstatic-query"
    printed = subprocess.run(
        [binary, "--print-sql-shapes", "--database", DATABASE],
        check=True, capture_output=True, text=True,
    ).stdout
    statements = [line for line in printed.splitlines() if line.strip()]
    ddl = [s for s in statements if s.startswith("CREATE")]
    queries = [s for s in statements if s.startswith("SELECT")]
    assert ddl and len(queries) > 100, "too few statements printed"

    db = chdb_session.Session()
    version = db.query("SELECT version()", "CSV").bytes().decode().strip()
    old = OldServer()
    values = ", ".join("(" + ", ".join(literal(v) for v in row) + ")" for row in ROWS)
    old.query(f"DROP DATABASE IF EXISTS {DATABASE}")
    for run in (db.query, old.query):
        run(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
        for statement in ddl:
            run(statement)
        run(f"INSERT INTO {DATABASE}.access_log VALUES {values}")

    failures = []
    answered = 0
    for sql in queries:
        try:
            result = db.query(sql, "CSV").bytes().decode()
        except Exception as error:  # chdb raises its own types across versions
            failures.append((sql, str(error).splitlines()[0]))
            continue
        answered += bool(result.strip())
        expected = old.query(sql + " FORMAT CSV")
        if rows_of(result) != rows_of(expected):
            failures.append((sql, f"current gives {rows_of(result)}, 18.16 {rows_of(expected)}"))

    # The first query is the summary with bots excluded: both seeded non-bot
    # rows are in range, so the statements ran over data, not just parsed.
    summary = rows_of(db.query(queries[0], "CSV").bytes().decode())
    assert summary and summary[0].startswith("1,2,"), summary

    for sql, error in failures:
        print(f"FAILED: {error}\n  {sql}\n", file=sys.stderr)
    print(f"ClickHouse {version} (chdb {chdb.__version__}): {len(queries) - len(failures)} of "
          f"{len(queries)} statements ran, {answered} returned rows")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
