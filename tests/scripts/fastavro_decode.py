"""Decodes Avro bodies with fastavro, an Avro implementation independent of cdc's encoder and of
the Rust reader the tests use: stdin holds one JSON object a line, {"schema": <writer schema
text>, "body": <hex of the Avro body>}; stdout gets one JSON value a line, written the way Kafka
Connect's JsonConverter writes values (bytes in base64, logical types left as their Avro
type, unions unwrapped)."""
import base64
import io
import json
import math
import sys

import fastavro
import fastavro.read

# Raw Avro values: a decimal stays bytes, a timestamp stays a long, as in Connect's JSON.
fastavro.read.LOGICAL_READERS.clear()


def connect_json(value):
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: connect_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [connect_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


schemas = {}
for line in sys.stdin:
    record = json.loads(line)
    text = record["schema"]
    if text not in schemas:
        schemas[text] = fastavro.parse_schema(json.loads(text))
    body = io.BytesIO(bytes.fromhex(record["body"]))
    value = fastavro.schemaless_reader(body, schemas[text])
    if body.read():
        sys.exit("bytes left after the Avro body")
    print(json.dumps(connect_json(value)))
