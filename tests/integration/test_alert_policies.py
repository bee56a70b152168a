"""Per-queue alert policies over gRPC: set, read, validated field by field, audited, and used by
the DLQ alerts and their emails."""

from __future__ import annotations

import pytest
from jobqueue import AdminClient, InvalidArgument, JobClient, NotFound, QueueAlertPolicy

from queue_service.alerts.email import EmailSettings
from queue_service.alerts.outbox import EmailOutbox
from queue_service.core.alert_policies import MAX_EMAIL_RECIPIENTS
from queue_service.core.sweep.tasks.dlq_alerts import DlqAlerter, DlqAlertsConfig
from queue_service.store.alert_outbox import outbox_of
from tests.integration.test_dlq_alerts import dead_letter


@pytest.fixture
def admin(service):
    with AdminClient(service.target, timeout=10) as client:
        yield client


def test_a_queue_alert_policy_is_set_read_and_audited(service, admin):
    with JobClient(service.target, timeout=10) as jobs:
        jobs.enqueue("emails", "send")
    assert admin.get_queue_alert_policy("emails") == QueueAlertPolicy("emails")

    stored = admin.update_queue_alert_policy(
        QueueAlertPolicy(
            "emails",
            dlq_alert_threshold=5,
            email_recipients=("ops@example.com", " mail@example.org ", "ops@example.com"),
        )
    )
    assert (stored.dlq_alert_threshold, stored.email_recipients) == (5, ("ops@example.com", "mail@example.org"))
    assert stored.update_time == service.clock.now()
    assert admin.get_queue_alert_policy("emails") == stored

    # Replaced whole: no threshold falls back to the server's.
    cleared = admin.update_queue_alert_policy(QueueAlertPolicy("emails"))
    assert (cleared.dlq_alert_threshold, cleared.email_recipients) == (None, ())
    assert admin.update_queue_alert_policy(QueueAlertPolicy("emails", dlq_alert_threshold=0)).dlq_alert_threshold == 0

    events = list(admin.list_audit_events(action="UpdateQueueAlertPolicy"))
    assert [event.parameters["dlq_alert_threshold"] for event in events] == [0, None, 5]
    assert events[-1].parameters["email_recipients"] == ["ops@example.com", "mail@example.org"]


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        (QueueAlertPolicy("emails", dlq_alert_threshold=-1), "alert_policy.dlq_alert_threshold"),
        (QueueAlertPolicy("emails", dlq_alert_threshold=2**31 - 1), "alert_policy.dlq_alert_threshold"),
        (
            QueueAlertPolicy("emails", email_recipients=("ops@example.com", "not an address")),
            "alert_policy.email_recipients[1]",
        ),
        (QueueAlertPolicy("emails", email_recipients=("a@b.c, d@e.f",)), "alert_policy.email_recipients[0]"),
        (
            QueueAlertPolicy("emails", email_recipients=("x" * 250 + "@example.com",)),
            "alert_policy.email_recipients[0]",
        ),
        (
            QueueAlertPolicy(
                "emails", email_recipients=tuple(f"a{i}@example.com" for i in range(MAX_EMAIL_RECIPIENTS + 1))
            ),
            "alert_policy.email_recipients",
        ),
        (QueueAlertPolicy(""), "alert_policy.queue_name"),
    ],
)
def test_bad_alert_policies_are_refused_naming_the_field(service, admin, policy, field):
    with JobClient(service.target, timeout=10) as jobs:
        jobs.enqueue("emails", "send")
    with pytest.raises(InvalidArgument) as refused:
        admin.update_queue_alert_policy(policy)
    assert refused.value.field == field
    assert admin.get_queue_alert_policy("emails") == QueueAlertPolicy("emails")


def test_an_unknown_queue_is_not_found(admin):
    with pytest.raises(NotFound):
        admin.get_queue_alert_policy("nope")
    with pytest.raises(NotFound):
        admin.update_queue_alert_policy(QueueAlertPolicy("nope", dlq_alert_threshold=3))


def test_queue_thresholds_and_recipients_drive_the_alerts(service, admin, job_manager):
    dead_letter(job_manager, "emails", "e1", "e2")
    dead_letter(job_manager, "sms", "s1", "s2")
    dead_letter(job_manager, "billing", "b1")
    admin.update_queue_alert_policy(QueueAlertPolicy("emails", dlq_alert_threshold=0))
    admin.update_queue_alert_policy(
        QueueAlertPolicy("billing", dlq_alert_threshold=1, email_recipients=("billing@example.com",))
    )
    settings = EmailSettings(host="127.0.0.1", sender="q@example.com", recipients=("ops@example.com",))
    alerter = DlqAlerter(
        job_manager.database, job_manager.clock, DlqAlertsConfig(threshold=2), email_outbox=EmailOutbox(settings)
    )

    counts = alerter.run_once()

    # emails: off by its policy; sms: the server's threshold; billing: its own, lower one.
    assert counts.raised == 2
    with job_manager.database.transaction() as repo:
        queued = {email.queue_name: email for email in outbox_of(repo).list_recent(limit=10)}
    assert sorted(queued) == ["billing", "sms"]
    assert queued["billing"].recipients == ("ops@example.com", "billing@example.com")
    assert queued["sms"].recipients == ("ops@example.com",)
    assert "alert threshold 1" in queued["billing"].body

    # Raising the queue's threshold above its count clears its alert.
    admin.update_queue_alert_policy(QueueAlertPolicy("billing", dlq_alert_threshold=5))
    assert alerter.run_once().cleared == 1
