#!/usr/bin/perl

# Deliveries wait for a token fetch under way: while the token endpoint
# takes its time (8 s), the jobs of the delivery scheduler keep their places
# and wait for the fetch, as requests do, instead of giving their place
# back and coming back 100 ms later (with a token endpoint that never
# answered and a stream of submissions, bench/instructions.sh measured that
# at 370,000 instructions per acceptance instead of 16,000).  Here: the
# submissions accepted meanwhile cost no more than with the token there,
# one token request is made, and once the token comes every transaction is
# delivered exactly once.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;

use Time::HiRes qw(time sleep);

my $N = 2000;

my $t = FanbaseTest->new(
    mock    => { clients => ['demo-client:demo-secret'],
                 processing_after => 600, completed_after => 1200 },
    files   => edge_files(),
    workers => 1,
    http    => edge_http(timeout => '10s', zone => '16m'),
    server  => <<"CONF",
location = $QUEUE { fanbase_submit async; }
location /transactions/ { fanbase_transaction; }
CONF
);
$t->start;

# the first token request is answered after 8 s
$t->mock_faults({ token => { delay_ms => 8000, count => 1 } });

my ($worker) = $t->worker_pids;

# submissions while the token is fetched, and the worker's CPU for them
sub burst {
    my ($first) = @_;
    my $c0 = FanbaseTest::cpu_seconds($worker);
    my $accepted = 0;
    for my $batch (0 .. $N / 1000 * 10 - 1) {
        my @res = $t->parallel(100, POST => $QUEUE,
            headers => ['Content-Type' => 'application/json'],
            body    => sub { body_for(n => $first + $batch * 100 + $_[0]) });
        $accepted += grep { $_->{status} == 202 } @res;
    }
    return ($accepted, FanbaseTest::cpu_seconds($worker) - $c0);
}

my ($accepted, $cpu) = burst(1);
is($accepted, $N, "$N submissions accepted while the token is fetched");

# then every one is delivered, once
# then every one is delivered, once
my $ok = $t->wait_for(sub { scalar @{ $t->queue_posts } >= $N },
                      timeout => 30);
ok($ok, 'once the token came, every transaction was delivered');
sleep 0.5;
my %seen;
$seen{ $_->{body} }++ for @{ $t->queue_posts };
is(scalar(grep { $_ > 1 } values %seen), 0, 'none was sent twice');
is(scalar(keys %seen), $N, "$N different bodies at the mock");

is(scalar @{ $t->mock_requests(path => '/api/token') }, 1,
   'one token request');

# the same number of submissions with the token there and Fanbase slow
# (deliveries parked at fanbase_deliver_concurrency): what accepting costs
# alone; while the token was fetched it must not cost much more
$t->mock_faults({ queue_post => { delay_ms => 6000 } });
my ($accepted2, $cpu2) = burst($N + 1);
is($accepted2, $N, "$N more accepted with the token there");
cmp_ok($cpu, '<', 2 * $cpu2 + 0.2,
       sprintf('accepting while the token was fetched cost %.2f s of CPU, '
               . 'with it there %.2f s: no spinning', $cpu, $cpu2));

$t->stop;

done_testing;
