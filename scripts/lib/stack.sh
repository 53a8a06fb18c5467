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
# files read PROMETHEUS_PORT.
export PG_PORT="${PG_PORT:-5432}" \
  MONGO_PORT="${MONGO_PORT:-27017}" \
  NATS_PORT="${NATS_PORT:-4222}" \
  NATS_MONITOR_PORT="${NATS_MONITOR_PORT:-8222}" \
  USER_SERVICE_PORT="${USER_SERVICE_PORT:-8080}" \
  NOTIFICATION_SERVICE_PORT="${NOTIFICATION_SERVICE_PORT:-8081}" \
  PROMETHEUS_PORT="${PROMETHEUS_PORT:-9090}" \
  GRAFANA_PORT="${GRAFANA_PORT:-3000}"

# PostgreSQL refuses to run as root. As root, its commands run as the
# `postgres` user through `setpriv`, which execs in place: process-compose's
# signals then reach the postmaster itself. (`runuser` stays as a parent and
# answers a SIGTERM or SIGINT by killing its child with SIGKILL two seconds
# later, which would turn a slow fast-shutdown into a crash.)
PG_AS=()
if [ "$(id -u)" = 0 ]; then
  id -u postgres >/dev/null 2>&1 ||
    die "PostgreSQL cannot run as root and there is no 'postgres' user: create one (useradd --system postgres) or run as a normal user"
  if command -v setpriv >/dev/null 2>&1; then
    PG_AS=(setpriv --reuid=postgres --regid=postgres --init-groups --)
  else
    PG_AS=(runuser -u postgres --)
  fi
fi

# as_pg CMD ARGS...: runs CMD as the user PostgreSQL runs as.
as_pg() {
  ${PG_AS[@]+"${PG_AS[@]}"} "$@"
}

# pg_own DIR...: gives DIRs to the user PostgreSQL runs as.
pg_own() {
  if [ ${#PG_AS[@]} -gt 0 ]; then
    chown postgres: "$@"
  fi
}

# The MongoDB-wire server this machine runs: real mongod when present (the Nix
# dev shell), FerretDB otherwise. Same rule as ensure_mongo.
use_mongod() {
  command -v mongod >/dev/null 2>&1 && [ -z "${USER_SYNC_USE_FERRETDB:-}" ]
}
