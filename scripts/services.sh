#!/usr/bin/env bash
# The Debian servers graft's service tests start on their own (never as system services):
# redis-server (Celery broker), PostgreSQL (GRAFT_DB_URL) and chromium (the browser tests).
# Installs only what is missing, and only as root with apt-get; otherwise it says so and the
# tests that need a missing piece skip with the reason. Idempotent; `scripts/setup.sh --services` runs it.
set -euo pipefail

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "services: not root or no apt-get; missing ${missing[*]}: the tests that need them will skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# the tests run their own throw-away clusters: no default cluster for the package to create
if [[ " ${missing[*]} " == *" postgresql "* ]]; then
  mkdir -p /etc/postgresql-common
  grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf \
    || echo "create_main_cluster = false" >> /etc/postgresql-common/createcluster.conf
fi
apt_install() { apt-get install -y -q --no-install-recommends "$@" >/dev/null; }
echo "services: apt-get install ${missing[*]}" >&2
apt_install "${missing[@]}" || { apt-get update -q >/dev/null && apt_install "${missing[@]}"; } \
  || echo "services: apt-get could not install ${missing[*]}: the tests that need them will skip" >&2
