#!/usr/bin/env bash
#
# t/demo.sh: ngx_http_fanbase_module end to end, on this machine only.
#
# Starts the mock Fanbase (t/mock_fanbase.pl) and Debian's nginx with
# build/ngx_http_fanbase_module.so, configured from conf.example, then plays
# a website: it submits a ticket to the staging edge WITHOUT any AccessToken,
# exactly as Fanbase's JavaScript example does but against the edge, and
# polls the queue entry until Fanbase has processed it.
#
# Run it with "make demo" (which installs what is missing and builds the
# module first).  Everything it starts is stopped, and its temporary
# directory removed, when it exits.

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
TOP=$(pwd)

NGINX=/usr/sbin/nginx
MODULE_SO=$TOP/build/ngx_http_fanbase_module.so
CONF_EXAMPLE=$TOP/conf.example
MOCK=$TOP/t/mock_fanbase.pl

CLIENT_ID=demo-client
CLIENT_SECRET=demo-secret
POLL_TIMEOUT=20         # seconds, from the submission to a final status

TMP=
MOCK_PID=
NGINX_PID=

say()  { printf '%s\n' "$*"; }
head1() { printf '\n== %s\n\n' "$*"; }
die()  { printf 'demo: %s\n' "$*" >&2; exit 1; }

# --- cleanup: stop what we started, whatever happens ----------------------

alive() { [[ -n $1 ]] && kill -0 "$1" 2>/dev/null; }

wait_gone() {   # PID TENTHS_OF_A_SECOND
    local i
    for ((i = 0; i < $2; i++)); do
        alive "$1" || return 0
        sleep 0.1
    done
    ! alive "$1"
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM

    if ((rc != 0)) && [[ -n $TMP ]]; then
        if [[ -s $TMP/error.log ]]; then
            printf '\n-- nginx error log (last 40 lines) --\n' >&2
            tail -n 40 "$TMP/error.log" >&2
        fi
        if [[ -s $TMP/nginx.out ]]; then
            printf '\n-- nginx stderr --\n' >&2
            tail -n 20 "$TMP/nginx.out" >&2
        fi
        if [[ -s $TMP/mock.log ]]; then
            printf '\n-- mock fanbase output (last 20 lines) --\n' >&2
            tail -n 20 "$TMP/mock.log" >&2
        fi
    fi

    if alive "$NGINX_PID"; then
        kill -QUIT "$NGINX_PID"                 # graceful shutdown
        if ! wait_gone "$NGINX_PID" 50; then
            kill -TERM "$NGINX_PID"             # fast shutdown
            if ! wait_gone "$NGINX_PID" 30; then
                pkill -KILL -P "$NGINX_PID"     # its workers
                kill -KILL "$NGINX_PID"
            fi
        fi
        wait "$NGINX_PID" 2>/dev/null
    fi

    if alive "$MOCK_PID"; then
        kill -TERM "$MOCK_PID"
        wait_gone "$MOCK_PID" 30 || kill -KILL "$MOCK_PID"
        wait "$MOCK_PID" 2>/dev/null
    fi

    [[ -n $TMP ]] && rm -rf "$TMP"

    if ((rc != 0)); then
        printf '\ndemo: FAILED\n' >&2
    fi
    exit "$rc"
}

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- helpers --------------------------------------------------------------

# Three distinct free TCP ports on the loopback (held together while picked).
free_ports() {
    perl -MIO::Socket::INET -e '
        my @s = map {
            IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1",
                                  LocalPort => 0, ReuseAddr => 1)
                or die "cannot pick a free port: $!\n"
        } 1 .. $ARGV[0];
        print join(" ", map { $_->sockport } @s), "\n";
    ' "$1"
}

# Is something accepting connections on 127.0.0.1:PORT?
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# JSON on stdin -> indented JSON on stdout; fails on anything else.
pretty_json() {
    perl -MJSON::PP -0777 -ne '
        print JSON::PP->new->utf8->pretty->canonical->encode(decode_json($_));
    '
}

# JSON on stdin -> the string value of one top-level field (empty if null).
json_field() {
    perl -MJSON::PP -0777 -ne '
        BEGIN { $key = shift @ARGV; binmode STDOUT, ":encoding(UTF-8)" }
        my $v = decode_json($_)->{$key};
        print defined $v ? $v : "";
    ' "$1"
}

# conf.example is the contract: each edit must match the lines it expects,
# as many as it expects, or the demo stops here.
edit_conf() {   # EXPECTED_LINES ERE REPLACEMENT
    local want=$1 re=$2 rep=$3 n
    n=$(grep -c -E -e "$re" "$CONF" || true)
    if [[ $n != "$want" ]]; then
        die "conf.example does not read as expected: /$re/ matches $n line(s), not $want"
    fi
    sed -E -i -e "s"$'\001'"$re"$'\001'"$rep"$'\001' "$CONF"
}

now() { date +%H:%M:%S.%3N; }

elapsed() {     # seconds since $T0, one decimal
    perl -MTime::HiRes=time -e 'printf "%5.1fs", time - $ARGV[0]' "$T0"
}

# --- preflight ------------------------------------------------------------

[[ -x $NGINX ]] || die "$NGINX not found: run 'make deps'"
[[ -f $MODULE_SO ]] || die "$MODULE_SO not found: run 'make' (or 'make demo')"
[[ -f $MOCK ]] || die "$MOCK not found"
[[ -f $CONF_EXAMPLE ]] || die "$CONF_EXAMPLE not found"
command -v curl > /dev/null || die "curl not found: run 'make deps'"
perl -MJSON::PP -e1 2> /dev/null || die "perl JSON::PP not found: run 'make deps'"

# conf.example asks for 4096 connections a worker
ulimit -n 8192 2> /dev/null || ulimit -n "$(ulimit -Hn)" 2> /dev/null || true

TMP=$(mktemp -d)
case "$TMP$TOP" in
    *[\&\\[:space:]]*) die "paths with '&', '\\' or spaces are not supported: $TMP $TOP" ;;
esac

ports=$(free_ports 3) || die "could not pick free ports"
read -r MOCK_PORT PORT1 PORT2 <<< "$ports"

# --- the mock Fanbase -----------------------------------------------------

printf '%s' "$CLIENT_SECRET" > "$TMP/demo-secret"
chmod 600 "$TMP/demo-secret"

perl "$MOCK" --listen "127.0.0.1:$MOCK_PORT" \
    --client "$CLIENT_ID:$CLIENT_SECRET" \
    --processing-after 2 --completed-after 4 \
    > "$TMP/mock.log" 2>&1 &
MOCK_PID=$!

for ((i = 0; ; i++)); do
    grep -q '^mock fanbase listening on ' "$TMP/mock.log" && break
    alive "$MOCK_PID" || die "the mock Fanbase exited at start"
    ((i < 100)) || die "the mock Fanbase did not start within 10 s"
    sleep 0.1
done

# --- nginx.conf from conf.example -----------------------------------------

CONF=$TMP/nginx.conf
cp "$CONF_EXAMPLE" "$CONF"

MAIN_EXTRA='daemon off;'
if [[ $(id -u) == 0 ]]; then
    MAIN_EXTRA+='\nuser root root;'
fi

edit_conf 1 '^load_module[[:space:]]+/usr/lib/nginx/modules/ngx_http_fanbase_module\.so;$' \
    "load_module $MODULE_SO;\n$MAIN_EXTRA"
edit_conf 1 '^pid[[:space:]]+/run/nginx\.pid;$' \
    "pid $TMP/nginx.pid;"
edit_conf 1 '^error_log[[:space:]]+/var/log/nginx/error\.log[[:space:]]+info;$' \
    "error_log $TMP/error.log info;"
edit_conf 1 '^([[:space:]]+)access_log[[:space:]]+/var/log/nginx/access\.log;$' \
    "\1access_log $TMP/access.log;\n\1client_body_temp_path $TMP/client_body;\n\1proxy_temp_path $TMP/proxy;\n\1fastcgi_temp_path $TMP/fastcgi;\n\1uwsgi_temp_path $TMP/uwsgi;\n\1scgi_temp_path $TMP/scgi;"
edit_conf 2 '^([[:space:]]+fanbase_api[[:space:]]+)https://connect\.(fantest|fanbase)\.com\.br;$' \
    "\1http://127.0.0.1:$MOCK_PORT;"
edit_conf 2 '^([[:space:]]+fanbase_token_url[[:space:]]+)https://security\.(fantest|fanbase)\.com\.br/api/token;$' \
    "\1http://127.0.0.1:$MOCK_PORT/api/token;"
edit_conf 2 '^([[:space:]]+fanbase_client_id[[:space:]]+)my-(staging|production)-client-id;$' \
    "\1$CLIENT_ID;"
edit_conf 2 '^([[:space:]]+fanbase_client_secret_file[[:space:]]+)/etc/nginx/fanbase/(staging|production)\.secret;$' \
    "\1$TMP/demo-secret;"
edit_conf 1 '^([[:space:]]+fanbase_zone[[:space:]]+zone=fanbase:16m[[:space:]]+)state=/var/lib/nginx/fanbase\.state;$' \
    "\1state=$TMP/fanbase.state;"
edit_conf 1 '^([[:space:]]+listen[[:space:]]+)8080;$' "\1127.0.0.1:$PORT1;"
edit_conf 1 '^([[:space:]]+listen[[:space:]]+)8081;$' "\1127.0.0.1:$PORT2;"

# nothing may still point off this machine or outside $TMP
if leftover=$(grep -n -E '^[^#]*(https?://[^1]|/var/|/run/|/etc/nginx/|[[:space:]]808[01];)' "$CONF"); then
    die "generated nginx.conf still has: $leftover"
fi

# --- nginx ----------------------------------------------------------------

if ! "$NGINX" -t -q -p "$TMP/" -c "$CONF" -e "$TMP/error.log" \
        > "$TMP/nginx.out" 2>&1; then
    die "nginx -t failed on the generated configuration"
fi

"$NGINX" -p "$TMP/" -c "$CONF" -e "$TMP/error.log" >> "$TMP/nginx.out" 2>&1 &
NGINX_PID=$!

for ((i = 0; ; i++)); do
    port_open "$PORT1" && port_open "$PORT2" && break
    alive "$NGINX_PID" || die "nginx exited at start"
    ((i < 100)) || die "nginx did not listen on $PORT1 and $PORT2 within 10 s"
    sleep 0.1
done

head1 "ngx_http_fanbase_module demo"
say "mock Fanbase (Security + Connect)  http://127.0.0.1:$MOCK_PORT"
say "edge, staging server               http://127.0.0.1:$PORT1"
say "edge, production server            http://127.0.0.1:$PORT2"
say "nginx $("$NGINX" -v 2>&1 | sed 's|.*/||'), module $MODULE_SO"

# --- a website submits a ticket, with no token ----------------------------

EDGE=http://127.0.0.1:$PORT1
BODY='{"action":"ticket-create","data":{"dados_do_ingresso":"Festival de Verao 2026 - Pista Premium - Lote 2 - ingresso 000123","dados_do_comprador":"Ana Souza - CPF 123.456.789-09 - ana.souza@example.com"}}'

head1 "POST $EDGE/api/v1/integration/queue  (no AccessToken header)"
say "$BODY" | pretty_json
say

T0=$(perl -MTime::HiRes=time -e 'printf "%.3f", time')
status=$(curl -sS -o "$TMP/submit.json" -D "$TMP/submit.headers" \
    -w '%{http_code}' --max-time 20 \
    -H 'Content-Type: application/json' --data-binary "$BODY" \
    "$EDGE/api/v1/integration/queue") || die "the submission failed (curl)"
location=$(tr -d '\r' < "$TMP/submit.headers" \
    | sed -n 's/^[Ll]ocation:[[:space:]]*//p' | tail -n 1)

say "HTTP status: $status"
say "Location:    ${location:-(none)}"
pretty_json < "$TMP/submit.json" \
    || { cat "$TMP/submit.json"; say; die "the answer is not JSON"; }
[[ $status == 2?? ]] || die "the submission was answered $status"

id=$(json_field id < "$TMP/submit.json")
[[ -n $id ]] || die "the answer has no id"
[[ $id =~ ^[A-Za-z0-9._-]+$ ]] || die "unexpected id: $id"

# --- it polls the queue entry until Fanbase is done with it ---------------

head1 "GET $EDGE/api/v1/integration/queue/$id  (every 0.5 s)"
say "time          elapsed  processStatus"

last=
polls=0
while :; do
    code=$(curl -sS -o "$TMP/status.json" -w '%{http_code}' --max-time 10 \
        "$EDGE/api/v1/integration/queue/$id") || die "the status request failed (curl)"
    polls=$((polls + 1))
    if [[ $code != 200 ]]; then
        cat "$TMP/status.json" >&2; say >&2
        die "GET /api/v1/integration/queue/$id answered $code"
    fi
    st=$(json_field processStatus < "$TMP/status.json") \
        || { cat "$TMP/status.json" >&2; die "the status answer is not JSON"; }
    if [[ $st != "$last" ]]; then
        say "$(now)  $(elapsed)  ${st:-(none)}"
        last=$st
    fi
    case $st in
        completed|failed) break ;;
    esac
    if perl -e 'exit !(time - $ARGV[0] > $ARGV[1])' "$T0" "$POLL_TIMEOUT"; then
        die "no final processStatus within $POLL_TIMEOUT s (last: ${st:-none})"
    fi
    sleep 0.5
done

head1 "final answer"
pretty_json < "$TMP/status.json"

# --- what Fanbase saw -----------------------------------------------------

head1 "what the mock Fanbase received"
curl -sS --max-time 5 "http://127.0.0.1:$MOCK_PORT/_mock/stats" \
    > "$TMP/stats.json" || die "cannot read the mock's statistics"
perl -MJSON::PP -0777 -ne '
    BEGIN { $polls = shift @ARGV }
    my $s = decode_json($_);
    printf "token requests:  %d   (the edge fetched the token; the website never had one)\n",
        $s->{token_requests} // 0;
    printf "queue POSTs:     %d\n", $s->{queue_posts} // 0;
    printf "queue GETs:      %d   (for %d status requests from the website)\n",
        $s->{queue_gets} // 0, $polls;
' "$polls" < "$TMP/stats.json"

if [[ $st != completed ]]; then
    die "the ticket ended '$st'"
fi

# --- the same, asynchronously: 202 at once, the edge delivers it ----------

# conf.example has the asynchronous locations in the production server
EDGE=http://127.0.0.1:$PORT2

head1 "POST $EDGE/async/api/v1/integration/queue  (answered before Fanbase sees it)"

T0=$(perl -MTime::HiRes=time -e 'printf "%.3f", time')
status=$(curl -sS -o "$TMP/async.json" -w '%{http_code}' --max-time 20 \
    -H 'Content-Type: application/json' -H 'Idempotency-Key: demo-ticket-000123' \
    --data-binary "$BODY" "$EDGE/async/api/v1/integration/queue") \
    || die "the asynchronous submission failed (curl)"
say "HTTP status: $status   ($(elapsed))"
pretty_json < "$TMP/async.json" \
    || { cat "$TMP/async.json"; say; die "the answer is not JSON"; }
[[ $status == 202 ]] || die "the asynchronous submission was answered $status"

tx=$(perl -MJSON::PP -0777 -ne 'print decode_json($_)->{links}[0]{path}' \
    < "$TMP/async.json")
[[ $tx =~ ^/transactions/[0-9a-f-]{36}$ ]] || die "unexpected link: $tx"

head1 "GET $EDGE$tx?wait=10  (long polling: answered when it changes)"
say "time          elapsed  status"

etag=
st=
while :; do
    code=$(curl -sS -o "$TMP/tx.json" -D "$TMP/tx.headers" -w '%{http_code}' \
        --max-time 15 ${etag:+-H "If-None-Match: $etag"} \
        "$EDGE$tx?wait=10") || die "the transaction request failed (curl)"
    [[ $code == 200 || $code == 304 ]] || die "GET $tx answered $code"
    etag=$(tr -d '\r' < "$TMP/tx.headers" | sed -n 's/^[Ee][Tt]ag:[[:space:]]*//p')
    if [[ $code == 200 ]]; then
        st=$(json_field status < "$TMP/tx.json")
        say "$(now)  $(elapsed)  $st"
    fi
    case $st in
        completed|failed|cancelled) break ;;
    esac
    if perl -e 'exit !(time - $ARGV[0] > $ARGV[1])' "$T0" "$POLL_TIMEOUT"; then
        die "the transaction did not end within $POLL_TIMEOUT s (last: ${st:-none})"
    fi
done

head1 "the transaction, with its events"
pretty_json < "$TMP/tx.json"

[[ $st == completed ]] || die "the asynchronous ticket ended '$st'"

head1 "done: the ticket was submitted and completed through the edge, both ways"
