#!/usr/bin/perl

# bench/submit_ab.pl: the synchronous submission of two (or more) module
# builds, each against proxy_pass, side by side in one run
# (docs/performance.md, "Two builds' submission, side by side").
#
#   BENCH_MODULES=before=/tmp/before.so,after=$PWD/build/ngx_http_fanbase_module.so \
#       nice perl bench/submit_ab.pl
#
# One edge per module (2 workers each, a zone of BENCH_ZONE, 64m), all in front of one
# Fanbase: an nginx answering every POST "return 201" with the same queue
# item, as make bench's mock does.  Each edge has "fanbase_submit" and
# the reference of make bench's submission row: proxy_pass to the same
# Fanbase with upstream keepalive, the AccessToken header and the same
# Location.  BENCH_ROUNDS (15) times, every measurement once (each
# build's fanbase_submit and proxy_pass), in an order rotated every
# round; each one wrk with 64 connections for BENCH_SECONDS (2); no
# access log, as in make bench (a log line a request, the same for both,
# would bring every ratio closer to 1).  At the
# end, per build, the median of its per-round ratios fanbase_submit /
# its own proxy_pass, and the median of the ratios of its
# fanbase_submit to the first build's.  Any non-2xx answer stops it.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";

use FanbaseTest qw(:DEFAULT bench_edges nginx_conf spawn wait_listen
                   free_port slurp);

chdir "$FindBin::Bin/..";

my $ROUNDS  = $ENV{BENCH_ROUNDS} // 15;
my $SECONDS = $ENV{BENCH_SECONDS} // 2;
my $ID      = '0f8fad5b-d9cb-469f-a165-70867728950e';
my $TOKEN   = 'ab-token';

my $fb_port = free_port();
my $fbdir = File::Temp::tempdir('fanbase-ab-XXXXXX', TMPDIR => 1,
                                CLEANUP => 1);

my $created = qq({"id":"$ID","created":"2026-01-01T00:00:00Z","iCode":0,)
    . qq("iMsg":"Objeto criado com sucesso","processDate":null,)
    . qq("processStatus":"pending","processMsg":null});

# Fanbase: token and queue, "return"
my $conf = nginx_conf(dir => $fbdir, name => 'fanbase', workers => 1,
                      error_log_level => 'warn', access_log => 'off',
                      http => <<"HTTP");
    default_type application/json;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$fb_port backlog=4096;
        location = /api/token {
            return 200 '{"access_token":"$TOKEN","token_type":"Bearer","expires_in":3600}';
        }
        location = $QUEUE {
            return 201 '$created';
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

my $http = edge_http(zone => $ENV{BENCH_ZONE} // '64m')
           =~ s/%%MOCK%%/http:\/\/127.0.0.1:$fb_port/gr
           . <<"HTTP";
keepalive_requests 1000000;
upstream fanbase {
    server 127.0.0.1:$fb_port;
    keepalive 64;
}
HTTP

my @edges = bench_edges(
    mock    => undef,
    workers => 2,
    files   => edge_files(),
    http    => $http,
    server  => <<"SERVER",
access_log off;
location = $QUEUE { fanbase_submit; }
location = /proxy$QUEUE {
    proxy_pass http://fanbase$QUEUE;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header AccessToken "$TOKEN";
    add_header Location $QUEUE/$ID;
}
SERVER
    error_log_level => 'warn',
);

sub rate {
    my ($e, $path) = @_;
    my $url = 'http://127.0.0.1:' . $e->{t}->port . $path;
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

# every measurement of a round: [edge, "submit" or "proxy", path]
my @runs = map { ([$_, 'submit', $QUEUE], [$_, 'proxy', "/proxy$QUEUE"]) }
           @edges;

# a warm-up of each (the token fetched, the connections opened)
rate($_->[0], $_->[2]) for @runs;

my (%ratio, %vs_first);
for my $round (1 .. $ROUNDS) {
    my $k = ($round - 1) % @runs;
    my %r;
    for my $m (@runs[$k .. $#runs], @runs[0 .. $k - 1]) {
        $r{ $m->[0]{label} }{ $m->[1] } = rate($m->[0], $m->[2]);
    }
    my $first = $r{ $edges[0]{label} }{submit};
    printf "round %d: %s\n", $round, join('; ', map {
        my $x = $r{ $_->{label} };
        push @{ $ratio{ $_->{label} } }, $x->{submit} / $x->{proxy};
        push @{ $vs_first{ $_->{label} } }, $x->{submit} / $first;
        sprintf '%s %.0f/s, proxy_pass %.0f/s (%.3f)', $_->{label},
                $x->{submit}, $x->{proxy}, $x->{submit} / $x->{proxy};
    } @edges);
}

for my $e (@edges) {
    my @rt = sort { $a <=> $b } @{ $ratio{ $e->{label} } };
    my @vf = sort { $a <=> $b } @{ $vs_first{ $e->{label} } };
    printf "%-8s fanbase_submit / proxy_pass: median %.3f (%.2f-%.2f);"
           . " / %s's fanbase_submit: median %.3f (%.2f-%.2f)\n",
           $e->{label}, median(@rt), $rt[0], $rt[-1],
           $edges[0]{label}, median(@vf), $vf[0], $vf[-1];
}

$_->{t}->stop for @edges;
kill 'QUIT', $fb_pid;

done_testing;
