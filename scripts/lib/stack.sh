# shellcheck shell=bash
# Shared by the scripts under scripts/stack/, which process-compose runs: finds
# the tools, moves to the repository root, and names the data directory and the
# ports. Everything the stack stores lives under the data directory
# (USER_SYNC_DATA_DIR, default .data/), so `rm -rf .data` resets it.
#
# The same variables, with the same defaults, appear in process-compose.yaml
# (probes, the services' environment): keep the two in step.

# shellcheck source=scripts/lib/tools.sh
. "$(dirname "${BASH_SOURCE[0]}")/tools.sh"

STACK_ROOT="$TOOLS_ROOT"
cd "$STACK_ROOT" || die "cannot enter $STACK_ROOT"

# A relative data directory is relative to the repository root, where
# process-compose runs.
STACK_DATA="${USER_SYNC_DATA_DIR:-.data}"
case "$STACK_DATA" in
  /*) ;;
  *) STACK_DATA="$STACK_ROOT/${STACK_DATA#./}" ;;
esac

# Every port of the stack, all on 127.0.0.1. Exported: Grafana's provisioning
# files read PROMETHEUS_PORT. The cluster profile (process-compose.cluster.yaml)
# adds the second and third NATS nodes, the routes between them, the services'
# instances behind HAProxy (which keeps USER_SERVICE_PORT and
# NOTIFICATION_SERVICE_PORT) and HAProxy's own health port.
export PG_PORT="${PG_PORT:-5432}" \
  MONGO_PORT="${MONGO_PORT:-27017}" \
  NATS_PORT="${NATS_PORT:-4222}" \
  NATS_MONITOR_PORT="${NATS_MONITOR_PORT:-8222}" \
  USER_SERVICE_PORT="${USER_SERVICE_PORT:-8080}" \
  NOTIFICATION_SERVICE_PORT="${NOTIFICATION_SERVICE_PORT:-8081}" \
  PROMETHEUS_PORT="${PROMETHEUS_PORT:-9090}" \
  GRAFANA_PORT="${GRAFANA_PORT:-3000}" \
  NATS_PORT_2="${NATS_PORT_2:-4223}" \
  NATS_PORT_3="${NATS_PORT_3:-4224}" \
  NATS_MONITOR_PORT_2="${NATS_MONITOR_PORT_2:-8223}" \
  NATS_MONITOR_PORT_3="${NATS_MONITOR_PORT_3:-8224}" \
  NATS_CLUSTER_PORT="${NATS_CLUSTER_PORT:-6222}" \
  NATS_CLUSTER_PORT_2="${NATS_CLUSTER_PORT_2:-6223}" \
  NATS_CLUSTER_PORT_3="${NATS_CLUSTER_PORT_3:-6224}" \
  USER_SERVICE_PORT_1="${USER_SERVICE_PORT_1:-8180}" \
  USER_SERVICE_PORT_2="${USER_SERVICE_PORT_2:-8280}" \
  NOTIFICATION_SERVICE_PORT_1="${NOTIFICATION_SERVICE_PORT_1:-8181}" \
  NOTIFICATION_SERVICE_PORT_2="${NOTIFICATION_SERVICE_PORT_2:-8281}" \
  HAPROXY_HEALTH_PORT="${HAPROXY_HEALTH_PORT:-8404}"

# How often NATS fsyncs JetStream's writes, on one machine and in the cluster
# profile alike: "always" fsyncs each one before acknowledging it; by default
# nats-server fsyncs every 2 minutes, so a power loss or OS crash could drop
# events it had acknowledged (Jepsen, NATS 2.12.1). Set e.g. 2m to measure what
# the fsync costs.
export NATS_SYNC_INTERVAL="${NATS_SYNC_INTERVAL:-always}"

# PostgreSQL's user: see pg_user_setup in tools.sh.
pg_user_setup

# The MongoDB-wire server this machine runs: real mongod when present (the Nix
# dev shell), FerretDB otherwise. Same rule as ensure_mongo.
use_mongod() {
  command -v mongod >/dev/null 2>&1 && [ -z "${USER_SYNC_USE_FERRETDB:-}" ]
}
