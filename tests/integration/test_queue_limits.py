"""However many queues callers make, queue creation stays within the server's rules and every
admin reply, dashboard page and the metrics endpoint stays bounded. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import grpc
import pytest
from jobqueue.v1 import admin_service_pb2 as admin_pb
from jobqueue.v1 import admin_service_pb2_grpc, job_pb2, job_service_pb2_grpc
from jobqueue.v1 import job_service_pb2 as pb

from queue_service.api.server import QueueServer
from queue_service.core.jobs import LifecycleSettings
from queue_service.core.validation import Limits
from tests.conftest import ADMIN_TOKEN, WORKER_TOKEN, auth_tokens, make_config
from tests.rpc_errors import assert_rejected, row_counts


def start(database_url, clock, **lifecycle) -> QueueServer:
    settings = LifecycleSettings(lease_poll_interval=0.05, **lifecycle)
    return QueueServer(make_config(database_url, lifecycle=settings, tokens=auth_tokens()), clock=clock).start()


@pytest.fixture
def limited(database_url, clock) -> Iterator[QueueServer]:
    server = start(database_url, clock, limits=Limits(max_queues=5))
    yield server
    server.stop(0)


@pytest.fixture
def admin_only(database_url, clock) -> Iterator[QueueServer]:
    server = start(database_url, clock, admin_creates_queues=True)
    yield server
    server.stop(0)


def stubs(server: QueueServer, token: str):
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    metadata = (("authorization", f"Bearer {token}"),)
    return (
        channel,
        job_service_pb2_grpc.JobServiceStub(channel),
        admin_service_pb2_grpc.AdminServiceStub(channel),
        metadata,
    )


def job(queue: str, job_id: str = "") -> pb.EnqueueJobRequest:
    return pb.EnqueueJobRequest(queue_name=queue, job_name="n", job_id=job_id)


def test_queue_creation_stops_at_the_configured_maximum(limited):
    channel, jobs, admin, metadata = stubs(limited, WORKER_TOKEN)
    with channel:
        jobs.EnqueueJobs(pb.EnqueueJobsRequest(jobs=[job(f"q{n}") for n in range(4)]), metadata=metadata)
        before = row_counts(limited.database)
        assert_rejected(
            jobs.EnqueueJobs,
            pb.EnqueueJobsRequest(jobs=[job("q0"), job("new-1"), job("new-2")]),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "jobs[1].queue_name",
            mentions="new-1",
            metadata=metadata,
        )
        assert row_counts(limited.database) == before  # not even the job for the existing queue
        jobs.EnqueueJob(job("new-1"), metadata=metadata)  # the fifth queue
        jobs.EnqueueJob(job("q0"), metadata=metadata)  # existing queues take jobs as before
        assert_rejected(
            jobs.EnqueueJob, job("new-2"), grpc.StatusCode.RESOURCE_EXHAUSTED, "queue_name", metadata=metadata
        )
        assert_rejected(
            jobs.TrackStart,
            pb.TrackStartRequest(job_id="external", queue_name="new-3", job_name="n"),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "queue_name",
            metadata=metadata,
        )
        admin_metadata = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
        assert_rejected(
            admin.PauseQueue,
            admin_pb.PauseQueueRequest(queue_name="new-4", allow_missing=True),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "queue_name",
            metadata=admin_metadata,
        )


def test_only_admins_create_queues_when_so_configured(admin_only):
    channel, jobs, admin, worker = stubs(admin_only, WORKER_TOKEN)
    admin_metadata = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
    with channel:
        before = row_counts(admin_only.database)
        assert_rejected(jobs.EnqueueJob, job("fresh"), grpc.StatusCode.NOT_FOUND, "queue_name", metadata=worker)
        assert_rejected(
            jobs.EnqueueJobs,
            pb.EnqueueJobsRequest(jobs=[job("fresh", "a"), job("other", "b")]),
            grpc.StatusCode.NOT_FOUND,
            "jobs[0].queue_name",
            metadata=worker,
        )
        assert_rejected(
            jobs.TrackStart,
            pb.TrackStartRequest(job_id="external", queue_name="fresh", job_name="n"),
            grpc.StatusCode.NOT_FOUND,
            "queue_name",
            metadata=worker,
        )
        assert row_counts(admin_only.database) == before
        # An admin creates the queue, by enqueueing or explicitly; then workers use it.
        jobs.EnqueueJob(job("fresh", "by-admin"), metadata=admin_metadata)
        admin.PauseQueue(admin_pb.PauseQueueRequest(queue_name="other", allow_missing=True), metadata=admin_metadata)
        jobs.EnqueueJobs(pb.EnqueueJobsRequest(jobs=[job("fresh", "a"), job("other", "b")]), metadata=worker)
        started = jobs.TrackStart(
            pb.TrackStartRequest(job_id="external", queue_name="fresh", job_name="n"), metadata=worker
        )
        assert started.created


# Bounded replies however many queues there are

QUEUES = 1500


@pytest.fixture
def crowded(database_url, clock) -> Iterator[tuple[QueueServer, int]]:
    """A server holding 1,500 queues of one waiting job each, and 3 busier queues with 2 to 4 dead letters."""
    from tests.integration.test_metrics import free_port

    metrics_port = free_port()
    config = make_config(database_url, tokens=auth_tokens(), metrics_port=metrics_port, queue_gauge_ttl=0)
    server = QueueServer(config, clock=clock).start()
    channel, jobs, _, worker = stubs(server, WORKER_TOKEN)
    with channel:
        for start_at in range(0, QUEUES, 750):
            batch = [job(f"queue-{n:04}") for n in range(start_at, start_at + 750)]
            jobs.EnqueueJobs(pb.EnqueueJobsRequest(jobs=batch), metadata=worker)
        for n in range(1, 4):
            for index in range(n + 1):
                jobs.EnqueueJob(job(f"zz-hot-{n}", f"hot-{n}-{index}"), metadata=worker)
                (leased,) = jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=[f"zz-hot-{n}"]), metadata=worker).jobs
                jobs.TrackFailure(
                    pb.TrackFailureRequest(
                        job_id=leased.job_id, attempt_number=1, error=job_pb2.JobError(message="x"), non_retryable=True
                    ),
                    metadata=worker,
                )
    clock.advance(timedelta(minutes=1))  # the activity of the last hour ends before now
    yield server, metrics_port
    server.stop(0)


def test_statistics_and_activity_list_the_busiest_queues_and_total_all(crowded):
    server, _ = crowded
    channel, _, admin, metadata = stubs(server, ADMIN_TOKEN)
    with channel:
        statistics = admin.GetStatistics(admin_pb.GetStatisticsRequest(), metadata=metadata)
        assert len(statistics.queues) == 100
        assert statistics.omitted_queue_count == QUEUES + 3 - 100
        assert statistics.totals.waiting_count == QUEUES
        assert statistics.totals.dead_letter_summary.pending_count == 9
        names = [queue.queue_name for queue in statistics.queues]
        assert names == sorted(names) and {"zz-hot-1", "zz-hot-2", "zz-hot-3"} <= set(names)
        assert (
            len(admin.GetStatistics(admin_pb.GetStatisticsRequest(max_queues=10**6), metadata=metadata).queues) == 1000
        )
        assert_rejected(
            admin.GetStatistics,
            admin_pb.GetStatisticsRequest(max_queues=-1),
            grpc.StatusCode.INVALID_ARGUMENT,
            "max_queues",
            metadata=metadata,
        )

        activity = admin.GetQueueActivity(admin_pb.GetQueueActivityRequest(max_queues=3), metadata=metadata)
        assert [queue.queue_name for queue in activity.queues] == ["zz-hot-1", "zz-hot-2", "zz-hot-3"]
        assert activity.omitted_queue_count == QUEUES
        assert sum(bucket.dead_lettered_count for bucket in activity.totals.buckets) == 9
        default = admin.GetQueueActivity(admin_pb.GetQueueActivityRequest(), metadata=metadata)
        assert len(default.queues) == 20 and default.ByteSize() < 100_000
        assert (
            len(admin.GetQueueActivity(admin_pb.GetQueueActivityRequest(max_queues=10**6), metadata=metadata).queues)
            == 50
        )
        assert_rejected(
            admin.GetQueueActivity,
            admin_pb.GetQueueActivityRequest(max_queues=-1),
            grpc.StatusCode.INVALID_ARGUMENT,
            "max_queues",
            metadata=metadata,
        )


def test_the_dashboard_stays_small_however_many_queues(crowded):
    from starlette.testclient import TestClient

    from queue_service.dashboard.app import DashboardSettings, create_app
    from tests.integration.test_dashboard import sign_in, text_of

    server, _ = crowded
    app = create_app(DashboardSettings(target=f"127.0.0.1:{server.port}"))
    with TestClient(app, base_url="https://testserver") as browser:
        assert sign_in(browser, ADMIN_TOKEN).status_code == 303
        for path in ("/", "/?window=hour", "/?window=week", "/queues", "/dlq"):
            page = browser.get(path)
            assert page.status_code == 200, path
            assert len(page.content) < 300_000, (path, len(page.content))
        overview = text_of(browser.get("/?window=hour"))
        assert f"{QUEUES + 3 - 50} more are counted in the totals" in overview
        assert f"{QUEUES + 3 - 10} more are counted" in overview
        queues = browser.get("/queues")
        assert "queue-0000" in queues.text and "queue-0100" not in queues.text and 'rel="next"' in queues.text
    app.state.dashboard.close()


def test_metrics_label_only_the_busiest_queues_and_sum_the_rest(crowded):
    from tests.integration.test_metrics import scrape

    _, metrics_port = crowded
    samples = scrape(metrics_port)
    queues = {dict(labels).get("queue") for (_, labels) in samples if dict(labels).get("queue")}
    assert len(queues) <= 2 * 101  # gauges: 100 busiest + other; counters: the first 100 seen + other
    assert "__other__" in queues
    ready = {
        dict(labels)["queue"]: value
        for (name, labels), value in samples.items()
        if name == "queue_service_queue_jobs" and dict(labels)["state"] == "ready"
    }
    assert len(ready) == 101 and sum(ready.values()) == QUEUES
    enqueued = sum(value for (name, _), value in samples.items() if name == "queue_service_jobs_enqueued_total")
    assert enqueued == QUEUES + 9


def test_a_failure_pattern_names_a_bounded_number_of_its_queues(service):
    for n in range(30):
        service.jobs.EnqueueJob(job(f"shard-{n:02}", f"job-{n:02}"))
        (leased,) = service.jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=[f"shard-{n:02}"])).jobs
        service.jobs.TrackFailure(
            pb.TrackFailureRequest(
                job_id=leased.job_id, attempt_number=1, error=job_pb2.JobError(message="disk full"), non_retryable=True
            )
        )
    (pattern,) = service.admin.ListFailurePatterns(admin_pb.ListFailurePatternsRequest()).patterns
    assert pattern.count == 30 and pattern.queue_count == 30
    assert list(pattern.queue_names) == [f"shard-{n:02}" for n in range(20)]


def test_queue_admin_stats_says_how_many_queues_it_left_out(crowded):
    from tests.e2e.test_admin_cli import queue_admin

    server, _ = crowded
    done = queue_admin(f"127.0.0.1:{server.port}", "stats")
    assert done.returncode == 0, done.stderr
    assert f"{QUEUES + 3 - 100} quieter queues are counted in (all) only" in done.stdout
    assert len(done.stdout.splitlines()) < 120
