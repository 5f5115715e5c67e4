#!/usr/bin/perl

# The Redis engine (issue 15): three edges A, B and C share one Redis in
# front of one Fanbase (the mock), and act as one.  A cold start under
# load on the three fetches one token; a transaction accepted on A is read
# on B and C at once, with the same body and ETag (If-None-Match with A's
# ETag is 304 on C); one Idempotency-Key sent to A and B at the same moment
# is one transaction and one POST at Fanbase, another body with that key
# 422 on any host; one webhook id delivered to A and B at the same moment
# is applied once, and is still known to C afterwards; long polls on B
# (on both its workers) return within 100 ms of a change applied on A.
# Skipped when the module is built without fanbase_redis.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;
use FanbaseCluster;

use JSON::PP;
use List::Util qw(max);
use Time::HiRes qw(time sleep);

skip_without_redis();

my $JSON = JSON::PP->new->canonical;

# Fanbase keeps its queue items pending for a minute: a delivered
# transaction stays processing until a webhook moves it.
my $c = FanbaseCluster->new(
    mock => { processing_after => 60, completed_after => 120 });
my ($A, $B, $C) = $c->start;
my @HOSTS = ($A, $B, $C);

my $DELIVERED = qr/^(?:processing|completed)$/;


# Helpers


sub first_few { @_ > 10 ? @_[0 .. 9] : @_ }

# The transaction reaches processing, as read on $h.
sub processing_on {
    my ($h, $id) = @_;
    my $tx = $h->wait_status($id, $DELIVERED, timeout => 20, interval => 0.1);
    return $tx && $tx->{status} eq 'processing' ? $tx : undef;
}

# The headers of a Standard Webhooks message signed with the hosts' secret.
sub signed {
    my ($id, $body) = @_;
    return [@CT, sign_webhook(secret => $c->hook_secret, id => $id,
                              body => $body)];
}

sub update_body {
    my ($id, $status) = @_;
    return $JSON->encode({ id => $id, status => $status,
                           note => 'n' . int(rand 1e9) });
}

sub n_events {
    my ($h, $id) = @_;
    my $tx = $h->tx($id);
    return $tx ? scalar @{ $tx->{events} || [] } : -1;
}


###########################################################################
# A cold start under load: 150 submissions at once, 50 to each host, on a
# Fanbase that has issued no token: one token request for the three.

{
    my @res = $A->parallel(150, POST => $QUEUE, headers => [@CT],
        port => sub { $HOSTS[ $_[0] % 3 ]->port },
        body => sub { body_for(case => 'cold', n => $_[0]) },
        timeout => 30);
    my @bad = grep { $res[$_]{status} != 202 } 0 .. $#res;
    is(scalar @bad, 0, 'cold start: 150 submissions on three hosts, all 202')
        or diag(join ' ', map { "$res[$_]{status}" } first_few(@bad));
    $A->delivered_once([ map { body_for(case => 'cold', n => $_) } 0 .. 149 ],
                   'cold start');
    is($A->mock_stats->{token_requests}, 1,
       'cold start: one token request for the three hosts');
    my %tokens;
    for my $p (@{ $A->queue_posts }) {
        $tokens{$_} = 1 for @{ $p->{headers}{accesstoken} || [] };
    }
    is(scalar keys %tokens, 1, 'cold start: every POST with that one token');
}


###########################################################################
# Accepted on A, read on B and C: at once, with the same body and ETag
# while it is pending (its POST held 1 s at Fanbase) and once delivered.

{
    $A->mock_faults({ queue_post => { delay_ms => 1000, count => 1 } });
    my $body = body_for(case => 'read anywhere');
    my $id = tx_id($A->submit(body => $body, status => 202,
                              name => 'accepted on A: 202'));
    my @r = map { $_->get_tx($id) } @HOSTS;
    for my $i (1, 2) {
        my $n = $HOSTS[$i]->name;
        is($r[$i]{status}, 200, "accepted on A: read on $n at once");
        is($r[$i]{json} && $r[$i]{json}{id}, $id, "accepted on A: $n: its id");
        is($r[$i]{body}, $r[0]{body}, "accepted on A: $n: the same body as A")
            or diag("A: $r[0]{body}\n$n: $r[$i]{body}");
        ok(defined $r[$i]{headers}{etag}
           && $r[$i]{headers}{etag} eq ($r[0]{headers}{etag} // ''),
           "accepted on A: $n: the same ETag as A")
            or diag("A: " . ($r[0]{headers}{etag} // 'none')
                    . " $n: " . ($r[$i]{headers}{etag} // 'none'));
    }
    is($r[0]{json} && $r[0]{json}{status}, 'pending',
       'accepted on A: pending while its POST is held');

    ok(processing_on($C, $id), 'accepted on A: delivered (processing on C)');
    @r = map { $_->get_tx($id) } @HOSTS;
    is($r[0]{json} && $r[0]{json}{status}, 'processing',
       'delivered: processing on A');
    for my $i (1, 2) {
        my $n = $HOSTS[$i]->name;
        is($r[$i]{body}, $r[0]{body}, "delivered: $n: the same body as A");
        is($r[$i]{headers}{etag}, $r[0]{headers}{etag},
           "delivered: $n: the same ETag as A");
    }
    isnt($r[0]{headers}{etag}, undef, 'delivered: an ETag');
    is($C->get_tx($id, inm => $r[0]{headers}{etag})->{status}, 304,
       'delivered: If-None-Match with A\'s ETag on C: 304');
    $A->delivered_once([$body], 'accepted on A');
}


###########################################################################
# One Idempotency-Key sent to A and B at the same moment, five times;
# then one key 20 times at once over the three hosts.  One transaction
# each, one POST each; another body with the key: 422 on any host, never
# sent.

{
    my @keys;
    for my $round (1 .. 5) {
        my $key = "cluster-$round-" . int(rand 1e9);
        my $body = body_for(case => 'idempotent', round => $round);
        my @res = $A->parallel(2, POST => $QUEUE, body => $body,
            headers => [@CT, 'Idempotency-Key' => $key],
            port => sub { ($A, $B)[ $_[0] ]->port });
        is(join(',', map { $_->{status} } @res), '202,202',
           "key at once on A and B ($round): both 202");
        ok(tx_id($res[0]) && tx_id($res[0]) eq tx_id($res[1]),
           "key at once on A and B ($round): one transaction id")
            or diag(tx_id($res[0]) . ' ' . tx_id($res[1]));
        push @keys, { key => $key, body => $body, id => tx_id($res[0]) };
    }
    {
        my $key = 'cluster-20-' . int(rand 1e9);
        my $body = body_for(case => 'idempotent', round => 20);
        my @res = $A->parallel(20, POST => $QUEUE, body => $body,
            headers => [@CT, 'Idempotency-Key' => $key],
            port => sub { $HOSTS[ $_[0] % 3 ]->port });
        is(scalar(grep { $_->{status} == 202 } @res), 20,
           'one key 20 times at once on three hosts: all 202');
        my %ids = map { (tx_id($_) => 1) } @res;
        is(scalar keys %ids, 1,
           'one key 20 times at once on three hosts: one transaction id')
            or diag(join ' ', keys %ids);
        push @keys, { key => $key, body => $body, id => tx_id($res[0]) };
    }
    $A->delivered_once([ map { $_->{body} } @keys ], 'idempotency keys');

    my $k = $keys[0];
    my $other = body_for(case => 'idempotent', round => 1, other => 1);
    for my $h ($C, $A) {
        my $res = $h->submit(body => $other, key => $k->{key});
        error_ok($res, 422, 'idempotency_key_reused',
                 'the key, another body, on ' . $h->name);
    }
    my $res = $B->submit(body => $k->{body}, key => $k->{key});
    is($res->{status}, 202, 'the key, the same body, on B: 202');
    is(tx_id($res), $k->{id}, 'the key, the same body, on B: the same id');
    sleep 1;
    is($A->posts_with($other), 0, 'the 422 body never reached Fanbase');
    is($A->posts_with($k->{body}), 1, 'the repeat sent nothing more');
}


###########################################################################
# Webhooks: one id delivered to A and B at the same moment is applied
# once; C knows it afterwards; one id for two transactions at once on A
# and B applies exactly one.

{
    my @ids;
    for my $h (@HOSTS) {
        push @ids, tx_id($h->submit(data => { case => 'hook', on => $h->name },
                                    status => 202,
                                    name => 'hook: accepted on ' . $h->name));
    }
    ok(!grep({ !processing_on($B, $_) } @ids),
       'hook: three transactions delivered (processing)');
    my ($x, $y, $z) = @ids;

    my $msg = new_msg_id();
    my $body = update_body($x, 'completed');
    my $before = n_events($C, $x);
    my @res = $A->parallel(2, POST => '/hooks/status', body => $body,
        headers => signed($msg, $body),
        port => sub { ($A, $B)[ $_[0] ]->port });
    is(join(',', map { $_->{status} } @res), '204,204',
       'one webhook id on A and B at once: both 204');
    my $tx = $C->tx($x);
    is($tx && $tx->{status}, 'completed',
       'one webhook id on A and B at once: applied (read on C)');
    is(n_events($C, $x), $before + 1,
       'one webhook id on A and B at once: one event added');

    # the same id again, on C, about another transaction: a duplicate
    my $yb = update_body($y, 'completed');
    my $before_y = n_events($A, $y);
    my $res = $C->request(POST => '/hooks/status', body => $yb,
                          headers => signed($msg, $yb));
    is($res->{status}, 204, 'the same webhook id on C later: 204');
    is($A->tx_status($y), 'processing',
       'the same webhook id on C later: not applied (a duplicate)');
    is(n_events($A, $y), $before_y, 'the same webhook id on C later: no event');

    # one new id, two bodies for two transactions, at once on A and B
    my $msg2 = new_msg_id();
    my @bodies = (update_body($y, 'completed'), update_body($z, 'completed'));
    @res = $A->parallel(2, POST => '/hooks/status',
        body => sub { $bodies[ $_[0] ] },
        headers => sub { signed($msg2, $bodies[ $_[0] ]) },
        port => sub { ($A, $B)[ $_[0] ]->port });
    is(join(',', map { $_->{status} } @res), '204,204',
       'one webhook id, two bodies on A and B at once: both 204');
    my @applied = grep { $C->tx_status($_) eq 'completed' } $y, $z;
    is(scalar @applied, 1,
       'one webhook id, two bodies on A and B at once: exactly one applied')
        or diag(join ' ', map { $C->tx_status($_) } $y, $z);
}


###########################################################################
# Long polls: ten on B's reuseport port (both workers), If-None-Match the
# current ETag; a webhook on A moves the transaction; every poll returns
# 200 with the new status within 100 ms of A's answer.

for my $round (1 .. 2) {
    my $id = tx_id($A->submit(data => { case => 'long poll', round => $round },
                              status => 202,
                              name => "long poll ($round): accepted on A"));
    ok(processing_on($B, $id), "long poll ($round): delivered");
    my $etag = $B->get_tx($id)->{headers}{etag};
    my $lp = $c->lp_port($B);
    my $skip = $B->log_lines('reuseport.log');

    my $polls = $B->background(sub {
        my $t0 = time;
        return map { { status => $_->{status}, end => $t0 + $_->{time},
                       tx => $_->{json} ? $_->{json}{status} : undef } }
               $B->parallel(10, GET => "/transactions/$id?wait=10",
                            port => $lp, timeout => 15,
                            headers => ['If-None-Match' => $etag // '"none"']);
    });
    sleep 0.7;    # the polls are held
    my $res = $A->hook('/hooks/status', update_body($id, 'completed'));
    my $applied = time;
    is($res->{status}, 204, "long poll ($round): the webhook on A: 204");
    my @p = $polls->();
    is(scalar(grep { $_->{status} == 200 && ($_->{tx} // '') eq 'completed' }
              @p), 10,
       "long poll ($round): the ten polls on B answered 200, completed")
        or diag(join ' ', map { "$_->{status}:" . ($_->{tx} // '-') } @p);
    my $lag = max(map { $_->{end} } @p) - $applied;
    cmp_ok($lag, '<', 0.1,
           "long poll ($round): the last returned within 100 ms of A's change")
        or diag(sprintf 'lag %.3f s', $lag);
    my %pids;
    $B->wait_for(sub {
        %pids = $B->log_pids('reuseport.log',
                             qr{^(\d+) GET /transactions/\S+ 200}, from => $skip);
        return keys %pids >= 2;
    }, timeout => 2);
    is(scalar keys %pids, 2, "long poll ($round): held by both of B's workers")
        or diag('pids: ' . join ' ', keys %pids);
}

done_testing;
