#!/usr/bin/perl

# bench/accept_ab.pl: the asynchronous accept rate of two module builds,
# side by side in one run (docs/performance.md, "Two builds' accept rate").
#
#   BENCH_MODULES=before=/tmp/before.so,after=$PWD/build/ngx_http_fanbase_module.so \
#       nice perl bench/accept_ab.pl
#
# One edge per module (2 workers each, a 512m zone, no state file), both
# delivering to one Fanbase: an nginx answering every POST "return 201"
# with a queue item and every GET "completed".  BENCH_ROUNDS (6) times,
# the edges in turns (the order swapped every round): wrk posts to the
# edge's "fanbase_submit async" for BENCH_SECONDS (5) with 64 connections,
# and the 202s per second are noted; between two measurements, 3 s for the
# deliveries of the last one to settle.  At the end, per module, the median
# of its rates, and the median of the per-round ratios of each to the
# first.  Any non-2xx answer stops the run.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";

use FanbaseTest qw(:DEFAULT bench_edges nginx_conf spawn wait_listen
                   free_port slurp);
use Time::HiRes qw(sleep);

chdir "$FindBin::Bin/..";

my $ROUNDS  = $ENV{BENCH_ROUNDS} // 6;
my $SECONDS = $ENV{BENCH_SECONDS} // 5;
my $DONE_ID = '7c9e6679-7425-40de-944b-e07fc1f90ae7';

my $fb_port = free_port();
my $fbdir = File::Temp::tempdir('fanbase-ab-XXXXXX', TMPDIR => 1,
                                CLEANUP => 1);

# Fanbase: token, queue, status, all "return"
my $conf = nginx_conf(dir => $fbdir, name => 'fanbase', workers => 1,
                      error_log_level => 'warn', access_log => 'off',
                      http => <<"HTTP");
    default_type application/json;
    server {
        listen 127.0.0.1:$fb_port backlog=4096;
        location = /api/token {
            return 200 '{"access_token":"ab-token","token_type":"Bearer","expires_in":3600}';
        }
        location = $QUEUE {
            return 201 '{"id":"\$request_id","created":"2026-01-01T00:00:00Z","iCode":0,"processStatus":0}';
        }
        location $QUEUE/ {
            return 200 '{"id":"$DONE_ID","processStatus":2,"processDate":"2026-01-01T00:00:01Z"}';
        }
    }
HTTP
open my $fh, '>', "$fbdir/fanbase.conf" or die $!;
print $fh $conf;
close $fh;
my $fb_pid = spawn(cmd => ['/usr/sbin/nginx', '-p', "$fbdir/", '-c',
                           "$fbdir/fanbase.conf"],
                   output => "$fbdir/fanbase.out");
my ($state) = wait_listen($fb_port, $fb_pid, 10);
die "fanbase: $state\n" . slurp("$fbdir/fanbase.out")
    unless $state eq 'listening';

my @edges = bench_edges(
    mock    => undef,
    workers => 2,
    files   => edge_files(),
    http    => edge_http(zone => '512m') =~ s/%%MOCK%%/http:\/\/127.0.0.1:$fb_port/gr,
    server  => "location = $QUEUE { fanbase_submit async; }\n",
    error_log_level => 'warn',
);

sub rate {
    my $e = shift;
    my $url = 'http://127.0.0.1:' . $e->{t}->port . $QUEUE;
    my $out = `wrk -t2 -c64 -d${SECONDS}s -s bench/post.lua $url 2>&1`;
    die "wrk: $out" if $out =~ /Non-2xx|Socket errors/;
    my ($r) = $out =~ /Requests\/sec:\s*([\d.]+)/;
    die "wrk: $out" unless $r;
    return $r;
}

sub median {
    my @s = sort { $a <=> $b } @_;
    return @s % 2 ? $s[$#s / 2] : ($s[@s / 2 - 1] + $s[@s / 2]) / 2;
}

my (%rates, %ratios);
for my $round (1 .. $ROUNDS) {
    my %r;
    for my $e ($round % 2 ? @edges : reverse @edges) {
        $r{ $e->{label} } = rate($e);
        sleep 3;
    }
    printf "round %d: %s\n", $round,
           join(', ', map { sprintf '%s %.0f/s', $_->{label},
                                    $r{ $_->{label} } } @edges);
    for my $e (@edges) {
        push @{ $rates{ $e->{label} } }, $r{ $e->{label} };
        push @{ $ratios{ $e->{label} } },
             $r{ $e->{label} } / $r{ $edges[0]{label} };
    }
}

for my $e (@edges) {
    my @rt = sort { $a <=> $b } @{ $ratios{ $e->{label} } };
    printf "%-8s median %.0f 202s/s; / %s: median %.2f (%.2f-%.2f)\n",
           $e->{label}, median(@{ $rates{ $e->{label} } }),
           $edges[0]{label}, median(@rt), $rt[0], $rt[-1];
}

$_->{t}->stop for @edges;
kill 'QUIT', $fb_pid;

done_testing;
