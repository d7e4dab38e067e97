#!/usr/bin/env bash
# The run command: starts/provisions the services, builds, migrates, declares
# the broker topology and runs every worker in one process.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sportello-target}"
export DATABASE_URL="${DATABASE_URL:-postgres://sportello:sportello@127.0.0.1:5432/sportello}"
# On the local broker the video gateway connects as its own, least-privileged
# user (with a broker of your own, set GATEWAY_AMQP_URL too, or it uses AMQP_URL).
if [ -z "${AMQP_URL:-}" ]; then
  export GATEWAY_AMQP_URL="${GATEWAY_AMQP_URL:-amqp://sportello-gateway:sportello-gateway-dev@127.0.0.1:5672/sportello}"
fi
export AMQP_URL="${AMQP_URL:-amqp://sportello-app:sportello-app-dev@127.0.0.1:5672/sportello}"

# Local state stays under var/ (ignored by git), whoever runs this.
export DOCUMENT_STORE_DIR="${DOCUMENT_STORE_DIR:-var/documents}"

# Without a mail server of your own, mail goes to a local SMTP sink and is
# kept as files under var/mail/<recipient>/.
if [ -z "${SMTP_URL:-}" ]; then
  mkdir -p var/mail
  /usr/bin/python3 scripts/smtp_sink.py --port 2525 --maildir var/mail --exit-with-parent &
  export SMTP_URL="smtp://127.0.0.1:2525"
fi

# Without an SMS provider of your own, SMS (the video rooms' codes among
# them) go to a local development provider and are kept as files under
# var/sms/<recipient>/.
if [ -z "${SMS_PROVIDER_URL:-}" ]; then
  mkdir -p var/sms
  /usr/bin/python3 scripts/sms_sink.py --port 2526 --dir var/sms \
    --user sportello --password sms-sink-dev --exit-with-parent &
  export SMS_PROVIDER_URL="http://127.0.0.1:2526/messages"
  export SMS_PROVIDER_USER=sportello SMS_PROVIDER_PASSWORD=sms-sink-dev
fi

# The links in the video appointments' receipts open the local gateway.
export VIDEO_BASE_URL="${VIDEO_BASE_URL:-http://${GATEWAY_ADDRESS:-127.0.0.1:8090}}"

cargo build --release --locked --bin sportello
exec "$CARGO_TARGET_DIR/release/sportello" up
