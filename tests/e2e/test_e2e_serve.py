"""`relay serve --config relay.toml` itself: the trust directory read by relay.trust, `relay reload` through the pid file."""

from __future__ import annotations

import smtplib
import subprocess
import sys

from tests.smtp.helpers import ROOT, Sink, make_pki, message, read_ready, service_toml, stop, wait_until, write_trust_dir


def test_relay_serve_with_the_trust_directory_and_relay_reload(tmp_path):
    pki = make_pki(tmp_path / "pki")
    sink = Sink(tmp_path / "sink", 0).start()
    write_trust_dir(tmp_path, pki, sink.port)
    config = service_toml(tmp_path, pki, listeners=("loopback",))
    config.write_text('trust_dir = "trust"\npid_file = "relay.pid"\n' + config.read_text())
    proc = subprocess.Popen([sys.executable, "-m", "relay", "serve", "--config", str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        port = read_ready(proc)["loopback"][1]
        assert (tmp_path / "relay.pid").read_text().strip() == str(proc.pid)
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            assert client.sendmail("a@hospital.test", ["b@hospital.test"], message("a@hospital.test", ["b@hospital.test"], subject="marker-serve")) == {}
            assert client.docmd("RCPT", "TO:<x@clinic.test>")[0] == 503  # no MAIL in this transaction yet
            client.mail("a@hospital.test")
            assert client.rcpt("x@clinic.test")[0] == 550
        sink.wait_for_marker("marker-serve")
        # A new domain, announced with `relay reload`.
        write_trust_dir(tmp_path, pki, sink.port, extra='[domain."clinic.test"]\nlocal = true\nsigner_bundles = []\n'
                        f'next_hop = {{ url = "smtp://127.0.0.1:{sink.port}", tls = "none" }}\n')
        reload = subprocess.run([sys.executable, "-m", "relay", "reload", "--config", str(config)], capture_output=True, text=True, cwd=ROOT, timeout=30)
        assert reload.returncode == 0, reload.stderr
        wait_until(lambda: '"reloaded"' in (tmp_path / "audit.log").read_text())
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.ehlo("client.test")
            client.mail("a@hospital.test")
            assert client.rcpt("x@clinic.test")[0] == 250
    finally:
        stop(proc)
        sink.stop()
    assert proc.returncode == 0
    assert not (tmp_path / "relay.pid").exists()


def test_relay_serve_reports_trust_problems(tmp_path):
    pki = make_pki(tmp_path / "pki")
    write_trust_dir(tmp_path, pki, 2525)
    (tmp_path / "trust" / "domains.toml").write_text('[domain."hospital.test"]\nlocal = "yes"\n')
    config = service_toml(tmp_path, pki, listeners=("loopback",))
    config.write_text('trust_dir = "trust"\n' + config.read_text())
    result = subprocess.run([sys.executable, "-m", "relay", "serve", "--config", str(config)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2
    assert "error: " in result.stderr and "local" in result.stderr
    assert result.stderr.strip().endswith("relay serve: the trust directory cannot be loaded")
