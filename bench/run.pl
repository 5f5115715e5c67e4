#!/usr/bin/perl

# bench/run.pl: the benchmarks of ngx_http_fanbase_module (run by
# "make bench"; see docs/performance.md for what each row measures).
#
# Everything runs on loopback and is stopped at the end, also on failure or
# Ctrl-C:
#   - mock   a fast mock Fanbase: Debian's nginx answering with "return"
#   - edge   the nginx under test: Debian's nginx, worker_processes 2,
#            load_module build/ngx_http_fanbase_module.so; "ours" and the
#            "reference" locations on the same port
#   - slow   t/mock_fanbase.pl, answering each submission after 2 s
#            (the no-blocking row)
#   - mem    a third nginx, with the module and a 1m zone (the memory row)
#   - build/bench/curl_floor (bench/curl_floor.c, built by bench/Makefile):
#            the libcurl work of a submission alone, against the fast mock
#            (the row "libcurl floor"); with valgrind, the same and the
#            edge's paths under callgrind (instructions per request)
#   - redis  the shared engine's rows (issue 15): a private redis-server
#            (t/lib/FanbaseRedis.pm) with appendfsync always, an edge with
#            "fanbase_redis" to it and its references; then the same with
#            appendfsync everysec (informative), and the always row again
#            with BENCH_REDIS_CONNECTIONS (256) connections (informative);
#            their Fanbase a listener that never answers.  BENCH_ONLY=redis runs these rows alone
#            (with the fast mock), and writes their block of
#            docs/performance.md only
#   - build/bench/json_render (bench/json_render.c, built by
#            bench/Makefile): the module's hand-written JSON documents
#            against yajl_gen's, at the end, once every server is stopped
#            (the row "JSON rendering")
#
# wrk posts the body of bench/post.lua; in the row "webhooks" it sends, with
# bench/webhook.lua, a list of signed messages generated right before each
# measurement, every one different.
#
# Each throughput row alternates ours and the reference in the same run
# (the order swapped every round) and reports the median of the per-round
# ratios ours / reference.  Any non-2xx answer or socket error in a row
# fails the row.  The exit status is 0 only when every row met its target
# and no error.log holds an alert, a critical error or a crashed worker.
# The row "libcurl floor" is informative: it never changes the exit status.
#
# CPU time per request: utime + stime (/proc/PID/stat) of the nginx
# workers over each measurement, wrk's from its rusage (Perl's times),
# curl_floor's from its own getrusage, divided by the requests answered.
#
# Processes, ports, nginx's configuration and the HTTP client are the
# tests' (t/lib/FanbaseTest.pm).  Perl core modules only; no Python.

use strict;
use warnings;

use Cwd qw(abs_path);
use Digest::SHA qw(hmac_sha256);
use File::Basename qw(dirname);
use File::Path qw(remove_tree);
use File::Temp qw(tempdir);
use FindBin;
use JSON::PP;
use List::Util qw(min);
use MIME::Base64 qw(encode_base64);
use POSIX qw(strftime);
use Time::HiRes qw(time sleep);

use lib "$FindBin::Bin/../t/lib";
use FanbaseRedis;
use FanbaseTest qw(free_port wait_pid wait_listen child_pids nginx_conf
                   nginx_test spawn_mock http_request http_parallel slurp
                   spew);

$| = 1;

my $BENCH = dirname(abs_path($0));
my $TOP   = dirname($BENCH);

my %P = (
    rounds      => env_int('BENCH_ROUNDS', 9),
    duration    => env_int('BENCH_DURATION', 2),
    connections => env_int('BENCH_CONNECTIONS', 64),
    # the shared engine's informative row at more clients at once: how
    # the accepts' group commit grows with them (issue 15)
    redis_connections => env_int('BENCH_REDIS_CONNECTIONS', 256),
    threads     => env_int('BENCH_THREADS', 2),
    workers     => 2,
    warmup      => 1,       # seconds of each path before the rounds
    burst       => 500,     # token cold start: concurrent submissions
    surge       => 1000,    # burst: synchronous submissions at once ...
    surge_backlog => 16,    # ... to a Fanbase with this listen queue
    inflight    => 200,     # no blocking: submissions kept in flight
    slow_ms     => 2000,    # no blocking: Fanbase's time per submission
    mem_zone    => '1m',    # memory: the zone filled
    async_rate  => 250_000, # async end to end: the accepts per second the
                            # edge's zone has room for, a whole measurement
    webhook_rate => 200_000, # webhooks: the messages per second each list
                            # of ours holds (a measurement's worth, all
                            # different), and the zone has room for them
                            # over the whole row
    webhook_bytes => 600,   # webhooks: a created transaction and its
                            # message id in the zone (about)
);

my $NGINX  = $ENV{BENCH_NGINX} // '/usr/sbin/nginx';
my $MODULE = "$TOP/build/ngx_http_fanbase_module.so";
my $MOCK   = "$TOP/t/mock_fanbase.pl";
my $LUA    = "$BENCH/post.lua";
my $WH_LUA = "$BENCH/webhook.lua";
my $DOC    = "$TOP/docs/performance.md";
my $WRK    = 'wrk';
my $FLOOR  = $ENV{BENCH_FLOOR} // "$TOP/build/bench/curl_floor";
my $RENDER = $ENV{BENCH_RENDER} // "$TOP/build/bench/json_render";
my $REDIS  = $ENV{TEST_REDIS_SERVER} // '/usr/bin/redis-server';
my $HZ     = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;

# BENCH_ONLY=redis: the rows of the shared engine alone (issue 15)
my $ONLY = $ENV{BENCH_ONLY} // '';
die "BENCH_ONLY must be 'redis' or empty\n" unless $ONLY eq '' || $ONLY eq 'redis';

# callgrind (instruction counts) unless BENCH_CALLGRIND=0 or no valgrind
my $CALLGRIND = ($ENV{BENCH_CALLGRIND} // '1') ne '0';
my @CG_N      = (1000, 6000);   # requests measured by the two runs
my $CG_WARMUP = 1000;           # requests before them, in both runs

my $QUEUE     = '/api/v1/integration/queue';
my $SUBMIT_ID = '0f8fad5b-d9cb-469f-a165-70867728950e';
my $DONE_ID   = '7c9e6679-7425-40de-944b-e07fc1f90ae7';
my $TOKEN     = 'bench.token.x';

my $TOKEN_BODY = qq({"access_token":"$TOKEN","token_type":"Bearer","expires_in":3600});
my $CREATED_BODY = qq({"id":"$SUBMIT_ID","created":"2026-01-01T00:00:00Z","iCode":0,)
    . qq("iMsg":"Objeto criado com sucesso","processDate":null,)
    . qq("processStatus":"pending","processMsg":null});
# what the mock answers for GET of $DONE_ID (Fanbase's shape, msg included)
my $DONE_FANBASE = qq({"id":"$DONE_ID","created":"2026-01-01T00:00:00Z","iCode":0,)
    . qq("iMsg":"Objeto criado com sucesso","processDate":"2026-01-01T00:00:05Z",)
    . qq("processStatus":"completed","processMsg":"Ingresso criado",)
    . qq("msg":{"action":"ticket-create","data":{"seat":"A1"}}});
# what the edge answers for it from the zone (msg is null without
# fanbase_store_payload): the reference returns exactly these bytes
my $DONE_EDGE = $DONE_FANBASE =~ s/"msg":\{.*\}\}$/"msg":null}/r;
# the memory row: a different id for every submission
my $UNIQ_BODY = $CREATED_BODY =~ s/\Q$SUBMIT_ID\E/\$request_id/r;
# the async row: what the mock answers when the edge polls the queue item
# it delivered (completed: one poll ends each transaction), and what the
# edge answers a submission: a random id, so the reference has another id
# of the same length (the edge's default fanbase_transaction_path)
my $ASYNC_DONE = $DONE_FANBASE =~ s/\Q$DONE_ID\E/$SUBMIT_ID/r;
my $TXN_PATH   = "/transactions/$SUBMIT_ID";
my $ACCEPTED_BODY = qq({"transaction_id":"$SUBMIT_ID","links":[{"path":"$TXN_PATH"}]});

# Each reference's path has the length of ours' path, as the webhook row's
# (/webhook, /ref/204) had from the start: nginx reads and matches a
# request's path byte by byte, and the 21 bytes that /ref/accepted had
# less than /ref/async/v1/integration/accepted cost return 202 586
# instructions less of its 9,830 (callgrind, docs/performance.md): a
# ratio of the handlers' costs, not of their URLs' lengths.
sub ref_path {
    my ($name, $ours) = @_;
    my $p = "/ref/$name-";
    die "ref_path: $ours is not longer than $p\n" if length $ours <= length $p;
    return $p . ('x' x (length($ours) - length $p));
}
my %REF = (
    status   => ref_path('status', "$QUEUE/$DONE_ID"),
    queue    => ref_path('queue', $QUEUE),
    created  => ref_path('created', $QUEUE),
    # ours: /async, /stall and /redis before $QUEUE, all three 31 bytes
    accepted => ref_path('accepted', "/async$QUEUE"),
    txn      => ref_path('txn', $TXN_PATH),
    204      => '/ref/204',
);
# the edge's zone: room for $P{async_rate} accepted transactions per second
# (about 1 KiB each, pending or delivered: never evicted) for a whole
# measurement; the row waits until they are all completed before the next.
# And, for the row "webhooks" after it, room for every message of every
# list of ours (warm-up and rounds: $P{webhook_rate} a second), each a
# created transaction and its message id, remembered for the default
# fanbase_webhook_dedup (3d): the zone never fills, nothing is evicted
# (the async row's transactions stay too)
my $EDGE_ZONE = int(($P{async_rate} * $P{duration} * 1024
                     + $P{webhook_rate} * ($P{warmup} + $P{rounds} * $P{duration})
                       * $P{webhook_bytes} + 1024 * 1024 - 1) / (1024 * 1024)) . 'm';

my $SUBMIT_BODY = '{"action":"ticket-create","data":{"seat":"A1"}}';
# what wrk posts (bench/post.lua), and curl_floor too
my ($POST_BODY) = do { local (@ARGV, $/) = ($LUA); <> }
    =~ /^wrk\.body\s*=\s*'([^']*)'/m or die "bench: no wrk.body in $LUA\n";

my $JSON = JSON::PP->new->utf8->canonical;

my $MAIN_PID = $$;
my @PHASES;     # [start time, row name], to place error.log lines
my %KIDS;       # pid => name, everything started and not yet stopped
my $DIR;


# --- processes ------------------------------------------------------------

sub env_int {
    my ($name, $default) = @_;
    my $v = $ENV{$name};
    return $default unless defined $v && length $v;
    die "$name must be a positive integer\n" unless $v =~ /^[1-9]\d*$/;
    return $v;
}

# start a process, its output and errors into $out; remembered as $name
# until it is reaped
sub spawn {
    my ($name, $out, @cmd) = @_;
    my $pid = FanbaseTest::spawn(cmd => \@cmd, output => $out,
                                 stdin => '/dev/null');
    $KIDS{$pid} = $name;
    return $pid;
}

# wait for a pid with a timeout: its wait status, or undef
sub reap {
    my ($pid, $timeout) = @_;
    my $st = wait_pid($pid, $timeout);
    delete $KIDS{$pid} if defined $st;
    return $st;
}

# stop one process: SIG, then KILL after $grace seconds
sub stop {
    my ($pid, $sig, $grace) = @_;
    return unless $pid && $KIDS{$pid};
    kill $sig // 'TERM', $pid;
    return if defined reap($pid, $grace // 10);
    warn "bench: $KIDS{$pid} (pid $pid) did not stop: KILL\n";
    kill 'KILL', $pid;
    reap($pid, 5);
}

sub cleanup {
    return unless $$ == $MAIN_PID;
    for my $pid (sort { $b <=> $a } keys %KIDS) {
        kill 'TERM', $pid;
    }
    for my $pid (keys %KIDS) {
        next if defined reap($pid, 10);
        kill 'KILL', $pid;
        reap($pid, 5);
    }
    if ($DIR && -d $DIR) {
        if ($ENV{BENCH_KEEP}) {
            print STDERR "bench: kept $DIR\n";
        } else {
            remove_tree($DIR);
        }
    }
}

$SIG{INT} = $SIG{TERM} = $SIG{HUP} = sub {
    my $sig = shift;
    print STDERR "\nbench: $sig, stopping everything\n";
    cleanup();
    exit 130;
};
$SIG{PIPE} = 'IGNORE';
END { my $rc = $?; cleanup(); $? = $rc; }

sub fail { die 'bench: ' . join('', @_) . "\n" }

sub wait_port {
    my ($port, $pid, $what, $log, $timeout) = @_;
    my ($state) = $KIDS{$pid} ? wait_listen($port, $pid, $timeout // 10)
                              : ('exited');
    return if $state eq 'listening';
    if ($state eq 'exited') {
        delete $KIDS{$pid};
        fail("$what exited at start:\n", slurp($log));
    }
    fail("$what does not listen on port $port:\n", slurp($log));
}

# DIR/NAME.conf, checked with nginx -t: the file, or undef and what nginx
# -t said
sub nginx_file {
    my ($name, $conf) = @_;
    my $file = "$DIR/$name.conf";
    spew($file, $conf);
    my ($ok, $out) = nginx_test(cmd => [$NGINX, '-p', "$DIR/", '-c', $file],
                                output => "$DIR/$name.t.out");
    return $ok ? ($file) : (undef, $out);
}

sub start_nginx {
    my ($name, $conf) = @_;
    my ($file, $t) = nginx_file($name, $conf);
    fail("nginx -t for $name failed:\n$t") unless $file;
    return spawn($name, "$DIR/$name.out", $NGINX, '-p', "$DIR/", '-c', $file);
}


# --- HTTP clients ---------------------------------------------------------

# One request on a new connection (FanbaseTest's client, "Connection:
# close").  { status, headers => {lc name}, body, error }
sub http {
    my ($port, $method, $path, %o) = @_;
    return http_request($port, $method, $path, timeout => $o{timeout} // 15,
        headers => ['Connection' => 'close',
                    $o{type} ? ('Content-Type' => $o{type}) : ()],
        defined $o{body} ? (body => $o{body}) : ());
}

# The same with the request's bytes as they are (a POST, with
# "Connection: close").
sub http_raw {
    my ($port, $req, %o) = @_;
    return http_request($port, POST => undef, raw => $req,
                        timeout => $o{timeout} // 15);
}

# a POST of a JSON body
sub post_json {
    my ($port, $path, $body) = @_;
    return http($port, POST => $path, type => 'application/json', body => $body);
}

# $n submissions at the same time, each on its own connection: all
# connections are opened before the first request is written.  Returns a
# hash status => count.
sub burst {
    my ($port, $n, $path, $body) = @_;
    my @res = http_parallel($port, $n, POST => $path, timeout => 30,
        headers => ['Connection' => 'close',
                    'Content-Type' => 'application/json'],
        body => $body);
    my ($refused) = grep { ($_->{error} // '') =~ /^connect/ } @res;
    fail("burst: $refused->{error}") if $refused;
    my %status;
    $status{ $_->{status} || 'none' }++ for @res;
    return \%status;
}

sub mock_admin {
    my ($port, $method, $path, $body) = @_;
    my $r = http($port, $method, $path, body => $body,
                 $body ? (type => 'application/json') : ());
    fail("mock $method $path: $r->{status} ", $r->{error} // $r->{body})
        unless $r->{status} == 200;
    return $JSON->decode($r->{body});
}


# Submissions the slow mock holds right now: those it received (its
# counter) minus those it answered (its --log, one line per answer, also
# for a client that went away).
sub inflight {
    my $port = shift;
    my $received = mock_admin($port, GET => '/_mock/stats')->{queue_posts};
    my $answered = () = slurp("$DIR/slow.log") =~ m{ POST \Q$QUEUE\E }g;
    return $received - $answered;
}

# Wait until the slow mock holds no submission (at most $P{slow_ms} + 3 s).
sub drain {
    my $port = shift;
    my $end = time + $P{slow_ms} / 1000 + 3;
    my $n;
    while (($n = inflight($port)) > 0 && time < $end) {
        sleep 0.1;
    }
    return $n;
}

# The async row's transactions at the fast mock so far: deliveries (POST)
# and polls (GET), from its log (one line per answer, written at most
# 100 ms late), read on from where the last call stopped.
my %ASYNC = (pos => 0, post => 0, get => 0);

sub async_counts {
    if (open my $fh, '<', "$DIR/mock.async.log") {
        seek $fh, $ASYNC{pos}, 0;
        local $/;
        my $new = <$fh> // '';
        $new =~ s/[^\n]*\z//;       # a line not written whole yet
        $ASYNC{pos} += length $new;
        $ASYNC{post} += () = $new =~ m{^POST /async\Q$QUEUE\E$}mg;
        $ASYNC{get} += () = $new =~ m{^GET /async\Q$QUEUE\E/}mg;
    }
    return @ASYNC{qw(post get)};
}

# Wait until every transaction the edge accepted is completed: as many
# polls as deliveries at the mock, and neither changed for 0.5 s (the edge
# delivers a pending transaction as soon as it can, and polls it 1 s
# later).  Gives up after 10 s without a change.  Returns the time it
# waited and an error, if any.
sub async_drain {
    my ($t0, $last, $since) = (time, '', time);
    for (;;) {
        my ($p, $g) = async_counts();
        ($last, $since) = ("$p $g", time) if "$p $g" ne $last;
        return (time - $t0, undef) if $p == $g && time - $since >= 0.5;
        return (time - $t0, sprintf('%d deliveries, %d polls at the mock, no change'
                                    . ' for 10 s', $p, $g)) if time - $since > 10;
        sleep 0.1;
    }
}

# The row "webhooks": signed messages (Standard Webhooks), each with its
# own message id and its own transaction id (a UUID the edge never saw), so
# that each is new and applied: it creates a completed transaction.  The
# key is the edge's fanbase_webhook_secret_file (whsec_ + its base64); the
# sequence numbers go on over the whole run.
my %WH = (key => '', seq => 0, nonce => sprintf('%08x', int rand 2**32));

sub webhook_uuid { sprintf '%s-0000-4000-8000-%012x', $WH{nonce}, $_[0] }
sub webhook_msg_id { sprintf 'msg_bench_%s_%012d', $WH{nonce}, $_[0] }

# one message: the request from its first header on (bench/webhook.lua
# puts the request line and Host before it)
sub webhook_request {
    my ($seq, $ts) = @_;
    my $id = webhook_msg_id($seq);
    my $body = '{"id":"' . webhook_uuid($seq) . '","status":"completed"}';
    my $sig = encode_base64(hmac_sha256("$id.$ts.$body", $WH{key}), '');
    return "Content-Type: application/json\r\nwebhook-id: $id\r\nwebhook-timestamp: $ts\r\n"
         . "webhook-signature: v1,$sig\r\nContent-Length: " . length($body)
         . "\r\n\r\n$body";
}

# $n new messages, timestamped now, into $file, one after the other, all
# of the same length.  { file, len, first (sequence number of the first),
# count }
sub webhook_list {
    my ($file, $n) = @_;
    my $ts = int time;
    my %l = (file => $file, first => $WH{seq} + 1, count => $n);
    open my $fh, '>', $file or fail("$file: $!");
    my $buf = '';
    for (1 .. $n) {
        my $r = webhook_request(++$WH{seq}, $ts);
        $l{len} //= length $r;
        fail('webhooks: messages of different lengths') if length $r != $l{len};
        $buf .= $r;
        next if length $buf < 1 << 20;
        print $fh $buf or fail("$file: $!");
        $buf = '';
    }
    print $fh $buf or fail("$file: $!");
    close $fh or fail("$file: $!");
    return \%l;
}

# After a measurement of ours with a list: every thread took only
# messages of its own block (bench/webhook.lua's report), and messages
# spread over what each sent were applied: GET of their transaction through
# fanbase_transaction answers 200, completed.  Returns the errors and the
# number of messages checked.
sub webhook_verify {
    my ($res, $list, $port) = @_;
    my (@errors, $checked);
    my $per = $list->{count} / $P{threads};
    my %t;
    $t{$1} = [$2, $3, $4]
        while ($res->{text} // '') =~ /^webhooks: thread (\d+) took (\d+) of (\d+), ran out (\d+)/mg;
    for my $i (0 .. $P{threads} - 1) {
        my ($took, $of, $out) = @{ $t{$i} // [] };
        if (!defined $took) {
            push @errors, "wrk thread $i printed no count of its messages";
            next;
        }
        push @errors, "wrk thread $i ran out of its $of messages $out times (repeats,"
            . " not applied again: raise webhook_rate)" if $out;
        # thread 0's first was never sent (wrk asks for one request to
        # check it); the last one of each connection may not have been
        # read whole when wrk stopped
        my ($lo, $hi) = ($i == 0 ? 1 : 0, $took - int($P{connections} / $P{threads}) - 2);
        next if $hi < $lo;
        for my $k (0 .. 4) {
            my $seq = $list->{first} + $i * $per + $lo + int(($hi - $lo) * $k / 4);
            my $id = webhook_uuid($seq);
            my $r = http($port, GET => "/transactions/$id");
            $checked++;
            push @errors, "message $seq, GET /transactions/$id: $r->{status} "
                . ($r->{error} // $r->{body}) . ' (want 200, completed)'
                unless $r->{status} == 200 && $r->{body} =~ /"status":"completed"/;
        }
    }
    return (\@errors, $checked // 0);
}

# --- wrk ------------------------------------------------------------------

sub wrk_cmd {
    my (%o) = @_;
    return ($WRK, '-t', $o{threads} // $P{threads},
            '-c', $o{connections} // $P{connections},
            '-d', ($o{duration} // $P{duration}) . 's',
            '--timeout', $o{timeout} // '5s',
            ($o{post} ? ('-s', $LUA) : $o{script} ? ('-s', $o{script}) : ()), $o{url},
            ($o{args} ? ('--', @{ $o{args} }) : ()));
}

sub parse_wrk {
    my $t = shift;
    my %r = (text => $t, errors => []);
    ($r{rps}) = $t =~ m{^Requests/sec:\s+([\d.]+)}m;
    ($r{requests}) = $t =~ /^\s*(\d+) requests in/m;
    ($r{latency}) = $t =~ /^\s*Latency\s+(\S+)/m;
    if ($t =~ /Non-2xx or 3xx responses:\s+(\d+)/) {
        push @{ $r{errors} }, "$1 non-2xx/3xx responses";
    }
    if ($t =~ /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/) {
        push @{ $r{errors} }, "socket errors: connect $1, read $2, write $3, timeout $4"
            if $1 + $2 + $3 + $4;
    }
    push @{ $r{errors} }, 'wrk printed no Requests/sec' unless defined $r{rps};
    return \%r;
}

my $WRK_SEQ = 0;

# $o{cpu}: { name => nginx master pid }: the CPU time per request of each
# one's workers over the run, and wrk's, in $r->{cpu}
sub wrk {
    my (%o) = @_;
    my $out = sprintf '%s/wrk-%03d.txt', $DIR, ++$WRK_SEQ;
    my $c0 = cpu_snapshot($o{cpu});
    my $pid = spawn('wrk', $out, wrk_cmd(%o));
    my $st = reap($pid, ($o{duration} // $P{duration}) + 30);
    if (!defined $st) {
        stop($pid, 'KILL');
        return { rps => undef, errors => ['wrk did not finish'] };
    }
    my $r = parse_wrk(slurp($out));
    push @{ $r->{errors} }, "wrk exit status $st" if $st;
    if ($c0 && $r->{requests}) {
        my $d = cpu_delta($c0);
        $r->{cpu} = { map { $_ => $d->{$_} * 1e6 / $r->{requests} } keys %{ $o{cpu} } };
        $r->{cpu}{wrk} = $d->{children} * 1e6 / $r->{requests};
        $r->{cpu}{busy} = $d->{total} / $d->{wall};
    }
    return $r;
}

sub wrk_start {
    my (%o) = @_;
    my $out = sprintf '%s/wrk-%03d-bg.txt', $DIR, ++$WRK_SEQ;
    return { pid => spawn('wrk (background)', $out, wrk_cmd(%o)), out => $out };
}

sub wrk_finish {
    my $bg = shift;
    stop($bg->{pid}, 'INT', 15);
    return parse_wrk(slurp($bg->{out}));
}


# --- CPU time ---------------------------------------------------------------

# utime + stime of processes, in seconds (/proc/PID/stat, fields 14 and 15)
sub proc_cpu {
    my $t = 0;
    for my $pid (@_) {
        my $s = slurp("/proc/$pid/stat");
        $s =~ s/^.*\)\s+//s or next;
        my @f = split ' ', $s;          # $f[0] is field 3, the state
        $t += ($f[11] + $f[12]) / $HZ;
    }
    return $t;
}

sub children_cpu { my @t = times; return $t[2] + $t[3] }

# before a measurement: the CPU time of the workers of { name => master },
# of this process's reaped children (wrk, curl_floor), and the time
sub cpu_snapshot {
    my $watch = shift or return undef;
    my %s = (time => time, children => children_cpu(), procs => {});
    for my $name (keys %$watch) {
        my @w = child_pids($watch->{$name});
        $s{procs}{$name} = [ \@w, proc_cpu(@w) ];
    }
    return \%s;
}

# after it: seconds of CPU time of each, their total, and the wall time
sub cpu_delta {
    my $s = shift;
    my %d = (wall => time - $s->{time}, children => children_cpu() - $s->{children});
    $d{total} = $d{children};
    for my $name (keys %{ $s->{procs} }) {
        my ($w, $t0) = @{ $s->{procs}{$name} };
        $d{$name} = proc_cpu(@$w) - $t0;
        $d{total} += $d{$name};
    }
    return \%d;
}


# --- curl_floor -----------------------------------------------------------

sub floor_per { int($P{connections} / $P{workers}) || 1 }

sub parse_floor {
    my $t = shift;
    my ($line) = $t =~ /^curl_floor: (.*)$/m;
    return undef unless defined $line;
    return { map { split /=/, $_, 2 } split ' ', $line };
}

# curl_floor for $d seconds: $P{workers} processes, $P{connections} /
# $P{workers} transfers in flight in each, POSTing to the fast mock.  As
# wrk() returns, with {cpu}{floor} (its own getrusage over the measured
# part), {cpu}{mock} (the mock's worker, per request curl_floor made).
sub floor_run {
    my ($d, $mock_pid, $mock_port) = @_;
    my $out = sprintf '%s/floor-%03d.txt', $DIR, ++$WRK_SEQ;
    my $c0 = cpu_snapshot({ mock => $mock_pid });
    my $pid = spawn('curl_floor', $out, $FLOOR, '-P', $P{workers}, '-c', floor_per(),
                    '-w', 1000, '-d', $d, '-b', $POST_BODY, '-t', $TOKEN,
                    "http://127.0.0.1:$mock_port$QUEUE");
    my $st = reap($pid, $d + 60);
    if (!defined $st) {
        stop($pid, 'KILL');
        return { rps => undef, errors => ['curl_floor did not finish'] };
    }
    my $text = slurp($out);
    my $f = parse_floor($text);
    my @errors;
    push @errors, 'curl_floor printed nothing: ' . ($text =~ s/\s+/ /gr) unless $f;
    push @errors, "curl_floor: $1" while $text =~ /^curl_floor: (a .*)$/mg;
    push @errors, "curl_floor exit status $st" if $st;
    my $r = { errors => \@errors, text => $text };
    return $r unless $f && $f->{requests};
    my $dd = cpu_delta($c0);
    $r->{rps} = $f->{rps};
    $r->{requests} = $f->{requests};
    $r->{waits} = $f->{epoll_waits_per_req};
    $r->{cpu} = { floor => $f->{cpu_us_per_req},
                  mock  => $dd->{mock} * 1e6 / $f->{total_requests},
                  busy  => $dd->{total} / $dd->{wall} };
    return $r;
}


# --- json_render ----------------------------------------------------------

# The documents of build/bench/json_render, in its order: name, bytes, how
# the outputs compare, ns per render by hand, by yajl_gen with a new
# generator each and with one reused, the faster yajl_gen over hand, and
# that ratio's lowest and highest in a single round.
sub json_row {
    phase('JSON rendering');
    print "\n== JSON rendering: the module's hand-written documents against yajl_gen\n";
    my $text = `$RENDER 2>&1`;
    my $st = $? >> 8;
    print $text =~ s/^json_render: .*\n//mgr =~ s/^/   /mgr;
    my (@docs, @errors);
    for ($text =~ /^json_render: (\w+ \d+ \S+ .*)$/mg) {
        my %d;
        @d{qw(name bytes outputs hand yajl_new yajl_reused ratio low high)}
            = split ' ';
        push @docs, \%d;
        push @errors, "$d{name}: the outputs are $d{outputs}"
            unless $d{outputs} =~ /^(byte-identical|semantically-equal)$/;
    }
    push @errors, 'json_render printed no document' unless @docs;
    push @errors, "json_render exit status $st" if $st;
    my @r = sort { $a->{ratio} <=> $b->{ratio} } @docs;
    return { docs => \@docs, errors => \@errors, low => $r[0], high => $r[-1],
             met => @docs && !@errors && $r[0]{ratio} > 1 };
}


# --- statistics and rows --------------------------------------------------

sub median {
    my @v = sort { $a <=> $b } grep { defined } @_;
    return undef unless @v;
    return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

sub fmt_rps { defined $_[0] ? sprintf('%.0f req/s', $_[0]) : '-' }

# A row that alternates two measurements.  $ours->() and $ref->() each
# return a parse_wrk result.  Returns the row's data.
sub alternate {
    my ($label, $ours, $ref) = @_;
    phase($label);
    my (@rounds, @errors);
    print "\n== $label\n";
    print "   warm-up: $P{warmup} s of each\n";
    for my $w ([ours => $ours], [reference => $ref]) {
        my $r = $w->[1]->($P{warmup});
        push @errors, map { "warm-up $w->[0]: $_" } @{ $r->{errors} };
    }
    for my $i (1 .. $P{rounds}) {
        my @order = $i % 2 ? ([ours => $ours], [reference => $ref])
                           : ([reference => $ref], [ours => $ours]);
        my %r;
        for (@order) {
            my ($who, $run) = @$_;
            $r{$who} = $run->($P{duration});
            push @errors, map { "round $i $who: $_" } @{ $r{$who}{errors} };
        }
        my ($o, $f) = ($r{ours}{rps}, $r{reference}{rps});
        my $ratio = defined $o && defined $f && $f > 0 ? $o / $f : undef;
        push @rounds, { ours => $o, reference => $f, ratio => $ratio,
                        first => $order[0][0],
                        cpu_ours => $r{ours}{cpu}, cpu_ref => $r{reference}{cpu},
                        life => $r{ours}{life},
                        raw_ours => $r{ours}, raw_reference => $r{reference},
                        extra => $r{ours}{extra} // $r{reference}{extra} };
        printf "   round %d (%s first): ours %s, reference %s, ratio %s%s\n",
            $i, $order[0][0], fmt_rps($o), fmt_rps($f),
            defined $ratio ? sprintf('%.3f', $ratio) : '-',
            $rounds[-1]{extra} ? "; $rounds[-1]{extra}" : '';
    }
    print "   ERROR: $_\n" for @errors;
    my @ratios = map { $_->{ratio} } @rounds;
    return {
        rounds    => \@rounds,
        errors    => \@errors,
        ours      => median(map { $_->{ours} } @rounds),
        reference => median(map { $_->{reference} } @rounds),
        ratio     => median(@ratios),
        min       => (sort { $a <=> $b } grep { defined } @ratios)[0],
        max       => (sort { $b <=> $a } grep { defined } @ratios)[0],
    };
}

# Like alternate(), with any number of measurements per round: each path
# runs once per round, the order rotated every round (round 1: a b c,
# round 2: b c a, ...).  @paths: [name, sub returning a wrk()-like result].
sub rotate {
    my ($label, @paths) = @_;
    phase($label);
    my (@rounds, @errors);
    print "\n== $label\n";
    print "   warm-up: $P{warmup} s of each\n";
    for my $p (@paths) {
        my $r = $p->[1]->($P{warmup});
        push @errors, map { "warm-up $p->[0]: $_" } @{ $r->{errors} };
    }
    for my $i (1 .. $P{rounds}) {
        my $k = ($i - 1) % @paths;
        my @order = (@paths[$k .. $#paths], @paths[0 .. $k - 1]);
        my %r;
        for my $p (@order) {
            $r{ $p->[0] } = $p->[1]->($P{duration});
            push @errors, map { "round $i $p->[0]: $_" } @{ $r{ $p->[0] }{errors} };
        }
        push @rounds, { %r, order => [ map { $_->[0] } @order ] };
    }
    return { rounds => \@rounds, errors => \@errors };
}

sub cpu_all { my $c = shift; my $t = 0; $t += $c->{$_} // 0 for qw(edge mock wrk floor); $t }

# The row "libcurl floor": per round, the bound on the submission ratio
#   (W + Mp + Ep) / (W + Mf + N + F)
# W   wrk, per request, posting to proxy_pass
# Mp  the mock's worker, per request proxied by proxy_pass
# Ep  the edge's workers, per request through proxy_pass
# Mf  the mock's worker, per request made by curl_floor
# N   the edge's workers, per request answered by "return 201" (nginx's own
#     handling of the same POST and the same answer, no upstream)
# F   curl_floor, per request (libcurl's transfer alone)
# i.e. the whole machine's CPU time per request through proxy_pass, over
# that of a module that would add nothing to nginx's request handling but
# libcurl's transfer.
sub floor_bound {
    my $round = shift;
    my ($f, $p, $n) = map { $round->{$_}{cpu} } qw(floor proxy alone);
    return undef unless $f && $p && $n;
    my %b = (W => $p->{wrk}, Mp => $p->{mock}, Ep => $p->{edge},
             Mf => $f->{mock}, N => $n->{edge}, F => $f->{floor});
    $b{bound} = ($b{W} + $b{Mp} + $b{Ep}) / ($b{W} + $b{Mf} + $b{N} + $b{F});
    return \%b;
}

sub floor_row {
    my ($edge, $edge_pid, $mock_pid, $mock_port) = @_;
    my $watch = { edge => $edge_pid, mock => $mock_pid };
    my $r = rotate(
        'libcurl floor: curl_floor alone vs proxy_pass vs return 201 (CPU time per request)',
        [ floor => sub { floor_run(shift, $mock_pid, $mock_port) } ],
        [ proxy => sub { wrk(duration => shift, post => 1, url => "$edge$REF{queue}",
                             cpu => $watch) } ],
        [ alone => sub { wrk(duration => shift, post => 1, url => "$edge$REF{created}",
                             cpu => $watch) } ]);
    my $i = 0;
    for my $round (@{ $r->{rounds} }) {
        $round->{b} = floor_bound($round);
        my $c = sub { my $x = $round->{ $_[0] }; $x && $x->{cpu}
            ? sprintf('%.1f µs (%s)', cpu_all($x->{cpu}), fmt_rps($x->{rps})) : '-' };
        printf "   round %d (%s): all CPU per request: curl_floor %s, proxy_pass %s,"
            . " return 201 %s; bound %s\n", ++$i, join(' ', @{ $round->{order} }),
            $c->('floor'), $c->('proxy'), $c->('alone'),
            $round->{b} ? sprintf('%.3f', $round->{b}{bound}) : '-';
    }
    print "   ERROR: $_\n" for @{ $r->{errors} };
    my @bounds = grep { defined } map { $_->{b} && $_->{b}{bound} } @{ $r->{rounds} };
    $r->{bound} = median(@bounds);
    $r->{min} = (sort { $a <=> $b } @bounds)[0];
    $r->{max} = (sort { $b <=> $a } @bounds)[0];
    return $r;
}


# --- callgrind ------------------------------------------------------------

sub callgrind_total {
    my ($t) = slurp(shift) =~ /^(?:totals|summary):\s*(\d+)/m;
    return $t;
}

# the instructions under the libcurl functions the module calls (inclusive:
# the callbacks libcurl makes are in them), from callgrind_annotate
my $CURL_API = qr/curl_multi_socket_action|curl_multi_add_handle|curl_multi_remove_handle
                 |curl_multi_info_read|curl_easy_setopt|curl_easy_getinfo|curl_easy_header/x;

sub callgrind_curl {
    my $file = shift;
    my ($t, $found) = (0, 0);
    for (`callgrind_annotate --inclusive=yes --threshold=100 $file 2>/dev/null`) {
        next unless /^\s*([\d,]+)\s.*:($CURL_API) \[[^\]]*libcurl/;
        (my $n = $1) =~ tr/,//d;
        $t += $n;
        $found++;
    }
    return $found ? $t : undef;
}

# curl_floor under callgrind (1 process, floor_per() transfers in flight)
# or as the client of an nginx under callgrind (wrk's headers)
sub floor_n {
    my ($n, $url, $out, @pre) = @_;
    my @client = $pre[0] ? () : ('-A', '', '-H', 'Content-Type: application/json',
                                 '-H', 'Accept:', '-H', 'Expect:');
    my $pid = spawn('curl_floor', $out, ($pre[0] ? @pre : ()), $FLOOR, '-P', 1,
                    '-c', floor_per(), '-w', $CG_WARMUP, '-n', $n,
                    '-b', $POST_BODY, '-t', $TOKEN, @client, $url);
    my $st = reap($pid, 600);
    if (!defined $st) { stop($pid, 'KILL'); return 'did not finish' }
    my $f = parse_floor(slurp($out));
    return 'printed nothing' unless $f;
    return "$f->{errors} failed transfers" if $f->{errors};
    return "exit status $st" if $st;
    return undef;
}

# user-space instructions per request: the difference of two runs that
# measure $CG_N[0] and $CG_N[1] requests after the same warm-up, so that
# start, warm-up and exit cancel out
sub callgrind_counts {
    my ($mock_port) = @_;
    phase('callgrind');
    my (%ir, @errors);
    print "\n== instructions per request (callgrind; runs of $CG_N[0] and"
        . " $CG_N[1] requests after $CG_WARMUP)\n";

    my $per = sub {
        my ($k, $t) = @_;
        $ir{$k} = ($t->[1] - $t->[0]) / ($CG_N[1] - $CG_N[0])
            if defined $t->[0] && defined $t->[1];
    };

    # curl_floor alone
    {
        my (@t, @c);
        for my $n (@CG_N) {
            my $cg = "$DIR/callgrind.floor.$n";
            my $e = floor_n($n, "http://127.0.0.1:$mock_port$QUEUE", "$cg.txt",
                            'valgrind', '--tool=callgrind', "--callgrind-out-file=$cg");
            push @errors, "curl_floor ($n requests): $e" if $e;
            push @t, callgrind_total($cg);
            push @c, callgrind_curl($cg);
        }
        $per->(floor => \@t);
        $per->(floor_curl => \@c);
    }

    # one nginx worker (master_process off) for each location
    for my $loc ([proxy => $REF{queue}], [alone => $REF{created}], [submit => $QUEUE]) {
        my ($tag, $path) = @$loc;
        my (@t, @c);
        for my $n (@CG_N) {
            my $name = "cg-$tag-$n";
            my $port = free_port();
            my ($file, $test) = nginx_file($name,
                cg_conf(name => $name, port => $port, mock => $mock_port));
            if (!$file) { push @errors, "nginx -t for $name failed: $test"; last }
            my $cg = "$DIR/callgrind.$tag.$n";
            my $pid = spawn("nginx under callgrind ($tag)", "$DIR/$name.out", 'valgrind',
                            '--tool=callgrind', "--callgrind-out-file=$cg",
                            $NGINX, '-p', "$DIR/", '-c', $file);
            wait_port($port, $pid, "nginx under callgrind ($tag)", "$DIR/$name.out", 60);
            my $e = floor_n($n, "http://127.0.0.1:$port$path", "$DIR/$name.client.txt");
            push @errors, "nginx $tag ($n requests): $e" if $e;
            stop($pid, 'QUIT', 60);
            push @t, callgrind_total($cg);
            push @c, callgrind_curl($cg) if $tag eq 'submit';
            push @errors, map { "nginx $tag under callgrind: $_" }
                log_summary($name, slurp("$DIR/$name.error.log"));
        }
        $per->($tag => \@t);
        $per->("${tag}_curl" => \@c) if $tag eq 'submit';
    }
    printf "   %s: %s\n", $_->[1],
        defined $ir{ $_->[0] } ? sprintf('%.0f instructions per request', $ir{ $_->[0] }) : '-'
        for [floor => 'curl_floor'], [floor_curl => 'curl_floor, under libcurl calls'],
            [proxy => 'nginx worker, proxy_pass'], [alone => 'nginx worker, return 201'],
            [submit => 'nginx worker, fanbase_submit'],
            [submit_curl => 'nginx worker, fanbase_submit, under libcurl calls'];
    print "   ERROR: $_\n" for @errors;
    return { ir => \%ir, errors => \@errors };
}


# --- configurations -------------------------------------------------------

sub main_conf {
    my (%o) = @_;
    return nginx_conf(dir => $DIR, name => $o{name},
                      module => $o{module} ? $MODULE : undef,
                      master => $o{master}, workers => $o{workers},
                      error_log_level => 'warn', access_log => 'off',
                      http => "    keepalive_requests 1000000;\n"
                            . "    keepalive_timeout 60s;\n\n$o{http}");
}

sub mock_conf {
    my ($port) = @_;
    return main_conf(name => 'mock', workers => 1, http => <<"CONF");
    default_type application/json;
    log_format async '\$request_method \$uri';

    server {
        listen 127.0.0.1:$port backlog=4096;

        # token requests are counted in this log
        location = /api/token {
            access_log $DIR/mock.token.log;
            return 200 '$TOKEN_BODY';
        }
        # the memory row's own token endpoint (not counted)
        location = /uniq/api/token {
            return 200 '$TOKEN_BODY';
        }
        # a POST to a "return" location: nginx discards the body
        location = $QUEUE {
            return 201 '$CREATED_BODY';
        }
        location = $QUEUE/$DONE_ID {
            return 200 '$DONE_FANBASE';
        }
        location = /uniq$QUEUE {
            return 201 '$UNIQ_BODY';
        }
        # the async row: the edge's deliveries and its polls of the queue
        # item they create (completed), counted in this log
        location = /async$QUEUE {
            access_log $DIR/mock.async.log async buffer=64k flush=100ms;
            return 201 '$CREATED_BODY';
        }
        location = /async$QUEUE/$SUBMIT_ID {
            access_log $DIR/mock.async.log async buffer=64k flush=100ms;
            return 200 '$ASYNC_DONE';
        }
        location / {
            return 404 '{"message":"no route"}';
        }
    }
CONF
}

sub edge_conf {
    my (%o) = @_;
    return main_conf(name => 'edge', workers => $P{workers}, module => 1,
                     http => <<"CONF");
    fanbase_zone zone=fb:$EDGE_ZONE;

    # the no-blocking row holds $P{inflight} submissions at the slow mock
    # at once: more than the default cap of 32 connections a worker
    fanbase_max_connections 128;

    upstream mock {
        server 127.0.0.1:$o{mock};
        keepalive 64;
    }

    server {
        listen 127.0.0.1:$o{port} backlog=4096 reuseport;

        fanbase_api http://127.0.0.1:$o{mock};
        fanbase_token_url http://127.0.0.1:$o{mock}/api/token;
        fanbase_client_id bench;
        fanbase_client_secret_file $DIR/secret;
        fanbase_timeout 10s;
        client_max_body_size 16k;
        client_body_buffer_size 16k;

        # ours
        location = $QUEUE {
            fanbase_submit;
        }
        location $QUEUE/ {
            fanbase_status;
        }

        # references: the same answers, by nginx alone
        location = $REF{status} {
            default_type application/json;
            add_header X-Fanbase-Cache HIT;
            return 200 '$DONE_EDGE';
        }
        # the same answer as ours: Fanbase's 201 and the Location of the
        # queue item that fanbase_submit adds (the mock's id)
        location = $REF{queue} {
            proxy_pass http://mock$QUEUE;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header AccessToken "$TOKEN";
            add_header Location $QUEUE/$SUBMIT_ID;
        }
        # nginx alone: the same POST, the same answer, no upstream
        location = $REF{created} {
            default_type application/json;
            return 201 '$CREATED_BODY';
        }

        # the async row: accepted at once, delivered to the fast mock and
        # followed there in the background
        location = /async$QUEUE {
            fanbase_api http://127.0.0.1:$o{mock}/async;
            fanbase_submit async;
        }
        # nginx alone: the same status, type, Location and body lengths
        location = $REF{accepted} {
            default_type application/json;
            add_header Location $TXN_PATH always;
            return 202 '$ACCEPTED_BODY';
        }

        # the webhooks row: signed status callbacks, each applied: it
        # creates a completed transaction, read back through
        # fanbase_transaction
        location = /webhook {
            fanbase_webhook;
            fanbase_webhook_secret_file $DIR/hook.secret;
        }
        location /transactions/ {
            fanbase_transaction;
        }
        # nginx alone: the same POST (its body read and dropped), the same
        # 204, a path of the same length
        location = /ref/204 {
            return 204;
        }

        # the row "async accept": accepted at once, delivered to the slow
        # mock (2 s each, fanbase_deliver_concurrency at a time), so that
        # deliveries are parked, as when Fanbase is the bottleneck
        location = /stall$QUEUE {
            fanbase_api http://127.0.0.1:$o{slow};
            fanbase_token_url http://127.0.0.1:$o{slow}/api/token;
            fanbase_client_id bench-slow;
            fanbase_client_secret_file $DIR/secret-slow;
            fanbase_submit async;
        }

        # the no-blocking row: submissions to the slow mock, its own
        # credential set
        location = /slow$QUEUE {
            fanbase_api http://127.0.0.1:$o{slow};
            fanbase_token_url http://127.0.0.1:$o{slow}/api/token;
            fanbase_client_id bench-slow;
            fanbase_client_secret_file $DIR/secret-slow;
            fanbase_submit;
        }
    }
CONF
}

# one nginx process (master_process off) for callgrind: the submission,
# proxy_pass and return 201 as in the edge (its own token URL at the mock,
# not counted with the edge's token requests)
sub cg_conf {
    my (%o) = @_;
    return main_conf(name => $o{name}, workers => 1, module => 1, master => 'off',
                     http => <<"CONF");
    fanbase_zone zone=fb:16m;

    upstream mock {
        server 127.0.0.1:$o{mock};
        keepalive 64;
    }

    server {
        listen 127.0.0.1:$o{port} backlog=4096;

        fanbase_api http://127.0.0.1:$o{mock};
        fanbase_token_url http://127.0.0.1:$o{mock}/uniq/api/token;
        fanbase_client_id bench;
        fanbase_client_secret_file $DIR/secret;
        fanbase_timeout 10s;
        client_max_body_size 16k;
        client_body_buffer_size 16k;

        location = $QUEUE {
            fanbase_submit;
        }
        location = $REF{queue} {
            proxy_pass http://mock$QUEUE;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header AccessToken "$TOKEN";
            add_header Location $QUEUE/$SUBMIT_ID;
        }
        location = $REF{created} {
            default_type application/json;
            return 201 '$CREATED_BODY';
        }
    }
CONF
}

sub mem_conf {
    my (%o) = @_;
    return main_conf(name => 'mem', workers => $P{workers}, module => 1,
                     http => <<"CONF");
    fanbase_zone zone=fb:$P{mem_zone};

    server {
        listen 127.0.0.1:$o{port} backlog=4096 reuseport;

        fanbase_api http://127.0.0.1:$o{mock}/uniq;
        fanbase_token_url http://127.0.0.1:$o{mock}/uniq/api/token;
        fanbase_client_id bench;
        fanbase_client_secret_file $DIR/secret;
        fanbase_status_refresh 1h;

        location = $QUEUE {
            fanbase_submit;
        }
    }
CONF
}


# --- the shared engine (issue 15) -------------------------------------------
#
# A second edge with "fanbase_redis" to a private redis-server
# (t/lib/FanbaseRedis.pm) with appendfsync always, as docs/cluster.md
# recommends, and a third to another one with appendfsync everysec
# (informative).  Their Fanbase takes connections and never answers
# (fanbase_timeout 600s): the few deliveries each worker starts wait
# there, and no delivery, poll or retry talks to Redis while the rows
# run.  The transaction of the status row is accepted through a location
# whose Fanbase is the fast mock, delivered and polled until completed
# (stable from then on); the edge is then restarted with the reference's
# "return 200" holding that transaction's bytes.
#
# Round trips: the commands clients sent to Redis (INFO commandstats
# counts the commands a script runs too: those named in src/lua/*.lua are
# left out, and INFO, the bench's own) over each measurement of ours,
# divided by the transactions created (the members the due zsets gained:
# create.lua puts every new transaction in one, and nothing leaves them
# while the row runs, its Fanbase never answering), and by the 202s wrk
# counted (a request in flight when wrk stops is created and not counted:
# at most one per connection).

# the commands the scripts run inside Redis
sub redis_script_commands {
    my %c;
    for my $f (glob "$TOP/src/lua/*.lua") {
        my $lua = slurp($f);
        $c{ lc $1 }++ while $lua =~ /redis\.p?call\(\s*['"](\w+)['"]/g;
    }
    fail("no redis.call in $TOP/src/lua/*.lua") unless $c{zadd};
    return \%c;
}

# calls per command so far, and redis-server's CPU time
sub redis_stats {
    my $rd = shift;
    my $info = $rd->{conn}->cmd('INFO', 'commandstats');
    fail("redis INFO: $info") if ref $info || !defined $info;
    my %s;
    my %u;
    ($s{$1}, $u{$1}) = ($2, $3) while $info =~ /^cmdstat_(\S+?):calls=(\d+),usec=(\d+)/mg;
    my $due = 0;
    my $keys = $rd->{conn}->cmd('KEYS', '*:due:*');
    fail("redis KEYS: $keys") if ref $keys ne 'ARRAY';
    $due += $rd->{conn}->cmd('ZCARD', $_) for @$keys;
    return { calls => \%s, usec => \%u, due => $due,
             cpu => proc_cpu($rd->{server}->pid), time => time };
}

# from one redis_stats to the next: { client => commands clients sent,
# evalsha, other => "name n, ...", created, inside => commands scripts ran,
# cpu => redis-server's seconds }
sub redis_delta {
    my ($rd, $s0, $s1) = @_;
    my %d = (client => 0, inside => 0, cpu => $s1->{cpu} - $s0->{cpu});
    my @other;
    for my $cmd (sort keys %{ $s1->{calls} }) {
        my $n = $s1->{calls}{$cmd} - ($s0->{calls}{$cmd} // 0);
        next if !$n || $cmd =~ /^(?:info|keys|zcard)$/;   # the bench's own
        if ($rd->{inside}{ (split /\|/, $cmd)[0] }) {
            $d{inside} += $n;
            next;
        }
        $d{client} += $n;
        push @other, "$cmd $n" unless $cmd eq 'evalsha';
    }
    $d{evalsha} = ($s1->{calls}{evalsha} // 0) - ($s0->{calls}{evalsha} // 0);
    $d{created} = $s1->{due} - $s0->{due};
    # the scripts' own time in Redis (EVALSHA's usec: Lua and the commands
    # it runs), seconds
    $d{script} = (($s1->{usec}{evalsha} // 0) - ($s0->{usec}{evalsha} // 0)) / 1e6;
    $d{other} = join ', ', @other;
    return \%d;
}

# a Fanbase that takes connections and never answers
sub start_silent {
    my $port = shift;
    my $pid = spawn('silent Fanbase', "$DIR/silent.out", $^X, '-MIO::Socket::INET', '-e',
        'my $l = IO::Socket::INET->new(Listen => 4096, LocalAddr => "127.0.0.1",'
        . " LocalPort => $port, ReuseAddr => 1) or die \"listen: \$!\";"
        . ' my @c; while (my $c = $l->accept) { push @c, $c }');
    wait_port($port, $pid, 'silent Fanbase', "$DIR/silent.out");
    return $pid;
}

sub redis_edge_conf {
    my (%o) = @_;
    my $txn = !defined $o{txn} ? ''
        : sprintf <<'CONF', $REF{txn}, $o{txn}{etag}, $o{txn}{body};
        # nginx alone: the transaction's bytes and its ETag
        location = %s {
            default_type application/json;
            add_header ETag '%s';
            return 200 '%s';
        }
CONF
    return main_conf(name => $o{name}, workers => $P{workers}, module => 1,
                     http => <<"CONF");
    fanbase_zone zone=fb:64m;
    fanbase_redis $o{url};

    server {
        listen 127.0.0.1:$o{port} backlog=4096 reuseport;

        # a Fanbase that never answers: deliveries wait there
        fanbase_api http://127.0.0.1:$o{silent};
        fanbase_token_url http://127.0.0.1:$o{silent}/api/token;
        fanbase_client_id bench;
        fanbase_client_secret_file $DIR/secret;
        fanbase_timeout 600s;
        client_max_body_size 16k;
        client_body_buffer_size 16k;

        # ours: accepted into Redis
        location = /redis$QUEUE {
            fanbase_submit async;
        }
        # nginx alone: the same status, type, Location and body lengths
        location = $REF{accepted} {
            default_type application/json;
            add_header Location $TXN_PATH always;
            return 202 '$ACCEPTED_BODY';
        }

        # the status row's transaction: delivered to the fast mock and
        # polled there until completed
        location = /settle$QUEUE {
            fanbase_api http://127.0.0.1:$o{mock}/async;
            fanbase_token_url http://127.0.0.1:$o{mock}/uniq/api/token;
            fanbase_timeout 10s;
            fanbase_submit async;
        }
        # its status: the same credential set, so the same scope in Redis
        location /transactions/ {
            fanbase_api http://127.0.0.1:$o{mock}/async;
            fanbase_token_url http://127.0.0.1:$o{mock}/uniq/api/token;
            fanbase_transaction;
        }
$txn    }
CONF
}

sub start_redis_edge {
    my ($rd, %o) = @_;
    my $name = $rd->{edge_name};
    my $pid = start_nginx($name, redis_edge_conf(%o, name => $name, url => $rd->{server}->url,
                                                 port => $rd->{port}));
    wait_port($rd->{port}, $pid, "$name nginx", "$DIR/$name.error.log", 60);
    # each worker connects and subscribes: a request before that reads Redis
    sleep 0.5;
    return $pid;
}

# A redis-server, its edge, the connection the bench reads INFO on.
sub start_redis {
    my ($run, $fsync) = @_;
    # docs/cluster.md's recommended configuration, but for its fsync
    my $server = FanbaseRedis->new(dir => $DIR, name => "redis-$fsync",
                                   appendfsync => $fsync,
                                   extra => "auto-aof-rewrite-min-size 1gb\n"
                                            . "maxmemory-policy noeviction")->start;
    my $rd = { server => $server, fsync => $fsync, conn => $server->connect,
               inside => $run->{redis_inside}, port => free_port(),
               edge_name => "edge-redis-$fsync" };
    $rd->{url} = "http://127.0.0.1:$rd->{port}";
    $rd->{edge} = start_redis_edge($rd, mock => $run->{port}{mock},
                                   silent => $run->{silent_port});
    return $rd;
}

sub stop_redis {
    my $rd = shift;
    # TERM: a graceful stop would wait for the deliveries at the silent
    # Fanbase
    stop($rd->{edge}, 'TERM', 15) if $rd->{edge};
    $rd->{conn}->close;
    $rd->{server}->stop;
}

# The status row's transaction: accepted, delivered, polled until
# completed, read twice; then the edge restarted with its bytes as the
# reference.  { id, body, etag } and the errors.
sub redis_settle {
    my ($run, $rd) = @_;
    my $port = $rd->{port};
    my $acc = post_json($port, "/settle$QUEUE", $POST_BODY);
    my $loc = $acc->{headers}{location} // '';
    return (undef, "accept to settle: $acc->{status} " . ($acc->{error} // $acc->{body}))
        unless $acc->{status} == 202 && $loc =~ m{^/transactions/\S+$};
    my ($g, $end) = (undef, time + 20);
    while (time < $end) {
        $g = http($port, GET => $loc);
        last if $g->{status} == 200 && $g->{body} =~ /"status":"completed"/;
        sleep 0.2;
    }
    return (undef, "$loc not completed after 20 s: $g->{status} $g->{body}")
        unless $g->{status} == 200 && $g->{body} =~ /"status":"completed"/;
    my $t = { path => $loc, body => $g->{body}, etag => $g->{headers}{etag} // '' };
    return (undef, "the transaction's JSON or ETag holds ', \$ or \\: $t->{body}")
        if "$t->{body}$t->{etag}" =~ /['\$\\]/;
    stop($rd->{edge}, 'TERM', 15);
    $rd->{edge} = start_redis_edge($rd, mock => $run->{port}{mock},
                                   silent => $run->{silent_port}, txn => $t);
    return ($t);
}

# The checks of the Redis edge's answers against the references: the
# accept (as check_async), the status (the same bytes and headers, and
# answered without asking Redis).
sub redis_checks {
    my ($rd, $t) = @_;
    my $port = $rd->{port};
    my @errors;
    my ($x, $y) = map { post_json($port, $_, $POST_BODY) } "/redis$QUEUE", $REF{accepted};
    push @errors, "accept: ours $x->{status}, reference $y->{status} (want 202 and 202)"
        unless $x->{status} == 202 && $y->{status} == 202;
    for my $h (qw(content-type location)) {
        my ($o, $f) = map { $_->{headers}{$h} // '' } $x, $y;
        push @errors, "accept: $h: ours '$o', reference '$f' (want the same length)"
            unless length($o) == length($f) && ($h ne 'content-type' || $o eq $f);
    }
    push @errors, "accept: bodies of different lengths: ours $x->{body}, reference $y->{body}"
        unless length($x->{body} // '') == length($y->{body} // '');
    return @errors unless $t;
    http($port, GET => $t->{path}) for 1 .. 4;     # each worker reads it once
    my $s0 = redis_stats($rd);
    my @g = map { http($port, GET => $t->{path}) } 1 .. 20;
    my $d = redis_delta($rd, $s0, redis_stats($rd));
    my $r = http($port, GET => $REF{txn});
    push @errors, "status: 20 GETs sent $d->{client} commands to Redis (want 0: from L1)"
        if $d->{client};
    for my $o (@g[0, -1]) {
        push @errors, "status: ours $o->{status}, reference $r->{status}, or other bytes:\n"
            . "     ours:      $o->{body}\n     reference: $r->{body}"
            unless $o->{status} == 200 && $r->{status} == 200 && $o->{body} eq $r->{body};
        my ($ho, $hr) = map { my $x = $_; join ' ', map { "$_=" . ($x->{headers}{$_} // '') }
                               grep { $_ ne 'date' } sort keys %{ $x->{headers} } } $o, $r;
        push @errors, "status: headers: ours '$ho', reference '$hr'" unless $ho eq $hr;
    }
    return @errors;
}

# one measurement of ours or the reference, with Redis' counters and the
# edge workers' CPU time over it; for ours, the round trips and Redis'
# CPU time per transaction created in extra
sub redis_wrk {
    my ($rd, $d, $url, %o) = @_;
    my $s0 = redis_stats($rd);
    my $conns = $o{connections} // $P{connections};
    my $res = wrk(duration => $d, url => $url, post => $o{post},
                  connections => $conns, cpu => { edge => $rd->{edge} });
    my $rs = redis_delta($rd, $s0, redis_stats($rd));
    $res->{redis} = $rs;
    return $res unless $o{ours};
    my $n = $res->{requests} // 0;
    if ($o{post}) {
        push @{ $res->{errors} }, "$rs->{created} transactions created for $n 202s"
            . " (want as many, at most $conns more)"
            if $n && ($rs->{created} < $n || $rs->{created} > $n + $conns);
        $res->{trips} = $rs->{created} ? $rs->{client} / $rs->{created} : undef;
        $res->{trips_wrk} = $n ? $rs->{client} / $n : undef;
        $res->{redis_us} = $rs->{created} ? $rs->{cpu} * 1e6 / $rs->{created} : undef;
        $res->{extra} = sprintf('Redis: %d commands from clients (EVALSHA %d%s) for %d created,'
            . ' %.3f per transaction (%.3f per 202 counted), %.1f run inside the scripts;'
            . ' redis-server %.1f µs CPU per transaction (the scripts %.1f); edge workers'
            . ' %.1f µs per request',
            $rs->{client}, $rs->{evalsha}, $rs->{other} ? "; $rs->{other}" : '',
            $rs->{created}, $res->{trips} // 0, $res->{trips_wrk} // 0,
            $rs->{created} ? $rs->{inside} / $rs->{created} : 0, $res->{redis_us} // 0,
            $rs->{created} ? $rs->{script} * 1e6 / $rs->{created} : 0,
            $res->{cpu} ? $res->{cpu}{edge} : 0);
    } else {
        $res->{trips} = $n ? $rs->{client} / $n : undef;
        push @{ $res->{errors} }, "$rs->{client} commands sent to Redis for $n GETs"
            . ' (want about none: answered from L1)' if $rs->{client} > 0.01 * $n;
        $res->{extra} = sprintf('Redis: %d commands from clients%s during %d GETs',
            $rs->{client}, $rs->{other} || $rs->{evalsha}
                ? " (EVALSHA $rs->{evalsha}" . ($rs->{other} ? "; $rs->{other}" : '') . ')' : '',
            $n);
    }
    return $res;
}

# $conns: wrk's connections (default BENCH_CONNECTIONS), for both
sub redis_accept_row {
    my ($rd, $conns) = @_;
    my $url = $rd->{url};
    my %c = $conns ? (connections => $conns) : ();
    return alternate(
        "async accept with Redis (appendfsync $rd->{fsync}): fanbase_submit async"
        . ' (Fanbase silent) vs return 202, same bytes'
        . ($conns ? ", $conns connections" : ''),
        sub { redis_wrk($rd, shift, "$url/redis$QUEUE", post => 1, ours => 1, %c) },
        sub { redis_wrk($rd, shift, "$url$REF{accepted}", post => 1, %c) });
}

sub redis_status_row {
    my ($rd, $t) = @_;
    my $url = $rd->{url};
    return alternate(
        'status hit from L1 with Redis configured: fanbase_transaction vs return 200,'
        . ' same bytes',
        sub { redis_wrk($rd, shift, "$url$t->{path}", ours => 1) },
        sub { redis_wrk($rd, shift, "$url$REF{txn}") });
}

# The rows of the shared engine: { always, everysec, status, errors,
# logs (the [alert]s of their nginx) }
sub redis_rows {
    my $run = shift;
    phase('Redis');
    print "\n== the shared engine (issue 15): redis-server "
        . (`redis-server --version 2>/dev/null` =~ /v=(\S+)/ ? $1 : '?')
        . ", appendfsync always (and everysec, informative)\n";
    my %r = (errors => []);
    $run->{redis_inside} = redis_script_commands();
    $run->{silent_port} = free_port();
    my $silent = start_silent($run->{silent_port});
    my $rd = start_redis($run, 'always');
    my ($t, $e) = redis_settle($run, $rd);
    push @{ $r{errors} }, "status: $e" if $e;
    printf "   the status row's transaction: %s, %d bytes, ETag %s\n",
        $t->{path}, length $t->{body}, $t->{etag} if $t;
    my @checks = redis_checks($rd, $t);
    print "\nbench: CHECK FAILED: $_\n" for @checks;
    $r{always} = redis_accept_row($rd);
    unshift @{ $r{always}{errors} }, grep { /^accept/ } @checks;
    $r{floor} = redis_floor($rd);
    $r{wide} = redis_accept_row($rd, $P{redis_connections})
        if $P{redis_connections} > $P{connections};
    if ($t) {
        $r{status} = redis_status_row($rd, $t);
        unshift @{ $r{status}{errors} }, grep { /^status/ } @checks;
    }
    $r{keys} = $rd->{conn}->cmd('DBSIZE');
    stop_redis($rd);
    unless ($ENV{BENCH_REDIS_ALWAYS_ONLY}) {
        my $ev = start_redis($run, 'everysec');
        my @c = redis_checks($ev);
        $r{everysec} = redis_accept_row($ev);
        unshift @{ $r{everysec}{errors} }, @c;
        stop_redis($ev);
    }
    stop($silent, 'TERM', 5);
    $r{logs} = [ map { log_summary($_, slurp("$DIR/$_.error.log")) }
                 grep { -f "$DIR/$_.error.log" } map { "edge-redis-$_" } qw(always everysec) ];
    return \%r;
}

# What this Redis answers alone, with appendfsync always, to as many
# clients as wrk has connections, one SET each (redis-benchmark, the same
# server right after the accept row): its fsync is per turn of its loop, so
# this is the most acknowledged writes per second its disk allows at that
# concurrency, whatever asks.  Median of 3 runs.
sub redis_floor {
    my $rd = shift;
    my @r;
    for (1 .. 3) {
        my $out = `redis-benchmark -h 127.0.0.1 -p @{[ $rd->{server}->port ]} -c $P{connections} -P 1 -n 30000 -q SET fanbase-bench-floor v 2>&1`;
        push @r, $1 if $out =~ /SET fanbase-bench-floor v: ([\d.]+) requests per second/;
    }
    my $floor = @r ? median(@r) : undef;
    printf "   Redis alone, SET with %d clients (appendfsync %s): %s req/s\n",
        $P{connections}, $rd->{fsync}, defined $floor ? sprintf('%.0f', $floor) : '?';
    return $floor;
}

# The table rows of the shared engine, as report()'s, and the profile
# under it.
sub redis_report_rows {
    my $r = shift;
    my $ratio_row = \&ratio_row;
    my @rows;
    my $ac = $ratio_row->('async accept with Redis (appendfsync always)', $r->{always}, 0.60);
    $ac->[4] = '>= 0.60';
    push @rows, $ac;
    if ($r->{floor} && $r->{always}{ours}) {
        push @rows, [ "Redis alone: SET with $P{connections} clients, appendfsync always"
                      . ' (redis-benchmark, the same server): the most writes per second'
                      . ' its fsync allows', sprintf('async accept %s', fmt_rps($r->{always}{ours})),
                      fmt_rps($r->{floor}),
                      sprintf('%.2f', $r->{always}{ours} / $r->{floor}),
                      'informative', 'informative', 1 ];
    }
    if ($r->{wide}) {
        my $w = $ratio_row->("async accept with Redis (appendfsync always),"
                             . " $P{redis_connections} connections", $r->{wide}, 0);
        $w->[4] = 'informative: more buyers at once, larger batches';
        $w->[5] = @{ $r->{wide}{errors} } ? 'FAILED (errors; informative)' : 'informative';
        $w->[6] = !@{ $r->{wide}{errors} };
        push @rows, $w;
    }
    if ($r->{everysec}) {
        my $e = $ratio_row->('async accept with Redis (appendfsync everysec)',
                             $r->{everysec}, 0);
        $e->[4] = 'informative: a 202 no longer means "on disk"';
        $e->[5] = @{ $r->{everysec}{errors} } ? 'FAILED (errors; informative)' : 'informative';
        $e->[6] = !@{ $r->{everysec}{errors} };
        push @rows, $e;
    }
    if ($r->{status}) {
        my $s = $ratio_row->('status hit from L1 with Redis configured', $r->{status}, 0.90);
        $s->[4] = '>= 0.90';
        push @rows, $s;
    } else {
        push @rows, [ 'status hit from L1 with Redis configured', '-', '-', '-', '>= 0.90',
                      'FAILED (errors)', 0 ];
    }
    my @rounds = @{ $r->{always}{rounds} // [] };
    my @t = grep { defined } map { $_->{raw_ours}{trips} } @rounds;
    my @w = grep { defined } map { $_->{raw_ours}{trips_wrk} } @rounds;
    my $max = (sort { $b <=> $a } @t)[0];
    my $met = @t == @rounds && @t && $max <= 1 && !@{ $r->{always}{errors} };
    push @rows, [ 'Redis round trips per async accept (appendfsync always)',
                  @t ? sprintf('%.3f commands per transaction created (median; highest'
                               . ' %.3f); per 202 wrk counted: %.3f', median(@t), $max,
                               median(@w)) : '-',
                  '-', '-', 'at most 1 (every round)',
                  @{ $r->{always}{errors} } ? 'FAILED (errors)' : $met ? 'yes' : 'no', $met ];
    return @rows;
}

sub redis_errors {
    my $r = shift;
    return ((map { "Redis: $_" } @{ $r->{errors} }),
            (map { "async accept with Redis (always): $_" } @{ $r->{always}{errors} // [] }),
            (map { "async accept with Redis (always, $P{redis_connections} connections,"
                   . " informative): $_" } @{ $r->{wide}{errors} // [] }),
            (map { "async accept with Redis (everysec, informative): $_" }
                 @{ $r->{everysec}{errors} // [] }),
            (map { "status hit from L1 with Redis: $_" } @{ $r->{status}{errors} // [] }),
            (map { "error.log: $_" } @{ $r->{logs} }));
}

# BENCH_ONLY=redis: the fast mock and the rows of the shared engine alone
sub main_redis {
    my ($m, $t0) = @_;
    my $run = prepare($m);
    my $port = $run->{port};
    $run->{mock} = start_nginx('mock', mock_conf($port->{mock}));
    wait_port($port->{mock}, $run->{mock}, 'mock nginx', "$DIR/mock.error.log");
    my $r = redis_rows($run);
    stop($run->{mock}, 'QUIT', 15);
    push @{ $r->{logs} }, log_summary('mock nginx', slurp("$DIR/mock.error.log"));
    my @rows = redis_report_rows($r);
    my $table = table(@rows);
    my @errors = redis_errors($r);
    print "\n$table\n" . redis_profile($r) . "\n";
    if (@errors) { print "errors:\n"; print "  $_\n" for @errors; print "\n" }
    my $all_met = !grep { !$_->[6] } @rows;
    printf "bench: %s%s in %.0f s\n", $all_met ? 'every target met'
        : 'some targets missed (see "met")',
        @{ $r->{logs} } ? '; ALERTS OR CRASHES in error.log (see above)' : '', time - $t0;
    write_redis_doc($m, $table, \@errors, $r) unless $ENV{BENCH_NO_DOC};
    exit($all_met && !@{ $r->{logs} } ? 0 : 1);
}

sub redis_profile {
    my $r = shift;
    my $N = $P{rounds};
    my $t = "Per request, median of the $N rounds: CPU time (utime + stime,"
          . " `/proc/PID/stat`) of the edge's $P{workers} workers and of redis-server,"
          . " and the commands Redis ran (INFO commandstats).\n\n"
          . "| row | path | req/s | edge workers µs | redis-server µs | of which the scripts"
          . " (EVALSHA's usec) | commands from clients | commands inside the scripts |\n"
          . "|---|---|---|---|---|---|---|---|\n";
    for ([always => 'async accept, always'],
         [wide => "async accept, always, $P{redis_connections} connections"],
         [everysec => 'async accept, everysec'], [status => 'status from L1']) {
        my ($k, $name) = @$_;
        my $row = $r->{$k} or next;
        for my $who ([ours => $k eq 'status' ? '`fanbase_transaction`'
                                             : '`fanbase_submit async`'],
                     [reference => $k eq 'status' ? '`return 200`' : '`return 202`']) {
            my @rr = map { $_->{"raw_$who->[0]"} } @{ $row->{rounds} };
            my $per = sub {
                my $f = shift;
                my $v = median(map { my $x = $_; $x && $x->{requests} ? $f->($x) : undef } @rr);
                return defined $v ? $v : undef;
            };
            my $rps = median(map { $_->{rps} } grep { $_ } @rr);
            my $edge = $per->(sub { $_[0]{cpu} && $_[0]{cpu}{edge} });
            my $rcpu = $per->(sub { $_[0]{redis}{cpu} * 1e6 / $_[0]{requests} });
            my $cl = $per->(sub { $_[0]{redis}{client} / $_[0]{requests} });
            my $in = $per->(sub { $_[0]{redis}{inside} / $_[0]{requests} });
            my $sc = $per->(sub { $_[0]{redis}{script} * 1e6 / $_[0]{requests} });
            $t .= sprintf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $name, $who->[1],
                defined $rps ? sprintf('%.0f', $rps) : '-', f1($edge), f1($rcpu), f1($sc),
                defined $cl ? sprintf('%.3f', $cl) : '-', f1($in);
        }
    }
    return $t;
}

sub redis_rounds {
    my $r = shift;
    my $t = '';
    $t .= "Async accept with Redis, appendfsync always:\n\n"
        . rounds_table($r->{always}, 'ours', 'return 202') . "\n" if $r->{always};
    $t .= "Async accept with Redis, appendfsync always, $P{redis_connections} connections"
        . " (informative):\n\n"
        . rounds_table($r->{wide}, 'ours', 'return 202') . "\n" if $r->{wide};
    $t .= "Async accept with Redis, appendfsync everysec (informative):\n\n"
        . rounds_table($r->{everysec}, 'ours', 'return 202') . "\n" if $r->{everysec};
    $t .= "Status hit from L1 with Redis configured:\n\n"
        . rounds_table($r->{status}, 'ours', 'return 200') . "\n" if $r->{status};
    return $t;
}

# The block of docs/performance.md between its markers (in "The shared
# engine (issue 15)"): the table, the errors, the profile, the rounds.
sub write_redis_doc {
    my ($m, $table, $errors, $r) = @_;
    my $begin = '<!-- BEGIN REDIS RESULTS: written by bench/run.pl, do not edit -->';
    my $end   = '<!-- END REDIS RESULTS -->';
    my $res = "$begin\n\nMeasured on $m->{date} with `"
        . ($ENV{BENCH_ONLY} ? 'BENCH_ONLY=redis make bench' : 'make bench')
        . "`, $m->{nproc} CPUs ($m->{cpu}), load average before the run $m->{load};"
        . " redis-server $m->{redis}, nginx $m->{nginx}, $P{workers} workers; wrk"
        . " `-t$P{threads} -c$P{connections} -d$P{duration}s`, $P{rounds} rounds per row.\n\n"
        . $table . "\n";
    if (@$errors) {
        $res .= "Errors in this run:\n\n";
        $res .= "- $_\n" for @$errors;
        $res .= "\n";
    }
    $res .= redis_profile($r) . "\n" . redis_rounds($r) . "$end\n";
    my $doc = slurp($DOC);
    if ($doc =~ /\Q$begin\E.*\Q$end\E\n?/s) {
        $doc =~ s/\Q$begin\E.*\Q$end\E\n?/$res/s;
    } else {
        $doc =~ s/\n*\z/\n\n## The shared engine (issue 15)\n\n/;
        $doc .= $res;
    }
    spew($DOC, $doc);
    print "bench: the shared engine's results written to docs/performance.md\n";
}

# --- the run --------------------------------------------------------------

sub preflight {
    -x $NGINX or fail("$NGINX not found: run 'make deps'");
    -f $MODULE or fail("$MODULE not found: run 'make'");
    system("command -v $WRK >/dev/null") == 0 or fail("wrk not found: run 'make deps'");
    -x $REDIS or fail("$REDIS not found: run 'make deps'") if $ONLY eq 'redis';
    return if $ONLY eq 'redis';
    -x $FLOOR or fail("$FLOOR not found: run 'make bench'");
    -x $RENDER or fail("$RENDER not found: run 'make bench'");
    if ($CALLGRIND && system('command -v valgrind >/dev/null') != 0) {
        print STDERR "bench: no valgrind: no instruction counts (make bench installs it)\n";
        $CALLGRIND = 0;
    }
    -f $MOCK or fail("$MOCK not found");
}

sub machine {
    my %m;
    chomp($m{nproc} = `nproc 2>/dev/null` || '?');
    ($m{cpu}) = `lscpu 2>/dev/null` =~ /^Model name:\s*(.+)$/m;
    $m{cpu} //= '?';
    chomp($m{kernel} = `uname -srm 2>/dev/null` || '?');
    ($m{nginx}) = `$NGINX -v 2>&1` =~ m{nginx/(\S+)};
    my $dpkg = sub {
        my $v = `dpkg-query -W -f='\${Version}' $_[0] 2>/dev/null`;
        return $? == 0 && length $v ? $v : '?';
    };
    $m{nginx_deb}   = $dpkg->('nginx');
    chomp($m{libcurl} = `curl-config --version 2>/dev/null` || '?');
    $m{libcurl_deb} = $dpkg->('libcurl4');
    $m{yajl_deb}    = $dpkg->('libyajl2');
    $m{wrk_deb}     = $dpkg->('wrk');
    ($m{redis}) = `$REDIS --version 2>/dev/null` =~ /\bv=(\S+)/;
    $m{redis} //= '?';
    $m{mem} = sprintf '%.1f GiB', $1 / 1024 / 1024
        if slurp('/proc/meminfo') =~ /^MemTotal:\s+(\d+) kB/m;
    $m{load} = join " ", (split " ", slurp("/proc/loadavg"))[0 .. 2];
    $m{date} = strftime('%Y-%m-%d %H:%M UTC', gmtime);
    return \%m;
}

# The run, step by step: main() calls these in this order.  $run holds
# what the steps share: the ports, the processes, the edge's URL.

# The directory, the secrets, the ports; the first lines of the output.
sub prepare {
    my $m = shift;
    $DIR = tempdir(TMPDIR => 1, CLEANUP => 0);
    chmod 0755, $DIR;
    spew("$DIR/secret", "bench-secret\n");
    spew("$DIR/secret-slow", "slow-secret\n");
    $WH{key} = join '', map { chr int rand 256 } 1 .. 32;
    spew("$DIR/hook.secret", 'whsec_' . encode_base64($WH{key}, '') . "\n");

    my %port = map { $_ => free_port() } qw(mock edge slow mem surge smock);

    printf "bench: %s, %s CPUs (%s); nginx %s, %s, yajl %s\n",
        $m->{date}, $m->{nproc}, $m->{cpu}, $m->{nginx}, $m->{libcurl},
        $m->{yajl_deb};
    printf "bench: %d workers; wrk -t%d -c%d, %d rounds of %d s, alternating"
        . " ours and the reference; directory %s\n", $P{workers}, $P{threads},
        $P{connections}, $P{rounds}, $P{duration}, $DIR;
    return { port => \%port, edge => "http://127.0.0.1:$port{edge}" };
}

# The fast mock, the slow mock (t/mock_fanbase.pl), the edge; the seconds
# the edge took to start.
sub start_servers {
    my $run = shift;
    my $port = $run->{port};
    $run->{mock} = start_nginx('mock', mock_conf($port->{mock}));
    wait_port($port->{mock}, $run->{mock}, 'mock nginx', "$DIR/mock.error.log");

    my ($slow, undef, $slow_out) = spawn_mock(
        listen => "127.0.0.1:$port->{slow}", stderr => "$DIR/slow.out",
        clients => ['bench-slow:slow-secret'], log => "$DIR/slow.log",
        args => ['--keep-requests', 1000]);
    $KIDS{$slow} = 'slow mock';
    @$run{qw(slow slow_out)} = ($slow, $slow_out);

    # the master allocates the whole zone (prefault) before it listens
    my $started = time;
    $run->{edge_pid} = start_nginx('edge', edge_conf(port => $port->{edge},
        mock => $port->{mock}, slow => $port->{slow}));
    wait_port($port->{edge}, $run->{edge_pid}, 'edge nginx', "$DIR/edge.error.log",
              120);
    my $listening = time - $started;
    $run->{watch} = { edge => $run->{edge_pid}, mock => $run->{mock} };
    settle($run->{edge_pid}, 'edge nginx');
    return $listening;
}

# Until the workers of a master are idle: with prefault=on each worker
# reads every page of the zone in the background once it serves
# (docs/decisions.md, "Each worker reads the zone"), seconds for
# make bench's zone on a virtual machine; no row measures during that.
sub settle {
    my ($master, $name) = @_;
    my $t0 = time;
    my @w = child_pids($master);
    my $c = proc_cpu(@w);
    while (time - $t0 < 60) {
        select(undef, undef, undef, 0.25);
        my $n = proc_cpu(@w);
        last if $n - $c < 0.25 * 0.05 * @w;
        $c = $n;
    }
    printf "   %s: workers idle %.1f s after they listened\n", $name, time - $t0;
}

# every token request at the fast mock so far (the edge's main credential
# set)
sub token_requests {
    return scalar(() = slurp("$DIR/mock.token.log") =~ m{"POST /api/token}g);
}

# (3) token cold start: the very first requests the edge sees
sub cold_start_row {
    my $run = shift;
    phase('token cold start');
    print "\n== token cold start: $P{burst} concurrent submissions, empty zone\n";
    my $b0 = time;
    my $st = burst($run->{port}{edge}, $P{burst}, $QUEUE, $SUBMIT_BODY);
    my $took = time - $b0;
    sleep 0.2;
    my $tokens = token_requests();
    my $ok = $st->{201} // 0;
    my $answers = join ', ', map { "$_: $st->{$_}" } sort keys %$st;
    printf "   answers: %s (in %.2f s)\n   token requests at the mock: %d\n",
        $answers, $took, $tokens;
    my @errors;
    push @errors, "answers $answers (want $P{burst} x 201)" if $ok != $P{burst};
    return { tokens => $tokens, ok => $ok, errors => \@errors, took => $took,
             met => $tokens == 1 && !@errors };
}

# The edge must answer like the references: what differs, by row
# (status, submit, floor, async, webhook), each printed.
sub check_answers {
    my $run = shift;
    phase('checks of the answers');
    my $port = $run->{port}{edge};
    my %c = (status => [ check_status($port) ]);
    @c{qw(submit floor)} = check_submission($port);
    $c{async} = [ check_async($port) ];
    $c{webhook} = [ check_webhooks($port) ];
    print "\nbench: CHECK FAILED: $_\n"
        for map { @{ $c{$_} } } qw(status submit floor async webhook);
    return \%c;
}

# the status of the completed id, twice (the second from the zone), and
# the reference
sub check_status {
    my $port = shift;
    my @errors;
    my $first = http($port, GET => "$QUEUE/$DONE_ID");
    my $second = http($port, GET => "$QUEUE/$DONE_ID");
    my $ref = http($port, GET => $REF{status});
    push @errors, "status of the completed id: first GET $first->{status}"
        . " (want 200)" unless $first->{status} == 200;
    push @errors, "status of the completed id: second GET $second->{status} "
        . ($second->{headers}{'x-fanbase-cache'} // 'no X-Fanbase-Cache')
        . ' (want 200 HIT)'
        unless $second->{status} == 200
            && ($second->{headers}{'x-fanbase-cache'} // '') eq 'HIT';
    push @errors, "ours and the reference answer different bodies:\n"
        . "     ours:      " . ($second->{body} // '') . "\n"
        . "     reference: " . ($ref->{body} // '')
        unless ($second->{body} // '') eq ($ref->{body} // '');
    return @errors;
}

# a submission through ours, proxy_pass and return 201: the errors of the
# rows "submission" and "libcurl floor"
sub check_submission {
    my $port = shift;
    my (@submit, @floor);
    my ($s, $r, $a) = map { post_json($port, $_, $SUBMIT_BODY) }
                          $QUEUE, $REF{queue}, $REF{created};
    push @submit, "submission: ours $s->{status}, reference $r->{status}"
        . " (want 201 and 201)" unless $s->{status} == 201 && $r->{status} == 201;
    push @submit, "submission: ours and the reference answer different bodies"
        unless ($s->{body} // '') eq ($r->{body} // '');
    push @submit, "submission: Location: ours '" . ($s->{headers}{location} // '')
        . "', reference '" . ($r->{headers}{location} // '') . "'"
        unless ($s->{headers}{location} // '') eq "$QUEUE/$SUBMIT_ID"
            && ($r->{headers}{location} // '') eq "$QUEUE/$SUBMIT_ID";
    push @floor, "return 201: $a->{status} and a different body than proxy_pass"
        unless $a->{status} == 201 && ($a->{body} // '') eq ($r->{body} // '');
    return (\@submit, \@floor);
}

# an async submission and return 202: the same status, types, and lengths
sub check_async {
    my $port = shift;
    my @errors;
    my ($x, $y) = map { post_json($port, $_, $POST_BODY) }
                      "/async$QUEUE", $REF{accepted};
    push @errors, "async end to end: ours $x->{status}, reference $y->{status}"
        . " (want 202 and 202)" unless $x->{status} == 202 && $y->{status} == 202;
    for my $h (qw(content-type location)) {
        my ($o, $f) = map { $_->{headers}{$h} // '' } $x, $y;
        push @errors, "async end to end: $h: ours '$o', reference '$f'"
            . ' (want the same length)' unless length($o) == length($f)
                && ($h ne 'content-type' || $o eq $f);
    }
    push @errors, 'async end to end: bodies of different lengths:' . "\n"
        . '     ours:      ' . ($x->{body} // '') . "\n"
        . '     reference: ' . ($y->{body} // '')
        unless length($x->{body} // '') == length($y->{body} // '');
    return @errors;
}

# webhooks: a message as wrk sends them, answered 204 by both paths with
# the same headers; it created its transaction, completed; the same
# message with its body changed is refused
sub check_webhooks {
    my $port = shift;
    my @errors;
    my $l = webhook_list("$DIR/webhooks.check", 1);
    my $msg = slurp($l->{file});
    my $head = "HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
    my $w = http_raw($port, "POST /webhook $head$msg");
    my $v = http_raw($port, "POST /ref/204 $head$msg");
    push @errors, "webhooks: ours $w->{status}, reference $v->{status}"
        . ' (want 204 and 204)' unless $w->{status} == 204 && $v->{status} == 204;
    my ($hw, $hv) = map { join ' ', sort grep { $_ ne 'date' } keys %{ $_->{headers} } }
        $w, $v;
    push @errors, "webhooks: headers: ours '$hw', reference '$hv'"
        . ' (want the same)' unless $hw eq $hv && ($w->{body} // '') eq ($v->{body} // '');
    my $id = webhook_uuid($l->{first});
    my $g = http($port, GET => "/transactions/$id");
    push @errors, "webhooks: GET /transactions/$id after the message:"
        . " $g->{status} " . ($g->{error} // $g->{body}) . ' (want 200, completed)'
        unless $g->{status} == 200 && $g->{body} =~ /"status":"completed"/;
    (my $bad = $msg) =~ s/"completed"/"cancelled"/;
    my $t = http_raw($port, "POST /webhook $head$bad");
    push @errors, "webhooks: a message with its body changed: ours"
        . " $t->{status} (want 401)" unless $t->{status} == 401;
    return @errors;
}

# (1) status of a terminal transaction
sub status_row {
    my $edge = shift->{edge};
    return alternate(
        'status, terminal transaction: fanbase_status from the zone vs return 200',
        sub { wrk(duration => shift, url => "$edge$QUEUE/$DONE_ID") },
        sub { wrk(duration => shift, url => "$edge$REF{status}") });
}

# (2) submission, with the CPU time per request of every process
sub submit_row {
    my $run = shift;
    my ($edge, $watch) = @$run{qw(edge watch)};
    return alternate(
        'submission: fanbase_submit vs proxy_pass (AccessToken, keepalive), same mock',
        sub { wrk(duration => shift, post => 1, url => "$edge$QUEUE", cpu => $watch) },
        sub { wrk(duration => shift, post => 1, url => "$edge$REF{queue}", cpu => $watch) });
}

# (2d) async end to end: accepted at once, delivered in the background;
# ours waits, after each measurement, until every transaction it accepted
# is completed, so that no delivery runs into the next one
sub async_row {
    my $run = shift;
    my ($edge, $watch) = @$run{qw(edge watch)};
    return alternate(
        'async end to end: fanbase_submit async (delivered, tracked) vs return 202, same bytes',
        sub {
            my $d = shift;
            my ($p0) = async_counts();
            my $c0 = cpu_snapshot($watch);
            my $res = wrk(duration => $d, post => 1, url => "$edge/async$QUEUE",
                           cpu => $watch);
            my ($took, $e) = async_drain();
            my $dd = cpu_delta($c0);
            my ($n) = async_counts();
            $n -= $p0;
            push @{ $res->{errors} }, "not completed: $e" if $e;
            push @{ $res->{errors} }, "$n deliveries for $res->{requests} accepted"
                if $res->{requests} && $n < $res->{requests};
            $res->{life} = $dd->{edge} * 1e6 / $n if $n;
            $res->{extra} = sprintf('%d delivered and completed, the last %.1f s'
                . ' after; edge %.1f µs CPU per transaction, accepted to completed',
                $n, $took, $res->{life} // 0);
            return $res;
        },
        sub { wrk(duration => shift, post => 1, url => "$edge$REF{accepted}",
                  cpu => $watch) });
}

# (2e) webhooks: every request a new message, validly signed, applied (it
# creates a completed transaction).  Right before each measurement of ours
# a new list, a measurement's worth at $P{webhook_rate} a second; the
# reference sends the latest list (the same bytes: it applies nothing)
sub webhook_row {
    my $run = shift;
    my ($edge, $watch) = @$run{qw(edge watch)};
    my $list;
    my $send = sub {
        my ($d, $path) = @_;
        return wrk(duration => $d, script => $WH_LUA, url => "$edge$path",
                   args => [ $list->{file}, $list->{len},
                             $list->{count} / $P{threads} ], cpu => $watch);
    };
    return alternate(
        'webhooks: fanbase_webhook (signed, new, applied) vs return 204, same bytes',
        sub {
            my $d = shift;
            my $per = int(($P{webhook_rate} * $d + $P{threads} - 1) / $P{threads});
            my $g0 = time;
            $list = webhook_list("$DIR/webhooks.txt", $per * $P{threads});
            my $took = time - $g0;
            my $res = $send->($d, '/webhook');
            my ($e, $checked) = webhook_verify($res, $list, $run->{port}{edge});
            push @{ $res->{errors} }, @$e;
            $res->{extra} = sprintf('%d messages generated in %.1f s before it, %d of'
                . ' those sent checked: completed', $list->{count}, $took, $checked);
            return $res;
        },
        sub { $send->(shift, $REF{204}) });
}

# (4) no blocking: the slow credential set gets its token first, then
# every submission takes $P{slow_ms}
sub block_row {
    my $run = shift;
    my ($edge, $port) = @$run{qw(edge port)};
    my $r = post_json($port->{edge}, "/slow$QUEUE", $SUBMIT_BODY);
    my @pre = $r->{status} == 201 ? ()
            : ("a submission to the slow mock answered $r->{status}");
    mock_admin($port->{slow}, POST => '/_mock/faults',
               qq({"queue_post":{"delay_ms":$P{slow_ms}}}));

    my $loaded = sub {
        my $d = shift;
        my $bg = wrk_start(threads => 1, connections => $P{inflight},
                           duration => 3600, timeout => '30s', post => 1,
                           url => "$edge/slow$QUEUE");
        sleep 0.5;
        my $in0 = inflight($port->{slow});
        my $res = wrk(duration => $d, url => "$edge$QUEUE/$DONE_ID");
        my $in1 = inflight($port->{slow});
        my $bgr = wrk_finish($bg);
        $res->{extra} = "in flight: $in0 at the start, $in1 at the end";
        push @{ $res->{errors} }, map { "background submissions: $_" }
            grep { !/no Requests/ } @{ $bgr->{errors} };
        push @{ $res->{errors} }, "only $in0 and $in1 submissions in flight"
            if $in0 < 0.95 * $P{inflight} || $in1 < 0.95 * $P{inflight};
        # the next measurement starts with nothing in flight anywhere
        my $left = drain($port->{slow});
        push @{ $res->{errors} }, "$left submissions still in flight"
            . " $P{slow_ms} ms after the background load stopped" if $left;
        return $res;
    };
    my $idle = sub {
        my $d = shift;
        return wrk(duration => $d, url => "$edge$QUEUE/$DONE_ID");
    };
    my $row = alternate(
        "no blocking: status throughput with $P{inflight} submissions in flight"
        . " (Fanbase $P{slow_ms} ms each) vs none", $loaded, $idle);
    unshift @{ $row->{errors} }, @pre;
    $row->{slow_posts} = mock_admin($port->{slow}, GET => '/_mock/stats')->{queue_posts};
    return $row;
}

# (6) async accept: the same as "async end to end", with the deliveries
# parked at the slow mock (after the no-blocking row, which counts what
# the slow mock holds): what accepting alone costs
sub held_row {
    my $run = shift;
    my ($edge, $watch) = @$run{qw(edge watch)};
    return alternate(
        'async accept: fanbase_submit async (Fanbase slow) vs return 202, same bytes',
        sub { wrk(duration => shift, post => 1, url => "$edge/stall$QUEUE",
                  cpu => $watch) },
        sub { wrk(duration => shift, post => 1, url => "$edge$REF{accepted}",
                  cpu => $watch) });
}

# The edge and the slow mock stopped; the edge's error.log.
sub stop_edge {
    my $run = shift;
    stop($run->{edge_pid}, 'QUIT', 15);
    my $log = slurp("$DIR/edge.error.log");
    stop($run->{slow}, 'TERM', 10);
    close delete $run->{slow_out};
    return $log;
}

# (5) memory: fill a zone with pending transactions
sub memory_row {
    my $run = shift;
    my $port = $run->{port};
    phase('memory');
    print "\n== memory: filling a $P{mem_zone} zone with pending transactions\n";
    my $mem = start_nginx('mem', mem_conf(mock => $port->{mock}, port => $port->{mem}));
    wait_port($port->{mem}, $mem, 'memory nginx', "$DIR/mem.error.log");
    my ($count, %ids, $last, @errors) = (0);
    for (1 .. 100_000) {
        $last = post_json($port->{mem}, $QUEUE, $SUBMIT_BODY);
        last unless $last->{status} == 201;
        my ($id) = $last->{body} =~ /"id":"([^"]+)"/;
        push @errors, 'a repeated id' if !defined $id || $ids{$id}++;
        $count++;
    }
    my $code = ($last->{body} // '') =~ /"code":"([^"]+)"/ ? $1 : '';
    push @errors, "the filling ended with $last->{status} $code, not 503 zone_full"
        unless $last->{status} == 503 && $code eq 'zone_full';
    my $zone = $P{mem_zone} =~ /^(\d+)([km]?)$/i
        ? $1 * { '' => 1, k => 1024, m => 1024 * 1024 }->{lc $2} : 0;
    my $bytes = $count ? $zone / $count : undef;
    printf "   %d transactions until %s %s: %s bytes each\n", $count,
        $last->{status}, $code, defined $bytes ? sprintf('%.0f', $bytes) : '-';
    my $row = { count => $count, bytes => $bytes, zone => $P{mem_zone},
                errors => [ do { my %u; grep { !$u{$_}++ } @errors } ],
                per_mb => $count * (1024 * 1024) / ($zone || 1) };
    $row->{met} = defined $bytes && $bytes <= 512 && !@{ $row->{errors} };
    stop($mem, 'QUIT', 15);
    return $row;
}

# nginx with the module, 2 workers, in front of the burst row's mock (its
# listen queue short), fanbase_max_connections at its default (32), the
# token the mock issued in a file: every connection the mock counts is a
# submission's
sub surge_conf {
    my (%o) = @_;
    return main_conf(name => 'surge', workers => $P{workers}, module => 1,
                     http => <<"CONF");
    fanbase_zone zone=fb:16m;

    server {
        listen 127.0.0.1:$o{port} backlog=4096 reuseport;

        fanbase_api http://127.0.0.1:$o{mock};
        fanbase_access_token_file $DIR/surge.token;
        fanbase_timeout 30s;

        location = $QUEUE {
            fanbase_submit;
        }
    }
CONF
}

# (9) burst: $P{surge} synchronous submissions at once, each its own body
# and connection, to an edge in front of a Fanbase (t/mock_fanbase.pl)
# whose listen queue is $P{surge_backlog}: every one 201, each body
# received once, at most 2 x 32 connections open at Fanbase at once
sub surge_row {
    my $run = shift;
    my $port = $run->{port};
    phase('burst');
    print "\n== burst: $P{surge} submissions at once, Fanbase's listen queue"
        . " $P{surge_backlog}\n";
    my ($mock) = spawn_mock(listen => "127.0.0.1:$port->{smock}",
        backlog => $P{surge_backlog}, stderr => "$DIR/smock.out",
        clients => ['bench-surge:surge-secret']);
    $KIDS{$mock} = 'burst mock';
    my $tok = http($port->{smock}, POST => '/api/token?grant_type=client_credentials'
                   . '&client_id=bench-surge&client_secret=surge-secret');
    my $token = $tok->{status} == 200 && $tok->{body} =~ /"access_token":"([^"]+)"/
        ? $1 : fail("burst: the mock issued no token: $tok->{status}");
    spew("$DIR/surge.token", "$token\n");
    my $nginx = start_nginx('surge', surge_conf(port => $port->{surge},
                                                mock => $port->{smock}));
    wait_port($port->{surge}, $nginx, 'burst nginx', "$DIR/surge.error.log");
    mock_admin($port->{smock}, POST => '/_mock/reset');

    my $body = sub { sprintf '{"action":"ticket-create","data":{"burst":%d}}', $_[0] };
    my $b0 = time;
    my $st = burst($port->{surge}, $P{surge}, $QUEUE, $body);
    my $took = time - $b0;
    my $s = mock_admin($port->{smock}, GET => '/_mock/stats');
    my %got;
    $got{ $_->{body} // '' }++
        for grep { ($_->{method} // '') eq 'POST' && ($_->{path} // '') eq $QUEUE }
            @{ mock_admin($port->{smock}, GET => '/_mock/requests') };
    my $once = grep { ($got{ $body->($_) } // 0) == 1 } 0 .. $P{surge} - 1;
    my $posts = 0;
    $posts += $_ for values %got;
    my $answers = join ', ', map { "$_: $st->{$_}" } sort keys %$st;
    printf "   answers: %s (in %.2f s); at the mock: %d POSTs, %d bodies once,"
        . " %d connections open at most, %d accepted\n", $answers, $took, $posts,
        $once, $s->{connections_open_max}, $s->{connections_accepted};
    my @errors;
    push @errors, "answers $answers (want $P{surge} x 201)"
        if ($st->{201} // 0) != $P{surge};
    push @errors, "$posts POSTs at the mock, $once bodies received once"
        . " (want $P{surge} and $P{surge})" if $posts != $P{surge} || $once != $P{surge};
    my $cap = 32 * $P{workers};
    stop($nginx, 'QUIT', 15);
    push @errors, map { "error.log: $_" }
        log_summary('burst nginx', slurp("$DIR/surge.error.log"));
    stop($mock, 'TERM', 5);
    return { ok => $st->{201} // 0, took => $took, open => $s->{connections_open_max},
             cap => $cap, errors => \@errors,
             met => !@errors && $s->{connections_open_max} <= $cap };
}

sub main {
    preflight();
    my $t0 = time;
    my $m = machine();
    main_redis($m, $t0) if $ONLY eq 'redis';
    my $run = prepare($m);

    my %row = (edge_start => start_servers($run));
    printf "edge started in %.1f s (nginx -t included; zone %s prefaulted)\n",
        $row{edge_start}, $EDGE_ZONE;

    $row{cold} = cold_start_row($run);
    my $checks = check_answers($run);
    $row{status} = status_row($run);
    $row{submit} = submit_row($run);
    # (2b) the libcurl floor of a submission
    $row{floor} = floor_row($run->{edge}, $run->{edge_pid}, $run->{mock},
                            $run->{port}{mock});
    $row{async} = async_row($run);
    $row{webhook} = webhook_row($run);
    unshift @{ $row{$_}{errors} }, @{ $checks->{$_} }
        for qw(status submit floor async webhook);
    $row{block} = block_row($run);
    $row{held} = held_row($run);
    $row{cold}{tokens_total} = token_requests();

    my $edge_log = stop_edge($run);
    # the shared engine, the first edge stopped: its own edges and Redis
    if (-x $REDIS) {
        $row{redis} = redis_rows($run);
    } else {
        print STDERR "bench: no $REDIS: no rows of the shared engine (make deps installs it)\n";
    }
    # (2c) instructions per request
    $row{cg} = callgrind_counts($run->{port}{mock}) if $CALLGRIND;
    $row{mem} = memory_row($run);
    $row{surge} = surge_row($run);
    stop($run->{mock}, 'QUIT', 15);
    # (7) JSON rendering, on a machine the servers have left
    $row{json} = json_row();

    my @bad_log = (log_summary('edge', $edge_log),
                   log_summary('memory nginx', slurp("$DIR/mem.error.log")),
                   log_summary('mock nginx', slurp("$DIR/mock.error.log")));

    report($m, \%row, \@bad_log, time - $t0);
}

sub phase { push @PHASES, [time, $_[0] =~ s/:.*//r] }

# The [alert], [crit] and [emerg] lines and crashes of an error.log, one
# line per kind of message: how many, the first, and the row that ran then.
sub log_summary {
    my ($name, $text) = @_;
    my (%n, %first, @order);
    for (split /\n/, $text) {
        next unless /\[(alert|crit|emerg)\]|exited on signal/;
        my ($ts, $msg) = (undef, $_);
        ($ts, $msg) = ($1, $2)
            if m{^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[\w+\] \d+#\d+: (.*)$};
        (my $kind = $msg) =~ s/(?<!signal )\b\d+\b/N/g;
        push @order, $kind unless $n{$kind}++;
        $first{$kind} //= [$ts, $msg];
    }
    return map {
        my ($ts, $msg) = @{ $first{$_} };
        my $when = '';
        if (defined $ts && $ts =~ m{^(\d+)/(\d+)/(\d+) (\d+):(\d+):(\d+)$}) {
            my $t = POSIX::mktime($6, $5, $4, $3, $2 - 1, $1 - 1900);
            my ($row) = map { $_->[1] } grep { $_->[0] <= $t + 1 } reverse @PHASES;
            $when = " (first at $4:$5:$6" . ($row ? ", during \"$row\")" : ')');
        }
        "$name error.log: $n{$_} x \"$msg\"$when";
    } @order;
}

# A table row of a row measured by alternate(): [name, ours, reference,
# ratio, target (filled in by the caller), met, met as a boolean]
sub ratio_row {
    my ($name, $r, $target, $ours_note, $ref_note) = @_;
    my $met = !@{ $r->{errors} } && defined $r->{ratio} && $r->{ratio} >= $target;
    return [ $name,
             fmt_rps($r->{ours}) . ($ours_note // ''),
             fmt_rps($r->{reference}) . ($ref_note // ''),
             defined $r->{ratio}
                 ? sprintf('%.2f (%.2f-%.2f)', $r->{ratio}, $r->{min}, $r->{max})
                 : '-',
             undef, @{ $r->{errors} } ? 'FAILED (errors)' : $met ? 'yes' : 'no',
             $met ];
}

sub table {
    my @head = ('row', 'ours', 'reference', "ratio (median of $P{rounds}, min-max)",
                'target', 'met');
    my $table = '| ' . join(' | ', @head) . " |\n|" . join('|', map { '---' } @head)
              . "|\n";
    $table .= '| ' . join(' | ', @{$_}[0 .. 5]) . " |\n" for @_;
    return $table;
}

sub report {
    my ($m, $row, $bad_log, $elapsed) = @_;
    my $N = $P{rounds};
    my @rows;

    my $ratio_row = \&ratio_row;

    my $st = $ratio_row->('status, terminal transaction', $row->{status}, 0.95);
    $st->[4] = '>= 0.95';
    my $sb = $ratio_row->('submission', $row->{submit}, 0.95);
    $sb->[4] = '>= 0.95 (goal 1.00)';
    # informative: ours makes three HTTP exchanges per transaction
    # (accept, deliver, poll), the reference one; the issue's target is
    # on accepting, the row "async accept"
    my $as = $ratio_row->('async end to end (accept, deliver, track)',
                          $row->{async}, 0);
    $as->[4] = 'informative: 3 HTTP exchanges per transaction against 1';
    $as->[5] = @{ $row->{async}{errors} } ? 'FAILED (errors; informative)'
                                          : 'informative';
    $as->[6] = !@{ $row->{async}{errors} };
    my $wh = $ratio_row->('webhooks', $row->{webhook}, 0.70);
    $wh->[4] = '>= 0.70';
    my $ah = $ratio_row->('async accept', $row->{held}, 0.90);
    $ah->[4] = '>= 0.90';
    my $c = $row->{cold};
    my $cold = [ 'token cold start',
                 sprintf('%d token request%s (%d/%d answered 201, in %.2f s)',
                         $c->{tokens}, $c->{tokens} == 1 ? '' : 's', $c->{ok},
                         $P{burst}, $c->{took}),
                 '-', '-', 'exactly 1 token request',
                 @{ $c->{errors} } ? 'FAILED (errors)' : $c->{met} ? 'yes' : 'no',
                 $c->{met} ];
    my $bl = $ratio_row->('no blocking', $row->{block}, 0.90,
                          " with $P{inflight} in flight", ' with none');
    $bl->[4] = '>= 0.90';
    my $mm = $row->{mem};
    my $mem = [ 'memory',
                defined $mm->{bytes}
                    ? sprintf('%.0f bytes per transaction (%d in a %s zone)',
                              $mm->{bytes}, $mm->{count}, $mm->{zone})
                    : '-',
                '-', '-', '<= 512 bytes',
                @{ $mm->{errors} } ? 'FAILED (errors)' : $mm->{met} ? 'yes' : 'no',
                $mm->{met} ];
    my $sg = $row->{surge};
    my $surge = [ "burst: $P{surge} submissions at once, Fanbase's listen queue"
                  . " $P{surge_backlog}",
                  sprintf('%d of %d answered 201 in %.2f s, each body received once;'
                          . ' at most %d connections open at Fanbase', $sg->{ok},
                          $P{surge}, $sg->{took}, $sg->{open} // -1),
                  '-', '-', "$P{surge} of $P{surge} answered 201, at most $sg->{cap}"
                  . ' connections',
                  @{ $sg->{errors} } ? 'FAILED (errors)' : $sg->{met} ? 'yes' : 'no',
                  $sg->{met} ];
    my $fl = $row->{floor};
    my $fm = floor_medians($row);
    my $floor = [ 'libcurl floor (the submission path before nginx\'s upstream)',
                  defined $fm->{floor}{floor}
                      ? sprintf('%.1f µs CPU per request: curl_floor alone, libcurl only'
                                . ' (%d processes x %d transfers, %s)', $fm->{floor}{floor},
                                $P{workers}, floor_per(), fmt_rps($fm->{floor}{rps}))
                      : '-',
                  defined $fm->{proxy}{edge}
                      ? sprintf('%.1f µs CPU per request: proxy_pass, the edge\'s %d workers'
                                . ' (%s)', $fm->{proxy}{edge}, $P{workers},
                                fmt_rps($fm->{proxy}{rps}))
                      : '-',
                  defined $fl->{bound}
                      ? sprintf('bound %.2f (%.2f-%.2f)', $fl->{bound}, $fl->{min}, $fl->{max})
                      : '-',
                  'bound < 0.80: libcurl alone could not reach 0.80, why the submission moved to nginx\'s upstream',
                  @{ $fl->{errors} } ? 'FAILED (errors; informative)'
                      : !defined $fl->{bound} ? '-'
                      : $fl->{bound} < 0.80 ? 'informative: proved' : 'informative: not proved',
                  1 ];     # informative: never fails the run
    my $js = $row->{json};
    my $ns = sub {
        my $f = shift;
        join ', ', map { sprintf '%s %.0f', $_->{name}, $f->($_) } @{ $js->{docs} };
    };
    my $json = [ 'JSON rendering: hand / yajl_gen (ns of CPU per document)',
                 @{ $js->{docs} } ? 'hand: ' . $ns->(sub { $_[0]{hand} }) : '-',
                 @{ $js->{docs} }
                     ? 'yajl_gen, its faster way: '
                       . $ns->(sub { min($_[0]{yajl_new}, $_[0]{yajl_reused}) })
                     : '-',
                 $js->{low}
                     ? sprintf('%.2f-%.2f (lowest: %s)', $js->{low}{ratio},
                               $js->{high}{ratio}, $js->{low}{name})
                     : '-',
                 '> 1.00 for each document (else it is rendered by yajl_gen)',
                 @{ $js->{errors} } ? 'FAILED (errors)' : $js->{met} ? 'yes' : 'no',
                 $js->{met} ];
    @rows = ($st, $sb, $floor, $ah, $as, $wh, $cold, $surge, $bl, $mem, $json);
    my $table = table(@rows);
    my @redis = $row->{redis} ? redis_report_rows($row->{redis}) : ();
    my $redis_table = @redis ? table(@redis) : '';
    push @rows, @redis;

    my @errors;
    push @errors, map { "status: $_" } @{ $row->{status}{errors} };
    push @errors, map { "submission: $_" } @{ $row->{submit}{errors} };
    push @errors, map { "libcurl floor (informative): $_" } @{ $fl->{errors} };
    push @errors, map { "async end to end: $_" } @{ $row->{async}{errors} };
    push @errors, map { "webhooks: $_" } @{ $row->{webhook}{errors} };
    push @errors, map { "async accept: $_" } @{ $row->{held}{errors} };
    push @errors, map { "callgrind (informative): $_" } @{ $row->{cg}{errors} }
        if $row->{cg};
    push @errors, map { "token cold start: $_" } @{ $c->{errors} };
    push @errors, map { "no blocking: $_" } @{ $row->{block}{errors} };
    push @errors, map { "memory: $_" } @{ $mm->{errors} };
    push @errors, map { "burst: $_" } @{ $sg->{errors} };
    push @errors, map { "JSON rendering: $_" } @{ $js->{errors} };
    push @errors, map { "error.log: $_" } @$bad_log;
    my @redis_errors = $row->{redis} ? redis_errors($row->{redis}) : ();
    push @errors, @redis_errors;

    my $all_met = !grep { !$_->[6] } @rows;
    my $clean = !@$bad_log && !($row->{redis} && @{ $row->{redis}{logs} });

    my $cpu = cpu_section($row);
    print "\n$table\n$cpu\n";
    print "The shared engine (issue 15):\n\n$redis_table\n" . redis_profile($row->{redis})
        . "\n" if $row->{redis};
    if (@errors) { print "errors:\n"; print "  $_\n" for @errors; print "\n" }
    printf "token requests by the edge's credential set over the whole run: %d\n",
        $c->{tokens_total};
    printf "bench: %s%s in %.0f s\n", $all_met ? 'every target met'
        : 'some targets missed (see "met")',
        $clean ? '' : '; ALERTS OR CRASHES in error.log (see above)', $elapsed;

    unless ($ENV{BENCH_NO_DOC}) {
        write_doc($m, $table, \@errors, $row, $cpu);
        write_redis_doc($m, $redis_table, \@redis_errors, $row->{redis}) if $row->{redis};
    }
    exit($all_met && $clean ? 0 : 1);
}

# medians over the rounds of the CPU time per request (us) of each path,
# and of its requests per second
sub floor_medians {
    my $row = shift;
    my %m;
    my $med = sub {
        my ($list, $key) = @_;
        my %h = (rps => median(map { $_->{rps} } @$list));
        for my $k (qw(edge mock wrk floor busy)) {
            my @v = grep { defined } map { $_->{cpu} && $_->{cpu}{$k} } @$list;
            $h{$k} = median(@v) if @v;
        }
        my @all = map { cpu_all($_->{cpu}) } grep { $_->{cpu} } @$list;
        $h{all} = median(@all) if @all;
        $m{$key} = \%h;
    };
    my @fr = @{ $row->{floor}{rounds} // [] };
    for my $k (qw(floor proxy alone)) {
        $med->([ grep { defined } map { $_->{$k} } @fr ], $k);
    }
    my @sr = @{ $row->{submit}{rounds} // [] };
    $med->([ map { +{ rps => $_->{ours}, cpu => $_->{cpu_ours} } } @sr ], 'submit');
    $med->([ map { +{ rps => $_->{reference}, cpu => $_->{cpu_ref} } } @sr ], 'submit_ref');
    my @ar = @{ $row->{async}{rounds} // [] };
    $med->([ map { +{ rps => $_->{ours}, cpu => $_->{cpu_ours} } } @ar ], 'async');
    $med->([ map { +{ rps => $_->{reference}, cpu => $_->{cpu_ref} } } @ar ], 'async_ref');
    $m{life} = median(map { $_->{life} } @ar);
    my @wr = @{ $row->{webhook}{rounds} // [] };
    $med->([ map { +{ rps => $_->{ours}, cpu => $_->{cpu_ours} } } @wr ], 'webhook');
    $med->([ map { +{ rps => $_->{reference}, cpu => $_->{cpu_ref} } } @wr ], 'webhook_ref');
    for my $k (qw(W Mp Ep Mf N F)) {
        my @v = grep { defined } map { $_->{b} && $_->{b}{$k} } @fr;
        $m{b}{$k} = median(@v) if @v;
    }
    return \%m;
}

sub f1 { defined $_[0] ? sprintf('%.1f', $_[0]) : '-' }

# The CPU time per request of every path measured with it, the bound and
# how it is computed, the check of the CPU model on the submission row, and
# the instruction counts.
sub cpu_section {
    my $row = shift;
    my $m = floor_medians($row);
    my $N = $P{rounds};
    my $t = "### CPU time per request\n\n"
          . "Microseconds of CPU time (user + system) per request, median of the $N rounds:"
          . " the edge's $P{workers} workers and the mock's worker (`/proc/PID/stat` utime +"
          . " stime over each run), wrk (its rusage), curl_floor (its own `getrusage` over the"
          . " measured part, after its warm-up). \"all\" is their sum; \"CPUs busy\" is the"
          . " CPU time of these processes over the wall time of the run.\n\n"
          . "| path | row | req/s | edge workers | curl_floor | mock | wrk | all | CPUs busy |\n"
          . "|---|---|---|---|---|---|---|---|---|\n";
    for ([submit => '`fanbase_submit`', 'submission'],
         [submit_ref => '`proxy_pass`', 'submission'],
         [async => '`fanbase_submit async`', 'async end to end'],
         [async_ref => '`return 202`', 'async end to end'],
         [webhook => '`fanbase_webhook`', 'webhooks'],
         [webhook_ref => '`return 204`', 'webhooks'],
         [floor => 'curl_floor alone (libcurl)', 'libcurl floor'],
         [proxy => '`proxy_pass`', 'libcurl floor'],
         [alone => '`return 201`, nginx alone', 'libcurl floor']) {
        my ($k, $name, $r) = @$_;
        my $h = $m->{$k} or next;
        $t .= sprintf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $name, $r,
            defined $h->{rps} ? sprintf('%.0f', $h->{rps}) : '-',
            f1($h->{edge}), f1($h->{floor}), f1($h->{mock}), f1($h->{wrk}), f1($h->{all}),
            defined $h->{busy} ? sprintf('%.2f', $h->{busy}) : '-';
    }
    my $bb = $m->{b};
    my $fl = $row->{floor};
    if (defined $fl->{bound} && keys %$bb == 6) {
        my $num = $bb->{W} + $bb->{Mp} + $bb->{Ep};
        my $den = $bb->{W} + $bb->{Mf} + $bb->{N} + $bb->{F};
        $t .= "\nThe bound of the row \"libcurl floor\", for each of its rounds: (wrk + mock +"
            . " edge workers, all three per request through `proxy_pass`) / (wrk per request"
            . " through `proxy_pass` + mock per curl_floor request + edge workers per request"
            . " answered by `return 201` + curl_floor per request), the CPU time per request"
            . " of the whole machine with `proxy_pass` over that of a module that would add"
            . " nothing to nginx's own request handling but libcurl's transfer. Median of the"
            . sprintf(" $N rounds: %.2f (%.2f-%.2f); with the medians of each term:"
                      . " (%.1f + %.1f + %.1f) / (%.1f + %.1f + %.1f + %.1f) = %.1f / %.1f"
                      . " = %.2f.\n", $fl->{bound}, $fl->{min}, $fl->{max},
                      $bb->{W}, $bb->{Mp}, $bb->{Ep}, $bb->{W}, $bb->{Mf}, $bb->{N}, $bb->{F},
                      $num, $den, $num / $den);
        $t .= sprintf "\nnginx's upstream side of `proxy_pass` (edge workers, `proxy_pass`"
            . " minus `return 201`): %.1f µs per request; libcurl's transfer (curl_floor):"
            . " %.1f µs, %.1f times as much. curl_floor waited in `epoll_wait` %.3f times"
            . " per request.\n", $bb->{Ep} - $bb->{N}, $bb->{F},
            $bb->{Ep} > $bb->{N} ? $bb->{F} / ($bb->{Ep} - $bb->{N}) : 0,
            median(map { $_->{floor} && $_->{floor}{waits} } @{ $fl->{rounds} }) // 0;
        $t .= sprintf "\nWith the edge's workers alone on their CPUs (wrk and the mock"
            . " elsewhere), the same bound would be edge workers through `proxy_pass` /"
            . " (`return 201` + curl_floor) = %.1f / (%.1f + %.1f) = %.2f.\n",
            $bb->{Ep}, $bb->{N}, $bb->{F}, $bb->{Ep} / ($bb->{N} + $bb->{F});
        my $es = $m->{submit}{edge};
        $t .= sprintf "\n`fanbase_submit`'s edge workers (row \"submission\"): %.1f µs per"
            . " request; `return 201` + curl_floor: %.1f µs; the rest, %.1f µs, is what the"
            . " module adds around libcurl (JSON, zone, its glue).\n",
            $es, $bb->{N} + $bb->{F}, $es - $bb->{N} - $bb->{F} if defined $es;
    }
    if (defined $m->{life} && defined $m->{async_ref}{edge}) {
        $t .= sprintf "\n`fanbase_submit async`'s edge workers (row \"async end to end\"),"
            . " from acceptance to completion (the measurement and the wait after it, until"
            . " every transaction it accepted is delivered and polled): %.1f µs per"
            . " transaction (median of the $N rounds); in the measurement alone, per request"
            . " answered: %.1f µs; `return 202`: %.1f µs per request.\n",
            $m->{life}, $m->{async}{edge} // 0, $m->{async_ref}{edge};
        $t .= sprintf "\nThe least a transaction's three exchanges could cost the edge"
            . " with libcurl: `return 202` for the acceptance and one curl_floor transfer"
            . " each for the delivery and the poll, %.1f + 2 x %.1f = %.1f µs; with nginx's"
            . " own upstream side (`proxy_pass` minus `return 201`) instead of libcurl,"
            . " %.1f + 2 x %.1f = %.1f µs: %.1f times `return 202` alone.\n",
            $m->{async_ref}{edge}, $bb->{F}, $m->{async_ref}{edge} + 2 * $bb->{F},
            $m->{async_ref}{edge}, $bb->{Ep} - $bb->{N},
            $m->{async_ref}{edge} + 2 * ($bb->{Ep} - $bb->{N}),
            ($m->{async_ref}{edge} + 2 * ($bb->{Ep} - $bb->{N})) / $m->{async_ref}{edge}
            if keys %$bb == 6 && $m->{async_ref}{edge};
    }
    my @pred = grep { defined } map {
        my ($o, $r) = ($_->{cpu_ours}, $_->{cpu_ref});
        $o && $r && cpu_all($o) ? cpu_all($r) / cpu_all($o) : undef
    } @{ $row->{submit}{rounds} // [] };
    if (@pred && defined $row->{submit}{ratio}) {
        $t .= sprintf "\nThe CPU model, checked on the row \"submission\": the ratio"
            . " predicted by the CPU time per request of all processes (`proxy_pass`'s \"all\""
            . " / `fanbase_submit`'s, per round) is %.2f (median; %.2f-%.2f), the ratio"
            . " measured by wrk %.2f.\n", median(@pred),
            (sort { $a <=> $b } @pred)[0], (sort { $b <=> $a } @pred)[0],
            $row->{submit}{ratio};
    }
    if (my $cg = $row->{cg}) {
        my $ir = $cg->{ir};
        $t .= "\n### Instructions per request\n\n"
            . "User-space instructions (`valgrind --tool=callgrind`, Ir) per request: the"
            . " difference of two runs of $CG_N[0] and $CG_N[1] requests, each after"
            . " $CG_WARMUP requests of warm-up, divided by "
            . ($CG_N[1] - $CG_N[0]) . " (start, warm-up and exit cancel out). curl_floor:"
            . " 1 process, " . floor_per() . " transfers in flight, to the fast mock. nginx:"
            . " one process (`master_process off`), its client curl_floor with wrk's"
            . " headers, " . floor_per() . " requests in flight."
            . " \"Under libcurl's calls\": the instructions (inclusive, from"
            . " `callgrind_annotate --inclusive=yes`) of the libcurl functions the module"
            . " calls per transfer (`curl_multi_socket_action`, `curl_multi_add_handle`,"
            . " `curl_multi_remove_handle`, `curl_multi_info_read`, `curl_easy_setopt`,"
            . " `curl_easy_getinfo`, `curl_easy_header`), the callbacks libcurl makes"
            . " from them included.\n\n"
            . "| what | instructions per request | of which under libcurl's calls |\n"
            . "|---|---|---|\n";
        my $n = sub { defined $_[0] ? sprintf('%.0f', $_[0]) : '-' };
        for ([floor => 'curl_floor: libcurl\'s transfer alone'],
             [proxy => 'nginx, `proxy_pass`'],
             [alone => 'nginx, `return 201`'],
             [submit => 'nginx, `fanbase_submit`']) {
            my $k = $_->[0];
            $t .= sprintf "| %s | %s | %s |\n", $_->[1], $n->($ir->{$k}),
                $k =~ /^(floor|submit)$/ ? $n->($ir->{"${k}_curl"}) : '-';
        }
    }
    return $t;
}

# The documents of the row "JSON rendering", one a line.
sub json_section {
    my $js = shift;
    my $t = "### JSON rendering\n\n"
          . "`build/bench/json_render` (`bench/json_render.c`; alone: `make -C bench"
          . " render`): each document the module renders on a hot path, by its own"
          . " functions (`src/ngx_http_fanbase_json.c`, linked in, `-O2`) and by yajl_gen"
          . " with a new generator each time or one generator reused (`yajl_gen_clear`,"
          . " `yajl_gen_reset`), its buffer copied out. ns of CPU time of the thread per"
          . " document, median of 9 rounds of 20 ms each; ratio: the faster yajl_gen over"
          . " hand (in brackets its lowest and highest in a single round). The outputs"
          . " are compared first.\n\n"
          . "| document | bytes | outputs | hand | yajl_gen, new | yajl_gen, reused | ratio |\n"
          . "|---|---|---|---|---|---|---|\n";
    $t .= sprintf "| %s | %d | %s | %.1f | %.1f | %.1f | %.2f (%.2f-%.2f) |\n",
        @{$_}{qw(name bytes outputs hand yajl_new yajl_reused ratio low high)}
        for @{ $js->{docs} };
    return $t;
}

sub rounds_table {
    my ($r, $ours, $ref) = @_;
    my $t = "| round | first | $ours | $ref | ratio |\n|---|---|---|---|---|\n";
    my $i = 0;
    for (@{ $r->{rounds} }) {
        $t .= sprintf "| %d | %s | %s | %s | %s |\n", ++$i, $_->{first},
            fmt_rps($_->{ours}) . ($_->{extra} ? " ($_->{extra})" : ''),
            fmt_rps($_->{reference}),
            defined $_->{ratio} ? sprintf('%.3f', $_->{ratio}) : '-';
    }
    return $t;
}

sub submit_rounds_table {
    my $r = shift;
    my $t = "| round | first | ours | proxy_pass | ratio | CPU µs per request, ours"
          . " (edge + mock + wrk) | proxy_pass (edge + mock + wrk) | ratio predicted by"
          . " CPU time |\n|---|---|---|---|---|---|---|---|\n";
    my $i = 0;
    my $c = sub {
        my $x = shift or return '-';
        sprintf '%.1f (%.1f + %.1f + %.1f)', cpu_all($x), $x->{edge}, $x->{mock}, $x->{wrk};
    };
    for (@{ $r->{rounds} }) {
        my ($o, $f) = ($_->{cpu_ours}, $_->{cpu_ref});
        $t .= sprintf "| %d | %s | %s | %s | %s | %s | %s | %s |\n", ++$i, $_->{first},
            fmt_rps($_->{ours}), fmt_rps($_->{reference}),
            defined $_->{ratio} ? sprintf('%.3f', $_->{ratio}) : '-',
            $c->($o), $c->($f),
            $o && $f && cpu_all($o) ? sprintf('%.3f', cpu_all($f) / cpu_all($o)) : '-';
    }
    return $t;
}

sub floor_rounds_table {
    my $r = shift;
    my $t = "| round | order | curl_floor: F (mock Mf) | `proxy_pass`: Ep (mock Mp, wrk W)"
          . " | `return 201`: N | bound |\n|---|---|---|---|---|---|\n";
    my $i = 0;
    for my $x (@{ $r->{rounds} }) {
        my ($f, $p, $n) = map { $x->{$_} } qw(floor proxy alone);
        $t .= sprintf "| %d | %s | %s | %s | %s | %s |\n", ++$i,
            join(', ', map { { floor => 'curl_floor', proxy => 'proxy_pass',
                               alone => 'return 201' }->{$_} } @{ $x->{order} }),
            $f && $f->{cpu} ? sprintf('%.1f (%.1f), %s', $f->{cpu}{floor}, $f->{cpu}{mock},
                                      fmt_rps($f->{rps})) : '-',
            $p && $p->{cpu} ? sprintf('%.1f (%.1f, %.1f), %s', $p->{cpu}{edge},
                                      $p->{cpu}{mock}, $p->{cpu}{wrk}, fmt_rps($p->{rps})) : '-',
            $n && $n->{cpu} ? sprintf('%.1f, %s', $n->{cpu}{edge}, fmt_rps($n->{rps})) : '-',
            $x->{b} ? sprintf('%.3f', $x->{b}{bound}) : '-';
    }
    return $t;
}

sub write_doc {
    my ($m, $table, $errors, $row, $cpu) = @_;
    my $begin = '<!-- BEGIN RESULTS: written by bench/run.pl, do not edit -->';
    my $end   = '<!-- END RESULTS -->';

    my $res = "$begin\n\n## Results\n\n";
    $res .= "Measured on $m->{date} with `make bench`.\n\n";
    $res .= "| machine | |\n|---|---|\n";
    $res .= "| `nproc` | $m->{nproc} |\n";
    $res .= "| CPU (`lscpu`, Model name) | $m->{cpu} |\n";
    $res .= "| memory | $m->{mem} |\n" if $m->{mem};
    $res .= "| kernel | $m->{kernel} |\n";
    $res .= "| load average before the run | $m->{load} |\n";
    $res .= sprintf "| edge start, `fanbase_zone zone=fb:%s` (prefaulted) | %.1f s from"
          . " `nginx -t` to listening |\n", $EDGE_ZONE, $row->{edge_start}
        if defined $row->{edge_start};
    $res .= "| nginx | $m->{nginx} (Debian $m->{nginx_deb}), $P{workers} workers |\n";
    $res .= "| libcurl | $m->{libcurl} (Debian libcurl4 $m->{libcurl_deb}) |\n";
    $res .= "| yajl | Debian libyajl2 $m->{yajl_deb} |\n";
    $res .= "| wrk | Debian $m->{wrk_deb}: `-t$P{threads} -c$P{connections}"
          . " -d$P{duration}s`, $P{rounds} rounds per row |\n\n";
    $res .= $table . "\n";
    if (@$errors) {
        $res .= "Errors in this run:\n\n";
        $res .= "- $_\n" for @$errors;
        $res .= "\n";
    }
    $res .= "Token requests by the edge's credential set over the whole run"
          . " (cold start and every later row): $row->{cold}{tokens_total}.\n\n";
    $res .= $cpu . "\n";
    $res .= json_section($row->{json}) . "\n";
    $res .= "### Rounds\n\nStatus, terminal transaction:\n\n"
          . rounds_table($row->{status}, 'ours', 'return 200') . "\n"
          . "Submission:\n\n"
          . submit_rounds_table($row->{submit}) . "\n"
          . "libcurl floor (CPU µs per request):\n\n"
          . floor_rounds_table($row->{floor}) . "\n"
          . "Async accept (Fanbase slow, deliveries parked):\n\n"
          . rounds_table($row->{held}, 'ours', 'return 202') . "\n"
          . "Async end to end (accept, deliver, track; informative):\n\n"
          . rounds_table($row->{async}, 'ours', 'return 202') . "\n"
          . "Webhooks:\n\n"
          . rounds_table($row->{webhook}, 'ours', 'return 204') . "\n"
          . "No blocking (status throughput):\n\n"
          . rounds_table($row->{block}, "with $P{inflight} submissions in flight",
                         'with none') . "\n$end\n";

    my $doc = slurp($DOC);
    if ($doc =~ /\Q$begin\E.*\Q$end\E\n?/s) {
        $doc =~ s/\Q$begin\E.*\Q$end\E\n?/$res/s;
    } else {
        $doc = "# Performance\n\n" unless length $doc;
        $doc =~ s/\n*\z/\n\n/;
        $doc .= $res;
    }
    spew($DOC, $doc);
    print "bench: results written to docs/performance.md\n";
}

main();
