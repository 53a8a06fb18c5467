# shellcheck shell=bash
# A throwaway copy of the whole stack (process-compose.yaml, or with
# THROWAWAY_CLUSTER=1 the cluster profile, process-compose.cluster.yaml) on
# free loopback ports, its data in a temporary directory, so it never meets a
# stack you run with ./scripts/up. Shared by scripts/stack-test and
# scripts/chaos, which set THROWAWAY_NAME (the summary line's label) before
# sourcing this file.
#
# Gives: pass/fail counters (tests) and gate (set-up and teardown checks,
# not counted), $TMP, $DATA, the ports, STACK_ENV (the stack's
# environment, for process-compose only), pc (process-compose on this stack's
# API port), stack_pids, open_ports, wait_until_gone, show_diagnostics, and a
# teardown that runs on any exit and checks that nothing is left behind.

THROWAWAY_NAME="${THROWAWAY_NAME:-stack}"

PASSED=0
FAILED=0
pass() {
  PASSED=$((PASSED + 1))
  printf 'ok   %s\n' "$*"
}
fail() {
  FAILED=$((FAILED + 1))
  printf 'FAIL %s\n' "$*"
}
# A gate (setting up or tearing down the stack) that held: said, not counted
# as a test. A gate that fails is a `fail`.
gate() {
  printf 'ok   %s (gate)\n' "$*"
}

# The temporary directory holds everything: the stack's data directory and
# process-compose's own logs. Searchable by all: as root, PostgreSQL runs as
# the `postgres` user (scripts/lib/stack.sh).
TMP="$(mktemp -d "${TMPDIR:-/tmp}/user-sync-$THROWAWAY_NAME.XXXXXX")"
chmod 755 "$TMP"
DATA="$TMP/data"
mkdir -p "$DATA/logs"

# pick_port VAR: a loopback port nobody listens on, below Linux's ephemeral
# range (32768-60999) so that no outgoing connection takes it meanwhile, and
# different from the ones already picked.
PICKED=" "
pick_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 12000))
    case "$PICKED" in *" $port "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      PICKED+="$port "
      printf -v "$1" '%s' "$port"
      return
    fi
  done
}
PORT_VARS=(PG_PORT MONGO_PORT NATS_PORT NATS_MONITOR_PORT USER_SERVICE_PORT
  NOTIFICATION_SERVICE_PORT PROMETHEUS_PORT GRAFANA_PORT)
COMPOSE_FILES=()
if [ -n "${THROWAWAY_CLUSTER:-}" ]; then
  PORT_VARS+=(NATS_PORT_2 NATS_PORT_3 NATS_MONITOR_PORT_2 NATS_MONITOR_PORT_3
    NATS_CLUSTER_PORT NATS_CLUSTER_PORT_2 NATS_CLUSTER_PORT_3
    USER_SERVICE_PORT_1 USER_SERVICE_PORT_2 NOTIFICATION_SERVICE_PORT_1
    NOTIFICATION_SERVICE_PORT_2 HAPROXY_HEALTH_PORT)
  COMPOSE_FILES=(-f process-compose.cluster.yaml)
fi
for var in "${PORT_VARS[@]}" PC_PORT; do
  pick_port "$var"
done

# The stack's environment is given to process-compose alone, never exported
# here: processes carrying USER_SYNC_DATA_DIR=$DATA are the stack's, which is
# how the leftover check below recognises them.
STACK_ENV=(USER_SYNC_DATA_DIR="$DATA")
for var in "${PORT_VARS[@]}"; do
  STACK_ENV+=("$var=${!var}")
done
US="http://127.0.0.1:$USER_SERVICE_PORT"
NS="http://127.0.0.1:$NOTIFICATION_SERVICE_PORT"
PROM="http://127.0.0.1:$PROMETHEUS_PORT"

# pc ARGS...: process-compose against this test's server only. Client
# commands log to our directory, not to the shared /tmp default.
pc() {
  process-compose --address 127.0.0.1 -p "$PC_PORT" -L "$TMP/process-compose-client.log" "$@"
}

# Processes of this test's stack: their command line names the temporary
# directory, or they inherited USER_SYNC_DATA_DIR=$DATA. (One grep over all
# of /proc; the list is taken before grep starts, so grep never finds itself.)
stack_pids() {
  {
    grep -lzF -- "$TMP" /proc/[0-9]*/cmdline 2>/dev/null || true
    grep -lzxF -- "USER_SYNC_DATA_DIR=$DATA" /proc/[0-9]*/environ 2>/dev/null || true
  } | sed -n 's|^/proc/\([0-9]*\)/.*|\1|p' | sort -un | grep -vx -e "$$" -e "$BASHPID" || true
}

# Throwaway ports something still listens on.
open_ports() {
  local port
  for port in $PICKED; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      printf '%s ' "$port"
    fi
  done
}

# wait_until_gone SECONDS: until no stack process and no open port is left.
wait_until_gone() {
  local deadline=$((SECONDS + $1))
  while [ $SECONDS -lt $deadline ]; do
    [ -z "$(stack_pids)" ] && [ -z "$(open_ports)" ] && return 0
    sleep 1
  done
  return 1
}

show_diagnostics() {
  {
    echo "--- process-compose process list"
    pc process list -o wide 2>/dev/null || true
    echo "--- last lines of $DATA/logs/process-compose.log"
    tail -n 40 "$DATA/logs/process-compose.log" 2>/dev/null | cut -c1-400 || true
    echo "---"
  } >&2
}

STARTED=""
TORN_DOWN=""
# Stops the stack, checks that nothing is left, removes the temporary directory.
teardown() {
  [ -z "$TORN_DOWN" ] || return 0
  TORN_DOWN=1
  if [ -n "$STARTED" ]; then
    # The leftover check below is only worth something if it sees the stack now.
    local running
    running="$(stack_pids | wc -l)"
    if [ "$running" -gt 0 ]; then
      gate "the leftover check recognises the stack's $running processes"
    else
      fail "the leftover check recognises none of the stack's processes"
    fi
    if pc down >"$TMP/down.log" 2>&1; then
      gate "process-compose down"
    elif grep -q 'project/stop.*EOF' "$TMP/down.log"; then
      # process-compose 1.87 writes its answer to /project/stop only after
      # stopping every process, and its server may exit before sending it.
      # Whether the stack is down is what the checks below decide.
      gate "process-compose down (its server exited before answering)"
    else
      fail "process-compose down: $(tail -n 1 "$TMP/down.log")"
    fi
    wait_until_gone 60 || true
    local left ports
    left="$(stack_pids | tr '\n' ' ')"
    if [ -z "$left" ]; then
      gate "no process of the stack is left"
    else
      fail "processes left after down: $left"
      left="${left% }"
      ps -o pid,args -p "${left// /,}" >&2 2>/dev/null || true
      # shellcheck disable=SC2086 # one pid per word
      kill $left 2>/dev/null || true
      sleep 5
      left="$(stack_pids | tr '\n' ' ')"
      # shellcheck disable=SC2086
      [ -z "$left" ] || kill -KILL $left 2>/dev/null || true
    fi
    ports="$(open_ports)"
    if [ -z "$ports" ]; then
      gate "no throwaway port is still listening"
    else
      fail "ports still listening after down: $ports"
    fi
  fi
  rm -rf "$TMP"
  if [ ! -e "$TMP" ]; then
    gate "temporary directory removed"
  else
    fail "could not remove $TMP"
  fi
}

SUMMARY=""
summary() {
  SUMMARY=1
  printf '%s: %d passed, %d failed\n' "$THROWAWAY_NAME" "$PASSED" "$FAILED"
}

on_exit() {
  local status=$?
  if [ -z "$SUMMARY" ]; then
    # Tear down even if our output is gone (ctrl-c also stops a `| tee`).
    set +e
    trap '' PIPE
    fail "$THROWAWAY_NAME stopped early (exit status $status)"
    teardown
    summary
    exit 1
  fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM
trap 'exit 141' PIPE

# process_states QUESTION: answers from process-compose's process list.
#   hopeless: prints the processes that can never become ready (a one-shot
#     that failed, a process skipped because of one) and succeeds if any;
#   waiting: prints the processes not ready yet.
process_states() {
  pc process list -o json 2>/dev/null | python3 -c '
import json, sys
try:
    procs = json.load(sys.stdin)
except ValueError:
    sys.exit(1)
if sys.argv[1] == "hopeless":
    names = [p["name"] for p in procs
             if p["status"] == "Skipped"
             or (p["name"] in ("build", "postgres-init") and p["status"] == "Completed" and p["exit_code"] != 0)]
else:
    names = [p["name"] for p in procs
             if p["status"] not in ("Completed", "Disabled") and p["is_ready"] != "Ready"]
print(" ".join(names))
sys.exit(0 if names else 1)
' "$1"
}

# start_stack: brings the stack up detached and waits (READY_TIMEOUT seconds;
# the first run builds the services) until every process is ready; if it
# cannot be, shows why, tears down and exits 1.
start_stack() {
  local start waiter ready failed_processes next_news
  # --disable-dotenv: a .env of yours must not move the throwaway stack.
  STARTED=1
  if env "${STACK_ENV[@]}" process-compose up -D --disable-dotenv --address 127.0.0.1 -p "$PC_PORT" \
    -L "$TMP/process-compose.log" ${COMPOSE_FILES[@]+"${COMPOSE_FILES[@]}"} >"$TMP/up.log" 2>&1; then
    gate "process-compose up -D"
  else
    fail "process-compose up -D: $(grep -v 'config home' "$TMP/up.log" | tail -n 1)"
    show_diagnostics
    teardown
    summary
    exit 1
  fi

  log "waiting for every process to be ready (at most ${READY_TIMEOUT}s; the first run builds the services)"
  start=$SECONDS
  timeout "$READY_TIMEOUT" process-compose --address 127.0.0.1 -p "$PC_PORT" -L "$TMP/process-compose-client.log" \
    project is-ready --wait >"$TMP/is-ready.log" 2>&1 &
  waiter=$!
  ready=""
  failed_processes=""
  next_news=$((SECONDS + 60))
  while kill -0 "$waiter" 2>/dev/null; do
    if failed_processes="$(process_states hopeless)"; then
      kill "$waiter" 2>/dev/null || true
      break
    fi
    if [ $SECONDS -ge $next_news ]; then
      log "still waiting after $((SECONDS - start))s for: $(process_states waiting || true)"
      next_news=$((SECONDS + 60))
    fi
    sleep 3
  done
  if wait "$waiter" 2>/dev/null; then
    ready=1
    gate "every process is ready ($((SECONDS - start))s)"
  elif [ -n "$failed_processes" ]; then
    fail "the stack cannot become ready: failed or skipped: $failed_processes"
  else
    fail "the stack is not ready after ${READY_TIMEOUT}s"
  fi

  if [ -z "$ready" ]; then
    show_diagnostics
    teardown
    summary
    exit 1
  fi
}
