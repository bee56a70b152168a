"""How a statement text becomes a PREPARE and an EXECUTE, and how the URL sets the cache's size."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from queue_service.config import ConfigError
from queue_service.store.prepared import DEFAULT_CAPACITY, prepared_form, split_capacity
from tests.conftest import make_config


def test_placeholders_are_numbered_once_per_name_in_order_of_first_use():
    form = prepared_form(
        "UPDATE queue_jobs SET state = %(state)s WHERE id = %(id)s AND state <> %(state)s AND name LIKE 'a%%'"
    )
    assert form.body == "UPDATE queue_jobs SET state = $1 WHERE id = $2 AND state <> $1 AND name LIKE 'a%'"
    assert form.parameters == ("state", "id")
    assert form.prepare("s1") == f"PREPARE s1 AS {form.body}"
    assert form.execute("s1", ["text", "bigint"]) == "EXECUTE s1(CAST(%(state)s AS text), CAST(%(id)s AS bigint))"


def test_a_statement_without_parameters_is_executed_bare():
    form = prepared_form("SELECT count(*) FROM queues")
    assert form.parameters == ()
    assert form.execute("s2", []) == "EXECUTE s2"


@pytest.mark.parametrize(
    "url, expected_url, capacity",
    [
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg2://u@h/db", DEFAULT_CAPACITY),
        ("postgresql+psycopg2://u@h/db?prepared_statement_cache_size=0", "postgresql+psycopg2://u@h/db", 0),
        (
            "postgresql+psycopg2://u@h/db?sslmode=require&prepared_statement_cache_size=25",
            "postgresql+psycopg2://u@h/db?sslmode=require",
            25,
        ),
    ],
)
def test_the_cache_size_is_taken_out_of_the_url(url, expected_url, capacity):
    stripped, found = split_capacity(make_url(url))
    assert found == capacity
    assert stripped.render_as_string(hide_password=False) == expected_url


@pytest.mark.parametrize(
    "value", ["-1", "ten", "1.5", "10001", "99999999999999999999", "1&prepared_statement_cache_size=2"]
)
def test_a_cache_size_that_is_not_a_count_is_refused_naming_the_setting(value):
    url = f"postgresql+psycopg2://u@h/db?prepared_statement_cache_size={value}"
    with pytest.raises(ConfigError, match="QUEUE_DATABASE_URL.*prepared_statement_cache_size"):
        make_config(url).validate()
