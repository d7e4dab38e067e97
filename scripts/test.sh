#!/usr/bin/env bash
# The test command: starts/provisions the services, then runs every test
# (unit and system) against the real RabbitMQ and PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh

# Cargo keeps the crates in order; this keeps each crate's modules in order.
/usr/bin/python3 scripts/import-cycles.py

# The alert rules and the Prometheus configuration load, and each alert fires
# on what its tests say (deploy/prometheus/; docs/runbook.md says what to do).
promtool check config deploy/prometheus/prometheus.yml >/dev/null
promtool check rules deploy/prometheus/alerts.yml >/dev/null
promtool test rules deploy/prometheus/alerts.test.yml

# Share build output between clones so warm runs are fast.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sportello-target}"
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://sportello:sportello@127.0.0.1:5432/postgres}"
export RABBITMQ_MANAGEMENT_URL="${RABBITMQ_MANAGEMENT_URL:-http://guest:guest@127.0.0.1:15672}"
export TEST_AMQP_BASE="${TEST_AMQP_BASE:-amqp://127.0.0.1:5672}"
# Test threads: cargo's default (one per core). Six at a time cut the
# system tests from 144 s to 80 s here, but twice left this box's RabbitMQ
# 3.10 unable to create vhosts (each test makes one); not until that is
# understood.

# A real SMTP server (aiosmtpd) for the notification tests; each test reads
# the mail of its own recipients from the mail directory.
mail_dir="$(mktemp -d)"
sink_log="$mail_dir.log"
/usr/bin/python3 scripts/smtp_sink.py --port 0 --maildir "$mail_dir" >"$sink_log" 2>&1 &
sink_pid=$!
trap 'kill "$sink_pid" 2>/dev/null || true; rm -rf "$mail_dir" "$sink_log"' EXIT
for _ in $(seq 1 50); do grep -q '^listening on' "$sink_log" && break; sleep 0.1; done
sink_port="$(awk '/^listening on/ {print $3}' "$sink_log")"
[ -n "$sink_port" ] || { echo "the SMTP sink did not start:"; cat "$sink_log"; exit 1; }
export TEST_SMTP_URL="smtp://127.0.0.1:$sink_port"
export TEST_MAIL_DIR="$mail_dir"

# The whole suite (no arguments) also drills a three-node broker cluster:
# one of its own (state in a temporary directory, ports 5681-5683 and
# 15681-15683), started beside the tests, destroyed afterwards whatever
# happens; `SPORTELLO_SKIP_CLUSTER=1` leaves it out.
cluster_drill=0
if [ $# -eq 0 ] && [ "${SPORTELLO_SKIP_CLUSTER:-0}" != 1 ]; then
  cluster_drill=1
  export SPORTELLO_CLUSTER_DIR="$mail_dir.cluster"
  cluster_log="$mail_dir.cluster.log"
  trap 'kill "$sink_pid" ${cluster_pid:-} 2>/dev/null || true; bash scripts/cluster.sh destroy >/dev/null 2>&1 || true; rm -rf "$mail_dir" "$sink_log" "$cluster_log"' EXIT
  bash scripts/cluster.sh start >"$cluster_log" 2>&1 &
  cluster_pid=$!
fi

if [ "$cluster_drill" = 1 ]; then
  # The drill is `sportello-bench` (workers/bench), which no test builds.
  # Built with the tests' targets, so that dependencies are built once with
  # one set of features (`--bins` alone would leave the dev-dependencies'
  # features out and build a hundred crates again).
  cargo build --workspace --locked --all-targets
  echo "test.sh: built in ${SECONDS} s"
fi

cargo test --workspace --locked "$@"
echo "test.sh: tests done at ${SECONDS} s"

if [ "$cluster_drill" = 1 ]; then
  if ! wait "$cluster_pid"; then
    echo "the broker cluster did not start:"
    cat "$cluster_log"
    exit 1
  fi
  # docs/operations.md "Scaling out": a node lost three ways (its queue's leader killed,
  # the node of the consumers killed, stop_app) under 2,000 requests each;
  # fails unless every confirmed request is one ticket with its event,
  # numbers gapless and queues empty.
  "$CARGO_TARGET_DIR/debug/sportello-bench" chaos cluster --requests 2000
  echo "test.sh: cluster drill done at ${SECONDS} s"
fi
