#!/usr/bin/perl

# The Redis engine's own machinery (issue 15), on two hosts and one Redis:
# the zone as the L1 cache in front of Redis (a transaction read once is
# answered again without a command to Redis; a change on the other host
# makes the next read go to Redis and see it); scripts that Redis forgot
# (SCRIPT FLUSH) are loaded again and the command answered; while Redis is
# down, a transaction read before answers as last read with
# X-Fanbase-Cache: STALE, one never read answers 503 engine_unavailable, and
# so do a cancellation and a webhook; once Redis is back, fresh answers.
# Skipped when the module is built without fanbase_redis.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;
use FanbaseCluster;

use JSON::PP;
use Time::HiRes qw(time sleep);

skip_without_redis();

my $JSON = JSON::PP->new->canonical;

my $c = FanbaseCluster->new(
    hosts => 2,
    redis => { appendfsync => 'always' },
    mock  => { processing_after => 600, completed_after => 1200 });
my ($A, $B) = $c->start;
my $redis = $c->redis;


# Helpers

# the EVALSHA calls Redis answered so far
sub evalshas {
    my ($n) = $redis->cli('INFO', 'commandstats') =~ /cmdstat_evalsha:calls=(\d+)/;
    return $n // 0;
}

sub update_body {
    my ($id, $status) = @_;
    return $JSON->encode({ id => $id, status => $status,
                           note => 'n' . int(rand 1e9) });
}

sub unavailable_ok {
    my ($res, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($res->{status}, 503, "$name: 503") or diag($res->{body});
    is(ref $res->{json} eq 'HASH' && ref $res->{json}{error} eq 'HASH'
       ? $res->{json}{error}{code} : '', 'engine_unavailable',
       "$name: engine_unavailable");
    like($res->{headers}{'retry-after'} // '', qr/^\d+$/, "$name: Retry-After");
}


###########################################################################
# The L1 cache: a second read costs Redis nothing; a change on B is seen.

my $id = tx_id($A->submit(status => 202, name => 'accepted on A'));
ok($id, 'a transaction');

# delivered first: the delivery would change it under the reads below
like(($A->wait_status($id, 'processing', timeout => 20) || {})->{status} // '',
     qr/^processing$/, 'delivered');

my $first = $A->get_tx($id);
is($first->{status}, 200, 'read on A');
ok(!defined $first->{headers}{'x-fanbase-cache'}, 'read on A: not stale');

my $before = evalshas();
my @again = map { $A->get_tx($id) } 1 .. 20;
my $after = evalshas();

is(scalar(grep { $_->{status} == 200 && $_->{body} eq $first->{body}
                 && $_->{headers}{etag} eq $first->{headers}{etag} } @again),
   20, 'read 20 more times on A: the same body and ETag');
cmp_ok($after - $before, '<=', 2,
       'those 20 reads asked Redis at most once per worker')
    or diag("EVALSHA calls: $before -> $after");

my $hook = $B->hook('/hooks/status', update_body($id, 'completed'));
is($hook->{status}, 204, 'a webhook on B moves it to completed');

my $seen = $A->wait_for(sub { $A->tx_status($id) eq 'completed' },
                        timeout => 2, interval => 0.01);
ok($seen, 'A sees the change at once (its cache was dropped)');
isnt($A->get_tx($id)->{headers}{etag}, $first->{headers}{etag},
     'and a new ETag');


###########################################################################
# Scripts that Redis forgot are loaded again.

my $mark = $A->log_mark;
is($redis->cli('SCRIPT', 'FLUSH'), 'OK', 'SCRIPT FLUSH');

my $id2 = tx_id($A->submit(status => 202, name => 'accepted after SCRIPT FLUSH'));
ok($id2, 'after SCRIPT FLUSH: a transaction');
like($B->tx_status($id2), qr/^(?:pending|processing)$/,
     'after SCRIPT FLUSH: read on B');
like($A->log_since($mark), qr/\[notice\].*does not know the script "create": loading it again/,
     'the error log says the script is loaded again, at notice');


###########################################################################
# Redis down: stale reads from the cache, 503 for the rest.

my $read = $A->get_tx($id);    # in A's cache, as completed
is($read->{status}, 200, 'read before Redis goes');

my $never = tx_id($B->submit(status => 202, name => 'accepted on B, never read on A'));

$redis->kill9;
ok(!$redis->running, 'Redis killed with kill -9');

# every worker of A has noticed (its next command fails at once)
$A->wait_for(sub { $A->get_tx($never)->{status} == 503 }, timeout => 5);

my @stale = map { $A->get_tx($id) } 1 .. 6;
is(scalar(grep { $_->{status} == 200 } @stale), 6,
   'down: a transaction read before answers 200 on every worker')
    or diag(join ' ', map { $_->{status} } @stale);
is(scalar(grep { ($_->{headers}{'x-fanbase-cache'} // '') eq 'STALE' } @stale), 6,
   'down: marked X-Fanbase-Cache: STALE');
is(scalar(grep { $_->{body} eq $read->{body} } @stale), 6,
   'down: as last read');

unavailable_ok($A->get_tx($never), 'down: a transaction never read on A');
unavailable_ok($A->get_tx($id, method => 'DELETE'), 'down: a cancellation');
unavailable_ok($A->hook('/hooks/status', update_body($id, 'completed')),
               'down: a webhook');
unavailable_ok($A->submit, 'down: a submission');

$A->log_like(qr/\[error\].*redis "[^"]+" \((?:commands|subscriber) connection\)/,
             'the error log says Redis does not answer, at error');

$redis->restart;
ok($redis->running, 'Redis started again');

my $back = $A->wait_for(sub {
    my $r = $A->get_tx($never);
    return $r->{status} == 200 ? $r : undef;
}, timeout => 10, interval => 0.1);
ok($back, 'back: a transaction never read on A answers');
my $fresh = $A->get_tx($id);
is($fresh->{status}, 200, 'back: the one read before answers');
ok(!defined $fresh->{headers}{'x-fanbase-cache'}, 'back: not stale');
is($fresh->{json}{status}, 'completed', 'back: as Redis holds it');
$A->log_like(qr/\[notice\].*redis "[^"]+" answers again/,
             'the error log says Redis answers again, at notice');

done_testing;
