#!/bin/bash
# bench/redis_create.sh: Redis' CPU time per transaction that create.lua
# makes, by transactions per call (1, 16, 64) and by AOF (appendfsync
# always; no AOF), without nginx: redis-benchmark sends one EVALSHA at a
# time (-c 1 -P 1) with the arguments of a batch of the bench's accepts
# (bench/post.lua's body, 117 bytes), each with a new id; the CPU time is
# redis-server's utime + stime (/proc/PID/stat) over the run.  Two Redis
# servers of the recommended configuration (docs/cluster.md), private, in
# a temporary directory.
#
#   make -C bench redis-create        (or: bash bench/redis_create.sh)
#
# Then the transactions per second of appendfsync always by calls in
# flight at once: the ceiling of the bench's "async accept with Redis".
#
# Ports 18891 and 18892 on 127.0.0.1.  About 80 s.

set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
D=$(mktemp -d /tmp/fanbase-rcreate.XXXXXX)
N=${REDIS_CREATE_TXNS:-160000}

cleanup() {
    redis-cli -p 18891 shutdown nosave > /dev/null 2>&1 || true
    redis-cli -p 18892 shutdown nosave > /dev/null 2>&1 || true
    rm -rf "$D"
}
trap cleanup EXIT

start() {
    local port=$1 aof=$2
    mkdir -p "$D/$port"
    redis-server --port "$port" --bind 127.0.0.1 --dir "$D/$port" \
        --save '' --maxmemory-policy noeviction \
        --auto-aof-rewrite-min-size 1gb \
        $aof --daemonize yes --logfile "$D/$port/log" \
        --pidfile "$D/$port/pid"
    for _ in $(seq 1 50); do
        [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && return
        sleep 0.1
    done
    echo "redis-server on $port did not start" >&2
    exit 1
}

start 18891 '--appendonly yes --appendfsync always'
start 18892 '--appendonly no'

mkdir -p "$D/lua"
perl "$TOP/src/lua/embed.pl" --dump "$D/lua"
SHA=$(redis-cli -p 18891 SCRIPT LOAD "$(cat "$D/lua/create.lua")")
redis-cli -p 18892 SCRIPT LOAD "$(cat "$D/lua/create.lua")" > /dev/null

BODY=$(sed -n "s/^wrk.body *= *'\(.*\)'$/\1/p" "$TOP/bench/post.lua")
TARGET=$(printf '0123456789abcdef%.0s' 1 2 3 4)
ROUTE=${TARGET:0:32}
DIGEST=0123456789abcdef0123456789abcdef

cpu() {
    awk '{print $14 + $15}' "/proc/$(cat "$D/$1/pid")/stat"
}

printf '| transactions per EVALSHA | appendfsync always: µs per transaction | no AOF: µs per transaction | EVALSHA per second (always) |\n'
printf '|---|---|---|---|\n'
for per in 1 16 64; do
    args=()
    for i in $(seq 1 "$per"); do
        args+=("0000$i-__rand_int__" "$BODY" "" "$DIGEST" "")
    done
    calls=$(( N / per ))
    row="| $per"
    for port in 18891 18892; do
        t0=$(cpu $port)
        out=$(redis-benchmark -p "$port" -r 100000000 -n "$calls" -c 1 -P 1 \
              -q EVALSHA "$SHA" 1 "{fanbase:0123456789abcdef}" "$TARGET" \
              "$ROUTE" 21600000 86400000 16 86400000 "${args[@]}" \
              | tr '\r' '\n' | grep 'requests per second' | tail -1)
        t1=$(cpu $port)
        us=$(awk -v a="$t0" -v b="$t1" -v n="$N" \
             'BEGIN { printf "%.1f", (b - a) * 1e6 / 100 / n }')
        row="$row | $us"
        [ $port = 18891 ] && rps=$(echo "$out" | awk -F': ' '{print $NF}' \
                                   | awk '{printf "%.0f", $1}')
    done
    echo "$row | $rps |"
done

# The most transactions a second Redis can make durable here with
# appendfsync always, whatever the edge does: calls of 16, 32 and 64
# transactions, 1 to 8 of them in flight at once (a worker keeps one in
# flight; the bench has 2 workers), no nginx, no wrk.
echo
printf '| appendfsync always: transactions per second | 1 call in flight | 2 | 4 | 8 |\n'
printf '|---|---|---|---|---|\n'
for per in 16 32 64; do
    args=()
    for i in $(seq 1 "$per"); do
        args+=("0000$i-__rand_int__" "$BODY" "" "$DIGEST" "")
    done
    calls=$(( N / per ))
    row="| $per a call"
    for c in 1 2 4 8; do
        out=$(redis-benchmark -p 18891 -r 100000000 -n "$calls" -c "$c" -P 1 \
              -q EVALSHA "$SHA" 1 "{fanbase:0123456789abcdef}" "$TARGET" \
              "$ROUTE" 21600000 86400000 16 86400000 "${args[@]}" \
              | tr '\r' '\n' | grep 'requests per second' | tail -1)
        row="$row | $(echo "$out" | awk -F': ' '{print $NF}' \
                      | awk -v p="$per" '{printf "%.0f", $1 * p}')"
    done
    echo "$row |"
done

echo
echo "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'), $(nproc) CPUs, $(date -u '+%Y-%m-%d %H:%M UTC')"
