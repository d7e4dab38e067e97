#!/usr/bin/env bash
# Makes sure RabbitMQ and PostgreSQL are installed (Debian packages), running,
# and provisioned for Sportello. Idempotent; sourced by run.sh and test.sh.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_packages() {
  local missing=()
  command -v rabbitmq-server >/dev/null 2>&1 || missing+=(rabbitmq-server)
  command -v pg_ctlcluster >/dev/null 2>&1 || missing+=(postgresql)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  # The README's tour reads the API's JSON answers with it.
  command -v jq >/dev/null 2>&1 || missing+=(jq)
  # Headless browser for the staff-pages test.
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  [ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
  # TURN/STUN relay of the video rooms (not started here: tests on loopback
  # need only host candidates; see docs/video-rooms.md, "STUN and TURN").
  [ -x /usr/bin/turnserver ] || missing+=(coturn)
  # SMTP sink the notification tests deliver to.
  /usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1 || missing+=(python3-aiosmtpd)
  # promtool tests the alert rules (deploy/prometheus/); the prometheus
  # binary scrapes a Sportello in tests/metrics.rs and locally (docs/operations.md).
  [ -x /usr/bin/promtool ] && [ -x /usr/bin/prometheus ] || missing+=(prometheus)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} from Debian's packages"
    local log
    log="$(mktemp)"
    if ! { as_root apt-get update -qq &&
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >"$log" 2>&1; then
      cat "$log" >&2
      rm -f "$log"
      return 1
    fi
    rm -f "$log"
  fi
}

ensure_postgres() {
  local version
  version="$(ls /etc/postgresql | sort -V | tail -n 1)"
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  # A role of our own with a password works under Debian's default (scram)
  # authentication as well as under trust.
  # From `/`: the `postgres` user may not be allowed into the current folder.
  (cd / && as_root runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -c "
    DO \$\$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sportello') THEN
        CREATE ROLE sportello LOGIN CREATEDB PASSWORD 'sportello';
      END IF;
    END \$\$;" >/dev/null)
}

ensure_rabbitmq() {
  # `ping`, not `status`: status gathers the whole node's state and can
  # stall for minutes on a busy broker; ping only asks whether it runs.
  if ! as_root timeout 60 rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
    echo "starting RabbitMQ"
    as_root rabbitmq-server -detached
  fi
  as_root rabbitmqctl -q await_startup --timeout 120 >/dev/null
  # The management API serves the tests (vhosts, forced disconnects) and operators.
  if ! curl -fs -u guest:guest http://127.0.0.1:15672/api/overview >/dev/null 2>&1; then
    as_root rabbitmq-plugins -q enable rabbitmq_management >/dev/null
    for _ in $(seq 1 60); do
      curl -fs -u guest:guest http://127.0.0.1:15672/api/overview >/dev/null 2>&1 && break
      sleep 1
    done
  fi
  # Prometheus scrapes the broker's own metrics (queues, consumers, nodes) on
  # 15692 (deploy/prometheus/prometheus.yml).
  if ! curl -fs http://127.0.0.1:15692/metrics >/dev/null 2>&1; then
    as_root rabbitmq-plugins -q enable rabbitmq_prometheus >/dev/null
    for _ in $(seq 1 60); do
      curl -fs http://127.0.0.1:15692/metrics >/dev/null 2>&1 && break
      sleep 1
    done
  fi
  # Vhost `sportello`, the channels' and each worker kind's users (their
  # development passwords, `<user>-dev`), permissions, topology. rabbitmqctl runs
  # as the `rabbitmq` user, who may not be able to read this checkout (a
  # clone in root's home or in any private folder): the definitions go in on
  # standard input, opened by us.
  as_root rabbitmqctl -q import_definitions --format json \
    <"$repo_root/broker-config/definitions.json" >/dev/null
  # The import finishes in the background: wait until the app user may use
  # the vhost, so whatever runs next can connect.
  for _ in $(seq 1 60); do
    as_root rabbitmqctl -q list_user_permissions sportello-app 2>/dev/null \
      | grep -q '^sportello[[:space:]]' && return 0
    sleep 1
  done
  echo "the broker definitions were not imported" >&2
  return 1
}

ensure_packages
ensure_postgres
ensure_rabbitmq
