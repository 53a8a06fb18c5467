# shellcheck shell=bash
# The cluster profile's NATS identities and what each may do. Sourced after
# scripts/lib/stack.sh (STACK_DATA).
#
# Passwords come from the environment (NATS_USER_SERVICE_PASSWORD,
# NATS_NOTIFICATION_SERVICE_PASSWORD, NATS_REPLAY_PASSWORD,
# NATS_ROUTE_PASSWORD, NATS_ADMIN_PASSWORD); any not set there is generated
# once and kept in <data dir>/nats-cluster/credentials.env (mode 600).
#
# Identities (account APP, which has JetStream, and SYS, NATS's own):
#   user-service          publishes user.events; looks up, creates and raises
#                         (more replicas) the stream USER_EVENTS; nothing else
#   notification-service  looks up the stream; creates, reads and pulls its
#                         durable consumer notification-service, and acks its
#                         messages; it cannot publish events nor change streams
#   notification-replay   `notification-service replay`: reads the stream
#                         through consumers of its own (server-named)
#   admin (SYS)           the operator's: server and cluster reports
#   route                 the nodes, to each other
# Each may subscribe to reply inboxes only (_INBOX.>).

NATS_IDENTITIES=(user-service notification-service notification-replay)

# nats_password_var IDENTITY: the variable that holds its password.
nats_password_var() {
  case "$1" in
    user-service) echo NATS_USER_SERVICE_PASSWORD ;;
    notification-service) echo NATS_NOTIFICATION_SERVICE_PASSWORD ;;
    notification-replay) echo NATS_REPLAY_PASSWORD ;;
    route) echo NATS_ROUTE_PASSWORD ;;
    admin) echo NATS_ADMIN_PASSWORD ;;
    *) die "no NATS identity $1 (known: ${NATS_IDENTITIES[*]} route admin)" ;;
  esac
}

# nats_credentials: sets every password variable, from the environment or
# the credentials file, generating (and saving) those neither has.
nats_credentials() {
  local file="$STACK_DATA/nats-cluster/credentials.env" identity var
  if [ -f "$file" ]; then
    local saved
    for identity in "${NATS_IDENTITIES[@]}" route admin; do
      var="$(nats_password_var "$identity")"
      if [ -z "${!var:-}" ]; then
        saved="$(sed -n "s/^$var=//p" "$file")"
        [ -n "$saved" ] && printf -v "$var" '%s' "$saved"
      fi
    done
  fi
  for identity in "${NATS_IDENTITIES[@]}" route admin; do
    var="$(nats_password_var "$identity")"
    if [ -z "${!var:-}" ]; then
      mkdir -p "$(dirname "$file")"
      printf -v "$var" '%s' "$(od -An -tx1 -N18 /dev/urandom | tr -d ' \n')"
      (umask 077 && printf '%s=%s\n' "$var" "${!var}" >>"$file")
    fi
    case "${!var}" in
      *[!A-Za-z0-9._~-]*) die "$var holds characters other than letters, digits and ._~- (it goes into URLs and configuration)" ;;
    esac
    export "${var?}"
  done
}

# nats_accounts: the accounts block of a node's configuration.
nats_accounts() {
  cat <<CONF
accounts {
  APP {
    jetstream: enabled
    users = [
      {
        user: user-service
        password: "$NATS_USER_SERVICE_PASSWORD"
        permissions: {
          publish: { allow: [
            "user.events"
            "\$JS.API.STREAM.INFO.USER_EVENTS"
            "\$JS.API.STREAM.CREATE.USER_EVENTS"
            "\$JS.API.STREAM.UPDATE.USER_EVENTS"
          ] }
          subscribe: { allow: ["_INBOX.>"] }
        }
      }
      {
        user: notification-service
        password: "$NATS_NOTIFICATION_SERVICE_PASSWORD"
        permissions: {
          publish: { allow: [
            "\$JS.API.STREAM.INFO.USER_EVENTS"
            "\$JS.API.CONSUMER.INFO.USER_EVENTS.notification-service"
            "\$JS.API.CONSUMER.CREATE.USER_EVENTS.notification-service.user.events"
            "\$JS.API.CONSUMER.MSG.NEXT.USER_EVENTS.notification-service"
            "\$JS.ACK.USER_EVENTS.notification-service.>"
          ] }
          subscribe: { allow: ["_INBOX.>"] }
        }
      }
      {
        user: notification-replay
        password: "$NATS_REPLAY_PASSWORD"
        permissions: {
          publish: { allow: [
            "\$JS.API.STREAM.INFO.USER_EVENTS"
            "\$JS.API.CONSUMER.CREATE.USER_EVENTS"
            "\$JS.API.CONSUMER.INFO.USER_EVENTS.*"
            "\$JS.API.CONSUMER.MSG.NEXT.USER_EVENTS.*"
          ] }
          subscribe: { allow: ["_INBOX.>"] }
        }
      }
    ]
  }
  SYS {
    users = [ { user: admin, password: "$NATS_ADMIN_PASSWORD" } ]
  }
}
system_account: SYS
CONF
}
