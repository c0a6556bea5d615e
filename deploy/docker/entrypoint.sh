#!/bin/sh
# Container entry point: prepare what must exist before the relay starts, then exec it.
#
#  - SoftHSM2: when RELAY_TOKEN_LABEL is set and no token carries that label,
#    a token is initialised with the user PIN and SO PIN read from the files
#    named by RELAY_TOKEN_PIN_FILE and RELAY_TOKEN_SO_PIN_FILE (secrets).
#  - Demo: when RELAY_DEMO=1, the demo PKI and configuration are written once
#    into RELAY_DEMO_DIR (a volume) and the relay runs on them.
set -eu

home="${RELAY_HOME:-/opt/relay}"
tokens="${RELAY_TOKEN_DIR:-/var/lib/relay/tokens}"

softhsm_config() {
    [ -f "$SOFTHSM2_CONF" ] && return 0
    umask 077
    mkdir -p "$tokens"
    printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$tokens" >"$SOFTHSM2_CONF"
}

read_secret() {
    # $1: variable naming the file. The value is printed, never logged.
    file=$(eval "printf '%s' \"\${$1:-}\"")
    if [ -z "$file" ] || [ ! -r "$file" ]; then
        echo "relay-entrypoint: $1 must name a readable secret file" >&2
        exit 64
    fi
    head -n 1 "$file" | tr -d '\r\n'
}

init_token() {
    [ -n "${RELAY_TOKEN_LABEL:-}" ] || return 0
    softhsm_config
    if softhsm2-util --show-slots 2>/dev/null | grep -q "Label: *${RELAY_TOKEN_LABEL} *\$"; then
        return 0
    fi
    pin=$(read_secret RELAY_TOKEN_PIN_FILE)
    so_pin=$(read_secret RELAY_TOKEN_SO_PIN_FILE)
    # softhsm2-util takes the PINs as arguments only; this runs once, inside the container.
    softhsm2-util --init-token --free --label "$RELAY_TOKEN_LABEL" --pin "$pin" --so-pin "$so_pin" >/dev/null
    echo "relay-entrypoint: initialised SoftHSM2 token ${RELAY_TOKEN_LABEL}" >&2
}

prepare_demo() {
    [ "${RELAY_DEMO:-0}" = "1" ] || return 0
    demo="${RELAY_DEMO_DIR:-/srv/relay-demo}"
    if [ ! -f "$demo/relay.toml" ]; then
        mkdir -p "$demo"
        cp -R "$home/config" "$demo/config"
        cp "$home/deploy/relay-demo.toml" "$demo/relay.toml"
    fi
    python3 -m relay.demopki "$demo/certs/demo" >/dev/null
    relay check --config "$demo/relay.toml" >&2
}

init_token
prepare_demo
exec "$@"
