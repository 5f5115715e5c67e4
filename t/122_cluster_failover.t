#!/usr/bin/perl

# The Redis engine (issue 15): a host that dies with its disk loses
# nothing and sells nothing twice.  A runs alone at first: it sends X to
# Fanbase, which holds the POST without answering; Fanbase then answers
# every POST 503 (down) while A accepts eight more, which wait.  B and C
# start; A is killed with kill -9 (master and workers at once) and its
# directory removed.  B and C read A's transactions (pending); when
# Fanbase is back they deliver each of the eight exactly once (one 201,
# nothing after it); X, which A had sent without an answer, ends failed
# delivery_outcome_unknown once A's claim runs out, and is never sent
# again, also after Fanbase answers A's POST (to nobody).
# Skipped when the module is built without fanbase_redis.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;
use FanbaseCluster;

use Time::HiRes qw(time sleep);

skip_without_redis();

# fanbase_timeout 10s: A is killed while its POST of X still waits for an
# answer (it would otherwise end X itself, on its own timeout).
my $c = FanbaseCluster->new(
    timeout => '10s',
    mock    => { processing_after => 60, completed_after => 120 });
my ($A, $B, $C) = $c->hosts;

my $DELIVERED = qr/^(?:processing|completed)$/;
my $TERMINAL  = qr/^(?:completed|failed|cancelled)$/;

$c->redis->start;
$A->start;

# A warm start: a token, and one transaction delivered by A alone.
{
    my $w = $A->numbered(data => { case => 'warm' });
    is($w->{res}{status}, 202, 'warm: accepted on A');
    my $tx = $A->wait_status($w->{id}, $DELIVERED, timeout => 20);
    like($tx && $tx->{status}, $DELIVERED, 'warm: delivered by A');
}

# X: A's POST held at Fanbase, no answer for 20 s.
$A->mock_faults({ queue_post => { delay_ms => 20000, count => 1 } });
my $x = $A->numbered(data => { case => 'unanswered' });
is($x->{res}{status}, 202, 'X: accepted on A');
ok($A->wait_for(sub { scalar $A->posts_for($x->{n}) }, timeout => 5),
   'X: A\'s POST reached Fanbase, which holds it');

# Fanbase down: every POST 503.  A accepts eight, tries, and they wait.
$A->mock_faults({ queue_post => { status => 503 } });
my @work = map { $A->numbered(data => { case => 'queued', k => $_ }) } 1 .. 8;
is(scalar(grep { $_->{res}{status} == 202 } @work), 8,
   'Fanbase down: eight accepted on A');
ok($A->wait_for(sub {
        grep { ($_->{status} // '') eq '503' } map { $A->posts_for($_->{n}) } @work
    }, timeout => 5),
   'Fanbase down: A tried, answered 503');

# B and C start; A dies with its disk.
$B->start;
$C->start;
ok($A->kill9, 'A: kill -9 of its master and workers');
ok($A->remove_dir, 'A: its directory removed');
ok((time - (($A->posts_for($x->{n}))[0]{time} // 0)) < 9,
   'X: A died before its own fanbase_timeout (10 s) could end X');

for my $h ($B, $C) {
    my @pending = grep { $h->tx_status($_->{id}) eq 'pending' } @work;
    is(scalar @pending, 8, $h->name . ': reads A\'s eight transactions, pending');
}
sleep 1;    # Fanbase still down: B and C's tries are refused too

# Fanbase back: B and C deliver the eight, once each.
$B->mock_faults({ queue_post => undef });
for my $s (@work) {
    my $tx = $B->wait_status($s->{id}, $DELIVERED, timeout => 60, interval => 0.2);
    like($tx && $tx->{status}, $DELIVERED, "queued $s->{n}: delivered by B or C")
        or diag(explain($tx));
}
sleep 1.5;
for my $s (@work) {
    like(statuses($B->posts_for($s->{n})), qr/^(?:503,)*201$/,
         "queued $s->{n}: one 201 at Fanbase, nothing sent after it");
    is($C->tx_status($s->{id}), $B->tx_status($s->{id}),
       "queued $s->{n}: C reads what B reads");
}

# X: A's claim runs out; the POST left without an answer: outcome
# unknown, never sent again.
{
    my $tx = $B->wait_status($x->{id}, $TERMINAL, timeout => 90, interval => 0.2);
    is($tx && $tx->{status}, 'failed', 'X: failed') or diag(explain($tx));
    json_like(last_event($tx),
              { event => 'failure', status => 'failed',
                data => { code => 'delivery_outcome_unknown' } },
              'X: delivery_outcome_unknown');
    is($C->tx_status($x->{id}), 'failed', 'X: C reads it failed too');
    ok($B->wait_for(sub { defined(($B->posts_for($x->{n}))[0]{status}) },
                    timeout => 25),
       'X: Fanbase answered A\'s POST (to nobody)');
    sleep 2;
    is(scalar($B->posts_for($x->{n})), 1, 'X: sent once, never again');
    is($B->tx_status($x->{id}), 'failed', 'X: still failed');
}

done_testing;
