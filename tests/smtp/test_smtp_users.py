import subprocess
import sys

from relay.smtp.credentials import load_credentials
from tests.smtp.helpers import ROOT


def _users(path, *args, password=None):
    return subprocess.run(
        [sys.executable, "-m", "relay", "users", "--file", str(path), *args],
        input=password, capture_output=True, text=True, cwd=ROOT, timeout=30,
    )


def test_add_passwd_remove(tmp_path):
    path = tmp_path / "users"
    assert _users(path, "add", "alice@hospital.test", password="first password\n").returncode == 0
    text = path.read_text()
    assert "first password" not in text and text.startswith("alice@hospital.test:scrypt$16384$8$1$")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    creds = load_credentials(path)
    assert creds.check(b"alice@hospital.test", b"first password") == "alice@hospital.test"
    assert creds.check(b"alice@hospital.test", b"other") is None
    assert creds.check(b"nobody@hospital.test", b"first password") is None
    assert _users(path, "add", "alice@hospital.test", password="x" * 9 + "\n").returncode == 2
    assert _users(path, "passwd", "alice@hospital.test", password="second password\n").returncode == 0
    assert load_credentials(path).check(b"alice@hospital.test", b"second password") == "alice@hospital.test"
    # Same password, fresh salt: the hashes differ.
    _users(path, "add", "bob@hospital.test", password="second password\n")
    hashes = [line.split(":", 1)[1] for line in path.read_text().splitlines()]
    assert hashes[0] != hashes[1]
    assert _users(path, "list").stdout.split() == ["alice@hospital.test", "bob@hospital.test"]
    assert _users(path, "remove", "alice@hospital.test").returncode == 0
    assert _users(path, "list").stdout.split() == ["bob@hospital.test"]


def test_refusals(tmp_path):
    path = tmp_path / "users"
    short = _users(path, "add", "alice@hospital.test", password="short\n")
    assert short.returncode == 2 and "at least 8" in short.stderr
    bad = _users(path, "add", "al:ice", password="long enough\n")
    assert bad.returncode == 2 and "invalid user name" in bad.stderr
    assert _users(path, "remove", "ghost@hospital.test").returncode == 2
    path.write_text("garbage line\n")
    broken = _users(path, "list")
    assert broken.returncode == 2 and f"{path}:1" in broken.stderr
