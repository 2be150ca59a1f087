#!/usr/bin/env bash
# What operators install, checked with the tools they use: the systemd unit (`systemd-analyze
# verify`, and its exposure score must stay "OK"), the Prometheus alert rules (`promtool check
# rules` and their unit tests) and the example configuration (`keygate config check`).
# Needs a built keygate (KEYGATE_BIN, default target/debug/keygate).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
KG=${KEYGATE_BIN:-$PWD/target/debug/keygate}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

echo "--- systemd unit"
# The unit names /usr/local/bin/keygate; verify it against the binary just built.
sed "s|/usr/local/bin/keygate|$KG|g" deploy/systemd/keygate.service >"$T/keygate.service"
systemd-analyze verify "$T/keygate.service"
exposure=$(systemd-analyze security --offline=true "$T/keygate.service" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
echo "systemd exposure level: $exposure (at most 3.0)"
awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 3.0) }'

echo "--- prometheus rules"
promtool check rules deploy/prometheus/keygate-alerts.yml
promtool test rules deploy/prometheus/keygate-alerts.test.yml

echo "--- nginx site"
# The shipped site, with its certificate paths pointed at a throwaway self-signed pair, must pass
# `nginx -t`. An nginx older than 1.25.1 gets the older spelling its comment gives.
mkdir -p "$T/nginx/logs"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=api.example.com \
    -keyout "$T/key.pem" -out "$T/cert.pem" 2>/dev/null
sed -e "s|/etc/letsencrypt/live/api.example.com/fullchain.pem|$T/cert.pem|" \
    -e "s|/etc/letsencrypt/live/api.example.com/privkey.pem|$T/key.pem|" \
    deploy/nginx/keygate-site.conf >"$T/nginx/site.conf"
version=$(nginx -v 2>&1 | sed -n 's|.*nginx/\([0-9.]*\).*|\1|p')
if [[ $(printf '%s\n1.25.1\n' "$version" | sort -V | head -1) != 1.25.1 ]]; then
    echo "nginx $version is older than 1.25.1: checking the site in the spelling its comment gives"
    sed -i -e '/^\s*http2 on;/d' -e 's/listen \(.*\)443 ssl;/listen \1443 ssl http2;/' "$T/nginx/site.conf"
fi
cp -r deploy/nginx/snippets "$T/nginx/"
cat >"$T/nginx/nginx.conf" <<CONF
pid $T/nginx/nginx.pid;
error_log $T/nginx/logs/error.log;
events {}
http {
    access_log off;
    include $T/nginx/site.conf;
}
CONF
nginx -t -p "$T/nginx" -c "$T/nginx/nginx.conf"
