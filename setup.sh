#!/bin/sh
# Installs everything relay needs on Debian (run as root), then:
#   sh setup.sh demo   runs the relay on the demo configuration
#   sh setup.sh test   runs the whole test suite
set -eu
cd "$(dirname "$0")"

PACKAGES="python3 python3-venv python3-dev gcc openssl gpgsm gnupg libnss3-tools swaks msmtp softhsm2 opensc postfix haproxy faketime systemd e2fsprogs ca-certificates"

install_system_packages() {
    # kubectl renders the Kubernetes manifests in the tests; a kubectl that is
    # already there (another vendor's package) is used as it is.
    command -v kubectl >/dev/null 2>&1 || PACKAGES="$PACKAGES kubernetes-client"
    missing=""
    for p in $PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    export DEBIAN_FRONTEND=noninteractive
    # Postfix is only wanted for smtp-sink/smtp-source: no MTA is configured or started.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq $missing >/dev/null
}

install_python_packages() {
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
}

case "${1:-}" in
    demo) install_system_packages; install_python_packages; exec .venv/bin/relay demo ;;
    test) install_system_packages; install_python_packages; shift; exec .venv/bin/python -m pytest "$@" ;;
    *) echo "usage: sh setup.sh demo|test" >&2; exit 2 ;;
esac
