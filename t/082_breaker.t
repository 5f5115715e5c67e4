#!/usr/bin/perl

# The delivery breaker: while Fanbase answers 503 (or its token endpoint
# fails), the pending transactions of its route wait parked and one probe
# at a time goes out on a backoff (1 s, 2 s, 4 s ...), instead of every
# transaction trying on its own backoff; once Fanbase answers, they are
# delivered in the order they were accepted, each exactly once.  The error
# log says when deliveries start to wait and when they resume.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;

use JSON::PP;
use Time::HiRes qw(time sleep);

my $N = 30;

my $t = FanbaseTest->new(
    mock    => { clients => ['demo-client:demo-secret'],
                 processing_after => 60, completed_after => 120 },
    files   => edge_files(),
    workers => 1,
    http    => edge_http(timeout => '5s',
                         extra => "fanbase_deliver_concurrency 1;\n"),
    server  => <<"CONF",
location = $QUEUE { fanbase_submit async; }
location /transactions/ { fanbase_transaction; }
CONF
);
$t->start;

# Fanbase's queue refuses everything, until told otherwise
$t->mock_faults({ queue_post => { status => 503 } });

my @subs;
for (1 .. $N) {
    my $s = $t->numbered(status => 202, name => "submission $_: 202");
    push @subs, $s;
}

# 6 s down: with a breaker, about one probe per pause (at most ~5 with
# pauses of 1, 2, 4 s); without one, every transaction tries at once and
# again after its own backoff (60 and more)
sleep 6;

my $tried = scalar @{ $t->queue_posts };
cmp_ok($tried, '>=', 2, "Fanbase down for 6 s: probes went out ($tried)");
cmp_ok($tried, '<=', 8, "... one at a time, on a backoff, not one per "
                        . "transaction ($tried POSTs for $N transactions)");

$t->log_like(qr/\[warn\].*Fanbase did not answer the delivery of transaction "[^"]+": deliveries on its route wait, in order; next probe in 1000 ms/,
             'the error log says deliveries wait');
$t->log_like(qr/next probe in 2000 ms/, 'the second pause is longer');

# every one is still pending, none failed
my $pending = grep {
    my $r = $t->request(GET => "/transactions/$_->{id}");
    $r->{json} && $r->{json}{status} eq 'pending'
} @subs;
is($pending, $N, 'while Fanbase is down, all are pending');

# Fanbase is back: all delivered, in the order they were accepted, once
$t->mock_faults({ queue_post => undef });

ok($t->wait_for(sub {
        my $by = $t->posts_by_n;
        $N == grep { grep { ($_->{status} // '') eq '201' }
                          @{ $by->{ $_->{n} } || [] } } @subs
    }, timeout => 40),
   "Fanbase back: all $N delivered");

my $by = $t->posts_by_n;
my @twice = grep {
    (grep { ($_->{status} // '') eq '201' } @{ $by->{ $_->{n} } || [] }) != 1
} @subs;
is(scalar @twice, 0, 'each delivered exactly once');

my @order = map { $_->{n} }
            sort { $a->{t} <=> $b->{t} }
            map {
                my $n = $_->{n};
                my ($ok) = grep { ($_->{status} // '') eq '201' }
                           @{ $by->{$n} || [] };
                { n => $n, t => $ok ? $ok->{time} : 0 }
            } @subs;
is(join(',', @order), join(',', map { $_->{n} } @subs),
   'delivered in the order they were accepted');

$t->log_like(qr/\[notice\].*Fanbase answers again after \d+ failed probes: \d+ waiting transactions are due, in order/,
             'the error log says deliveries resume');

done_testing;
