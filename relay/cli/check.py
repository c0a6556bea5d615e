"""relay check: validate relay.toml and the whole trust directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from ..trust.loader import ConfigError, Loaded, load_directory
from .config import add_config_option


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="validate the configuration and trust directory")
    add_config_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        loaded = load_directory(args.config)
    except ConfigError as error:
        return _invalid(args.config, error.problems, error.warnings)
    service_problems = _service_problems(loaded)
    if service_problems:
        return _invalid(args.config, service_problems, loaded.warnings)
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(summary(loaded))
    return 0


def _invalid(config: Path, problems: Sequence[str], warnings: Sequence[str]) -> int:
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{config}: INVALID ({len(problems)} problem(s))", file=sys.stderr)
    return 1


def _service_problems(loaded: Loaded) -> list[str]:
    """The SMTP service's sections, checked by the service's own reader."""
    if not loaded.config.has_service_sections():
        return []
    from ..smtp.config import ConfigError as ServiceConfigError, parse_service_config
    from ..smtp.crypto_config import parse_crypto_config

    try:
        source = loaded.config.source
        parse_service_config(source.data, loaded.config.path, source.lines)
        parse_crypto_config(source.data, loaded.config.path, source.lines)
    except ServiceConfigError as error:
        return [str(error)]
    return []


def summary(loaded: Loaded) -> str:
    snap = loaded.snapshot
    bundles = snap.bundles.values()
    anchors = sum(len(b.anchors) for b in bundles)
    intermediates = sum(len(b.intermediates) for b in bundles)
    crls = sum(len(b.crls) for b in bundles)
    declared = sum(1 for rule in snap.domains.values() if not rule.origin.startswith("whitelist"))
    return "\n".join(
        [
            f"{loaded.config.path}: OK (version {snap.version})",
            f"  bundles:   {len(snap.bundles)} ({anchors} anchors, {intermediates} intermediates, {crls} CRLs)",
            f"  domains:   {len(snap.domains)} ({declared} declared, {len(snap.domains) - declared} from the whitelist"
            f" of {loaded.whitelist_domains} domains)",
            f"  addresses: {len(snap.addresses)} override(s)",
            f"  mailboxes: {len(snap.mailboxes)}",
            f"  encryption certificates: {len(snap.recipients)} address(es)",
            f"  loaded {loaded.files_read} files in {loaded.seconds:.3f} s, {len(loaded.warnings)} warning(s)",
        ]
    )
