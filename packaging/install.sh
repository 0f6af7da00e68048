#!/bin/sh
# Installs hookd on a systemd machine without dpkg: binary, unit, sysusers entry, config
# (kept if present), service user. Safe to run again (upgrades the binary and unit).
#
#   packaging/install.sh [--binary PATH] [--root DIR]
#
# --binary defaults to target/release/hookd; --root installs into another root (for images
# and tests); nothing is started there.
set -eu

binary=target/release/hookd
root=
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary=$2; shift 2 ;;
        --root) root=$2; shift 2 ;;
        *) echo "install.sh: unknown option $1 (use --binary PATH, --root DIR)" >&2; exit 2 ;;
    esac
done
here=$(cd "$(dirname "$0")" && pwd)
[ -x "$binary" ] || { echo "install.sh: no executable at $binary (cargo build --release first)" >&2; exit 1; }

install -d "$root/usr/bin" "$root/etc/systemd/system" "$root/usr/lib/sysusers.d" "$root/etc/hookd"
install -m 0755 "$binary" "$root/usr/bin/hookd"
install -m 0644 "$here/hookd.service" "$root/etc/systemd/system/hookd.service"
install -m 0644 "$here/hookd.sysusers" "$root/usr/lib/sysusers.d/hookd.conf"

# The user first: the config is made readable to its group.
if [ -n "$root" ]; then
    systemd-sysusers --root="$root" "$root/usr/lib/sysusers.d/hookd.conf"
elif ! getent passwd hookd >/dev/null; then
    if command -v systemd-sysusers >/dev/null 2>&1; then
        systemd-sysusers /usr/lib/sysusers.d/hookd.conf
    else
        useradd --system --user-group --home-dir /var/lib/hookd --no-create-home \
            --shell /usr/sbin/nologin hookd
    fi
fi

# Never overwrite an operator's config.
if [ ! -e "$root/etc/hookd/hookd.toml" ]; then
    install -m 0640 "$here/hookd.toml" "$root/etc/hookd/hookd.toml"
    if [ -z "$root" ]; then chgrp hookd /etc/hookd/hookd.toml; fi
    echo "installed $root/etc/hookd/hookd.toml"
else
    echo "kept existing $root/etc/hookd/hookd.toml"
fi

if [ -z "$root" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable hookd.service
    systemctl restart hookd.service
    echo "hookd enabled and (re)started: journalctl -u hookd"
else
    echo "installed into ${root:-/}; enable with: systemctl enable --now hookd"
fi
