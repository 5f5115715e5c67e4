#!/bin/bash
# bench/instructions.sh: user-space instructions per request (callgrind,
# Ir) of the module's hot paths against plain nginx answering the same
# shape, one nginx process (master_process off) under valgrind, wrk with 16
# connections; the counters are zeroed after a warm-up and dumped after the
# measurement, divided by the requests wrk counted.
#
#   make -C bench instructions        (or: bash bench/instructions.sh)
#   BENCH_ONLY=status bash bench/instructions.sh    (the status rows alone)
#
#   - async accept: POST bench/post.lua's body to "fanbase_submit async"
#     (Fanbase a listener that never answers: deliveries stay parked)
#     against "return 202";
#   - webhook: signed Standard Webhooks status callbacks, every one a new
#     message and transaction, to "fanbase_webhook" against "return 204";
#   - submission: POST to "fanbase_submit" against "proxy_pass" with the
#     AccessToken set and upstream keepalive, both to a plain nginx (its
#     own process, not counted) answering 201 with a queue item.
#   - async accept with Redis (issue 15): the same POST to "fanbase_submit
#     async" in a second nginx under callgrind with "fanbase_redis" to a
#     private redis-server (appendfsync always; its own process, not
#     counted: its CPU time per accept is in bench/run.pl's profile)
#     against "return 202" in that nginx.
#   - status (issue 12): GET of a completed queue item from the zone
#     (fanbase_status, X-Fanbase-Cache: HIT) against "return 200" of the
#     same bytes, type and header;
#   - transaction: GET /transactions/ID of a transaction accepted async,
#     delivered to the mock and polled there until completed (its events),
#     from the zone (fanbase_transaction), against "return 200" of the same
#     bytes, type and ETag.  Both in a third nginx under callgrind whose
#     zone has a state file: a plain nginx with the same zone settles the
#     transaction first, so that its bytes and ETag (its times) are known
#     when the reference is configured, and the nginx under callgrind loads
#     it from the state file.
#
# Every reference's path has the length of ours' (bench/run.pl's %REF says
# why): /ref/202-xxx... and /ref/queue-xxx... are as long as the queue's,
# /ref/status-xxx... as $Q/ID, /ref/txn-xxx... as /transactions/ID.
#
# Then, for each path of the module, its functions that cost the most per
# request, inclusive (callgrind_annotate --inclusive=yes).
#
# Needs valgrind, wrk, perl, redis-server; the module built (make module).
# Ports 18871 to 18877 on 127.0.0.1.

set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
MODULE=${BENCH_MODULE:-$TOP/build/ngx_http_fanbase_module.so}
D=$(mktemp -d /tmp/fanbase-instr.XXXXXX)
Q=/api/v1/integration/queue
PIDS=()
SUBMIT_ID=0f8fad5b-d9cb-469f-a165-70867728950e
DONE_ID=7c9e6679-7425-40de-944b-e07fc1f90ae7
CREATED='{"id":"'$SUBMIT_ID'","created":"2026-01-01T00:00:00Z","iCode":0,"iMsg":"Objeto criado com sucesso","processDate":null,"processStatus":"pending","processMsg":null}'
# what the mock answers for GET of $DONE_ID (Fanbase's shape, msg
# included), what the edge answers from the zone (msg null without
# fanbase_store_payload), and the completed item of the async delivery
DONE_FANBASE='{"id":"'$DONE_ID'","created":"2026-01-01T00:00:00Z","iCode":0,"iMsg":"Objeto criado com sucesso","processDate":"2026-01-01T00:00:05Z","processStatus":"completed","processMsg":"Ingresso criado","msg":{"action":"ticket-create","data":{"seat":"A1"}}}'
DONE_EDGE=$(sed 's/"msg":{.*}}$/"msg":null}/' <<< "$DONE_FANBASE")
ASYNC_DONE=${DONE_FANBASE//$DONE_ID/$SUBMIT_ID}
REF_STATUS=/ref/status-$(printf 'x%.0s' $(seq 1 $(( ${#Q} + 1 + ${#DONE_ID} - 12 ))))
REF_TXN=/ref/txn-$(printf 'x%.0s' $(seq 1 $(( 14 + ${#SUBMIT_ID} - 9 ))))

cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "${BENCH_KEEP:-}" ] && echo "kept $D" >&2 || rm -rf "$D"
}
trap cleanup EXIT

# a "Fanbase" that takes connections and never answers
perl -MIO::Socket::INET -e '
    my $l = IO::Socket::INET->new(Listen => 1024, LocalAddr => "127.0.0.1",
                                  LocalPort => 18873, ReuseAddr => 1) or die;
    my @c; while (my $c = $l->accept) { push @c, $c }' &
PIDS+=($!)

# a plain nginx answering the queue POST and the token request
mkdir -p "$D/mock"
cat > "$D/mock/nginx.conf" <<CONF
worker_processes 1; daemon off; error_log $D/mock/error.log warn;
pid $D/mock/nginx.pid; events { worker_connections 4096; }
http {
    access_log off; keepalive_requests 1000000; default_type application/json;
    server {
        listen 127.0.0.1:18874 backlog=4096;
        location = /api/token {
            return 200 '{"access_token":"bench.token.x","token_type":"Bearer","expires_in":3600}';
        }
        location = $Q {
            return 201 '$CREATED';
        }
        location = $Q/$DONE_ID {
            return 200 '$DONE_FANBASE';
        }
        location = /async$Q {
            return 201 '$CREATED';
        }
        location = /async$Q/$SUBMIT_ID {
            return 200 '$ASYNC_DONE';
        }
    }
}
CONF
/usr/sbin/nginx -p "$D/mock" -c "$D/mock/nginx.conf" &
PIDS+=($!)

KEY=$(head -c 24 /dev/urandom | base64)
echo "whsec_$KEY" > "$D/hook.secret"
echo bench-secret > "$D/secret"

cat > "$D/nginx.conf" <<CONF
load_module $MODULE;
master_process off; daemon off; worker_processes 1;
error_log $D/error.log warn; pid $D/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off; keepalive_requests 1000000; keepalive_timeout 60s;
    fanbase_zone zone=fb:256m;
    server {
        listen 127.0.0.1:18871 backlog=4096;
        fanbase_api http://127.0.0.1:18873;
        fanbase_token_url http://127.0.0.1:18873/api/token;
        fanbase_client_id bench;
        fanbase_client_secret_file $D/secret;
        fanbase_timeout 600s;
        client_body_buffer_size 16k;
        location = $Q { fanbase_submit async; }
        location = /webhook {
            fanbase_webhook;
            fanbase_webhook_secret_file $D/hook.secret;
        }
        location = /ref/202-xxxxxxxxxxxxxxxx {
            default_type application/json;
            add_header Location /transactions/0f8fad5b-d9cb-469f-a165-70867728950e always;
            return 202 '{"transaction_id":"0f8fad5b-d9cb-469f-a165-70867728950e","links":[{"path":"/transactions/0f8fad5b-d9cb-469f-a165-70867728950e"}]}';
        }
        location = /ref/204 { return 204; }
    }
    upstream mock {
        server 127.0.0.1:18874;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:18872 backlog=4096;
        fanbase_api http://127.0.0.1:18874;
        fanbase_token_url http://127.0.0.1:18874/api/token;
        fanbase_client_id bench;
        fanbase_client_secret_file $D/secret;
        client_body_buffer_size 16k;
        location = $Q { fanbase_submit; }
        location = /ref/queue-xxxxxxxxxxxxxx {
            proxy_pass http://mock$Q;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header AccessToken "bench.token.x";
        }
    }
}
CONF

# signed webhooks, each LEN bytes from the first header: prints LEN
cat > "$D/gen.pl" <<'PERL'
use strict; use Digest::SHA qw(hmac_sha256); use MIME::Base64;
my ($file, $n, $key, $tag) = @ARGV; my $k = decode_base64($key); my $ts = time;
open my $fh, '>', $file or die; my $len;
for my $seq (1 .. $n) {
    my $id = sprintf 'msg_bench_%s_%012d', $tag, $seq;
    my $body = '{"id":"' . sprintf('%08x-0000-4000-8000-%012x', hex($tag), $seq)
             . '","status":"completed"}';
    my $sig = encode_base64(hmac_sha256("$id.$ts.$body", $k), '');
    my $r = "Content-Type: application/json\r\nwebhook-id: $id\r\n"
          . "webhook-timestamp: $ts\r\nwebhook-signature: v1,$sig\r\n"
          . "Content-Length: " . length($body) . "\r\n\r\n$body";
    $len //= length $r; print $fh $r;
}
print "$len\n";
PERL

# measure NAME URL WRK-ARGS...: instructions per request
measure() {
    local name=$1 url=$2; shift 2
    local n ir
    callgrind_control -z "$VG" > /dev/null 2>&1
    n=$(wrk -t1 -c16 -d4s "$@" 2>&1 | awk '/requests in/ {print $1}')
    callgrind_control -d "$VG" > /dev/null 2>&1
    sleep 0.5
    ir=$(callgrind_annotate "$(ls -t "$D"/cg.out* | head -1)" 2>/dev/null \
         | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
    printf "%-22s %8d requests %12d instructions %8d per request\n" \
        "$name" "$n" "$ir" $(( ir / n )) >&2
    cp "$(ls -t "$D"/cg.out* | head -1)" "$D/$name.out"
    echo "$n" > "$D/$name.n"
    echo $(( ir / n ))
}

# BENCH_ONLY=status: the status rows alone
if [ "${BENCH_ONLY:-}" != status ]; then
valgrind --tool=callgrind --callgrind-out-file="$D/cg.out" \
    /usr/sbin/nginx -p "$D" -c "$D/nginx.conf" > "$D/valgrind.log" 2>&1 &
VG=$!
PIDS+=($VG)

for _ in $(seq 1 100); do
    curl -s -o /dev/null http://127.0.0.1:18871/ref/204 && break
    sleep 0.1
done

POST="-s $TOP/bench/post.lua"
wrk -t1 -c16 -d2s $POST "http://127.0.0.1:18871$Q" > /dev/null
wrk -t1 -c16 -d2s $POST "http://127.0.0.1:18871/ref/202-xxxxxxxxxxxxxxxx" > /dev/null
a=$(measure 'fanbase_submit async' "$Q" $POST "http://127.0.0.1:18871$Q" | tail -1)
r=$(measure 'return 202' /ref/202-xxxxxxxxxxxxxxxx $POST "http://127.0.0.1:18871/ref/202-xxxxxxxxxxxxxxxx" | tail -1)

LEN=$(perl "$D/gen.pl" "$D/warm.bin" 6000 "$KEY" 0000aaaa)
wrk -t1 -c16 -d2s -s "$TOP/bench/webhook.lua" "http://127.0.0.1:18871/webhook" \
    -- "$D/warm.bin" "$LEN" 6000 > /dev/null
LEN=$(perl "$D/gen.pl" "$D/run.bin" 40000 "$KEY" 0000bbbb)
w=$(measure 'fanbase_webhook' /webhook -s "$TOP/bench/webhook.lua" \
        "http://127.0.0.1:18871/webhook" -- "$D/run.bin" "$LEN" 40000 | tail -1)
wrk -t1 -c16 -d2s $POST "http://127.0.0.1:18871/ref/204" > /dev/null
f=$(measure 'return 204' /ref/204 $POST "http://127.0.0.1:18871/ref/204" | tail -1)

wrk -t1 -c16 -d2s $POST "http://127.0.0.1:18872$Q" > /dev/null
wrk -t1 -c16 -d2s $POST "http://127.0.0.1:18872/ref/queue-xxxxxxxxxxxxxx" > /dev/null
u=$(measure 'fanbase_submit' "$Q" $POST "http://127.0.0.1:18872$Q" | tail -1)
x=$(measure 'proxy_pass' /ref/queue-xxxxxxxxxxxxxx $POST "http://127.0.0.1:18872/ref/queue-xxxxxxxxxxxxxx" \
    | tail -1)

# the shared engine: a second nginx under callgrind, fanbase_redis to a
# redis-server of its own (appendfsync always, as docs/cluster.md says)
mkdir -p "$D/redis"
redis-server --port 18875 --bind 127.0.0.1 --dir "$D/redis" --save '' \
    --appendonly yes --appendfsync always > "$D/redis/out" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
    [ "$(redis-cli -p 18875 ping 2>/dev/null)" = PONG ] && break
    sleep 0.1
done
mkdir -p "$D/r"
sed -e 's|fanbase_zone zone=fb:256m;|fanbase_zone zone=fb:64m; fanbase_redis redis://127.0.0.1:18875/0;|' \
    -e "s|$D/error.log|$D/r/error.log|; s|$D/nginx.pid|$D/r/nginx.pid|" \
    -e 's|127.0.0.1:18871|127.0.0.1:18876|' \
    -e '/^    upstream mock {/,$d' "$D/nginx.conf" > "$D/r/nginx.conf"
echo '}' >> "$D/r/nginx.conf"
valgrind --tool=callgrind --callgrind-out-file="$D/r/cg.out" \
    /usr/sbin/nginx -p "$D/r" -c "$D/r/nginx.conf" > "$D/r/valgrind.log" 2>&1 &
VG=$!
PIDS+=($VG)
for _ in $(seq 1 100); do
    curl -s -o /dev/null http://127.0.0.1:18876/ref/204 && break
    sleep 0.1
done
sleep 1     # the worker connects and subscribes
D0=$D; D=$D/r
wrk -t1 -c16 -d2s $POST "http://127.0.0.1:18876$Q" > /dev/null
wrk -t1 -c16 -d2s $POST "http://127.0.0.1:18876/ref/202-xxxxxxxxxxxxxxxx" > /dev/null
ra=$(measure 'fanbase_submit async (Redis)' "$Q" $POST "http://127.0.0.1:18876$Q" | tail -1)
rr=$(measure 'return 202 (Redis nginx)' /ref/202-xxxxxxxxxxxxxxxx $POST "http://127.0.0.1:18876/ref/202-xxxxxxxxxxxxxxxx" \
     | tail -1)
cp "$D/fanbase_submit async (Redis).out" "$D/fanbase_submit async (Redis).n" "$D0/"
D=$D0
fi

# the status rows: a third nginx, its zone with a state file (see the
# header); "$1": the reference of the transaction's GET, or nothing
mkdir -p "$D/s"
status_conf() {
    cat <<CONF
load_module $MODULE;
master_process off; daemon off; worker_processes 1;
error_log $D/s/error.log warn; pid $D/s/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off; keepalive_requests 1000000; keepalive_timeout 60s;
    fanbase_zone zone=fb:64m state=$D/s/state;
    server {
        listen 127.0.0.1:18877 backlog=4096;
        fanbase_api http://127.0.0.1:18874;
        fanbase_token_url http://127.0.0.1:18874/api/token;
        fanbase_client_id bench;
        fanbase_client_secret_file $D/secret;
        fanbase_timeout 10s;
        client_body_buffer_size 16k;
        location $Q/ { fanbase_status; }
        location = $REF_STATUS {
            default_type application/json;
            add_header X-Fanbase-Cache HIT;
            return 200 '$DONE_EDGE';
        }
        location = /settle$Q {
            fanbase_api http://127.0.0.1:18874/async;
            fanbase_submit async;
        }
        location /transactions/ {
            fanbase_api http://127.0.0.1:18874/async;
            fanbase_transaction;
        }
        location = /ref/204 { return 204; }
$1
    }
}
CONF
}
status_conf '' > "$D/s/nginx.conf"
/usr/sbin/nginx -p "$D/s" -c "$D/s/nginx.conf" > "$D/s/settle.log" 2>&1 &
SP=$!
PIDS+=($SP)
for _ in $(seq 1 100); do
    curl -s -o /dev/null http://127.0.0.1:18877/ref/204 && break
    sleep 0.1
done
TXN=$(curl -s -o /dev/null -w '%header{location}' -X POST \
       -H 'Content-Type: application/json' \
       --data-binary '{"action":"ticket-create","data":{"event":"bench-2026","seat":"A1"}}'  \
       "http://127.0.0.1:18877/settle$Q" 2>/dev/null || true)
case "$TXN" in
    /transactions/?*) ;;
    *) echo "instructions.sh: the async accept to settle: no Location" >&2; exit 1 ;;
esac
for _ in $(seq 1 100); do
    curl -s "http://127.0.0.1:18877$TXN" | grep -q '"status":"completed"' && break
    sleep 0.2
done
curl -s -D "$D/s/txn.h" -o "$D/s/txn.json" "http://127.0.0.1:18877$TXN"
grep -q '"status":"completed"' "$D/s/txn.json" || {
    echo "instructions.sh: $TXN not completed: $(cat "$D/s/txn.json")" >&2; exit 1; }
ETAG=$(awk -F': ' 'tolower($1) == "etag" {sub(/\r$/, "", $2); print $2}' "$D/s/txn.h")
if [ ${#TXN} -ne $(( 14 + ${#SUBMIT_ID} )) ] || grep -q "['\\\$]" "$D/s/txn.json" \
   || [ -z "$ETAG" ]; then
    echo "instructions.sh: $TXN: unexpected id, JSON or ETag" >&2; exit 1
fi
kill "$SP"; wait "$SP" 2>/dev/null || true
status_conf "        location = $REF_TXN {
            default_type application/json;
            add_header ETag '$ETAG';
            return 200 '$(cat "$D/s/txn.json")';
        }" > "$D/s/nginx.conf"
valgrind --tool=callgrind --callgrind-out-file="$D/s/cg.out" \
    /usr/sbin/nginx -p "$D/s" -c "$D/s/nginx.conf" > "$D/s/valgrind.log" 2>&1 &
VG=$!
PIDS+=($VG)
for _ in $(seq 1 100); do
    curl -s -o /dev/null http://127.0.0.1:18877/ref/204 && break
    sleep 0.1
done
# the same bytes and headers (but Date) from ours and from the references
same() {
    local a b
    a=$(curl -s -D - "http://127.0.0.1:18877$1" | grep -vi '^date:')
    b=$(curl -s -D - "http://127.0.0.1:18877$2" | grep -vi '^date:')
    [ "$a" = "$b" ] || {
        printf 'instructions.sh: %s and %s differ:\n%s\n--\n%s\n' "$1" "$2" "$a" "$b" >&2
        exit 1; }
}
curl -s -o /dev/null "http://127.0.0.1:18877$Q/$DONE_ID"      # read through
same "$Q/$DONE_ID" "$REF_STATUS"
same "$TXN" "$REF_TXN"
D0=$D; D=$D/s
wrk -t1 -c16 -d2s "http://127.0.0.1:18877$Q/$DONE_ID" > /dev/null
wrk -t1 -c16 -d2s "http://127.0.0.1:18877$REF_STATUS" > /dev/null
s=$(measure 'fanbase_status' "$Q/$DONE_ID" "http://127.0.0.1:18877$Q/$DONE_ID" | tail -1)
sr=$(measure 'return 200 (status)' "$REF_STATUS" "http://127.0.0.1:18877$REF_STATUS" | tail -1)
wrk -t1 -c16 -d2s "http://127.0.0.1:18877$TXN" > /dev/null
wrk -t1 -c16 -d2s "http://127.0.0.1:18877$REF_TXN" > /dev/null
t=$(measure 'fanbase_transaction' "$TXN" "http://127.0.0.1:18877$TXN" | tail -1)
tr=$(measure 'return 200 (transaction)' "$REF_TXN" "http://127.0.0.1:18877$REF_TXN" | tail -1)
for name in fanbase_status 'return 200 (status)' fanbase_transaction 'return 200 (transaction)'; do
    cp "$D/$name.out" "$D/$name.n" "$D0/"
done
D=$D0

echo
echo "| path | instructions per request | reference | ratio |"
echo "|---|---|---|---|"
if [ "${BENCH_ONLY:-}" != status ]; then
echo "| fanbase_submit async | $a | return 202: $r | $(awk "BEGIN {printf \"%.2f\", $a / $r}") |"
echo "| fanbase_webhook | $w | return 204: $f | $(awk "BEGIN {printf \"%.2f\", $w / $f}") |"
echo "| fanbase_submit | $u | proxy_pass: $x | $(awk "BEGIN {printf \"%.2f\", $u / $x}") |"
echo "| fanbase_submit async, fanbase_redis (appendfsync always) | $ra | return 202: $rr | $(awk "BEGIN {printf \"%.2f\", $ra / $rr}") |"
fi
echo "| fanbase_status (completed, from the zone) | $s | return 200: $sr | $(awk "BEGIN {printf \"%.2f\", $s / $sr}") |"
echo "| fanbase_transaction (completed, its events) | $t | return 200: $tr | $(awk "BEGIN {printf \"%.2f\", $t / $tr}") |"

# where each path of the module spends them
NAMES=(fanbase_status fanbase_transaction)
[ "${BENCH_ONLY:-}" = status ] || NAMES=('fanbase_submit async' fanbase_webhook \
    fanbase_submit 'fanbase_submit async (Redis)' "${NAMES[@]}")
for name in "${NAMES[@]}"; do
    n=$(cat "$D/$name.n")
    echo
    echo "$name: the module's and yajl's functions, inclusive, per request"
    callgrind_annotate --inclusive=yes --threshold=99 "$D/$name.out" \
        2>/dev/null \
    | awk -v n="$n" '/^ *[0-9,]+ \(/ && /fanbase|yajl_parse|yajl_tree_parse|HMAC|EVP_MAC|redis[A-Z]|sdscat/ {
            x = $1; gsub(",", "", x);
            f = $NF == "" ? $(NF-1) : $NF;
            if (f ~ /^\[/) f = $(NF-1);
            sub(/^.*:/, "", f);
            if (!seen[f]++ && x / n >= 200) printf "  %7d  %s\n", x / n, f
        }' | head -14
done

if grep -qsE '\[(alert|crit|emerg)\]' "$D/error.log" "$D/r/error.log" "$D/s/error.log"; then
    grep -sE '\[(alert|crit|emerg)\]' "$D/error.log" "$D/r/error.log" "$D/s/error.log" | head -5
    exit 1
fi
