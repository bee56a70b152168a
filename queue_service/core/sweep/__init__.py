"""The sweep: the periodic tasks that recover, retry, clean and alert, and the runner that runs them.

Design note: the sweep, leadership and scheduling
=================================================

Who runs what, and when
-----------------------
Every replica of ``queue-service serve`` answers RPCs; only the elected leader runs the timers.
``queue_service/scheduler.py`` holds three APScheduler jobs, each with ``max_instances=1`` and
missed runs coalesced into one:

* an election round every quarter of the leader lease term (``leadership.Lease`` on the
  "recovery-leader" row), on every replica;
* the sweep every ``--recovery-interval``, on the leader only (``sweep.runner.Recovery``);
* the cron tick every second, on the leader only (``schedules.ScheduleTick.run_once``).

A sweep runs the tasks of ``sweep/registry.py`` in order: stalled jobs (expired leases), jobs out
of retries, retries that are due, retention of completed jobs, of the retry log and of activity
rows, the DLQ threshold alerts, and the delivery of alert emails. Each task is one object in
``sweep/tasks/`` with a small frozen config and a ``run_once`` that works in batches of
``RecoverySettings.batch_size`` rows, one transaction per batch, calls the sweep's checkpoint
after each, and returns its counts (``sweep/task.py`` has the shape). The runner
(``sweep/runner.py``) adds them to the sweep's counts and records one run row with them
(``sweep/runs.py``). ``queue-service recover`` and the ``TriggerRecovery`` RPC run the same
sweep by hand, on any replica. A new task is a module in ``sweep/tasks/`` and a line in the
registry (and, for a new count, a field of ``RecoveryCounts`` and of RecoveryTaskCounts).

Why names say "recovery": the sweep is what recovers jobs whose workers vanished, so the RPCs,
settings and run records say "recovery"; in code the mechanism is "the sweep" and its parts
"tasks".

Leadership
----------
A lease is a row with a holder, a term and an expiry, taken and renewed by compare-and-set on
holder and term (``leadership.py``). A leader renews before three quarters of its term have
passed; a replica that finds the row lapsed takes it and raises the term, so a former leader's
late renewal fails and it stops leading. Replicas' clocks must agree to well within a term.

The sweep also takes its own lease, "recovery-sweep", so that a scheduled sweep, a manual one
and a CLI one never overlap across replicas; it is renewed between batches.

When a node dies mid-sweep
--------------------------
Nothing half-done is committed: each batch is one transaction, so a batch in flight rolls back
and its rows are still due. The dead leader's lease lapses within one term and another replica
is elected; its next sweep finds the same rows and takes them (batches lock their rows with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL). The dead node's RUNNING run row is closed as abandoned
by the next sweep. A cron slot is enqueued with a job id derived from schedule and slot, and the
schedule moves on in the same transaction, so a tick cut short, or two leaders for a moment,
never make a slot twice.
"""
