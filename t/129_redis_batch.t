#!/usr/bin/perl

# The accepts a worker reads in one turn of its event loop go to Redis as
# one script call, and while one such batch is in Redis the next waits for
# its answer (issue 15, src/ngx_http_fanbase_redis_batch.c): 60 submissions
# at once are 60 transactions, each with its own id, readable, delivered
# once, in fewer calls than transactions; one Idempotency-Key sent 12 times
# at once is one transaction, in a batch or across batches; a batch in
# Redis when Redis dies, and the one waiting behind it, answer the JSON 503
# engine_unavailable with Retry-After, never a hang, and once Redis is back
# submissions are accepted again.
# Skipped when the module is built without fanbase_redis.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;
use FanbaseCluster;

use Time::HiRes qw(time sleep);

skip_without_redis();

my $c = FanbaseCluster->new(
    hosts => 1,
    redis => { appendfsync => 'always' },
    mock  => { processing_after => 60000, completed_after => 120000 });
my ($A) = $c->start;
my $redis = $c->redis;
my @CT = ('Content-Type' => 'application/json');


# create.lua is the only script that calls MSET: once per batch that made
# a transaction
sub batches {
    my ($n) = $redis->cli('INFO', 'commandstats') =~ /cmdstat_mset:calls=(\d+)/;
    return $n // 0;
}

sub first_few { @_ > 10 ? @_[0 .. 9] : @_ }



###########################################################################
# 60 submissions at once: 60 transactions, in fewer calls

{
    my $before = batches();
    my @bodies = map { body_for(case => 'burst', n => $_) } 0 .. 59;
    my @res = $A->parallel(60, POST => $QUEUE, headers => [@CT],
                           body => sub { $bodies[ $_[0] ] }, timeout => 20);
    my @bad = grep { $res[$_]{status} != 202 } 0 .. $#res;
    is(scalar @bad, 0, 'burst: 60 submissions at once, all 202')
        or diag(join ' ', map { "$res[$_]{status} $res[$_]{body}" } first_few(@bad));
    my %ids = map { (tx_id($_) => 1) } @res;
    is(scalar(grep { length } keys %ids), 60, 'burst: 60 transaction ids');
    my $made = batches() - $before;
    ok($made >= 1 && $made < 60, "burst: in fewer calls to Redis ($made)")
        or diag("$made batches for 60 transactions");
    is($redis->cli('EVAL', q{
            local n = 0
            for _, k in ipairs(redis.call('KEYS', '*:due:*')) do
                n = n + redis.call('ZCARD', k)
            end
            return n }, 0), 60, 'burst: 60 transactions scheduled');

    my @read = map { $A->get_tx(tx_id($_)) } @res;
    is(scalar(grep { $_->{status} == 200 && $_->{json}{id} } @read), 60,
       'burst: each one readable');
    is(scalar(grep { $read[$_]{json}{id} eq tx_id($res[$_]) } 0 .. 59), 60,
       'burst: each one under its own id');
    $A->delivered_once(\@bodies, 'burst');
}


###########################################################################
# One Idempotency-Key 12 times at once: one transaction, one POST

{
    my $key = 'batch-key-' . int(rand 1e9);
    my $body = body_for(case => 'batch-key');
    my @res = $A->parallel(12, POST => $QUEUE, body => $body,
                           headers => [@CT, 'Idempotency-Key' => $key]);
    is(scalar(grep { $_->{status} == 202 } @res), 12, 'one key 12 times: all 202');
    my %ids = map { (tx_id($_) => 1) } @res;
    is(scalar keys %ids, 1, 'one key 12 times: one transaction id')
        or diag(join ' ', keys %ids);
    $A->delivered_once([$body], 'one key 12 times');

    my $res = $A->submit(body => body_for(case => 'batch-key', other => 1),
                         key => $key);
    error_ok($res, 422, 'idempotency_key_reused', 'the key, another body');
}


###########################################################################
# Redis dies with a batch in it and another waiting: every one a JSON 503

{
    kill STOP => $redis->pid;
    my $t0 = time;
    my $wait = $A->background(sub {
        my @res = $A->parallel(8, POST => $QUEUE, headers => [@CT],
            body => sub { body_for(case => 'dies', n => $_[0]) }, timeout => 30);
        return join "\n", map {
            join ' ', $_->{status}, ref $_->{json} eq 'HASH'
                && ref $_->{json}{error} eq 'HASH'
                ? $_->{json}{error}{code} : '-',
                $_->{headers}{'retry-after'} // '-' } @res;
    });
    sleep 0.5;
    $redis->kill9;
    my ($out) = $wait->();
    my @lines = split /\n/, $out // '';
    is(scalar @lines, 8, 'redis dies: 8 answers');
    is(scalar(grep { /^503 engine_unavailable \d+$/ } @lines), 8,
       'redis dies: each a 503 engine_unavailable with Retry-After')
        or diag($out);
    ok(time - $t0 < 15, 'redis dies: answered at once, no hang');

    $redis->restart;
    ok($A->wait_for(sub { tx_id($A->submit(body => body_for(case => 'back')))
                    }, timeout => 20, interval => 0.3),
       'redis back: submissions accepted again');
}

done_testing();
