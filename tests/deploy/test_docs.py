"""The operator documentation stays true to the code it describes."""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import pytest

from relay.smtp import config as service_config
from relay.smtp.replies import REPLIES

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
OWN_PAGES = ("README.md", "install.md", "configuration.md", "operations.md", "troubleshooting.md", "flow.md")
SECTIONS = ("service", "listeners", "limits", "queue", "delivery", "audit", "metrics")


def _page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _slug(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: str) -> set[str]:
    return {_slug(line.lstrip("#")) for line in page.splitlines() if line.startswith("#")}


@pytest.mark.parametrize("name", OWN_PAGES)
def test_relative_links_resolve(name):
    for target in re.findall(r"\]\(([^)#:\s]*)(?:#([^)\s]+))?\)", _page(name)):
        path, anchor = target
        linked = DOCS / (path or name)
        assert linked.exists(), f"{name}: link to missing {path}"
        if anchor and linked.suffix == ".md":
            assert anchor in _anchors(linked.read_text(encoding="utf-8")), f"{name}: no #{anchor} in {linked.name}"


def _documented_keys() -> dict[str, set[str]]:
    """{section: keys} from the tables under the `## [section]` headings of configuration.md."""
    keys: dict[str, set[str]] = {}
    section = None
    for line in _page("configuration.md").splitlines():
        heading = re.match(r"^## \[\[?(\w+)\]\]?$", line)
        if heading:
            section = heading.group(1)
            keys[section] = set()
        elif line.startswith("## "):
            section = None
        elif section and (row := re.match(r"^\| `(\w+)` \|", line)):
            keys[section].add(row.group(1))
    return keys


def _known_keys(monkeypatch) -> dict[str, set[str]]:
    """Every key the service's reader consults, recorded while it reads a minimal file."""
    seen: dict[str, set[str]] = {}
    original = service_config._Section._get

    def recording(self, key, default):
        seen.setdefault(self.name.split("[")[0], set()).add(key)
        return original(self, key, default)

    monkeypatch.setattr(service_config._Section, "_get", recording)
    minimal = {"listeners": [{"kind": "loopback", "port": 2525}]}
    service_config.parse_service_config(minimal, Path("/etc/relay/relay.toml"))
    return seen


def test_configuration_reference_lists_exactly_the_keys_read(monkeypatch):
    known = _known_keys(monkeypatch)
    documented = _documented_keys()
    assert set(known) == set(SECTIONS)
    for section in SECTIONS:
        assert documented.get(section) == known[section], section


def test_configuration_examples_are_accepted():
    blocks = re.findall(r"```toml\n(.*?)```", _page("configuration.md"), re.S)
    assert blocks
    for block in blocks:
        service_config.parse_service_config(tomllib.loads(block), Path("/etc/relay/relay.toml"))


def test_configuration_defaults_match_the_code():
    text = _page("configuration.md")
    limits, delivery = service_config.ServiceLimits(), service_config.DeliveryConfig()
    for name, value in [
        ("max_recipients", limits.max_recipients),
        ("max_connections", limits.max_connections),
        ("session_timeout", limits.session_timeout),
        ("max_message_bytes", limits.message.max_message_bytes),
        ("max_line_bytes", limits.message.max_line_bytes),
        ("first_retry", delivery.first_retry),
        ("give_up_after", delivery.give_up_after),
        ("max_concurrent", delivery.max_concurrent),
    ]:
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        assert re.search(rf"^\| `{name}` \| `{shown}`", text, re.M), name


def test_reply_table_is_the_code_table():
    rows = re.findall(r"^\| `([a-z-]+)` \| (\d{3}) \| (\d\.\d\.\d+) \|$", _page("operations.md"), re.M)
    assert {code: (int(basic), enhanced) for code, basic, enhanced in rows} == {
        code.value: (reply.basic, reply.enhanced) for code, reply in REPLIES.items()
    }


def test_metric_table_names_what_the_registry_exports():
    import datetime as dt

    from prometheus_client.parser import text_string_to_metric_families

    from relay.core.bundle import Bundle
    from relay.core.snapshot import Snapshot
    from relay.devpki import make_ca, make_crl
    from relay.metrics.registry import Metrics

    ca = make_ca("AC DOCS")
    snapshot = Snapshot("v", dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), bundles={"b": Bundle("b", (ca.cert,), crls=(make_crl(ca),))})
    exported = {
        family.name + ("_total" if family.type == "counter" else "")
        for family in text_string_to_metric_families(Metrics(lambda: snapshot).exposition().decode())
        if not family.name.endswith("_created")  # creation times of the counters, not metrics of their own
    }
    documented = set(re.findall(r"^\| `(relay_\w+)` \|", _page("operations.md"), re.M))
    assert documented == exported


def test_flow_names_modules_and_functions_that_exist():
    pairs = re.findall(r"`(relay/[\w/]+\.py)` `([\w.]+)`", _page("flow.md"))
    assert len(pairs) > 20
    for path, name in pairs:
        assert (ROOT / path).exists(), path
        target: object = importlib.import_module(path[:-3].replace("/", "."))
        for part in name.split("."):
            assert hasattr(target, part), f"{path}: no {name}"
            target = getattr(target, part)


def test_flow_short_names_exist():
    """`module.function` written without the package: resolved in the packages on the path."""
    checked = 0
    for module_name, name in re.findall(r"`([a-z][a-z0-9_]*)\.([A-Za-z_][\w.]*)`", _page("flow.md")):
        if name == "py":
            continue  # a file name, e.g. `cms_asn1.py`
        for package in ("relay.core", "relay.smtp", "relay.queue", "relay.trust"):
            try:
                target: object = importlib.import_module(f"{package}.{module_name}")
            except ModuleNotFoundError:
                continue
            for part in name.split("."):
                assert hasattr(target, part), f"{package}.{module_name}: no {name}"
                target = getattr(target, part)
            checked += 1
            break
    assert checked > 20
