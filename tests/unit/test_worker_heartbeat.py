"""The Worker's report and its runs' heartbeats: the report never overtakes a beat in flight, no
beat follows the report, and each run of a worker gets beats of its own. A stand-in client records
the calls in order; no server is needed."""

from __future__ import annotations

import threading
from datetime import timedelta

from jobqueue import JobState, Worker
from jobqueue.errors import FailedPrecondition, NotFound
from jobqueue.models import HeartbeatResult, Job


def leased_job(job_id: str = "job-1") -> Job:
    return Job(
        job_id=job_id,
        queue_name="emails",
        job_name="send",
        job_data={},
        state=JobState.ACTIVE,
        priority=0,
        attempt_number=1,
        remaining_retries=3,
        retry_policy=None,
        run_at=None,
        next_retry_at=None,
        lease_expires_at=None,
        worker_id="w",
        last_error=None,
        result=None,
        processing_duration=None,
        created_at=None,
        updated_at=None,
        started_at=None,
        completed_at=None,
        dead_letter_id="",
    )


class RecordingClient:
    """Beats block until `release` is set, the first one answering `first_beat`; every call is
    recorded as (call, job_id), in order."""

    def __init__(self, first_beat: BaseException | None = None, completion: BaseException | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.beat_made = threading.Condition(self.lock)
        self.beat_started = threading.Event()
        self.release = threading.Event()
        self.reported = threading.Event()
        self.late_beat = threading.Event()
        self.first_beat = first_beat
        self.completion = completion

    def record(self, call: str, job_id: str) -> None:
        with self.lock:
            self.calls.append((call, job_id))
            self.beat_made.notify_all()

    def heartbeat_status(self, job_id: str, attempt_number: int, **_options: object) -> HeartbeatResult:
        if self.reported.is_set():
            self.late_beat.set()
        self.record("beat", job_id)
        self.beat_started.set()
        self.release.wait(30)
        self.record("beat answered", job_id)
        if self.first_beat is not None:
            error, self.first_beat = self.first_beat, None
            raise error
        return HeartbeatResult(lease_expires_at=None)

    def track_completion(self, job_id: str, attempt_number: int, **_options: object) -> Job:
        self.record("completion", job_id)
        self.reported.set()
        if self.completion is not None:
            raise self.completion
        return leased_job(job_id)


def make_worker(client: RecordingClient, handler) -> Worker:
    return Worker(
        client,  # type: ignore[arg-type]
        "emails",
        handler,
        heartbeat_interval=timedelta(milliseconds=1),
        log_to_stderr=False,
    )


def run_with_a_beat_in_flight(client: RecordingClient) -> tuple[Worker, threading.Thread, list[bool]]:
    def handler(_job: Job) -> dict:
        # Return only once a beat is on its way, so that the report meets it.
        assert client.beat_started.wait(30)
        return {"ok": True}

    worker = make_worker(client, handler)
    outcome: list[bool] = []
    runner = threading.Thread(target=lambda: outcome.append(worker.process(leased_job())))
    runner.start()
    return worker, runner, outcome


def test_the_report_waits_for_the_beat_in_flight_and_no_beat_follows_it():
    client = RecordingClient()
    worker, runner, outcome = run_with_a_beat_in_flight(client)
    assert client.beat_started.wait(30)
    # The handler has returned, but its run's beat has no answer yet: no report goes out meanwhile.
    assert not client.reported.wait(0.2)
    client.release.set()
    runner.join(30)
    assert outcome == [True] and worker.completed == 1
    with client.lock:
        calls = [call for call, _job in client.calls]
    assert calls[-1] == "completion", calls
    assert calls.count("beat") == calls.count("beat answered")
    # No beat once the report is made (they would otherwise come every millisecond).
    assert not client.late_beat.wait(0.2)


def test_a_lease_lost_by_the_beat_in_flight_is_known_to_the_report(caplog):
    client = RecordingClient(
        first_beat=NotFound("the job is no longer active"), completion=FailedPrecondition("the job is not active")
    )
    with caplog.at_level("WARNING", logger="jobqueue.worker"):
        worker, runner, outcome = run_with_a_beat_in_flight(client)
        assert client.beat_started.wait(30)
        assert not client.reported.wait(0.2)
        client.release.set()
        runner.join(30)
    assert outcome == [False] and worker.completed == 0
    assert client.calls[-1] == ("completion", "job-1")
    # The report's own line says the lease was lost: the beat's answer was in before it.
    assert any("attempt 1 lost its lease: the service rejected" in record.getMessage() for record in caplog.records)


def test_consecutive_runs_of_a_worker_each_get_their_own_beats():
    client = RecordingClient()
    client.release.set()

    def handler(job: Job) -> dict:
        # Each run lasts until a beat was made for it.
        with client.lock:
            assert client.beat_made.wait_for(lambda: ("beat", job.job_id) in client.calls, 30)
        return {}

    worker = make_worker(client, handler)
    for n in range(3):
        assert worker.process(leased_job(f"job-{n}")) is True
    with client.lock:
        # A beat for the last run after its report would come within milliseconds.
        after_last = lambda: ("beat", "job-2") in client.calls[client.calls.index(("completion", "job-2")) :]  # noqa: E731
        assert not client.beat_made.wait_for(after_last, 0.2)
        calls = list(client.calls)
    for n in range(3):
        reported = calls.index(("completion", f"job-{n}"))
        # Beats for this run came before its report, none after.
        assert ("beat", f"job-{n}") in calls[:reported]
        assert ("beat", f"job-{n}") not in calls[reported:]
    assert worker.completed == 3
