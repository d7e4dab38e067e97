#!/usr/bin/env bash
# The test command: starts/provisions the services, then runs every test
# (unit and system) against the real RabbitMQ and PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh

# Share build output between clones so warm runs are fast.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sportello-target}"
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://sportello:sportello@127.0.0.1:5432/postgres}"
export RABBITMQ_MANAGEMENT_URL="${RABBITMQ_MANAGEMENT_URL:-http://guest:guest@127.0.0.1:15672}"
export TEST_AMQP_BASE="${TEST_AMQP_BASE:-amqp://127.0.0.1:5672}"

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

cargo test --workspace --locked "$@"
