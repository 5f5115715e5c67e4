#!/usr/bin/perl

# bench/long_poll.pl: what 1000 long polls (GET /transactions/ID?wait=)
# cost a worker while the zone changes, side by side in one run
# (docs/performance.md, "Long polls").
#
#   make module && TEST_NGINX_MODULE=$PWD/build/ngx_http_fanbase_module.so \
#       nice perl bench/long_poll.pl
#
# or, two builds side by side (each its own nginx, measured in turns):
#
#   BENCH_MODULES=before=/tmp/before.so,after=$PWD/build/ngx_http_fanbase_module.so \
#       nice perl bench/long_poll.pl
#
# One nginx worker per module (t/lib/FanbaseTest.pm starts it).  1000
# transactions are created by webhooks and stay "processing"; then,
# BENCH_ROUNDS (2) times, for each module (in turns, the order swapped
# every round), three phases of BENCH_SECONDS (5) each:
#   changes             webhooks that create other transactions, one every
#                       10 ms (each change of the zone moves its counter),
#                       and no long poll
#   changes + waiters   the same, while 1000 clients long-poll each their
#                       own transaction, which does not change
#   waiters             the 1000 long polls, and no change
# For each: the worker's CPU time (utime + stime, /proc/PID/stat, 10 ms
# ticks) per second of the phase, and how many webhooks were applied; at
# the end, per module, the mean of "changes + waiters" minus "changes".
# The waiters run in a child process and go away (their connections
# closed) at the end of their phase.  Lines of TAP from the harness (nginx
# stopped, log clean) end the output.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";

use FanbaseTest qw(:DEFAULT bench_edges cpu_seconds);
use JSON::PP;
use Time::HiRes qw(time sleep);

chdir "$FindBin::Bin/..";

my $ROUNDS  = $ENV{BENCH_ROUNDS} // 2;
my $SECONDS = $ENV{BENCH_SECONDS} // 5;
my $WAITERS = $ENV{BENCH_WAITERS} // 1000;
my @CT = ('Content-Type' => 'application/json');
my $SECRET = webhook_secret();


my $seq = 0;
my $run = $$;    # the same ids in the waiters' child

sub uuid {
    my $n = shift;
    return sprintf '%08x-0000-4000-8000-%012x', $run, $n;
}

sub hook {
    my ($t, $id) = @_;
    my $body = encode_json({ id => $id, status => 'processing' });
    return $t->request(POST => '/hooks/status', body => $body,
        headers => [@CT, sign_webhook(secret => $SECRET,
                                      id => 'msg_lp_' . ++$seq, body => $body)]);
}

# one edge per module (BENCH_MODULES), each with WAITERS transactions that
# stay processing
my @edges = bench_edges(
    mock    => undef,
    workers => 1,
    files   => { %{ edge_files() }, 'hook.secret' => "$SECRET\n" },
    http    => edge_http(zone => '64m'),
    server  => <<"CONF",
fanbase_long_poll 120s;
location /transactions/ { fanbase_transaction; }
location = /hooks/status {
    fanbase_webhook;
    fanbase_webhook_secret_file %%DIR%%/hook.secret;
}
CONF
    error_log_level => 'warn',
);
for my $e (@edges) {
    my $t = $e->{t};
    $t->wait_for(sub { ($e->{pid}) = $t->worker_pids; $e->{pid} })
        or die 'no worker';
    for my $i (1 .. $WAITERS) {
        hook($t, uuid($i))->{status} == 204 or die "webhook $i not applied";
    }
}

# the waiters: a child that holds WAITERS long polls until it is killed
sub start_waiters {
    my $t = shift;
    my $child = fork // die "fork: $!";
    if (!$child) {
        $t->parallel($WAITERS, GET => '/', timeout => 3600,
            raw => sub { 'GET /transactions/' . uuid($_[0] + 1)
                         . "?wait=100 HTTP/1.1\r\nHost: localhost\r\n\r\n" });
        POSIX::_exit(0);
    }
    sleep 1.5;    # all connected and waiting
    return $child;
}

sub stop_waiters {
    my $child = shift;
    kill 'KILL', $child;
    waitpid $child, 0;
    sleep 0.5;
}

sub phase {
    my ($e, $name, $changes) = @_;
    my ($n, $c0, $t0) = (0, cpu_seconds($e->{pid}), time);
    my $next = $t0;
    while (time - $t0 < $SECONDS) {
        if ($changes) {
            hook($e->{t}, uuid(1_000_000 + ++$seq))->{status} == 204 and $n++;
            $next += 0.010;
        } else {
            $next += 0.100;
        }
        my $d = $next - time;
        sleep $d if $d > 0;
    }
    my $secs = time - $t0;
    my $ms = (cpu_seconds($e->{pid}) - $c0) * 1000 / $secs;
    printf "%-8s %-20s %10.1f ms/s %10d\n", $e->{label}, $name, $ms, $n;
    return $ms;
}

printf "%d long polls, %d s per phase, %d rounds\n", $WAITERS, $SECONDS,
       $ROUNDS;
printf "%-8s %-20s %15s %10s\n", 'module', 'phase', 'worker CPU', 'changes';
my %sum;
for my $round (1 .. $ROUNDS) {
    for my $e ($round % 2 ? @edges : reverse @edges) {
        my $a = phase($e, 'changes', 1);
        my $w = start_waiters($e->{t});
        my $b = phase($e, 'changes + waiters', 1);
        my $c = phase($e, 'waiters', 0);
        stop_waiters($w);
        $sum{ $e->{label} } += $b - $a;
    }
}
printf "%-8s the waiters' cost while the zone changes: %.1f ms/s\n",
       $_->{label}, $sum{ $_->{label} } / $ROUNDS for @edges;

$_->{t}->stop for @edges;
done_testing;
