# shellcheck shell=bash
# Finds or installs the servers and tools the stack and the tests need.
#
# Order of preference for each tool: what is already on PATH (the Nix dev
# shell puts everything there), then a pinned build in the per-user cache,
# then a fresh install (apt for Debian packages, the Go module proxy for Go
# tools, pinned in tools/<name>/go.mod). A second run installs nothing.

TOOLS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS_CACHE="${USER_SYNC_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/user-sync/tools}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# The version a tools/<name>/go.mod pins for its tool's module.
go_tool_version() {
  local name="$1" module="$2"
  awk -v m="$module" '$1 == m { print $2; exit }' "$TOOLS_ROOT/tools/$name/go.mod"
}

# ensure_go_tool NAME MODULE PACKAGE: puts NAME on PATH, building the pinned
# version into the cache when neither PATH nor the cache has it.
ensure_go_tool() {
  local name="$1" module="$2" package="$3" version bin
  if command -v "$name" >/dev/null 2>&1 && [ -z "${USER_SYNC_FORCE_PINNED:-}" ]; then
    return 0
  fi
  version="$(go_tool_version "$name" "$module")"
  [ -n "$version" ] || die "tools/$name/go.mod does not pin $module"
  bin="$TOOLS_CACHE/$name-$version/$name"
  if [ ! -x "$bin" ]; then
    command -v go >/dev/null 2>&1 || apt_install golang-go
    log "building $name $version from the Go module proxy (once; cached in $TOOLS_CACHE)"
    mkdir -p "$(dirname "$bin")"
    (cd "$TOOLS_ROOT/tools/$name" && GOFLAGS=-mod=mod go build -trimpath -o "$bin.tmp" "$package") ||
      die "could not build $name $version"
    mv "$bin.tmp" "$bin"
  fi
  PATH="$(dirname "$bin"):$PATH"
  export PATH
}

APT_UPDATED=""
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "missing $*: install it (no apt-get here)"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  if [ -z "$APT_UPDATED" ]; then
    log "apt-get update"
    $sudo apt-get update -qq >/dev/null || die "apt-get update failed"
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null ||
    die "apt-get install $* failed"
}

# PostgreSQL server binaries (initdb, postgres, pg_ctl) live outside PATH on Debian.
ensure_postgres() {
  if ! { command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1 &&
    command -v pg_isready >/dev/null 2>&1 && command -v psql >/dev/null 2>&1; }; then
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    if [ -z "$dir" ]; then
      apt_install postgresql
      dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    fi
    [ -n "$dir" ] || die "PostgreSQL is not installed and apt could not install it"
    PATH="$dir:$PATH"
    export PATH
  fi
  # Debian's /usr/bin/pg_isready and psql are postgresql-common's perl wrapper,
  # about 25 ms of CPU a call where the server's own take under 1 ms, and the
  # readiness probe calls pg_isready every 2 s: the server's own go first.
  local server_dir
  server_dir="$(dirname "$(readlink -f "$(command -v initdb)")")"
  if [ -x "$server_dir/pg_isready" ] &&
    [ "$(readlink -f "$(command -v pg_isready)")" != "$server_dir/pg_isready" ]; then
    PATH="$server_dir:$PATH"
    export PATH
  fi
}

# PostgreSQL refuses to run as root. As root, its commands run as the
# `postgres` user (created, as a system user, when missing) through `setpriv`,
# which execs in place: process-compose's signals then reach the postmaster
# itself. (`runuser`, the fallback, stays as a parent and answers a SIGTERM or
# SIGINT by killing its child with SIGKILL two seconds later, which would turn
# a slow fast-shutdown into a crash.) Sets PG_AS; as_pg and pg_own use it.
# Used by scripts/test and scripts/lib/stack.sh alike.
pg_user_setup() {
  PG_AS=()
  [ "$(id -u)" = 0 ] || return 0
  if ! id -u postgres >/dev/null 2>&1; then
    log "creating the system user 'postgres' (PostgreSQL refuses to run as root)"
    useradd --system --no-create-home postgres ||
      die "PostgreSQL cannot run as root and the 'postgres' user could not be created: create it (useradd --system postgres) or run as a normal user"
  fi
  if command -v setpriv >/dev/null 2>&1; then
    PG_AS=(setpriv --reuid=postgres --regid=postgres --init-groups --)
  else
    PG_AS=(runuser -u postgres --)
  fi
}

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

# HAProxy, the cluster profile's load balancer. Debian installs it in
# /usr/sbin, which is not on every user's PATH.
ensure_haproxy() {
  command -v haproxy >/dev/null 2>&1 && return 0
  [ -x /usr/sbin/haproxy ] || apt_install haproxy
  [ -x /usr/sbin/haproxy ] || die "haproxy is not installed and apt could not install it"
  PATH="$PATH:/usr/sbin"
  export PATH
}

ensure_prometheus() {
  command -v prometheus >/dev/null 2>&1 || apt_install prometheus
}

ensure_nix_parser() {
  command -v nix-instantiate >/dev/null 2>&1 || apt_install nix-bin
}

ensure_curl() {
  command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates
}

# scripts/stack-test reads JSON (API answers, the dashboard, Prometheus) with it.
ensure_python3() {
  command -v python3 >/dev/null 2>&1 || apt_install python3
}

# schemathesis (PyPI), pinned, in its own virtualenv in the cache: puts
# `schemathesis` on PATH.
SCHEMATHESIS_VERSION=4.32.5
ensure_schemathesis() {
  command -v schemathesis >/dev/null 2>&1 && return 0
  local venv="$TOOLS_CACHE/schemathesis-$SCHEMATHESIS_VERSION"
  if [ ! -x "$venv/bin/schemathesis" ]; then
    ensure_python3
    log "installing schemathesis $SCHEMATHESIS_VERSION from PyPI (once; cached in $TOOLS_CACHE)"
    rm -rf "$venv"
    python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$venv"; } ||
      die "cannot create a Python virtualenv for schemathesis"
    "$venv/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION" ||
      die "could not install schemathesis $SCHEMATHESIS_VERSION"
  fi
  PATH="$venv/bin:$PATH"
  export PATH
}

ensure_rust() {
  command -v cargo >/dev/null 2>&1 || [ -x "$HOME/.cargo/bin/cargo" ] ||
    die "cargo is missing: install Rust (https://rustup.rs) or run inside 'nix develop'"
  PATH="$HOME/.cargo/bin:$PATH"
  export PATH
}

# copy_patched_module MODULE VERSION DEST SCRATCH PATCH...: DEST becomes a
# writable copy of MODULE at VERSION (a pin of tools/ferretdb/go.mod) from the
# Go module proxy, with each PATCH applied in turn (-p1). On any failure it
# removes SCRATCH, the build's scratch directory, and dies.
copy_patched_module() {
  local module="$1" version="$2" dest="$3" scratch="$4" src patch
  shift 4
  src="$(cd "$TOOLS_ROOT/tools/ferretdb" && GOFLAGS=-mod=mod go mod download -json "$module@$version" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  if [ -z "$version" ] || [ ! -d "$src" ] ||
    ! { mkdir -p "$(dirname "$dest")" && cp -R "$src" "$dest" && chmod -R u+w "$dest"; }; then
    rm -rf "$scratch"
    die "could not copy $module ${version:-(not pinned in tools/ferretdb/go.mod)} from the Go module proxy"
  fi
  for patch in "$@"; do
    if ! (cd "$dest" && patch -p1 --forward --batch --silent <"$patch"); then
      rm -rf "$scratch"
      die "$patch does not apply to $module $version (update the patch for that version)"
    fi
  done
}

# The MongoDB-wire server: real mongod when present (Nix), otherwise FerretDB.
ensure_mongo() {
  if command -v mongod >/dev/null 2>&1 && [ -z "${USER_SYNC_USE_FERRETDB:-}" ]; then
    return 0
  fi
  ensure_ferretdb
}

# FerretDB panics at start ("Invalid build/version/version.txt file content")
# when built straight from the module proxy: that file is generated in its
# repository and absent from the module. So build from a copy of the module
# with the file written, through a replace in a scratch copy of
# tools/ferretdb/go.mod (the dependency pins stay those of tools/ferretdb).
# The copy gets the patches in tools/ferretdb/*.patch, in name order (finds and
# updates by _id use the _id index; a many-statement update does not hang: see
# each patch), and the cached binary is named after their hash, so a change to
# a patch (or an unpatched build) is not reused. A dependency of FerretDB is
# patched the same way: tools/ferretdb/deps/<module path>/*.patch apply to a copy
# of that module, at the version tools/ferretdb/go.mod pins, which the build
# uses through a replace (the driver's statement cache: see the patch).
# A cached binary that cannot print its version is rebuilt.
ensure_ferretdb() {
  if command -v ferretdb >/dev/null 2>&1 && [ -z "${USER_SYNC_FORCE_PINNED:-}" ]; then
    return 0
  fi
  local module=github.com/FerretDB/FerretDB version bin scratch
  local patches=("$TOOLS_ROOT"/tools/ferretdb/*.patch) patch_sum
  local deps="$TOOLS_ROOT/tools/ferretdb/deps" dep_patches=() dep_dirs=() dep
  version="$(go_tool_version ferretdb "$module")"
  [ -n "$version" ] || die "tools/ferretdb/go.mod does not pin $module"
  [ -f "${patches[0]}" ] || die "missing tools/ferretdb/*.patch"
  if [ -d "$deps" ]; then
    mapfile -t dep_patches < <(find "$deps" -name '*.patch' -type f | LC_ALL=C sort)
    mapfile -t dep_dirs < <(printf '%s\n' "${dep_patches[@]}" | xargs -r -n1 dirname | LC_ALL=C sort -u)
  fi
  patch_sum="$(cat "${patches[@]}" "${dep_patches[@]}" | sha256sum | cut -c1-12)"
  bin="$TOOLS_CACHE/ferretdb-$version-$patch_sum/ferretdb"
  if ! "$bin" --version >/dev/null 2>&1; then
    command -v go >/dev/null 2>&1 || apt_install golang-go
    command -v patch >/dev/null 2>&1 || apt_install patch
    log "building ferretdb $version from the Go module proxy (once; cached in $TOOLS_CACHE)"
    scratch="$(mktemp -d)"
    copy_patched_module "$module" "$version" "$scratch/src" "$scratch" "${patches[@]}"
    if ! { printf '%s\n' "$version" >"$scratch/src/build/version/version.txt" &&
      cp "$TOOLS_ROOT/tools/ferretdb/go.mod" "$TOOLS_ROOT/tools/ferretdb/go.sum" "$scratch/" &&
      printf 'replace %s => %s\n' "$module" "$scratch/src" >>"$scratch/go.mod"; }; then
      rm -rf "$scratch"
      die "could not prepare the ferretdb $version source"
    fi
    for dep in "${dep_dirs[@]}"; do
      dep="${dep#"$deps"/}"
      copy_patched_module "$dep" "$(go_tool_version ferretdb "$dep")" "$scratch/deps/$dep" "$scratch" \
        "$deps/$dep"/*.patch
      printf 'replace %s => %s\n' "$dep" "$scratch/deps/$dep" >>"$scratch/go.mod"
    done
    mkdir -p "$(dirname "$bin")"
    if ! (cd "$TOOLS_ROOT/tools/ferretdb" &&
      GOFLAGS=-mod=mod go build -modfile="$scratch/go.mod" -trimpath -o "$bin.tmp" "$module/cmd/ferretdb"); then
      rm -rf "$scratch"
      die "could not build ferretdb $version"
    fi
    rm -rf "$scratch"
    mv "$bin.tmp" "$bin"
  fi
  PATH="$(dirname "$bin"):$PATH"
  export PATH
}

ensure_nats() {
  ensure_go_tool nats-server github.com/nats-io/nats-server/v2 github.com/nats-io/nats-server/v2
}

ensure_process_compose() {
  ensure_go_tool process-compose github.com/f1bonacc1/process-compose github.com/f1bonacc1/process-compose
}

# Everything the stack needs to run (the cluster profile's HAProxy too).
ensure_stack_tools() {
  ensure_curl
  ensure_postgres
  ensure_mongo
  ensure_nats
  ensure_prometheus
  ensure_haproxy
  ensure_process_compose
}
