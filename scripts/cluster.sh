#!/usr/bin/env bash
# A three-node RabbitMQ cluster of Debian's rabbitmq-server on this machine,
# beside (never instead of) the machine's own node rabbit@<host> on 5672:
#
#   scripts/cluster.sh start    start (or create) the cluster; idempotent
#   scripts/cluster.sh stop     stop the three nodes (data kept)
#   scripts/cluster.sh status   one line per node, and the intake queue's members
#   scripts/cluster.sh destroy  stop and delete every file of the cluster
#   scripts/cluster.sh kill N   kill -9 node N's VM (chaos tests use it)
#   scripts/cluster.sh ctl N .. rabbitmqctl against node N
#
# Node N (1..3) is sportello-N@localhost with AMQP 568N, management 1568N and
# Erlang distribution 2568N; everything it writes lives under
# $SPORTELLO_CLUSTER_DIR/nodeN (default /tmp/sportello-cluster). The nodes
# run as the calling user with the cluster directory as HOME, so they share
# one Erlang cookie of their own. broker-config/definitions.json is imported
# once the three have joined, so every quorum queue has three members.
# Needs rabbitmq-server and curl (scripts/services.sh installs them).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cluster_dir="${SPORTELLO_CLUSTER_DIR:-/tmp/sportello-cluster}"
nodes=(1 2 3)
rabbit_bin=/usr/lib/rabbitmq/bin
[ -x "$rabbit_bin/rabbitmq-server" ] || rabbit_bin="$(dirname "$(command -v rabbitmq-server)")"

node_name() { echo "sportello-$1@localhost"; }
amqp_port() { echo "568$1"; }
management_port() { echo "1568$1"; }
dist_port() { echo "2568$1"; }

# The environment of node N's server and of any CLI call aimed at it.
node_env() {
  local n=$1 dir="$cluster_dir/node$1"
  echo HOME="$cluster_dir" \
    RABBITMQ_NODENAME="$(node_name "$n")" \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$(amqp_port "$n")" \
    RABBITMQ_DIST_PORT="$(dist_port "$n")" \
    RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
    RABBITMQ_CONFIG_FILES="$dir/conf.d" \
    RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
    RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf" \
    RABBITMQ_MNESIA_BASE="$dir/mnesia" \
    RABBITMQ_LOG_BASE="$dir/log" \
    RABBITMQ_PID_FILE="$dir/pid" \
    ERL_EPMD_ADDRESS=127.0.0.1
}

ctl() {
  local n=$1
  shift
  env $(node_env "$n") "$rabbit_bin/rabbitmqctl" -n "$(node_name "$n")" "$@"
}

running() { env $(node_env "$1") timeout 30 "$rabbit_bin/rabbitmq-diagnostics" -q -n "$(node_name "$1")" ping >/dev/null 2>&1; }

write_config() {
  local n=$1 dir="$cluster_dir/node$1"
  mkdir -p "$dir/conf.d" "$dir/mnesia" "$dir/log"
  touch "$dir/rabbitmq-env.conf"
  echo "[]." >"$dir/advanced.config"
  echo "[rabbitmq_management]." >"$dir/enabled_plugins"
  cat >"$dir/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$(amqp_port "$n")
management.tcp.ip = 127.0.0.1
management.tcp.port = $(management_port "$n")
# Three nodes share a machine with the system's own broker: modest memory.
vm_memory_high_watermark.absolute = 1GiB
disk_free_limit.absolute = 1GB
raft.wal_max_size_bytes = 67108864
# A node that loses the majority stops serving rather than split.
cluster_partition_handling = pause_minority
EOF
}

start_node() {
  local n=$1 dir="$cluster_dir/node$1"
  running "$n" && return 0
  echo "starting $(node_name "$n") (AMQP $(amqp_port "$n"), management $(management_port "$n"))"
  # Schedulers that do not busy-wait: the machine is shared.
  env $(node_env "$n") \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1} +sbwt none +sbwtdcpu none +sbwtdio none" \
    "$rabbit_bin/rabbitmq-server" -detached >>"$dir/log/startup.log" 2>&1
}

await_node() {
  local n=$1
  # await_startup needs a VM to talk to: wait until it answers at all.
  for _ in $(seq 1 120); do running "$n" && break; sleep 1; done
  if ! ctl "$n" -q await_startup --timeout 180 >/dev/null 2>&1; then
    echo "$(node_name "$n") did not start; see $cluster_dir/node$n/log" >&2
    return 1
  fi
}

# Joins node N to node 1 unless it already is in node 1's cluster.
join() {
  local n=$1
  if ctl 1 -q cluster_status --formatter json 2>/dev/null | grep -q "\"$(node_name "$n")\""; then
    return 0
  fi
  echo "joining $(node_name "$n") to $(node_name 1)"
  {
    ctl "$n" -q stop_app
    ctl "$n" -q reset
    ctl "$n" -q join_cluster "$(node_name 1)"
    ctl "$n" -q start_app
  } >>"$cluster_dir/node$n/log/join.log" 2>&1
}

import_definitions() {
  ctl 1 -q import_definitions --format json <"$repo_root/broker-config/definitions.json" >/dev/null
  # The import finishes in the background: wait for the app user's rights.
  for _ in $(seq 1 60); do
    ctl 1 -q list_user_permissions sportello-app 2>/dev/null | grep -q '^sportello[[:space:]]' && break
    sleep 1
  done
  # The management API of every node answers for the cluster.
  for n in "${nodes[@]}"; do
    for _ in $(seq 1 60); do
      curl -fs -u guest:guest "http://127.0.0.1:$(management_port "$n")/api/overview" >/dev/null 2>&1 && break
      sleep 1
    done
  done
}

# Every quorum queue of the definitions with a member on each node.
check_members() {
  local queues
  queues="$(/usr/bin/python3 -c '
import json, sys
for q in json.load(open(sys.argv[1]))["queues"]:
    if q.get("arguments", {}).get("x-queue-type") == "quorum":
        print(q["vhost"], q["name"])' "$repo_root/broker-config/definitions.json")"
  while read -r vhost queue; do
    local members
    members="$(env $(node_env 1) "$rabbit_bin/rabbitmq-queues" -n "$(node_name 1)" -q quorum_status "$queue" --vhost "$vhost" --formatter json 2>/dev/null |
      grep -o '"Node Name":"[^"]*"' | sort -u | wc -l)"
    if [ "$members" -lt 3 ]; then
      # A queue declared while a node was away: grow it to every node.
      env $(node_env 1) "$rabbit_bin/rabbitmq-queues" -n "$(node_name 1)" -q grow "$(node_name 2)" all --vhost-pattern "$vhost" --queue-pattern "^${queue//./\\.}\$" >/dev/null 2>&1 || true
      env $(node_env 1) "$rabbit_bin/rabbitmq-queues" -n "$(node_name 1)" -q grow "$(node_name 3)" all --vhost-pattern "$vhost" --queue-pattern "^${queue//./\\.}\$" >/dev/null 2>&1 || true
    fi
  done <<<"$queues"
}

start() {
  command -v curl >/dev/null || { echo "curl is missing (scripts/services.sh installs it)" >&2; exit 1; }
  mkdir -p "$cluster_dir"
  if [ ! -s "$cluster_dir/.erlang.cookie" ]; then
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$cluster_dir/.erlang.cookie")
  fi
  chmod 400 "$cluster_dir/.erlang.cookie"
  for n in "${nodes[@]}"; do write_config "$n"; done
  # Together: a node that stopped before its peers waits for them at boot.
  for n in "${nodes[@]}"; do start_node "$n"; done
  for n in "${nodes[@]}"; do await_node "$n"; done
  for n in 2 3; do join "$n"; done
  import_definitions
  check_members
  status
}

stop() {
  for n in 3 2 1; do
    if running "$n"; then
      echo "stopping $(node_name "$n")"
      ctl "$n" -q stop >/dev/null 2>&1 || true
    fi
  done
}

status() {
  for n in "${nodes[@]}"; do
    if running "$n"; then state=running; else state=stopped; fi
    echo "$(node_name "$n")  amqp://127.0.0.1:$(amqp_port "$n")  http://127.0.0.1:$(management_port "$n")  $state"
  done
  local up
  for up in "${nodes[@]}"; do running "$up" && break; done
  if running "$up"; then
    echo "sportello.intake.requests members:"
    env $(node_env "$up") "$rabbit_bin/rabbitmq-queues" -n "$(node_name "$up")" -q quorum_status sportello.intake.requests --vhost sportello --formatter json 2>/dev/null |
      /usr/bin/python3 -c '
import json, sys
for member in json.load(sys.stdin):
    print("  %s  %s" % (member["Node Name"], member["Raft State"]))' || true
  fi
}

kill_node() {
  local n=$1 pid
  pid="$(cat "$cluster_dir/node$n/pid" 2>/dev/null || true)"
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null && echo "killed $(node_name "$n") (pid $pid)"
  return 0
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  destroy)
    stop
    rm -rf "$cluster_dir"
    ;;
  kill) kill_node "$2" ;;
  ctl)
    n=$2
    shift 2
    ctl "$n" "$@"
    ;;
  *)
    echo "usage: $0 start|stop|status|destroy|kill N|ctl N ARGS" >&2
    exit 2
    ;;
esac
