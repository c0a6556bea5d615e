"""Run the relay service on a config file and a JSON trust spec (see tests/smtp/helpers.py).

usage: launch.py RELAY_TOML TRUST_SPEC_JSON
The service is the one `relay serve` runs; only the snapshot loader differs.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from relay.smtp.config import load_service_config  # noqa: E402
from relay.smtp.supervisor import run  # noqa: E402
from tests.smtp.helpers import spec_loader  # noqa: E402

if __name__ == "__main__":
    config = load_service_config(Path(sys.argv[1]))
    run(config, spec_loader(Path(sys.argv[2])))
