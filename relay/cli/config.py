"""relay.toml as the commands take it: the --config option and its errors as usage errors."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..queue.spool import Spool
from ..smtp.config import ConfigError, ServiceConfig, load_service_config
from ..trust.config import DEFAULT_CONFIG
from ..trust.problems import ConfigError as TrustConfigError
from .errors import UsageError


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """--config for the commands that read the trust directory, defaulting to DEFAULT_CONFIG."""
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help=f"relay.toml (default {DEFAULT_CONFIG})")


def service_config(path: Path) -> ServiceConfig:
    """The service sections of relay.toml; an unusable file is a usage error."""
    try:
        return load_service_config(path)
    except ConfigError as error:
        raise UsageError(str(error)) from None


def existing_spool(config: ServiceConfig) -> Spool:
    """The service's spool; never created here (`relay serve` prepares it, and may be running)."""
    spool = Spool(config.queue.directory)
    if not spool.queue.is_dir():
        raise UsageError(f"{spool.queue}: no spool here (start relay serve once)")
    return spool


def invalid_trust(config: Path, error: TrustConfigError) -> UsageError:
    """The usage error for a configuration or trust directory that does not load."""
    return UsageError(f"{config} is not valid:\n" + str(error))
