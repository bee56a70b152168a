"""Server configuration values: the page token key and durations too long for the clock."""

from __future__ import annotations

import dataclasses

import pytest

from queue_service.api.tokens import load_tokens
from queue_service.cli import build_parser, server_config
from queue_service.clock import SystemClock
from queue_service.config import ConfigError, ServerConfig, page_token_key, parse_duration
from queue_service.core.jobs import JobManager, LifecycleSettings
from queue_service.core.sweep.settings import SWEEPER_BATCH_SIZE
from queue_service.multiprocess import sweeping_config
from queue_service.store.database import Database

TOKENS = {"QUEUE_ADMIN_TOKEN": "admin-token-0123456789abcdef"}


def test_the_page_token_key_is_the_variable_else_derived_from_the_tokens_else_random():
    tokens = load_tokens(TOKENS)
    assert page_token_key("a-configured-key-0123456789", tokens) == b"a-configured-key-0123456789"
    derived = page_token_key("", tokens)
    assert derived == page_token_key("", load_tokens(TOKENS)), "replicas with the same tokens agree"
    assert derived != page_token_key("", load_tokens({"QUEUE_ADMIN_TOKEN": "another-token-0123456789ab"}))
    assert b"admin-token" not in derived
    no_tokens = load_tokens({})
    assert page_token_key("", no_tokens) != page_token_key("", no_tokens)
    with pytest.raises(ConfigError, match="QUEUE_PAGE_TOKEN_KEY must be at least 16"):
        ServerConfig(port=0, page_token_key="short").validate()


def test_serve_picks_one_key_for_all_its_processes(monkeypatch):
    monkeypatch.delenv("QUEUE_PAGE_TOKEN_KEY", raising=False)
    for name in ("QUEUE_ADMIN_TOKEN", "QUEUE_WORKER_TOKEN", "QUEUE_TOKENS_FILE"):
        monkeypatch.delenv(name, raising=False)
    config = server_config(build_parser().parse_args(["serve", "--port", "0"]))
    assert len(config.page_token_key) >= 16, "chosen before --workers forks, so every process signs alike"
    monkeypatch.setenv("QUEUE_PAGE_TOKEN_KEY", "a-shared-page-token-key-0123")
    config = server_config(build_parser().parse_args(["serve", "--port", "0"]))
    assert config.resolved_page_token_key() == b"a-shared-page-token-key-0123"


@pytest.mark.parametrize("raw", ["99999999999d", "9" * 400])
def test_a_duration_beyond_the_clock_is_a_configuration_error(raw):
    with pytest.raises(ConfigError, match="--recovery-interval is too long"):
        parse_duration(raw, "--recovery-interval")


def test_group_commit_follows_the_flag_then_the_variable_else_the_backend(monkeypatch):
    monkeypatch.delenv("QUEUE_GROUP_COMMIT", raising=False)

    def group_commit(*flags: str) -> bool | None:
        return server_config(build_parser().parse_args(["serve", "--port", "0", *flags])).lifecycle.group_commit

    assert group_commit() is None  # the backend decides
    assert group_commit("--group-commit") is True
    assert group_commit("--no-group-commit") is False
    for off in ("0", "false", "off"):
        monkeypatch.setenv("QUEUE_GROUP_COMMIT", off)
        assert group_commit() is False
        assert group_commit("--group-commit") is True
    for on in ("1", "true", "on"):
        monkeypatch.setenv("QUEUE_GROUP_COMMIT", on)
        assert group_commit() is True
        assert group_commit("--no-group-commit") is False
    monkeypatch.setenv("QUEUE_GROUP_COMMIT", "auto")
    assert group_commit() is None
    monkeypatch.setenv("QUEUE_GROUP_COMMIT", "sometimes")
    with pytest.raises(ConfigError, match="QUEUE_GROUP_COMMIT"):
        group_commit()


def test_group_commit_by_default_is_on_for_sqlite_and_off_for_postgresql(database_url):
    database = Database(database_url)
    try:
        assert (JobManager(database, SystemClock()).committer is not None) == (database.dialect == "sqlite")
        assert JobManager(database, SystemClock(), LifecycleSettings(group_commit=True)).committer is not None
        assert JobManager(database, SystemClock(), LifecycleSettings(group_commit=False)).committer is None
    finally:
        database.dispose()


def test_the_sweeper_process_sweeps_in_larger_batches_than_a_serving_process(tmp_path):
    config = ServerConfig(port=0)
    sweeping = sweeping_config(config, "replica/sweeper")
    assert sweeping.recovery.batch_size == SWEEPER_BATCH_SIZE > config.recovery.batch_size
    assert sweeping.recovery == dataclasses.replace(
        config.recovery, node_id="replica/sweeper", batch_size=SWEEPER_BATCH_SIZE
    )
    assert dataclasses.replace(sweeping, recovery=config.recovery) == config
    # SQLite's one writer keeps its own, smaller bound in every process.
    database = Database(f"sqlite:///{tmp_path / 'jobs.sqlite3'}")
    try:
        assert database.sweep_batch_size(SWEEPER_BATCH_SIZE) < SWEEPER_BATCH_SIZE
    finally:
        database.dispose()
