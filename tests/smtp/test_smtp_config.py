from pathlib import Path

import pytest

from relay.queue import syncfs
from relay.queue.spool import Flush
from relay.smtp.config import ConfigError, ListenerKind, ListenerTls, load_service_config

GOOD = """
[service]
hostname = "relay.example"
users = "users"
[[listeners]]
kind = "submission"
address = "0.0.0.0"
port = 587
certificate = "tls.pem"
key = "tls.key"
[[listeners]]
name = "bench"
kind = "loopback"
address = "::1"
port = 2525
[limits]
max_recipients = 5
max_parts = 20
[queue]
directory = "q"
[delivery]
first_retry = 60
[bundles.other]
anything = "belongs to the trust loader"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "relay.toml"
    path.write_text(text)
    return path


def test_reads_sections_and_resolves_paths(tmp_path, monkeypatch):
    monkeypatch.setattr(syncfs, "unavailable_reason", lambda: None)  # whatever this machine's kernel
    config = load_service_config(_write(tmp_path, GOOD))
    assert config.hostname == "relay.example"
    assert config.users == tmp_path / "users" and config.metrics is None
    assert load_service_config(_write(tmp_path, GOOD + '[metrics]\naddress = "::1"\n')).metrics == ("::1", 9325)
    assert [l.kind for l in config.listeners] == [ListenerKind.SUBMISSION, ListenerKind.LOOPBACK]
    assert config.listeners[0].tls is ListenerTls.STARTTLS and config.listeners[0].certificate == tmp_path / "tls.pem"
    assert config.listeners[1].tls is ListenerTls.NONE
    assert config.limits.max_recipients == 5 and config.limits.message.max_parts == 20
    assert config.queue.directory == tmp_path / "q"
    assert config.queue.commit_wait == 0.002 and config.queue.flush is Flush.FILES
    tuned = load_service_config(_write(tmp_path, GOOD.replace('directory = "q"', 'directory = "q"\ncommit_wait = 0\nflush = "filesystem"')))
    assert tuned.queue.commit_wait == 0.0 and tuned.queue.flush is Flush.FILESYSTEM
    assert config.delivery.first_retry == 60.0 and config.delivery.give_up_after == 5 * 86400


@pytest.mark.parametrize(
    "change, message",
    [
        (("max_recipients = 5", "max_recipient = 5"), "[limits] max_recipient: unknown key"),
        (('hostname = "relay.example"', "hostname = 3"), "[service] hostname: must be a non-empty string"),
        (('address = "::1"', 'address = "192.0.2.1"'), "plain listener only binds loopback"),
        (('kind = "submission"', 'kind = "relay"'), "'relay' is not one of"),
        (("port = 587", "port = 70000"), "port: must be between"),
        (('key = "tls.key"', ""), "needs certificate and key"),
        (("first_retry = 60", "first_retry = true"), "[delivery] first_retry: must be a number"),
        (('[queue]', '[metrics]\naddress = "localhost"\n[queue]'), "[metrics] address: 'localhost' is not an IP address"),
        (('directory = "q"', 'directory = "q"\ncommit_wait = 1'), "[queue] commit_wait: must be at most 0.1"),
        (('directory = "q"', 'directory = "q"\nflush = "fsync"'), "[queue] flush: 'fsync' is not one of files, filesystem"),
    ],
)
def test_strict_errors_name_the_key(tmp_path, change, message):
    with pytest.raises(ConfigError) as error:
        load_service_config(_write(tmp_path, GOOD.replace(*change)))
    assert message in str(error.value)


@pytest.mark.parametrize(
    "change, located, message",
    [
        (("max_recipients = 5", "max_recipient = 5"), "max_recipient = 5", "[limits] max_recipient: unknown key"),
        (('address = "::1"', 'address = "192.0.2.1"'), 'address = "192.0.2.1"', "[listeners[1]] address: a plain"),
        (("port = 587", "port = 70000"), "port = 70000", "[listeners[0]] port: must be between"),
        # A rule about a key that is absent points at its table.
        (("port = 587", ""), "[[listeners]]", "[listeners[0]] port: is required"),
        (('directory = "q"', 'directory = "q"\ncommit_wait = 1'), "commit_wait = 1", "[queue] commit_wait: must be at most 0.1"),
        (('directory = "q"', 'directory = "q"\ncommit_wait = nan'), "commit_wait = nan", "[queue] commit_wait: must be a number"),
        # U+2028 in a comment is no line break for TOML: the lines after it keep their numbers.
        (("max_recipients = 5", "# max\u2028recipients\nmax_recipient = 5"), "max_recipient = 5", "[limits] max_recipient: unknown key"),
    ],
)
def test_errors_name_the_line(tmp_path, change, located, message):
    text = GOOD.replace(*change)
    line = text.split("\n").index(located) + 1
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_service_config(path)
    assert str(error.value).startswith(f"{path}:{line}: {message}")


def test_a_filesystem_flush_needs_a_kernel_that_reports_lost_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(syncfs.os, "uname", lambda: type("uname", (), {"release": "5.4.0-150-generic"})())
    with pytest.raises(ConfigError) as error:
        load_service_config(_write(tmp_path, GOOD.replace('directory = "q"', 'directory = "q"\nflush = "filesystem"')))
    assert '[queue] flush: "filesystem" needs Linux 5.8 or later' in str(error.value)


def test_plain_listener_needs_loopback_kind(tmp_path):
    text = GOOD.replace('kind = "submission"', 'kind = "mx"').replace('certificate = "tls.pem"\nkey = "tls.key"', 'tls = "none"')
    with pytest.raises(ConfigError, match="needs TLS"):
        load_service_config(_write(tmp_path, text))


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="No such file"):
        load_service_config(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_service_config(_write(tmp_path, "[service\n"))


def test_serve_refuses_a_bad_configuration_with_one_line(tmp_path):
    import subprocess
    import sys

    from tests.smtp.helpers import ROOT

    path = _write(tmp_path, GOOD.replace("max_recipients = 5", "max_recipients = 0"))
    result = subprocess.run([sys.executable, "-m", "relay", "serve", "--config", str(path)], capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip() == f"relay serve: {path}:17: [limits] max_recipients: must be between 1 and unbounded"
