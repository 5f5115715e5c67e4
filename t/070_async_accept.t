#!/usr/bin/perl

# fanbase_submit async, the accepting side: 202 with a lower-case UUID v4
# transaction id, its link and Location (under fanbase_transaction_path),
# answered without waiting for Fanbase or a token; the same validation as
# the synchronous mode (405, 415, 413, 400) and nothing of a refused
# submission ever reaches Fanbase; every accepted transaction delivered
# exactly once, also when many arrive at once on both workers;
# Idempotency-Key: a repeat answers the same id and creates nothing (also
# 20 copies at once on both workers), another body is 422, a malformed key
# 400, an expired window a new transaction; a zone full of transactions
# that are not terminal is 503 zone_full with Retry-After and evicts none
# of them, and takes new ones again once some have ended.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;

use Time::HiRes qw(time sleep);


my $TX_PORT = FanbaseTest::free_port();    # fanbase_transaction_path /tx
my $RP_PORT = FanbaseTest::free_port();    # reuseport: connections on both workers

my $t = FanbaseTest->new(
    mock   => { clients => ['demo-client:demo-secret'],
                processing_after => 0.3, completed_after => 0.6 },
    files  => edge_files(),
    http   => edge_http(timeout => '2s', extra => <<"CONF"),
server {
    listen 127.0.0.1:$TX_PORT;
    fanbase_transaction_path /tx;
    fanbase_idempotency_window 1s;
    location = $QUEUE { fanbase_submit async; }
    location /tx/ { fanbase_transaction; }
}

server {
    listen 127.0.0.1:$RP_PORT reuseport;
    access_log %%DIR%%/workers.log fb_pid;
    location = $QUEUE { fanbase_submit async; }
    location /transactions/ { fanbase_transaction; }
}
CONF
    server => <<"CONF",
location = $QUEUE { fanbase_submit async; }
location /transactions/ { fanbase_transaction; }
location = /small$QUEUE {
    client_max_body_size 1k;
    client_body_buffer_size 1k;
    fanbase_submit async;
}
location = /dead$QUEUE { fanbase_api %%DEAD%%; fanbase_submit async; }
location /dead/transactions/ { fanbase_api %%DEAD%%; fanbase_transaction; }
CONF
);
$t->start;


# Helpers

# the checks of a 202; returns the transaction id
sub accepted_ok {
    my ($res, $name, $prefix) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $prefix //= '/transactions';
    is($res->{status}, 202, "$name: 202")
        or diag("body: $res->{body}" . ($res->{error} ? " ($res->{error})" : ''));
    like($res->{headers}{'content-type'} // '', qr{^application/json\b},
         "$name: Content-Type JSON");
    my $id = ref $res->{json} eq 'HASH' ? $res->{json}{transaction_id} // '' : '';
    like($id, $UUID4, "$name: transaction_id is a lower-case UUID v4");
    is_deeply($res->{json},
              { transaction_id => $id, links => [ { path => "$prefix/$id" } ] },
              "$name: body") or diag("body: $res->{body}");
    is($res->{headers}{location}, "$prefix/$id", "$name: Location");
    return $id;
}

# the transaction reaches the mock, and only once
sub delivered_once {
    my ($body, $name, $tt) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $tt //= $t;
    ok($tt->wait_for(sub { $tt->posts_with($body) >= 1 }, timeout => 10),
       "$name: delivered to Fanbase");
    ok(!$tt->wait_for(sub { $tt->posts_with($body) > 1 }, timeout => 1.5),
       "$name: not delivered a second time");
    is($tt->posts_with($body), 1, "$name: exactly one POST at the mock");
}


###########################################################################
# 202 at once: neither a token nor Fanbase's answer is waited for.

{
    my $body = body_for(case => 'cold', n => 1);
    $t->mock_faults({ token      => { delay_ms => 1500, count => 1 },
                      queue_post => { delay_ms => 1000, count => 1 } });
    my $res = $t->submit(body => $body);
    my $id = accepted_ok($res, 'first submission, slow token and queue');
    cmp_ok($res->{time}, '<', 0.5,
           'first submission: answered without waiting for Fanbase')
        or diag("answered after $res->{time} s");

    my $tx = $t->get_tx($id);
    is($tx->{status}, 200, 'the accepted transaction can be read at its link');
    is($tx->{json}{id}, $id, 'the link reads the same transaction');

    delivered_once($body, 'first submission');
    my ($p) = grep { $_->{body} eq $body } @{ $t->queue_posts };
    my @tokens = @{ $p ? $p->{headers}{accesstoken} || [] : [] };
    is(scalar @tokens, 1, 'first submission: sent with one AccessToken');
    $t->mock_faults({ token => undef, queue_post => undef });
}


###########################################################################
# Validation as in the synchronous mode; nothing refused reaches Fanbase.

{
    my $before = @{ $t->queue_posts };

    my @invalid_json = (
        ['not JSON',         'hello'],
        ['empty body',       ''],
        ['truncated JSON',   '{"action":"ticket-create","data":{'],
        ['trailing comma',   '{"action":"ticket-create","data":{},}'],
        ['trailing garbage', '{"action":"ticket-create","data":{}} garbage'],
        ['two documents',    '{"action":"ticket-create","data":{}}{}'],
    );
    my @invalid_submission = (
        ['array root',      '[{"action":"ticket-create","data":{}}]'],
        ['number root',     '42'],
        ['empty object',    '{}'],
        ['missing action',  '{"data":{}}'],
        ['numeric action',  '{"action":1,"data":{}}'],
        ['missing data',    '{"action":"ticket-create"}'],
        ['data as string',  '{"action":"ticket-create","data":"{}"}'],
        ['data as array',   '{"action":"ticket-create","data":[]}'],
    );

    my @refused_bodies;
    my $refused = sub {
        my ($body) = @_;
        push @refused_bodies, $body;
        return $body;
    };

    $t->run_cases(
        (map { +{
            name    => "async $_: 405",
            request => [$_ => $QUEUE, headers => [@CT],
                        $_ eq 'GET' || $_ eq 'DELETE'
                            ? () : (body => $refused->(body_for(case => '405', n => $_)))],
            error_case(405, 'method_not_allowed', allow => 'POST'),
        } } qw(GET PUT DELETE PATCH)),
        {
            name    => 'async HEAD: 405',
            request => [HEAD => $QUEUE],
            status  => 405,
            headers => { allow => 'POST' },
        },
        {
            name    => 'async, no Content-Type: 415',
            request => [POST => $QUEUE,
                        body => $refused->(body_for(case => '415', n => 'none'))],
            error_case(415, 'unsupported_media_type'),
        },
        {
            name    => 'async, text/plain: 415',
            request => [POST => $QUEUE, headers => ['Content-Type' => 'text/plain'],
                        body => $refused->(body_for(case => '415', n => 'text'))],
            error_case(415, 'unsupported_media_type'),
        },
        {
            name    => 'async, body of client_max_body_size + 1: 413',
            request => [POST => "/small$QUEUE", headers => [@CT],
                        body => $refused->(padded(1025))],
            error_case(413, 'body_too_large'),
        },
        (map { +{
            name    => "async, $_->[0]: 400 invalid_json",
            request => [POST => $QUEUE, headers => [@CT],
                        body => $refused->($_->[1])],
            error_case(400, 'invalid_json'),
        } } @invalid_json),
        (map { +{
            name    => "async, $_->[0]: 400 invalid_submission",
            request => [POST => $QUEUE, headers => [@CT],
                        body => $refused->($_->[1])],
            error_case(400, 'invalid_submission'),
        } } @invalid_submission),
    );

    # malformed Idempotency-Key: 400, nothing created
    my @bad_keys = (
        ['empty',                  ''],
        ['256 characters',         'k' x 256],
        ['a control character',    "abc\x01def"],
        ['DEL',                    "abc\x7fdef"],
        ['a space inside',         'abc def'],
        ['non-ASCII (UTF-8)',      "cl\xc3\xa9"],
    );
    $t->run_cases(map { +{
        name    => "Idempotency-Key $_->[0]: 400",
        request => [POST => $QUEUE,
                    headers => [@CT, 'Idempotency-Key' => $_->[1]],
                    body => $refused->(body_for(case => 'bad-key', n => $_->[0]))],
        error_case(400, 'invalid_idempotency_key'),
    } } @bad_keys);

    # a valid submission after them: once it has arrived, nothing else has
    my $marker = body_for(case => 'after refusals', n => 1);
    my $res = $t->submit(body => $marker);
    accepted_ok($res, 'a valid submission after the refused ones');
    delivered_once($marker, 'after refusals');
    my $all = $t->queue_posts;
    my @new = @$all[$before .. $#$all];
    is(scalar @new, 1, 'refused submissions: none reached Fanbase')
        or diag(explain([map { $_->{body} } @new]));
    my %refused = map { $_ => 1 } @refused_bodies;
    is(scalar(grep { $refused{ $_->{body} } } @{ $t->queue_posts }), 0,
       'refused submissions: no refused body in the mock\'s log');

    # 255 characters is the longest key, and a key with a refused body is
    # not claimed by it
    my $long = 'K' x 255;
    accepted_ok($t->submit(body => body_for(case => 'key 255', n => 1), key => $long),
                'Idempotency-Key of 255 characters');
    my $k = "refused-then-valid-$$";
    error_ok($t->submit(body => '{"action":', key => $k), 400, 'invalid_json',
             'a key with an invalid body');
    accepted_ok($t->submit(body => body_for(case => 'key after refusal', n => 1), key => $k),
                'the same key with a valid body afterwards');
    accepted_ok($t->submit(body => body_for(case => 'visible ASCII key', n => 1),
                           key => q{!"#$%&'()*+,-./09:;<=>?@AZ[\]^_`az{|}~}),
                'Idempotency-Key of every kind of visible ASCII character');
}


###########################################################################
# Each accepted transaction has its own id and is delivered once; without
# a key the same body twice is two transactions.

{
    my $body = body_for(case => 'no key twice', n => 1);
    my $a = accepted_ok($t->submit(body => $body), 'no key, first');
    my $b = accepted_ok($t->submit(body => $body), 'no key, the same body again');
    isnt($a, $b, 'no key: two transactions');
    ok($t->wait_for(sub { $t->posts_with($body) >= 2 }, timeout => 10),
       'no key: both delivered');
    ok(!$t->wait_for(sub { $t->posts_with($body) > 2 }, timeout => 1.5),
       'no key: each only once');

    # 20 different ones at once, on both workers
    my $skip = $t->log_lines('workers.log');
    my @res = $t->parallel(20, POST => $QUEUE, port => $RP_PORT,
                           headers => [@CT],
                           body => sub { body_for(case => 'parallel distinct', n => $_[0]) });
    my @ids = map { $_->{json} ? $_->{json}{transaction_id} // '' : '' } @res;
    is(scalar(grep { $_->{status} == 202 } @res), 20, '20 at once: all 202')
        or diag(join ' ', map { "$_->{status}:" . ($_->{error} // '') } @res);
    is(scalar(grep { /$UUID4/ } @ids), 20, '20 at once: all with a UUID v4');
    my %uniq = map { $_ => 1 } @ids;
    is(scalar keys %uniq, 20, '20 at once: 20 different ids');
    ok($t->wait_for(sub {
           my %n;
           $n{ $_->{body} }++ for @{ $t->queue_posts };
           return !grep { !$n{ body_for(case => 'parallel distinct', n => $_) } } 0 .. 19;
       }, timeout => 15), '20 at once: all delivered');
    ok(!$t->wait_for(sub {
           my %n;
           $n{ $_->{body} }++ for @{ $t->queue_posts };
           return grep { ($n{ body_for(case => 'parallel distinct', n => $_) } // 0) > 1 }
                  0 .. 19;
       }, timeout => 2), '20 at once: none delivered twice');
    my %pids = $t->log_pids('workers.log', qr/^(\d+) POST \Q$QUEUE\E /,
                            from => $skip);
    is(scalar keys %pids, 2, '20 at once: accepted by both workers')
        or diag('pids: ' . join ' ', keys %pids);
}


###########################################################################
# Idempotency-Key: the same key and body answer the same transaction and
# create nothing; another body is 422.

{
    my $key  = "order-$$-1";
    my $body = body_for(case => 'idempotent', n => 1);
    my $id = accepted_ok($t->submit(body => $body, key => $key), 'keyed, first');
    my $again = accepted_ok($t->submit(body => $body, key => $key),
                            'keyed, repeated at once');
    is($again, $id, 'keyed, repeated at once: the same transaction id');

    delivered_once($body, 'keyed');

    my $later = accepted_ok($t->submit(body => $body, key => $key),
                            'keyed, repeated after the delivery');
    is($later, $id, 'keyed, repeated after the delivery: the same id');
    ok(!$t->wait_for(sub { $t->posts_with($body) > 1 }, timeout => 1.5),
       'keyed, repeated after the delivery: not delivered again');

    my $other = body_for(case => 'idempotent', n => 2);
    my $res = $t->submit(body => $other, key => $key);
    error_ok($res, 422, 'idempotency_key_reused', 'the same key, another body');
    is($t->get_tx($id)->{json}{id}, $id, 'the keyed transaction is still there');

    my $new = accepted_ok($t->submit(body => $body, key => "$key-b"),
                          'the same body under another key');
    isnt($new, $id, 'another key: another transaction');
    ok($t->wait_for(sub { $t->posts_with($body) == 2 }, timeout => 10),
       'another key: delivered');
    ok(!$t->wait_for(sub { $t->posts_with($other) > 0 || $t->posts_with($body) > 2 },
                     timeout => 1.5),
       'the 422 one never reached Fanbase');
}


###########################################################################
# 20 copies with the same key at once, on both workers: one transaction.

{
    my $key  = "order-$$-parallel";
    my $body = body_for(case => 'idempotent parallel', n => 1);
    my $skip = $t->log_lines('workers.log');
    my @res = $t->parallel(20, POST => $QUEUE, port => $RP_PORT,
                           headers => [@CT, 'Idempotency-Key' => $key],
                           body => $body);
    is(scalar(grep { $_->{status} == 202 } @res), 20,
       '20 keyed copies at once: all 202')
        or diag(join ' ', map { "$_->{status}:" . ($_->{error} // '') } @res);
    my %ids = map { (($_->{json} ? $_->{json}{transaction_id} : undef)
                     // 'none') => 1 } @res;
    is(scalar keys %ids, 1, '20 keyed copies at once: all the same id')
        or diag(join ' ', sort keys %ids);
    my ($id) = keys %ids;
    like($id, $UUID4, '20 keyed copies at once: a UUID v4');
    is(scalar(grep { ($_->{headers}{location} // '') eq "/transactions/$id" } @res),
       20, '20 keyed copies at once: all the same Location');
    my %pids = $t->log_pids('workers.log', qr/^(\d+) POST \Q$QUEUE\E /,
                            from => $skip);
    is(scalar keys %pids, 2, 'keyed copies: both workers took some')
        or diag('pids: ' . join ' ', keys %pids);

    delivered_once($body, '20 keyed copies');
    is($t->get_tx($id)->{status}, 200, '20 keyed copies: the transaction reads');

    # and 20 more at once after the delivery, each on its own connection
    @res = $t->parallel(20, POST => $QUEUE, port => $RP_PORT,
                        headers => [@CT, 'Idempotency-Key' => $key],
                        body => $body);
    is(scalar(grep { $_->{status} == 202
                     && ($_->{json}{transaction_id} // '') eq $id } @res), 20,
       '20 more keyed copies after the delivery: all 202 with the same id');
    ok(!$t->wait_for(sub { $t->posts_with($body) > 1 }, timeout => 1.5),
       '20 more keyed copies: nothing delivered again');
}


###########################################################################
# fanbase_transaction_path, and fanbase_idempotency_window (1 s there).

{
    my $body = body_for(case => 'tx path', n => 1);
    my $res = $t->submit(body => $body, port => $TX_PORT);
    my $id = accepted_ok($res, 'fanbase_transaction_path /tx', '/tx');
    my $tx = $t->get_tx($id, port => $TX_PORT, prefix => '/tx');
    is($tx->{status}, 200, 'fanbase_transaction_path /tx: the link reads');
    is($tx->{json}{id}, $id, 'fanbase_transaction_path /tx: the transaction');
    delivered_once($body, 'fanbase_transaction_path /tx');

    # keys under the default window (24 h) were claimed before this one:
    # the 1 s window of this server must hold all the same
    my $key = "window-$$";
    my $wbody = body_for(case => 'window', n => 1);
    my $start = time;
    my $first = accepted_ok($t->submit(body => $wbody, key => $key, port => $TX_PORT),
                            'window 1s, first', '/tx');
    my ($repeats, $same, $next) = (0, 0);
    $t->wait_for(sub {
        my $r = $t->submit(body => $wbody, key => $key, port => $TX_PORT);
        return 0 unless $r->{status} == 202;
        my $got = $r->{json}{transaction_id} // '';
        $repeats++;
        if ($got eq $first) {
            $same++;
            return 0;
        }
        $next = $got;
        return 1;
    }, timeout => 6, interval => 0.1);
    my $elapsed = time - $start;
    ok($next, 'window 1s: a new transaction once the key is forgotten')
        or diag("$repeats repeats, all with the first id");
    isnt($next // $first, $first, 'window 1s: a different id');
    cmp_ok($same, '>', 0, 'window 1s: repeats within the window had the first id');
    cmp_ok($elapsed, '>=', 0.9, 'window 1s: remembered for about 1 s')
        or diag("forgotten after $elapsed s");
    cmp_ok($elapsed, '<', 4, 'window 1s: not remembered much longer')
        or diag("forgotten after $elapsed s");
}


###########################################################################
# Fanbase unreachable: still 202 at once; the transaction waits, pending.

{
    my $body = body_for(case => 'dead', n => 1);
    my $res = $t->submit(body => $body, path => "/dead$QUEUE");
    my $id = accepted_ok($res, 'Fanbase unreachable');
    cmp_ok($res->{time}, '<', 0.5, 'Fanbase unreachable: answered at once');
    ok(!$t->wait_for(sub { ($t->get_tx($id, prefix => '/dead/transactions')
                                ->{json}{status} // '') ne 'pending' },
                     timeout => 2),
       'Fanbase unreachable: the transaction stays pending');
    is($t->posts_with($body), 0, 'Fanbase unreachable: nothing at the mock');
}

$t->stop;


###########################################################################
# A 32k zone full of transactions that cannot be delivered (Fanbase
# answers 503 every time): 503 zone_full, and none of them evicted.

{
    my $z = FanbaseTest->new(
        mock   => { clients => ['demo-client:demo-secret'],
                    processing_after => 0.1, completed_after => 0.2 },
        files  => edge_files(),
        http   => edge_http(zone => '32k', timeout => '2s'),
        server => <<"CONF",
location = $QUEUE { fanbase_submit async; }
location /transactions/ { fanbase_transaction; }
CONF
    );
    $z->start;
    $z->mock_faults({ queue_post => { status => 503, count => 100000 } });

    my (@ids, $refused, $refused_body, $other);
    for my $i (1 .. 3000) {
        my $body = body_for(case => 'zone', n => $i);
        my $res = $z->submit(body => $body);
        if ($res->{status} == 202) {
            push @ids, $res->{json}{transaction_id};
            next;
        }
        if ($res->{status} == 503) {
            ($refused, $refused_body) = ($res, $body);
        } else {
            $other = $res;
        }
        last;
    }
    diag('a 32k zone took ' . scalar(@ids) . ' undeliverable transactions');

    ok(!$other, 'full zone: every answer 202 until the 503')
        or diag("got $other->{status} $other->{body}");
    ok($refused, 'full zone: a 503 within 3000 submissions')
        or BAIL_OUT('the zone never filled up');
    cmp_ok(scalar @ids, '>', 0, 'full zone: some were accepted first');
    error_ok($refused, 503, 'zone_full', 'full zone');
    is($refused->{headers}{'retry-after'}, '5', 'full zone: Retry-After: 5');

    my $again_body = body_for(case => 'zone', n => 'again');
    my $again = $z->submit(body => $again_body);
    error_ok($again, 503, 'zone_full', 'full zone, again');

    # none was evicted: the oldest, the newest and a sample still pending
    my %seen;
    my @sample = grep { defined && !$seen{$_}++ }
                 @ids[0, 1, int($#ids / 2), $#ids],
                 map { $ids[rand @ids] } 1 .. 5;
    for my $id (@sample) {
        my $res = $z->get_tx($id);
        is($res->{status}, 200, "full zone, $id: still there");
        is($res->{json}{status}, 'pending', "full zone, $id: pending");
    }
    ok(!$z->wait_for(sub { $z->posts_with($refused_body)
                           || $z->posts_with($again_body) }, timeout => 1),
       'full zone: the refused submissions never reached Fanbase');

    # Fanbase back: each is delivered once and ends.  An ended one may be
    # evicted to make room for the events of the others (404 then): it
    # must have been delivered
    my $lift_before = time;
    $z->mock_faults({ queue_post => undef });
    my $lift_after = time;
    my %status;
    my $ended = $z->wait_for(sub {
        for my $id (@ids) {
            next if ($status{$id} // '') =~ /^(?:completed|HTTP 404)$/;
            my $res = $z->get_tx($id);
            $status{$id} = $res->{status} == 200 ? $res->{json}{status} // ''
                                                 : "HTTP $res->{status}";
        }
        return !grep { $status{$_} !~ /^(?:completed|HTTP 404)$/ } @ids;
    }, timeout => 60, interval => 0.5);
    ok($ended, 'full zone, Fanbase back: each accepted one completed '
               . '(or evicted once ended)')
        or diag(explain({ map { $_ => $status{$_} }
                          grep { $status{$_} !~ /^(?:completed|HTTP 404)$/ } @ids }));
    diag(sprintf '%d completed, %d evicted, %.1f s after Fanbase came back',
         scalar(grep { $status{$_} eq 'completed' } @ids),
         scalar(grep { $status{$_} eq 'HTTP 404' } @ids), time - $lift_after);

    # the mock's log: a POST at or after the lift is one Fanbase took
    my (%after, %surely_after);
    for my $p (@{ $z->queue_posts }) {
        $after{ $p->{body} }++ if $p->{time} >= $lift_before;
        $surely_after{ $p->{body} }++ if $p->{time} > $lift_after;
    }
    my @lost = grep { !$after{ body_for(case => 'zone', n => $_) } } 1 .. @ids;
    ok(!@lost, 'full zone, Fanbase back: each accepted one delivered')
        or diag('not delivered: ' . join ' ', map { $ids[$_ - 1] } @lost);
    my @twice = grep { ($surely_after{ body_for(case => 'zone', n => $_) } // 0) > 1 } 1 .. @ids;
    ok(!@twice, 'full zone, Fanbase back: none delivered twice')
        or diag('twice: ' . join ' ', map { $ids[$_ - 1] } @twice);

    accepted_ok($z->submit(body => body_for(case => 'zone', n => 'after')),
                'full zone of ended transactions: room again (evicted)');
    $z->stop;
}

done_testing;
