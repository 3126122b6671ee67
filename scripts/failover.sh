#!/bin/sh
# The spec's "Master Node Failure" recovery procedure, as one script:
#   1. Stop failed master        checks that the old master no longer answers (stop it first)
#   2. Promote one replica       the most up-to-date reachable replica (highest LSN) gets PROMOTE:
#                                a new epoch, its data and LSN kept, writes served at once
#   3. Reconfigure the others    REPLICAS ADD on the new master: it streams to them from their
#                                LSN (a replica that diverged gets a full sync)
#   4. Update clients            prints the new master (and writes host:port to --master-file)
# A returning old master is fenced by the epoch: the replicas refuse it, and it refuses writes.
#
# Usage:
#   scripts/failover.sh --old-master HOST:PORT --replicas HOST:PORT,HOST:PORT
#                       [--master-file FILE] [--wait-seconds N] [--force]
# --force skips step 1's check (when the old master answers but must go anyway).
#
# Environment: KVSTORE is the command that runs kvstore (default: kvstore); every call reads the
# client settings KVSTORE_AUTH_TOKEN_FILE or KVSTORE_AUTH_TOKEN, KVSTORE_REPLICATION_TOKEN_FILE or
# KVSTORE_REPLICATION_TOKEN (PROMOTE and REPLICAS need it when it differs), and KVSTORE_TLS_CA.
# Exit status: 0 failed over (and the other replicas caught up), 1 otherwise.
set -eu

KVSTORE="${KVSTORE:-kvstore}"
old_master=""
replicas=""
master_file=""
wait_seconds=30
force=0

fail() {
  echo "failover: $*" >&2
  exit 1
}

while [ $# -gt 0 ]; do
  case "$1" in
    --old-master) old_master="${2:-}"; shift 2 ;;
    --replicas) replicas="${2:-}"; shift 2 ;;
    --master-file) master_file="${2:-}"; shift 2 ;;
    --wait-seconds) wait_seconds="${2:-}"; shift 2 ;;
    --force) force=1; shift ;;
    *) fail "unknown argument $1 (see the usage at the top of $0)" ;;
  esac
done
[ -n "$old_master" ] || fail "--old-master HOST:PORT is required"
[ -n "$replicas" ] || fail "--replicas HOST:PORT,... is required"
case "$wait_seconds" in *[!0-9]* | "") fail "--wait-seconds must be a whole number" ;; esac

# kv HOST:PORT ARGS...: runs a kvstore client command against one node ($KVSTORE may be several
# words, e.g. "deno run -A cli.ts").
kv() {
  address="$1"
  shift
  # shellcheck disable=SC2086
  $KVSTORE --host "${address%:*}" --port "${address##*:}" --timeout-ms 3000 "$@"
}

# field NAME: the value of NAME in INFO text read from stdin.
field() {
  tr -d '\r' | sed -n "s/^$1://p" | head -n 1
}

echo "step 1: the old master $old_master must be down"
if kv "$old_master" ping >/dev/null 2>&1; then
  if [ "$force" -eq 0 ]; then
    fail "the old master $old_master still answers: stop it first (spec step 1), or use --force"
  fi
  echo "  it still answers; going on (--force): the epoch fences it once a replica is promoted"
else
  echo "  it does not answer"
fi

echo "step 2: promote the most up-to-date replica"
best=""
best_lsn=-1
for replica in $(echo "$replicas" | tr ',' ' '); do
  if ! info="$(kv "$replica" info replication 2>/dev/null)"; then
    echo "  $replica: unreachable, skipped"
    continue
  fi
  role="$(echo "$info" | field role)"
  lsn="$(echo "$info" | field last_applied_lsn)"
  syncing="$(echo "$info" | field full_sync_in_progress)"
  if [ "$role" = "master" ]; then
    # Promoting another one would make two masters: stop here.
    fail "$replica is already a master (epoch $(echo "$info" | field epoch)): a failover" \
      "happened already; send clients there, or REPLICAS ADD the others to it"
  fi
  if [ "$role" != "replica" ] || [ -z "$lsn" ]; then
    echo "  $replica: role '$role', skipped"
    continue
  fi
  if [ "$syncing" = "1" ]; then
    echo "  $replica: in the middle of a full sync (incomplete data), skipped"
    continue
  fi
  echo "  $replica: replica at LSN $lsn"
  if [ "$lsn" -gt "$best_lsn" ]; then
    best="$replica"
    best_lsn="$lsn"
  fi
done
[ -n "$best" ] || fail "no replica can be promoted (none reachable, or all mid full sync)"
kv "$best" promote | sed 's/^/  /'

echo "step 3: point the other replicas at the new master $best"
others=""
for replica in $(echo "$replicas" | tr ',' ' '); do
  [ "$replica" = "$best" ] && continue
  if kv "$best" replicas add "$replica" >/dev/null; then
    echo "  $replica: added"
    others="$others $replica"
  else
    echo "  $replica: could not be added (see above); add it later with" \
      "kvstore --host ${best%:*} --port ${best##*:} replicas add $replica" >&2
  fi
done
if [ -n "$others" ]; then
  deadline=$(($(date +%s) + wait_seconds))
  while :; do
    info="$(kv "$best" info replication)"
    total="$(echo "$info" | field total_replicas)"
    streaming="$(echo "$info" | tr -d '\r' | grep -c 'state=streaming,.*lag_records=0,' || true)"
    if [ "$streaming" = "$total" ]; then
      echo "  every replica streams from the new master, none lagging"
      break
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "$info" | tr -d '\r' | grep '^replica' >&2 || true
      fail "replicas not caught up within $wait_seconds s (they keep trying; see INFO above)"
    fi
    sleep 0.2
  done
fi

echo "step 4: clients use the new master"
echo "new master: $best"
if [ -n "$master_file" ]; then
  echo "$best" >"$master_file"
  echo "  written to $master_file"
fi
echo "make it permanent in the new master's settings: no KVSTORE_REPLICA (--replica), and" \
  "KVSTORE_REPLICA_ADDRESSES=$(echo "$others" | sed 's/^ //; s/ /,/g')" \
  "(until then it refuses to restart as a replica)"
