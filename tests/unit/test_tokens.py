"""Token configuration: environment, tokens file, validation, and the no-token safe defaults."""

from __future__ import annotations

import hashlib

import pytest

from queue_service.api.tokens import Role, TokenError, TokenSet, load_tokens, read_tokens_file
from queue_service.config import ConfigError, ServerConfig, is_loopback, server_tokens, tls_files

ADMIN = "admin-secret-0123456789"
WORKER = "worker-secret-0123456789"


def write(tmp_path, text: str):
    path = tmp_path / "tokens.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_environment_tokens_are_named_admin_and_worker():
    tokens = load_tokens({"QUEUE_ADMIN_TOKEN": ADMIN, "QUEUE_WORKER_TOKEN": WORKER})
    admin = tokens.authenticate(ADMIN)
    worker = tokens.authenticate(WORKER)
    assert (admin.name, admin.role) == ("admin", Role.ADMIN)
    assert (worker.name, worker.role) == ("worker", Role.WORKER)
    assert tokens.authenticate(ADMIN + "x") is None
    assert tokens.authenticate("") is None


def test_no_tokens_means_authentication_off():
    tokens = load_tokens({})
    assert not tokens
    assert tokens.authenticate(ADMIN) is None


def test_tokens_file_with_plain_and_hashed_tokens(tmp_path):
    hashed = "billing-worker-token-abcdef"
    path = write(
        tmp_path,
        f"""
# operators
[[tokens]]
name = "alice@example.com"
role = "admin"
token = "{ADMIN}"

[[tokens]]
name = "billing-workers"
role = "worker"
sha256 = "{hashlib.sha256(hashed.encode()).hexdigest()}"
""",
    )
    tokens = load_tokens({"QUEUE_WORKER_TOKEN": WORKER}, path)
    assert len(tokens) == 3
    assert tokens.authenticate(ADMIN).name == "alice@example.com"
    assert tokens.authenticate(hashed).name == "billing-workers"
    assert tokens.authenticate(WORKER).name == "worker"


def test_secrets_never_appear_in_reprs():
    tokens = load_tokens({"QUEUE_ADMIN_TOKEN": ADMIN})
    text = repr(tokens) + repr(tokens.tokens) + repr(ServerConfig(tokens=tokens))
    assert ADMIN not in text
    assert hashlib.sha256(ADMIN.encode()).hexdigest() not in text
    assert "admin:admin" in repr(tokens)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not toml = = =", "not valid TOML"),
        ("", "no [[tokens]] entries"),
        ('[[tokens]]\nname = "a"\nrole = "admin"\n', "exactly one of token or sha256"),
        (f'[[tokens]]\nname = "a"\nrole = "root"\ntoken = "{ADMIN}"\n', "role must be one of"),
        (f'[[tokens]]\nname = "a b"\nrole = "admin"\ntoken = "{ADMIN}"\n', "name must be"),
        ('[[tokens]]\nname = "a"\nrole = "admin"\ntoken = "short"\n', "at least 16 characters"),
        ('[[tokens]]\nname = "a"\nrole = "admin"\ntoken = "has a space in it ok"\n', "no whitespace"),
        ('[[tokens]]\nname = "a"\nrole = "admin"\nsha256 = "abc"\n', "64 hexadecimal"),
        (f'[[tokens]]\nname = "a"\nrole = "admin"\ntoken = "{ADMIN}"\nextra = 1\n', "unknown keys extra"),
        (f'[[tokens]]\nname = "a"\nrole = "admin"\ntoken = "{ADMIN}"\n[other]\n', "unknown top-level keys other"),
        (
            f'[[tokens]]\nname = "a"\nrole = "admin"\ntoken = "{ADMIN}"\n'
            f'[[tokens]]\nname = "a"\nrole = "worker"\ntoken = "{WORKER}"\n',
            "repeated: a",
        ),
        (
            f'[[tokens]]\nname = "a"\nrole = "admin"\ntoken = "{ADMIN}"\n'
            f'[[tokens]]\nname = "b"\nrole = "worker"\ntoken = "{ADMIN}"\n',
            "share the same secret",
        ),
    ],
)
def test_bad_tokens_files_are_refused_without_echoing_secrets(tmp_path, content, message):
    path = write(tmp_path, content)
    with pytest.raises(TokenError) as raised:
        load_tokens({}, path)
    assert message in str(raised.value)
    assert ADMIN not in str(raised.value) and WORKER not in str(raised.value)


def test_environment_and_file_names_must_not_clash(tmp_path):
    path = write(tmp_path, f'[[tokens]]\nname = "admin"\nrole = "admin"\ntoken = "{WORKER}"\n')
    with pytest.raises(TokenError, match="repeated: admin"):
        load_tokens({"QUEUE_ADMIN_TOKEN": ADMIN}, path)


def test_short_environment_token_names_the_variable():
    with pytest.raises(ConfigError, match="QUEUE_WORKER_TOKEN: token must be at least 16"):
        server_tokens(None, {"QUEUE_WORKER_TOKEN": "short"})


def test_missing_tokens_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read tokens file"):
        server_tokens(str(tmp_path / "absent.toml"), {})


def test_world_readable_tokens_file_logs_a_warning(tmp_path, caplog):
    path = write(tmp_path, f'[[tokens]]\nname = "a"\nrole = "admin"\ntoken = "{ADMIN}"\n')
    path.chmod(0o644)
    read_tokens_file(path)
    assert "readable by other users" in caplog.text
    assert ADMIN not in caplog.text


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_hosts(host):
    assert is_loopback(host)
    ServerConfig(host=host).validate()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "[::]", "10.1.2.3", "queue.internal"])
def test_non_loopback_without_tokens_is_refused_unless_insecure(host):
    assert not is_loopback(host)
    with pytest.raises(ConfigError, match="refusing to listen .* without authentication"):
        ServerConfig(host=host).validate()
    ServerConfig(host=host, insecure=True).validate()
    ServerConfig(host=host, tokens=TokenSet(load_tokens({"QUEUE_ADMIN_TOKEN": ADMIN}).tokens)).validate()


def test_tls_flags_go_together():
    assert tls_files("", "", "") is None
    assert tls_files("c.pem", "k.pem", "").client_ca_file is None
    assert tls_files("c.pem", "k.pem", "ca.pem").client_ca_file == "ca.pem"
    with pytest.raises(ConfigError, match="go together"):
        tls_files("c.pem", "", "")
    with pytest.raises(ConfigError, match="needs --tls-cert"):
        tls_files("", "", "ca.pem")
