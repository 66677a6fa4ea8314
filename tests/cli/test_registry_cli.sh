#!/usr/bin/env bash
# cmicro registry ls against an SQLite registry file seeded with the sqlite3
# CLI, the way another process (a go-micro-compatible writer) leaves it: one
# row per node holding the JSON of the service with that one node.
set -euo pipefail
bin=${CMICRO_BIN:?CMICRO_BIN must name the cmicro binary}
work=$(mktemp -d /tmp/cmicro-test-XXXXXX)
trap 'rm -rf "$work"' EXIT
db="$work/registry.db"
export MICRO_REGISTRY_ADDRESS="$db"
unset MICRO_REGISTRY
failures=0

fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

expect_contains() { # label haystack needle
  case "$2" in
    *"$3"*) ;;
    *) fail "$1: expected \"$3\" in: $2" ;;
  esac
}

# An empty registry: cmicro creates the file and its schema.
out=$("$bin" registry ls) || fail "ls on an empty registry exited $?"
expect_contains "empty ls" "$out" "no services in the sqlite registry $db"
out=$("$bin" registry ls --json) || fail "ls --json on an empty registry exited $?"
[ "$out" = "[]" ] || fail "empty ls --json printed \"$out\", expected []"
out=$("$bin" registry ls orders) || fail "ls of an unknown service exited $?"
expect_contains "unknown service named" "$out" "no service named orders in the sqlite registry"
expect_contains "unknown service hint" "$out" "nodes of micro.http.broker"

# Seed: two broadcast subscribers of topic orders, one queue subscriber, a
# service with metadata, and one node whose TTL has passed.
future=$(( $(date +%s) * 1000 + 600000 ))
past=$(( $(date +%s) * 1000 - 1000 ))
broker='{"name":"micro.http.broker","version":"ff.http.broadcast","metadata":null,"endpoints":null,"nodes":[{"id":"%s","address":"%s","metadata":{"broker":"http","secure":"%s","topic":"orders"}}]}'
row() { # service node_id version doc expires_at (JSON without single quotes)
  printf "INSERT INTO nodes (service, node_id, version, doc, expires_at) VALUES ('%s', '%s', '%s', '%s', %s);\n" \
    "$1" "$2" "$3" "$4" "$5"
}
{
  echo "BEGIN;"
  row micro.http.broker orders-aaa ff.http.broadcast \
    "$(printf "$broker" orders-aaa 127.0.0.1:40001 true)" 0
  row micro.http.broker orders-bbb ff.http.broadcast \
    "$(printf "$broker" orders-bbb 127.0.0.1:40002 false)" "$future"
  row micro.http.broker orders-ccc workers \
    '{"name":"micro.http.broker","version":"workers","nodes":[{"id":"orders-ccc","address":"127.0.0.1:40003","metadata":{"topic":"orders"}}]}' 0
  row greeter greeter-1 1.0.0 \
    '{"name":"greeter","version":"1.0.0","metadata":{"team":"payments two"},"endpoints":[{"name":"Greeter.Hello"}],"nodes":[{"id":"greeter-1","address":"10.0.0.7:8080","metadata":{}}]}' 0
  row micro.http.broker orders-dead ff.http.broadcast \
    "$(printf "$broker" orders-dead 127.0.0.1:40009 false)" "$past"
  echo "COMMIT;"
} | sqlite3 "$db"

out=$("$bin" registry ls) || fail "ls exited $?"
expect_contains "ls header" "$out" "registry sqlite $db"
expect_contains "ls broadcast version" "$out" "micro.http.broker  version ff.http.broadcast  2 nodes"
expect_contains "ls node aaa" "$out" "  orders-aaa  127.0.0.1:40001  broker=http secure=true topic=orders"
expect_contains "ls node bbb" "$out" "  orders-bbb  127.0.0.1:40002  broker=http secure=false topic=orders"
expect_contains "ls queue version" "$out" "micro.http.broker  version workers  1 node"
expect_contains "ls quoted metadata" "$out" "greeter  version 1.0.0  1 node  team=\"payments two\""
case "$out" in *orders-dead*) fail "ls listed the expired node orders-dead" ;; esac

# The JSON is checked with SQLite's JSON functions, since sqlite3 is needed
# here anyway.
"$bin" registry ls --json >"$work/ls.json" || fail "ls --json exited $?"
json_sql() { # SQL over the JSON text bound as j
  sqlite3 :memory: "WITH doc(j) AS (SELECT readfile('$work/ls.json')) $1"
}
[ "$(json_sql "SELECT json_valid(j) FROM doc")" = 1 ] || fail "ls --json printed invalid JSON"
[ "$(json_sql "SELECT json_array_length(j) FROM doc")" = 3 ] \
  || fail "ls --json: expected 3 service versions in $(cat "$work/ls.json")"
[ "$(json_sql "SELECT json_extract(j, '\$[0].name') FROM doc")" = greeter ] \
  || fail "ls --json: first service is not greeter"
[ "$(json_sql "SELECT json_extract(j, '\$[0].endpoints[0].name') FROM doc")" = Greeter.Hello ] \
  || fail "ls --json lost the endpoints"
ids=$(json_sql "SELECT group_concat(json_extract(n.value, '\$.id'), ',') FROM doc,
  json_each(doc.j) s, json_each(s.value, '\$.nodes') n
  WHERE json_extract(s.value, '\$.version') = 'ff.http.broadcast'")
[ "$ids" = "orders-aaa,orders-bbb" ] || fail "ls --json: broadcast nodes are \"$ids\""
[ "$(json_sql "SELECT json_extract(j, '\$[1].nodes[0].metadata.secure') FROM doc")" = true ] \
  || fail "ls --json lost node metadata"

"$bin" registry ls --json greeter >"$work/ls.json" || fail "ls --json greeter exited $?"
[ "$(json_sql "SELECT group_concat(json_extract(value, '\$.name')) FROM doc, json_each(doc.j)")" = greeter ] \
  || fail "ls greeter listed other services: $(cat "$work/ls.json")"

# Errors: unknown registry name, corrupted file, bad usage.
set +e
err=$(MICRO_REGISTRY=zookeeper "$bin" registry ls 2>&1); rc=$?
set -e
[ "$rc" = 2 ] || fail "unknown MICRO_REGISTRY exited $rc, expected 2"
expect_contains "unknown registry" "$err" 'MICRO_REGISTRY="zookeeper" is not a known registry'
expect_contains "unknown registry lists known" "$err" "sqlite"

set +e
err=$(MICRO_REGISTRY=mdns "$bin" registry ls 2>&1); rc=$?
set -e
[ "$rc" = 2 ] || fail "MICRO_REGISTRY=mdns exited $rc, expected 2"
expect_contains "mdns registry" "$err" "not built into this cmicro yet"

# An etcd address that is a file path is named with the accepted forms.
set +e
err=$(MICRO_REGISTRY=etcd "$bin" registry ls 2>&1); rc=$?
set -e
[ "$rc" = 2 ] || fail "MICRO_REGISTRY=etcd with a file address exited $rc, expected 2"
expect_contains "etcd address form" "$err" "use HOST[:PORT]"

head -c 4096 /dev/urandom >"$work/garbage.db"
set +e
err=$(MICRO_REGISTRY_ADDRESS="$work/garbage.db" "$bin" registry ls 2>&1); rc=$?
set -e
[ "$rc" = 2 ] || fail "corrupted registry file exited $rc, expected 2"
expect_contains "corrupted file" "$err" "$work/garbage.db is not a valid SQLite database"

set +e
"$bin" registry ls --bogus >/dev/null 2>&1; rc=$?
set -e
[ "$rc" = 2 ] || fail "unknown option exited $rc, expected 2"
help=$("$bin" registry --help) || fail "registry --help exited $?"
expect_contains "help" "$help" "usage: cmicro registry ls [--json] [SERVICE]"

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "ok: registry ls, --json and errors"
