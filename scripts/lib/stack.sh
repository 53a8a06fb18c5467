# shellcheck shell=bash
# Shared by the scripts under scripts/stack/, which process-compose runs: finds
# the tools, moves to the repository root and names the data directory.
# Everything the stack stores lives under .data/, so `rm -rf .data` resets it.

# shellcheck source=scripts/lib/tools.sh
. "$(dirname "${BASH_SOURCE[0]}")/tools.sh"

STACK_ROOT="$TOOLS_ROOT"
# shellcheck disable=SC2034 # used by the scripts that source this file
STACK_DATA="$STACK_ROOT/.data"
cd "$STACK_ROOT" || die "cannot enter $STACK_ROOT"

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
