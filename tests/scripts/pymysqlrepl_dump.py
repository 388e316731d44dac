"""Reads a MariaDB binlog with python-mysql-replication and prints each row event of one
schema as canonical JSON, for cross-checking cdc's decoder against an independent one.

usage: pymysqlrepl_dump.py PORT FILE POS SCHEMA
"""
import calendar
import datetime
import decimal
import json
import sys

from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent


def canon(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, str)):
        return v
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, datetime.datetime):  # naive, UTC (the test server and session run in UTC)
        return calendar.timegm(v.utctimetuple()) * 1_000_000 + v.microsecond
    if isinstance(v, datetime.date):
        return v.isoformat()
    if isinstance(v, datetime.timedelta):
        return (v.days * 86400 + v.seconds) * 1_000_000 + v.microseconds
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    if isinstance(v, (set, frozenset)):
        return ",".join(sorted(v))
    return str(v)


def main():
    port, file, pos, schema = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    stream = BinLogStreamReader(
        connection_settings={"host": "127.0.0.1", "port": port, "user": "root", "passwd": ""},
        server_id=4242, log_file=file, log_pos=pos, resume_stream=True, blocking=False,
        only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent], only_schemas=[schema], is_mariadb=True)
    for ev in stream:
        op = {WriteRowsEvent: "c", UpdateRowsEvent: "u", DeleteRowsEvent: "d"}[type(ev)]
        for row in ev.rows:
            image = row.get("after_values") or row.get("values")
            if op == "d":
                image = row["values"]
            print(json.dumps({"op": op, "table": ev.table, "row": {k: canon(v) for k, v in image.items()}}))
    stream.close()


main()
