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
#
# Each throughput row alternates ours and the reference in the same run
# (the order swapped every round) and reports the median of the per-round
# ratios ours / reference.  Any non-2xx answer or socket error in a row
# fails the row.  The exit status is 0 only when every row met its target
# and no error.log holds an alert, a critical error or a crashed worker.
#
# Perl core modules only; no Python.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(remove_tree);
use File::Temp qw(tempdir);
use IO::Poll qw(POLLIN POLLOUT POLLERR POLLHUP);
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(WNOHANG strftime);
use Time::HiRes qw(time sleep);

$| = 1;

my $BENCH = dirname(abs_path($0));
my $TOP   = dirname($BENCH);

my %P = (
    rounds      => env_int('BENCH_ROUNDS', 5),
    duration    => env_int('BENCH_DURATION', 3),
    connections => env_int('BENCH_CONNECTIONS', 64),
    threads     => env_int('BENCH_THREADS', 2),
    workers     => 2,
    warmup      => 1,       # seconds of each path before the rounds
    burst       => 500,     # token cold start: concurrent submissions
    inflight    => 200,     # no blocking: submissions kept in flight
    slow_ms     => 2000,    # no blocking: Fanbase's time per submission
    mem_zone    => '1m',    # memory: the zone filled
);

my $NGINX  = $ENV{BENCH_NGINX} // '/usr/sbin/nginx';
my $MODULE = "$TOP/build/ngx_http_fanbase_module.so";
my $MOCK   = "$TOP/t/mock_fanbase.pl";
my $LUA    = "$BENCH/post.lua";
my $DOC    = "$TOP/docs/performance.md";
my $WRK    = 'wrk';

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

my $SUBMIT_BODY = '{"action":"ticket-create","data":{"seat":"A1"}}';

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

sub spawn {
    my ($name, $out, @cmd) = @_;
    my $pid = fork // die "fork: $!\n";
    if (!$pid) {
        $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP);
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(126);
        { exec @cmd }
        POSIX::_exit(127);
    }
    $KIDS{$pid} = $name;
    return $pid;
}

# wait for a pid with a timeout: its wait status, or undef
sub reap {
    my ($pid, $timeout) = @_;
    my $end = time + $timeout;
    for (;;) {
        my $r = waitpid $pid, WNOHANG;
        if ($r == $pid || $r < 0) {
            delete $KIDS{$pid};
            return $r == $pid ? $? : 0;
        }
        return undef if time > $end;
        sleep 0.02;
    }
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

sub slurp {
    my $f = shift;
    open my $fh, '<', $f or return '';
    local $/;
    return scalar <$fh>;
}

sub spew {
    my ($f, $text) = @_;
    open my $fh, '>', $f or fail("$f: $!");
    print $fh $text;
    close $fh or fail("$f: $!");
}

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp', Listen => 1, ReuseAddr => 1)
        or fail("no free port: $!");
    my $port = $s->sockport;
    close $s;
    return $port;
}

sub wait_port {
    my ($port, $pid, $what, $log) = @_;
    my $end = time + 10;
    while (time < $end) {
        if (!$KIDS{$pid} || waitpid($pid, WNOHANG) == $pid) {
            delete $KIDS{$pid};
            fail("$what exited at start:\n", slurp($log));
        }
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                      Proto => 'tcp');
        if ($s) { close $s; return }
        sleep 0.05;
    }
    fail("$what does not listen on port $port:\n", slurp($log));
}

sub start_nginx {
    my ($name, $conf) = @_;
    my $file = "$DIR/$name.conf";
    spew($file, $conf);
    my $t = `$NGINX -p $DIR/ -c $file -t 2>&1`;
    fail("nginx -t for $name failed:\n$t") if $?;
    return spawn($name, "$DIR/$name.out", $NGINX, '-p', "$DIR/", '-c', $file);
}


# --- HTTP clients ---------------------------------------------------------

# One request on a new connection.  { status, headers => {lc name}, body }
sub http {
    my ($port, $method, $path, %o) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 10)
        or return { status => 0, error => "connect: $!" };
    my $body = $o{body} // '';
    my $req = "$method $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
    $req .= "Content-Type: $o{type}\r\n" if $o{type};
    $req .= 'Content-Length: ' . length($body) . "\r\n" if $method eq 'POST';
    $req .= "\r\n$body";
    syswrite($s, $req) == length $req or return { status => 0, error => "write: $!" };
    my ($in, $end) = ('', time + ($o{timeout} // 15));
    my $sel = IO::Poll->new;
    $sel->mask($s, POLLIN);
    while (time < $end) {
        $sel->poll(0.5) or next;
        my $n = sysread $s, my $buf, 65536;
        last unless $n;
        $in .= $buf;
    }
    close $s;
    return parse_response($in);
}

sub parse_response {
    my $in = shift;
    my ($head, $body) = split /\r\n\r\n/, $in, 2;
    return { status => 0, error => 'no response' } unless defined $head
        && $head =~ m{^HTTP/1\.[01] (\d{3})};
    my %r = (status => $1, body => $body // '', headers => {});
    for (split /\r\n/, $head) {
        $r{headers}{lc $1} = $2 if /^([^:]+):\s*(.*)$/;
    }
    if (($r{headers}{'transfer-encoding'} // '') =~ /chunked/i) {
        my ($raw, $dec) = ($r{body}, '');
        while ($raw =~ s/^([0-9a-fA-F]+)[^\r]*\r\n//) {
            my $n = hex $1;
            last if $n == 0;
            $dec .= substr $raw, 0, $n, '';
            $raw =~ s/^\r\n//;
        }
        $r{body} = $dec;
    }
    return \%r;
}

# $n submissions at the same time, each on its own connection: all
# connections are open before the first request is written.  Returns a hash
# status => count.
sub burst {
    my ($port, $n, $path, $body) = @_;
    my @socks;
    for (1 .. $n) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                      Proto => 'tcp')
            or fail("burst: connection $_: $!");
        push @socks, $s;
    }
    my $req = "POST $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            . "Content-Type: application/json\r\nContent-Length: "
            . length($body) . "\r\n\r\n$body";
    for my $s (@socks) {
        syswrite($s, $req) == length $req or fail("burst: write: $!");
    }
    my $poll = IO::Poll->new;
    my %in;
    $poll->mask($_, POLLIN) for @socks;
    my $end = time + 30;
    while ($poll->handles && time < $end) {
        $poll->poll(0.5) > 0 or next;
        for my $s ($poll->handles(POLLIN | POLLERR | POLLHUP)) {
            my $got = sysread $s, my $buf, 65536;
            if ($got) { $in{$s} .= $buf; next }
            $poll->remove($s);
        }
    }
    my %status;
    for my $s (@socks) {
        my $r = parse_response($in{$s} // '');
        $status{ $r->{status} || 'none' }++;
        close $s;
    }
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

# --- wrk ------------------------------------------------------------------

sub wrk_cmd {
    my (%o) = @_;
    return ($WRK, '-t', $o{threads} // $P{threads},
            '-c', $o{connections} // $P{connections},
            '-d', ($o{duration} // $P{duration}) . 's',
            '--timeout', $o{timeout} // '5s',
            ($o{post} ? ('-s', $LUA) : ()), $o{url});
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

sub wrk {
    my (%o) = @_;
    my $out = sprintf '%s/wrk-%03d.txt', $DIR, ++$WRK_SEQ;
    my $pid = spawn('wrk', $out, wrk_cmd(%o));
    my $st = reap($pid, ($o{duration} // $P{duration}) + 30);
    if (!defined $st) {
        stop($pid, 'KILL');
        return { rps => undef, errors => ['wrk did not finish'] };
    }
    my $r = parse_wrk(slurp($out));
    push @{ $r->{errors} }, "wrk exit status $st" if $st;
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


# --- configurations -------------------------------------------------------

sub main_conf {
    my (%o) = @_;
    my $conf = $o{module} ? "load_module $MODULE;\n" : '';
    $conf .= <<"CONF";
daemon off;
master_process on;
worker_processes $o{workers};
pid $DIR/$o{name}.pid;
error_log $DIR/$o{name}.error.log warn;
CONF
    $conf .= "user root root;\n" if $> == 0;
    $conf .= <<"CONF";

events {
    worker_connections 8192;
}

http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path $DIR/$o{name}.client_body;
    proxy_temp_path $DIR/$o{name}.proxy;
    fastcgi_temp_path $DIR/$o{name}.fastcgi;
    uwsgi_temp_path $DIR/$o{name}.uwsgi;
    scgi_temp_path $DIR/$o{name}.scgi;

$o{http}}
CONF
    return $conf;
}

sub mock_conf {
    my ($port) = @_;
    return main_conf(name => 'mock', workers => 1, http => <<"CONF");
    default_type application/json;

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
    fanbase_zone zone=fb:16m;

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
        location = /ref/status {
            default_type application/json;
            add_header X-Fanbase-Cache HIT;
            return 200 '$DONE_EDGE';
        }
        location = /ref/queue {
            proxy_pass http://mock$QUEUE;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header AccessToken "$TOKEN";
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


# --- the run --------------------------------------------------------------

sub preflight {
    -x $NGINX or fail("$NGINX not found: run 'make deps'");
    -f $MODULE or fail("$MODULE not found: run 'make'");
    system("command -v $WRK >/dev/null") == 0 or fail("wrk not found: run 'make deps'");
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
    $m{mem} = sprintf '%.1f GiB', $1 / 1024 / 1024
        if slurp('/proc/meminfo') =~ /^MemTotal:\s+(\d+) kB/m;
    $m{load} = join " ", (split " ", slurp("/proc/loadavg"))[0 .. 2];
    $m{date} = strftime('%Y-%m-%d %H:%M UTC', gmtime);
    return \%m;
}

sub main {
    preflight();
    my $t0 = time;
    my $m = machine();

    $DIR = tempdir(TMPDIR => 1, CLEANUP => 0);
    chmod 0755, $DIR;
    spew("$DIR/secret", "bench-secret\n");
    spew("$DIR/secret-slow", "slow-secret\n");

    my %port = map { $_ => free_port() } qw(mock edge slow mem);
    my $edge = "http://127.0.0.1:$port{edge}";

    printf "bench: %s, %s CPUs (%s); nginx %s, %s, yajl %s\n",
        $m->{date}, $m->{nproc}, $m->{cpu}, $m->{nginx}, $m->{libcurl},
        $m->{yajl_deb};
    printf "bench: %d workers; wrk -t%d -c%d, %d rounds of %d s, alternating"
        . " ours and the reference; directory %s\n", $P{workers}, $P{threads},
        $P{connections}, $P{rounds}, $P{duration}, $DIR;

    # the fast mock, the edge, the slow mock
    my $mock = start_nginx('mock', mock_conf($port{mock}));
    wait_port($port{mock}, $mock, 'mock nginx', "$DIR/mock.error.log");

    my $slow = spawn('slow mock', "$DIR/slow.out", 'perl', $MOCK,
                     '--listen', "127.0.0.1:$port{slow}",
                     '--client', 'bench-slow:slow-secret',
                     '--keep-requests', 1000, '--log', "$DIR/slow.log");
    wait_port($port{slow}, $slow, 'slow mock (t/mock_fanbase.pl)', "$DIR/slow.out");

    my $edge_pid = start_nginx('edge', edge_conf(port => $port{edge},
        mock => $port{mock}, slow => $port{slow}));
    wait_port($port{edge}, $edge_pid, 'edge nginx', "$DIR/edge.error.log");

    my %row;

    # (3) token cold start: the very first requests the edge sees
    {
        phase('token cold start');
        print "\n== token cold start: $P{burst} concurrent submissions, empty zone\n";
        my $b0 = time;
        my $st = burst($port{edge}, $P{burst}, $QUEUE, $SUBMIT_BODY);
        my $took = time - $b0;
        sleep 0.2;
        my $tokens = () = slurp("$DIR/mock.token.log") =~ m{"POST /api/token}g;
        my $ok = $st->{201} // 0;
        my $answers = join ', ', map { "$_: $st->{$_}" } sort keys %$st;
        printf "   answers: %s (in %.2f s)\n   token requests at the mock: %d\n",
            $answers, $took, $tokens;
        my @errors;
        push @errors, "answers $answers (want $P{burst} x 201)" if $ok != $P{burst};
        $row{cold} = { tokens => $tokens, ok => $ok, errors => \@errors, took => $took,
                       met => $tokens == 1 && !@errors };
    }

    # the edge must answer like the references
    phase('checks of the answers');
    my (@status_check, @submit_check);
    {
        my $first = http($port{edge}, GET => "$QUEUE/$DONE_ID");
        my $second = http($port{edge}, GET => "$QUEUE/$DONE_ID");
        my $ref = http($port{edge}, GET => '/ref/status');
        push @status_check, "status of the completed id: first GET $first->{status}"
            . " (want 200)" unless $first->{status} == 200;
        push @status_check, "status of the completed id: second GET $second->{status} "
            . ($second->{headers}{'x-fanbase-cache'} // 'no X-Fanbase-Cache')
            . ' (want 200 HIT)'
            unless $second->{status} == 200
                && ($second->{headers}{'x-fanbase-cache'} // '') eq 'HIT';
        push @status_check, "ours and the reference answer different bodies:\n"
            . "     ours:      " . ($second->{body} // '') . "\n"
            . "     reference: " . ($ref->{body} // '')
            unless ($second->{body} // '') eq ($ref->{body} // '');
        my $s = http($port{edge}, POST => $QUEUE, type => 'application/json',
                     body => $SUBMIT_BODY);
        my $r = http($port{edge}, POST => '/ref/queue', type => 'application/json',
                     body => $SUBMIT_BODY);
        push @submit_check, "submission: ours $s->{status}, reference $r->{status}"
            . " (want 201 and 201)" unless $s->{status} == 201 && $r->{status} == 201;
        push @submit_check, "submission: ours and the reference answer different bodies"
            unless ($s->{body} // '') eq ($r->{body} // '');
        print "\nbench: CHECK FAILED: $_\n" for @status_check, @submit_check;
    }

    # (1) status of a terminal transaction
    $row{status} = alternate(
        'status, terminal transaction: fanbase_status from the zone vs return 200',
        sub { wrk(duration => shift, url => "$edge$QUEUE/$DONE_ID") },
        sub { wrk(duration => shift, url => "$edge/ref/status") });
    unshift @{ $row{status}{errors} }, @status_check;

    # (2) submission
    $row{submit} = alternate(
        'submission: fanbase_submit vs proxy_pass (AccessToken, keepalive), same mock',
        sub { wrk(duration => shift, post => 1, url => "$edge$QUEUE") },
        sub { wrk(duration => shift, post => 1, url => "$edge/ref/queue") });
    unshift @{ $row{submit}{errors} }, @submit_check;

    # (4) no blocking
    {
        # the slow credential set gets its token first, then every
        # submission takes $P{slow_ms}
        my $r = http($port{edge}, POST => "/slow$QUEUE", type => 'application/json',
                     body => $SUBMIT_BODY);
        my @pre = $r->{status} == 201 ? ()
                : ("a submission to the slow mock answered $r->{status}");
        mock_admin($port{slow}, POST => '/_mock/faults',
                   qq({"queue_post":{"delay_ms":$P{slow_ms}}}));

        my $loaded = sub {
            my $d = shift;
            my $bg = wrk_start(threads => 1, connections => $P{inflight},
                               duration => 3600, timeout => '30s', post => 1,
                               url => "$edge/slow$QUEUE");
            sleep 0.5;
            my $in0 = inflight($port{slow});
            my $res = wrk(duration => $d, url => "$edge$QUEUE/$DONE_ID");
            my $in1 = inflight($port{slow});
            my $bgr = wrk_finish($bg);
            $res->{extra} = "in flight: $in0 at the start, $in1 at the end";
            push @{ $res->{errors} }, map { "background submissions: $_" }
                grep { !/no Requests/ } @{ $bgr->{errors} };
            push @{ $res->{errors} }, "only $in0 and $in1 submissions in flight"
                if $in0 < 0.95 * $P{inflight} || $in1 < 0.95 * $P{inflight};
            # the next measurement starts with nothing in flight anywhere
            my $left = drain($port{slow});
            push @{ $res->{errors} }, "$left submissions still in flight"
                . " $P{slow_ms} ms after the background load stopped" if $left;
            return $res;
        };
        my $idle = sub {
            my $d = shift;
            return wrk(duration => $d, url => "$edge$QUEUE/$DONE_ID");
        };
        $row{block} = alternate(
            "no blocking: status throughput with $P{inflight} submissions in flight"
            . " (Fanbase $P{slow_ms} ms each) vs none", $loaded, $idle);
        unshift @{ $row{block}{errors} }, @pre;
        my $after = mock_admin($port{slow}, GET => '/_mock/stats');
        $row{block}{slow_posts} = $after->{queue_posts};
    }

    # every token request of the run (the edge's main credential set)
    my $tokens_total = () = slurp("$DIR/mock.token.log") =~ m{"POST /api/token}g;
    $row{cold}{tokens_total} = $tokens_total;

    stop($edge_pid, 'QUIT', 15);
    my $edge_log = slurp("$DIR/edge.error.log");
    stop($slow, 'TERM', 10);

    # (5) memory: fill a zone with pending transactions
    {
        phase('memory');
        print "\n== memory: filling a $P{mem_zone} zone with pending transactions\n";
        my $mem = start_nginx('mem', mem_conf(mock => $port{mock}, port => $port{mem}));
        wait_port($port{mem}, $mem, 'memory nginx', "$DIR/mem.error.log");
        my ($count, %ids, $last, @errors) = (0);
        for (1 .. 100_000) {
            $last = http($port{mem}, POST => $QUEUE, type => 'application/json',
                         body => $SUBMIT_BODY);
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
        $row{mem} = { count => $count, bytes => $bytes, zone => $P{mem_zone},
                      errors => [ do { my %u; grep { !$u{$_}++ } @errors } ],
                      per_mb => $count * (1024 * 1024) / ($zone || 1) };
        $row{mem}{met} = defined $bytes && $bytes <= 512 && !@{ $row{mem}{errors} };
        stop($mem, 'QUIT', 15);
    }

    stop($mock, 'QUIT', 15);

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

sub report {
    my ($m, $row, $bad_log, $elapsed) = @_;
    my $N = $P{rounds};
    my @rows;

    my $ratio_row = sub {
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
    };

    my $st = $ratio_row->('status, terminal transaction', $row->{status}, 0.90);
    $st->[4] = '>= 0.90';
    my $sb = $ratio_row->('submission', $row->{submit}, 0.80);
    $sb->[4] = '>= 0.80 (goal 1.00)';
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
    @rows = ($st, $sb, $cold, $bl, $mem);

    my @head = ('row', 'ours', 'reference', "ratio (median of $N, min-max)",
                'target', 'met');
    my $table = '| ' . join(' | ', @head) . " |\n|" . join('|', map { '---' } @head)
              . "|\n";
    $table .= '| ' . join(' | ', @{$_}[0 .. 5]) . " |\n" for @rows;

    my @errors;
    push @errors, map { "status: $_" } @{ $row->{status}{errors} };
    push @errors, map { "submission: $_" } @{ $row->{submit}{errors} };
    push @errors, map { "token cold start: $_" } @{ $c->{errors} };
    push @errors, map { "no blocking: $_" } @{ $row->{block}{errors} };
    push @errors, map { "memory: $_" } @{ $mm->{errors} };
    push @errors, map { "error.log: $_" } @$bad_log;

    my $all_met = !grep { !$_->[6] } @rows;
    my $clean = !@$bad_log;

    print "\n$table\n";
    if (@errors) { print "errors:\n"; print "  $_\n" for @errors; print "\n" }
    printf "token requests by the edge's credential set over the whole run: %d\n",
        $c->{tokens_total};
    printf "bench: %s%s in %.0f s\n", $all_met ? 'every target met'
        : 'some targets missed (see "met")',
        $clean ? '' : '; ALERTS OR CRASHES in error.log (see above)', $elapsed;

    write_doc($m, $table, \@errors, $row) unless $ENV{BENCH_NO_DOC};
    exit($all_met && $clean ? 0 : 1);
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

sub write_doc {
    my ($m, $table, $errors, $row) = @_;
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
    $res .= "### Rounds\n\nStatus, terminal transaction:\n\n"
          . rounds_table($row->{status}, 'ours', 'return 200') . "\n"
          . "Submission:\n\n"
          . rounds_table($row->{submit}, 'ours', 'proxy_pass') . "\n"
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
