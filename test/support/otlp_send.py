"""Sends log records to an OTLP/HTTP logs endpoint with the OpenTelemetry Python SDK.

The Python logging module, bridged by the SDK's LoggingHandler, exported by its OTLP/HTTP
(protobuf) exporter: what a Python service does. Usage:
  otel-python otlp_send.py URL KEY SERVICE COUNT
Prints one JSON line: {"sent": COUNT, "flushed": true|false}.
"""
import json
import logging
import sys

from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

url, key, service, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
provider = LoggerProvider(resource=Resource.create({"service.name": service}))
provider.add_log_record_processor(
    BatchLogRecordProcessor(
        OTLPLogExporter(endpoint=url, headers={"authorization": f"Bearer {key}"}),
        max_export_batch_size=200,
        schedule_delay_millis=50,
    )
)
log = logging.getLogger("python-app")
log.setLevel(logging.DEBUG)
log.propagate = False
log.addHandler(LoggingHandler(level=logging.DEBUG, logger_provider=provider))
for i in range(count):
    if i % 5 == 0:
        log.warning("payment retried %d", i, extra={"seq": i, "order.id": f"o-{i}"})
    else:
        log.info("payment accepted %d", i, extra={"seq": i, "order.id": f"o-{i}"})
flushed = provider.force_flush(30_000)
provider.shutdown()
print(json.dumps({"sent": count, "flushed": bool(flushed)}))
