"""Log formatting and scrubbing, the cached queue gauges, sweep metrics."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from queue_service.logs import JsonFormatter, TextFormatter, check_logging_options
from queue_service.metrics import LastSweepCollector, QueueGaugeCollector, ServiceMetrics


def record(message: str, *args, fields=None, level=logging.INFO) -> logging.LogRecord:
    entry = logging.LogRecord("queue_service.test", level, __file__, 1, message, args, None)
    if fields is not None:
        entry.fields = fields
    return entry


def test_json_lines_carry_fields_and_never_a_bearer_token():
    line = JsonFormatter().format(
        record("call with %s", "authorization: Bearer s3cr3t-token", fields={"method": "/x/Y", "duration_ms": 1.5})
    )
    entry = json.loads(line)
    assert entry["message"] == "call with authorization: Bearer [redacted]"
    assert (entry["method"], entry["duration_ms"], entry["level"]) == ("/x/Y", 1.5, "INFO")
    assert isinstance(entry["pid"], int)
    assert "s3cr3t-token" not in line


def test_text_lines_append_fields():
    line = TextFormatter().format(record("done", fields={"code": "OK", "job_id": ""}))
    assert line.endswith("queue_service.test: done code=OK")


def test_bad_logging_options_name_the_flag():
    for level, log_format, flag in (("LOUD", "text", "--log-level"), ("INFO", "xml", "--log-format")):
        try:
            check_logging_options(level, log_format)
        except ValueError as error:
            assert flag in str(error)
        else:
            raise AssertionError(f"{level}/{log_format} accepted")


def gauge_values(collector) -> dict:
    values = {}
    for family in collector.collect():
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def test_queue_gauges_are_read_once_per_ttl_and_report_failures():
    reads = []
    result = {"emails": {"ready": 3, "delayed": 2, "dead_letter_pending": 1}, "idle": {}}

    def read():
        reads.append(1)
        if len(reads) == 2:
            raise ConnectionError("database down")
        return result

    collector = QueueGaugeCollector(read, ttl=3600)
    first = gauge_values(collector)
    assert gauge_values(collector) == first
    assert len(reads) == 1
    assert first[("queue_service_queue_jobs", (("queue", "emails"), ("state", "ready")))] == 3
    assert first[("queue_service_queue_jobs", (("queue", "emails"), ("state", "delayed")))] == 2
    assert first[("queue_service_queue_jobs", (("queue", "idle"), ("state", "ready")))] == 0
    assert first[("queue_service_dead_letter_pending", (("queue", "emails"),))] == 1
    assert first[("queue_service_queue_gauges_up", ())] == 1

    collector.ttl = 0
    failed = gauge_values(collector)
    assert failed == {("queue_service_queue_gauges_up", ()): 0}
    assert gauge_values(collector) == first
    assert len(reads) == 3


def test_sweep_metrics():
    registry = CollectorRegistry()
    metrics = ServiceMetrics(registry)
    metrics.sweep_finished(duration_seconds=0.2, counts={"due_retries": 3, "stalled": 1}, succeeded=True)
    metrics.sweep_finished(duration_seconds=0.1, counts={"due_retries": 2}, succeeded=False)
    assert registry.get_sample_value("queue_service_sweep_items_total", {"task": "due_retries"}) == 5
    assert registry.get_sample_value("queue_service_sweep_duration_seconds_count", {"status": "succeeded"}) == 1
    assert registry.get_sample_value("queue_service_sweep_duration_seconds_count", {"status": "failed"}) == 1
    # The last success is the cluster's, read from the recorded runs (LastSweepCollector), not this process's.
    assert registry.get_sample_value("queue_service_sweep_last_success_timestamp_seconds") is None


def test_the_last_sweep_gauge_is_read_from_the_runs_and_absent_before_the_first_success():
    finished = [None, datetime(2026, 12, 5, 9, 0, tzinfo=UTC)]
    collector = LastSweepCollector(lambda: finished[0], ttl=0)
    registry = CollectorRegistry()
    registry.register(collector)
    assert registry.get_sample_value("queue_service_sweep_last_success_timestamp_seconds") is None
    finished.pop(0)
    assert registry.get_sample_value("queue_service_sweep_last_success_timestamp_seconds") == finished[0].timestamp()
