#!/usr/bin/perl

# bench/webhook_reject.pl: what a webhook that is refused costs the edge,
# by what is wrong with it, side by side in one run (docs/performance.md,
# "Refused webhooks").
#
#   make module && TEST_NGINX_MODULE=$PWD/build/ngx_http_fanbase_module.so \
#       nice perl bench/webhook_reject.pl
#
# One nginx worker (t/lib/FanbaseTest.pm starts it), a fanbase_webhook
# location with 1 and one with 8 secrets, client_max_body_size 1m.  For
# each kind of refusal, BENCH_N (200) requests with a 1 MB body (and one
# row with a 200-byte body), one after another; the worker's CPU time
# (utime + stime, /proc/PID/stat) over them divided by their number.  A
# line of TAP from the harness (nginx stopped, log clean) ends the output.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";

use FanbaseTest;
use POSIX qw(sysconf _SC_CLK_TCK);
use Time::HiRes qw(time);

chdir "$FindBin::Bin/..";

my $N = $ENV{BENCH_N} // 200;
my $HZ = sysconf(_SC_CLK_TCK);
my @CT = ('Content-Type' => 'application/json');

my @secrets = map { webhook_secret() } 1 .. 8;
my %files = (%{ edge_files() },
             map { ("hook$_.secret" => "$secrets[$_ - 1]\n") } 1 .. 8);
my $eight = join "\n    ",
            map { "fanbase_webhook_secret_file %%DIR%%/hook$_.secret;" } 1 .. 8;

my $t = FanbaseTest->new(
    mock    => undef,
    workers => 1,
    files   => \%files,
    http    => edge_http(),
    server  => <<"CONF",
client_max_body_size 1m;
client_body_buffer_size 16k;
location = /one {
    fanbase_webhook;
    fanbase_webhook_secret_file %%DIR%%/hook1.secret;
}
location = /eight {
    fanbase_webhook;
    $eight
}
CONF
);
$t->start;
my ($pid) = $t->worker_pids;

sub cpu {
    open my $fh, '<', "/proc/$pid/stat" or die "/proc/$pid/stat: $!";
    my @f = split ' ', (<$fh> =~ s/^.*\) //r);
    return ($f[11] + $f[12]) / $HZ;
}

my $big = '{"id":"x","status":"processing","pad":"' . ('x' x (1024 * 1024 - 64))
        . '"}';
my $small = '{"id":"7d1c7a4e-8f1b-4a57-9b43-3c1f2a9e6b10","status":"processing"}';
my $wrong = 'v1,' . ('A' x 43) . '=';

my @rows = (
    ['no signature headers',            '/eight', $big,   sub { () }],
    ['timestamp outside the tolerance', '/eight', $big,
        sub { ('webhook-id' => 'msg_1', 'webhook-timestamp' => time - 3600,
               'webhook-signature' => $wrong) }],
    ['signature not v1,<base64>',       '/eight', $big,
        sub { ('webhook-id' => 'msg_1', 'webhook-timestamp' => int time,
               'webhook-signature' => 'v1,not-a-signature') }],
    ['well-formed wrong signature, 1 secret', '/one', $big,
        sub { ('webhook-id' => 'msg_1', 'webhook-timestamp' => int time,
               'webhook-signature' => $wrong) }],
    ['well-formed wrong signature, 8 secrets', '/eight', $big,
        sub { ('webhook-id' => 'msg_1', 'webhook-timestamp' => int time,
               'webhook-signature' => $wrong) }],
    ['well-formed wrong signature, 8 secrets, 200-byte body', '/eight', $small,
        sub { ('webhook-id' => 'msg_1', 'webhook-timestamp' => int time,
               'webhook-signature' => $wrong) }],
);

printf "%-55s %8s %12s\n", 'refused webhook (' . $N . ' each)', 'status',
       'worker CPU';
for my $row (@rows) {
    my ($name, $path, $body, $headers) = @$row;
    my %status;
    my $c0 = cpu();
    for (1 .. $N) {
        my $res = $t->request(POST => $path, headers => [@CT, $headers->()],
                              body => $body);
        $status{ $res->{status} }++;
    }
    my $c1 = cpu();
    printf "%-55s %8s %9.3f ms\n", $name, join(',', sort keys %status),
           ($c1 - $c0) * 1000 / $N;
}

$t->stop;
