#!/usr/bin/perl

# bench/idle_backlog.pl: what a backlog of pending transactions costs the
# workers while Fanbase and its token endpoint are down and no client
# sends anything (docs/performance.md, "An idle backlog").
#
#   make module && TEST_NGINX_MODULE=$PWD/build/ngx_http_fanbase_module.so \
#       nice perl bench/idle_backlog.pl
#
# or, two builds side by side (each its own nginx, measured in turns):
#
#   BENCH_MODULES=before=/tmp/before.so,after=$PWD/build/ngx_http_fanbase_module.so \
#       nice perl bench/idle_backlog.pl
#
# Each edge: 2 workers, a 512m zone without a state file, Fanbase's API
# and token endpoint down: with BENCH_DOWN=refused, where nothing listens
# (connection refused at once); with BENCH_DOWN=silent (the default), at a
# listener that never accepts and whose queue is full, so that every
# connect waits for fanbase_connect_timeout (5 s), as with a host that
# drops packets.  wrk posts
# to "fanbase_submit async" for BENCH_FILL seconds (5) with 64 connections;
# every 202 is a pending transaction.  After BENCH_SETTLE seconds (60: the
# retries of the first minutes, whose backoffs are short, are part of the
# cost), BENCH_ROUNDS (3) times, for
# each edge in turns: the CPU time (utime + stime, /proc/PID/stat) of its
# two workers over BENCH_SECONDS (10), with no client traffic, in ms per
# second (1000 = one core).  Lines of TAP from the harness (nginx stopped,
# log clean) end the output.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";

use FanbaseTest qw(:DEFAULT bench_edges cpu_seconds);
use IO::Socket::INET;
use Time::HiRes qw(time sleep);

chdir "$FindBin::Bin/..";

my $ROUNDS  = $ENV{BENCH_ROUNDS} // 3;
my $SECONDS = $ENV{BENCH_SECONDS} // 10;
my $FILL    = $ENV{BENCH_FILL} // 5;
my $SETTLE  = $ENV{BENCH_SETTLE} // 60;
my $DOWN    = $ENV{BENCH_DOWN} // 'silent';

# Fanbase: nothing (refused), or a listener that never accepts (silent)
my ($fanbase, $hole, @queued) = ('%%MOCK%%');
if ($DOWN eq 'silent') {
    $hole = IO::Socket::INET->new(Listen => 0, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, ReuseAddr => 1)
        or die "listen: $!";
    for (1 .. 8) {
        my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1:'
                                                  . $hole->sockport,
                                      Blocking => 0);
        push @queued, $c if $c;
    }
    $fanbase = 'http://127.0.0.1:' . $hole->sockport;
} elsif ($DOWN ne 'refused') {
    die "BENCH_DOWN is silent or refused\n";
}
# one edge per module (BENCH_MODULES), each filled with pending ones
my @edges = bench_edges(
    mock    => undef,
    workers => 2,
    files   => edge_files(),
    http    => (edge_http(zone => '512m') =~ s/%%MOCK%%/$fanbase/gr)
               . "fanbase_deliver_horizon 24h;\n"
               . "fanbase_connect_timeout 5s;\n",
    server  => "location = $QUEUE { fanbase_submit async; }\n",
    error_log_level => 'error',
    log_allow => qr/\[error\]/,
);
for my $e (@edges) {
    my ($t, $label) = @$e{qw(t label)};
    my @pids;
    $t->wait_for(sub { @pids = $t->worker_pids; @pids == 2 })
        or die 'no workers';

    my $out = `wrk -t2 -c64 -d${FILL}s -s bench/post.lua http://127.0.0.1:${\ $t->port}$QUEUE 2>&1`;
    my ($n) = $out =~ /(\d+) requests in/;
    die "wrk: $out" unless $n && $out !~ /Non-2xx/;
    printf "%-8s %d pending transactions\n", $label, $n;
    @$e{qw(pids n)} = (\@pids, $n);
}

sleep $SETTLE;

printf "Fanbase down: %s\n", $DOWN;
printf "%-8s %-8s %25s\n", 'module', 'round', "workers' CPU, no traffic";
my %sum;
for my $round (1 .. $ROUNDS) {
    for my $e ($round % 2 ? @edges : reverse @edges) {
        my ($c0, $t0) = (cpu_seconds(@{ $e->{pids} }), time);
        sleep $SECONDS;
        my $ms = (cpu_seconds(@{ $e->{pids} }) - $c0) * 1000 / (time - $t0);
        printf "%-8s %-8d %20.1f ms/s\n", $e->{label}, $round, $ms;
        $sum{ $e->{label} } += $ms;
    }
}
printf "%-8s %d pending: %.1f ms/s of the workers' CPU (mean), %.1f%% of a "
       . "core\n", $_->{label}, $_->{n}, $sum{ $_->{label} } / $ROUNDS,
       $sum{ $_->{label} } / $ROUNDS / 10 for @edges;

$_->{t}->stop for @edges;
done_testing;
