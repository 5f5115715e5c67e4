#!/usr/bin/perl

# fanbase_submit async: background delivery and tracking, as the site sees
# them (GET /transactions/ID) and as Fanbase sees them (the mock's log).
# 202 at once, the body delivered byte for byte with the edge's token and
# none of the client's, pending -> processing -> completed with events and
# the queue id, polling that stops at a terminal status; Fanbase down
# (connection refused, 503s) for a while: everything delivered once when
# it is back; 429 (Retry-After), 502, 503, 504, 401, 403 and no token
# retried; other 4xx failed with Fanbase's answer, not resent; a 2xx
# without a queue item failed, not resent; ambiguous outcomes (timeout
# after sending, 500, a connection reset or closed after the request) failed
# as delivery_outcome_unknown, sent once, logged at [error]; the delivery
# horizon; the per-worker concurrency bound; tracking failures; no secret or
# token in error.log.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;

use JSON::PP;
use Time::HiRes qw(time sleep);
use Time::Local qw(timegm);

my $SECRET = 'async-S3cret-q8Zt-do-not-log';
my $SECRET_T1 = 'second-S3cret-Hw2m-do-not-log';

my $SERVER = <<"CONF";
location = $QUEUE { fanbase_submit async; }
location = /t1$QUEUE { fanbase_timeout 1s; fanbase_submit async; }
location = /t1c$QUEUE {
    fanbase_timeout 1s;
    fanbase_client_id t1-client;
    fanbase_client_secret_file %%DIR%%/secret_t1;
    fanbase_transaction_path /t1c/transactions;
    fanbase_submit async;
}
location = /dead$QUEUE {
    fanbase_api %%DEAD%%;
    fanbase_deliver_horizon 2s;
    fanbase_transaction_path /dead/transactions;
    fanbase_submit async;
}
location /transactions/ { fanbase_transaction; }
# another client id, another API: their transactions are read there
location /t1c/transactions/ { fanbase_client_id t1-client; fanbase_transaction; }
location /dead/transactions/ { fanbase_api %%DEAD%%; fanbase_transaction; }
CONF

my $t = FanbaseTest->new(
    error_log_level => 'debug',
    mock   => { clients => ["demo-client:$SECRET", "t1-client:$SECRET_T1"],
                processing_after => 0.5, completed_after => 1.5 },
    files  => { secret => "$SECRET\n", secret_t1 => "$SECRET_T1\n" },
    http   => edge_http(timeout => '5s'),
    server => $SERVER,
);
$t->start;


# Helpers

my %PATH_OF;           # transaction id => the path its 202 linked to
my @answers;           # every answer of the edge, for the secrecy check
my %tokens_seen;       # every AccessToken the mock received

# A numbered submission ($t->numbered) on $o{t} (default $t), the other
# options as for $t->numbered, whose answer is kept for the secrecy check
# and whose link reading() and polling() name.  Returns what numbered
# does.
sub tracked {
    my (%o) = @_;
    my $tt = delete $o{t} // $t;
    my $s = $tt->numbered(data => { evento => 'show' }, %o, record => \@answers);
    my $res = $s->{res};
    $PATH_OF{ $s->{id} } = $res->{json}{links}[0]{path}
        if $res->{json} && ref $res->{json}{links} eq 'ARRAY';
    return $s;
}

# $t->tx's options for transaction $id: read at its link, each answer
# kept for the secrecy check
sub reading {
    my $id = shift;
    return (path => $PATH_OF{$id}, record => \@answers);
}

# wait_status's: the same, every 0.1 s for up to 20 s
sub polling { return (reading($_[0]), timeout => 20, interval => 0.1) }

my $DELIVERED = qr/^(?:processing|completed)$/;
my $TERMINAL  = qr/^(?:completed|failed|cancelled)$/;

sub epoch_ms {
    my ($y, $mo, $d, $h, $mi, $s, $ms) =
        ($_[0] // '') =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)\.(\d+)Z$/ or return undef;
    return timegm($s, $mi, $h, $d, $mo - 1, $y) * 1000 + $ms;
}

# A failed transaction: its last event, for the name given.
sub failed_like {
    my ($tx, $want, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($tx && $tx->{status}, 'failed', "$name: failed")
        or diag(explain($tx));
    json_like(last_event($tx), { event => 'failure', status => 'failed',
                                 data => $want, created_at => $ISO_MS },
              "$name: last event is the failure");
}

# The checks of an ambiguous outcome.
sub unknown_like {
    my ($s, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $tx = $t->wait_status($s->{id}, $TERMINAL, polling($s->{id}));
    failed_like($tx, { code => 'delivery_outcome_unknown',
                       error_message => qr/^delivery outcome unknown/ }, $name);
    my @p = $t->posts_for($s->{n});
    is(scalar @p, 1, "$name: sent once") or diag('answers: ' . statuses(@p));
    ok($t->wait_for(sub { grep { /\[error\]/ && /delivery outcome unknown/i
                                 && /\Q$s->{id}\E/ } split /\n/, $t->error_log },
                    timeout => 2),
       "$name: an [error] line about it, with the transaction id");
}


###########################################################################
# The happy path.  The POST is held 1 s at the mock: the 202 does not wait
# for it, and the transaction stays pending while it is on the wire.

$t->mock_faults({ queue_post => { delay_ms => 1000, count => 1 } });

my $happy = tracked(headers => [AccessToken => 'client.token.one',
                                 accesstoken => 'client.token.two']);
my ($res, $hid) = ($happy->{res}, $happy->{id});

is($res->{status}, 202, 'accepted: 202') or diag($res->{body});
cmp_ok($res->{time}, '<', 0.8, 'accepted: answered before Fanbase answered');
like($hid, $UUID4, 'accepted: the id is a lower-case version 4 UUID');
like($res->{headers}{location} // '', qr{^(?:http://[^/]+)?/transactions/\Q$hid\E$},
     'accepted: Location /transactions/ID');
like($res->{headers}{'content-type'} // '', qr{^application/json\b},
     'accepted: JSON');
is_deeply($res->{json}, { transaction_id => $hid,
                          links => [{ path => "/transactions/$hid" }] },
          'accepted: the body is the id and its link')
    or diag($res->{body});

my $tx = $t->tx($hid, reading($hid));
json_like($tx, {
    id => $hid, status => 'pending', operation => 'create',
    trigger_endpoint => 'api/v1/integration/queue',
    code => qr/^\S+$/, created_at => $ISO_MS, updated_at => $ISO_MS,
    events => [{ event => 'transition', message => 'accepted by the edge',
                 data => {}, status => 'pending', created_at => $ISO_MS }],
}, 'accepted: the transaction, pending, one event');

ok($t->wait_for(sub { scalar $t->posts_for($happy->{n}) }, timeout => 10),
   'delivery: the POST reached the mock');
is($t->tx_status($hid, reading($hid)), 'pending',
   'delivery: pending while the POST is on the wire');

{
    my @p = $t->posts_for($happy->{n});
    my $p = $p[0] || {};
    is(scalar @p, 1, 'delivery: one POST');
    ok(defined $p->{body} && $p->{body} eq $happy->{body},
       'delivery: the body byte for byte')
        or diag("got: " . ($p->{body} // 'nothing'));
    my @tok = @{ $p->{headers}{accesstoken} || [] };
    is(scalar @tok, 1, 'delivery: one AccessToken header');
    ok(!grep({ /client\.token/ } @tok), 'delivery: not the client\'s AccessToken')
        or diag("sent: @tok");
    json_like(jwt_claims($tok[0]), { iss => 'mock-fanbase', sub => 'demo-client' },
              'delivery: a token the mock issued to demo-client');
    is($p->{query}, '', 'delivery: no query string');
}

$tx = $t->wait_status($hid, $DELIVERED, polling($hid));
my ($post) = $t->posts_for($happy->{n});
my $qid = $post->{queue_id} // 'no queue id';
is($tx && $tx->{status}, 'processing', 'delivered: processing') or diag(explain($tx));
json_like(last_event($tx), { event => 'transition', status => 'processing',
                             data => { queue_id => $qid } },
          'delivered: event with the queue id Fanbase gave');

$tx = $t->wait_status($hid, $TERMINAL, polling($hid), timeout => 20);
is($tx && $tx->{status}, 'completed', 'tracked: completed') or diag(explain($tx));
is_deeply([map { "$_->{event}/$_->{status}" } @{ $tx->{events} || [] }],
          ['transition/pending', 'transition/processing', 'transition/completed'],
          'tracked: events pending, processing, completed, oldest first');
json_like(last_event($tx), { event => 'transition', status => 'completed',
                             created_at => $ISO_MS,
                             data => { queue_id => $qid,
                                       process_msg => "Processamento conclu\x{ed}do" } },
          'tracked: the final event has the queue id and Fanbase\'s message');
cmp_ok(epoch_ms($tx->{updated_at}) // 0, '>=', epoch_ms($tx->{created_at}) // 1e20,
       'tracked: updated_at not before created_at');

my @gets = @{ $t->mock_requests(method => 'GET', path => "$QUEUE/$qid") };
cmp_ok(scalar @gets, '>=', 1, 'tracked: the edge read the queue item');
ok(!grep({ ($_->{status} // 0) != 200 } @gets), 'tracked: with a valid token');
my @gaps = map { $gets[$_]{time} - $gets[$_ - 1]{time} } 1 .. $#gets;
ok(!grep({ $_ < 0.9 } @gaps), 'tracked: polls at least 1 s apart')
    or diag("gaps: @gaps");
my $gets_done = $t->mock_gets($qid);
# checked again at the end of the file: no polling after completed


###########################################################################
# Failed at Fanbase (data.fail): failed, with Fanbase's message.

{
    my $s = tracked(body => '{"action":"ticket-create","data":{"fail":true,"n":"f1"}}');
    is($s->{res}{status}, 202, 'failed at Fanbase: accepted');
    my $tx = $t->wait_status($s->{id}, $TERMINAL, polling($s->{id}));
    my ($p) = $t->posts_for('f1');
    failed_like($tx, { queue_id => ($p && $p->{queue_id}) // 'none',
                       error_message => 'Erro simulado' }, 'failed at Fanbase');
}


###########################################################################
# The delivery horizon: an API that refuses, 2 s.  Submitted now, looked at
# after the next blocks.

my $horizon = tracked(path => "/dead$QUEUE");
is($horizon->{res}{status}, 202, 'horizon: accepted');


###########################################################################
# Fanbase down (connection refused) while 30 are accepted, then back: each
# delivered, each body exactly once.

$t->stop_mock;
my @down = map { tracked() } 1 .. 30;
is(scalar(grep { $_->{res}{status} == 202 } @down), 30,
   'Fanbase down: 30 accepted');
sleep 2;    # down for a while: several attempts refused
my @not_pending = grep { $t->tx_status($_->{id}, reading($_->{id})) ne 'pending' } @down;
is(scalar @not_pending, 0, 'Fanbase down: all still pending after 2 s')
    or diag(explain($t->tx($not_pending[0]{id}, reading($not_pending[0]{id}))));
$t->start_mock;

{
    my $ok = $t->wait_for(sub {
        !grep { $t->tx_status($_->{id}, reading($_->{id})) !~ $DELIVERED } @down
    }, timeout => 40, interval => 0.5);
    ok($ok, 'Fanbase back: all 30 delivered');
    my $by = $t->posts_by_n;
    my @wrong = grep { statuses(@{ $by->{ $_->{n} } || [] }) ne '201' } @down;
    is(scalar @wrong, 0, 'Fanbase back: each body reached Fanbase once')
        or diag(join "\n", map { "n=$_->{n}: " . statuses(@{ $by->{ $_->{n} } || [] }) }
                           @wrong[0 .. ($#wrong < 4 ? $#wrong : 4)]);
}


###########################################################################
# Fanbase answering 503 to the first 3 POSTs while 30 are accepted: each
# delivered once, the 503s retried (by the breaker's probes, t/082).

$t->mock_faults({ queue_post => { status => 503, count => 3 } });
my @busy = map { tracked() } 1 .. 30;
is(scalar(grep { $_->{res}{status} == 202 } @busy), 30, 'Fanbase 503: 30 accepted');

{
    my $ok = $t->wait_for(sub {
        !grep { $t->tx_status($_->{id}, reading($_->{id})) !~ $DELIVERED } @busy
    }, timeout => 40, interval => 0.5);
    ok($ok, 'Fanbase 503: all 30 delivered');
    my $by = $t->posts_by_n;
    my @wrong = grep { statuses(@{ $by->{ $_->{n} } || [] }) !~ /^(?:503,)*201$/ } @busy;
    is(scalar @wrong, 0, 'Fanbase 503: each body taken once, after its 503s')
        or diag(join "\n", map { "n=$_->{n}: " . statuses(@{ $by->{ $_->{n} } || [] }) }
                           @wrong[0 .. ($#wrong < 4 ? $#wrong : 4)]);
    my $n503 = grep { ($_->{status} // 0) == 503 } map { @{ $by->{ $_->{n} } || [] } } @busy;
    is($n503, 3, 'Fanbase 503: every 503 was retried');
}


###########################################################################
# Retried answers: each fault once, then delivered.  The backoff is at least
# 0.5 s (1 s with full jitter); Retry-After, when longer, wins.

for my $case (
    [ '429 with Retry-After: 2', { status => 429, headers => { 'Retry-After' => '2' },
                                   body => '{"message":"slow down"}' }, 1.9 ],
    [ '502', { status => 502 }, 0.45 ],
    [ '503', { status => 503 }, 0.45 ],
    [ '504', { status => 504 }, 0.45 ],
) {
    my ($name, $fault, $gap) = @$case;
    $t->mock_faults({ queue_post => { %$fault, count => 1 } });
    my $s = tracked();
    my $tx = $t->wait_status($s->{id}, $DELIVERED, polling($s->{id}), timeout => 15);
    like($tx && $tx->{status}, $DELIVERED, "$name: delivered") or diag(explain($tx));
    my @p = $t->posts_for($s->{n});
    is(statuses(@p), "$fault->{status},201", "$name: retried once, taken once");
    cmp_ok(@p == 2 ? $p[1]{time} - $p[0]{time} : 0, '>=', $gap,
           "$name: retried after at least $gap s");
}

# 401 and 403: the token is dropped, a new one fetched, the POST resent
for my $case (
    [ '401 (the token expired at Fanbase)', sub { $t->mock_expire_tokens }, 401 ],
    [ '403', sub { $t->mock_faults({ queue_post => { status => 403, count => 1 } }) }, 403 ],
) {
    my ($name, $prep, $code) = @$case;
    my $tokens = $t->mock_stats->{token_requests};
    $prep->();
    my $s = tracked();
    my $tx = $t->wait_status($s->{id}, $DELIVERED, polling($s->{id}), timeout => 15);
    like($tx && $tx->{status}, $DELIVERED, "$name: delivered") or diag(explain($tx));
    my @p = $t->posts_for($s->{n});
    is(statuses(@p), "$code,201", "$name: resent once, taken once");
    my @tok = map { $_->{headers}{accesstoken}[0] // '' } @p;
    ok(@tok == 2 && $tok[0] ne $tok[1], "$name: resent with a new token");
    cmp_ok($t->mock_stats->{token_requests}, '>', $tokens, "$name: a new token fetched");
}

# no token can be had for a while: retried, then delivered
{
    $t->mock_expire_tokens;
    $t->mock_faults({ token => { status => 503, count => 2 } });
    my $s = tracked();
    my $tx = $t->wait_status($s->{id}, $DELIVERED, polling($s->{id}), timeout => 30);
    like($tx && $tx->{status}, $DELIVERED, 'no token for a while: delivered')
        or diag(explain($tx));
    like(statuses($t->posts_for($s->{n})), qr/^(?:401,)*201$/,
         'no token for a while: taken once');
    ok(!$t->mock_faults({})->{token}, 'no token for a while: the token faults were used');
}


###########################################################################
# Other 4xx: failed with Fanbase's status and body, never resent.

for my $case ([422, '{"iCode":422,"iMsg":"Evento esgotado"}', qr/Evento esgotado/],
              [400, '{"iCode":400,"iMsg":"Campo qtd invalido"}', qr/Campo qtd invalido/],
              [404, 'no such route', qr/no such route/]) {
    my ($code, $body, $re) = @$case;
    $t->mock_faults({ queue_post => { status => $code, count => 1, body => $body } });
    my $s = tracked();
    my $tx = $t->wait_status($s->{id}, $TERMINAL, polling($s->{id}));
    failed_like($tx, { error_message => $re }, "Fanbase $code");
    like(last_event($tx) && last_event($tx)->{data}{error_message}, qr/\b$code\b/,
         "Fanbase $code: the status in error_message");
    is(statuses($t->posts_for($s->{n})), $code, "Fanbase $code: sent once");
}


###########################################################################
# A 2xx without a readable queue item: reached Fanbase, so failed
# (delivery_unreadable) and not sent again.

for my $case (['a cut 201', { malformed => JSON::PP::true }],
              ['a 201 without an id', { status => 201, body => '{"iCode":0,"iMsg":"ok"}' }]) {
    my ($name, $fault) = @$case;
    $t->mock_faults({ queue_post => { %$fault, count => 1 } });
    my $s = tracked();
    my $tx = $t->wait_status($s->{id}, $TERMINAL, polling($s->{id}));
    failed_like($tx, { code => 'delivery_unreadable' }, $name);
    is(scalar($t->posts_for($s->{n})), 1, "$name: sent once");
}


###########################################################################
# Ambiguous outcomes: the request left, no usable answer came back.  Failed
# as delivery_outcome_unknown, sent once, an [error] line.  The resets and
# closes come a few times each: on a connection kept alive from an earlier
# delivery libcurl would resend the request by itself.

my @ambiguous;
for my $case (['/t1c', 'answered after fanbase_timeout (1 s)'],
              # the same API and credentials as the 5 s location: the
              # accepting location's timeout still applies
              ['/t1', 'answered after the accepting location\'s fanbase_timeout']) {
    my ($prefix, $name) = @$case;
    $t->mock_faults({ queue_post => { delay_ms => 2500, count => 1 } });
    my $s = tracked(path => "$prefix$QUEUE");
    unknown_like($s, $name);
    push @ambiguous, $s;
}
for my $case (['500', { status => 500 }],
              ['500 with a text body', { status => 500, body => 'oops',
                                         content_type => 'text/plain' }],
              (map { ["connection reset after the request ($_)", { reset => JSON::PP::true }] } 1 .. 3),
              (map { ["connection closed without an answer ($_)", { close => JSON::PP::true }] } 1 .. 3)) {
    my ($name, $fault) = @$case;
    $t->mock_faults({ queue_post => { %$fault, count => 1 } });
    my $s = tracked();
    unknown_like($s, $name);
    push @ambiguous, $s;
}
# none of them is sent again later either
sleep 1.5;
{
    my $by = $t->posts_by_n;
    my @twice = grep { @{ $by->{ $_->{n} } || [] } != 1 } @ambiguous;
    is(scalar @twice, 0, 'ambiguous outcomes: still sent once each, 1.5 s later');
}


###########################################################################
# The horizon, submitted above: given up after 2 s, with the last error.

{
    my $tx = $t->wait_status($horizon->{id}, $TERMINAL, polling($horizon->{id}),
                             timeout => 10);
    failed_like($tx, { code => 'delivery_gave_up', error_message => qr/connect|refused/i },
                'horizon');
    my $after = (epoch_ms(last_event($tx) && last_event($tx)->{created_at}) // 0)
              - (epoch_ms($tx && $tx->{created_at}) // 0);
    cmp_ok($after, '>=', 1900, 'horizon: not before 2 s');
    cmp_ok($after, '<=', 6000, 'horizon: within about 2-4 s');
}


###########################################################################
# The happy path's queue item was not polled again after completed.

is($t->mock_gets($qid), $gets_done,
   'tracked: no poll after completed');


###########################################################################
# Secrets: neither the client secret nor a token in error.log (debug) or in
# an answer to the site.

for my $r (@{ $t->queue_posts }, @{ $t->mock_requests(method => 'GET') }) {
    $tokens_seen{$_} = 1 for @{ $r->{headers}{accesstoken} || [] };
}
$t->stop;
{
    my $log = $t->error_log;
    like($log, qr/\[debug\]/, 'secrecy: error.log is at debug level');
    my @tokens = sort keys %tokens_seen;
    cmp_ok(scalar @tokens, '>=', 3, 'secrecy: tokens collected from the mock');
    my @needles = ($SECRET, $SECRET_T1, @tokens,
                   map { grep { length >= 16 } split /\./ } @tokens);
    my @in_log = grep { index($log, $_) >= 0 } @needles;
    ok(!@in_log, 'secrecy: error.log holds neither the secret nor a token')
        or diag('e.g. in: ' . (grep { index($_, $in_log[0]) >= 0 } split /\n/, $log)[0]);
    my @in_answers = grep {
        my $res = $_;
        my $text = join "\n", $res->{body} // '',
                   map { "$_->[0]: $_->[1]" } @{ $res->{header_list} || [] };
        grep { index($text, $_) >= 0 } @needles;
    } @answers;
    ok(!@in_answers, 'secrecy: no answer to the site holds the secret or a token');
}


###########################################################################
# The concurrency bound: one worker, 2 deliveries and polls at a time,
# POSTs held 0.5 s each.

{
    my $c = FanbaseTest->new(
        workers => 1,
        mock    => { processing_after => 0.3, completed_after => 0.6 },
        files   => edge_files(),
        http    => edge_http(timeout => '5s', extra => "fanbase_deliver_concurrency 2;\n"),
        server  => "location = $QUEUE { fanbase_submit async; }\n"
                 . "location /transactions/ { fanbase_transaction; }\n",
    );
    $c->start;
    $c->mock_faults({ queue_post => { delay_ms => 500 } });

    my @s = map { tracked(t => $c) } 1 .. 10;
    is(scalar(grep { $_->{res}{status} == 202 } @s), 10, 'concurrency 2: 10 accepted');
    my $ok = $c->wait_for(sub {
        !grep { $c->tx_status($_->{id}, reading($_->{id})) !~ $DELIVERED } @s
    }, timeout => 30, interval => 0.2);
    ok($ok, 'concurrency 2: all 10 delivered');
    my $stats = $c->mock_stats;
    cmp_ok($stats->{queue_posts_in_flight_max}, '<=', 2,
           'concurrency 2: never more than 2 POSTs in flight');
    cmp_ok($stats->{queue_posts_in_flight_max}, '>=', 2,
           'concurrency 2: and 2 at once (the bound is used)');
    cmp_ok($stats->{queue_requests_in_flight_max}, '<=', 2,
           'concurrency 2: never more than 2 POSTs and GETs in flight');
    my $by = $c->posts_by_n;
    is(scalar(grep { statuses(@{ $by->{ $_->{n} } || [] }) eq '201' } @s), 10,
       'concurrency 2: each sent once');

    # tracking: a queue item Fanbase no longer knows (404)
    $c->mock_faults({ queue_post => undef });
    ok($c->wait_for(sub {
        !grep { $c->tx_status($_->{id}, reading($_->{id})) ne 'completed' } @s
    }, timeout => 30, interval => 0.2), 'tracking: the 10 completed');
    my $s = tracked(t => $c);
    my $tx = $c->wait_status($s->{id}, $DELIVERED, polling($s->{id}));
    is($tx && $tx->{status}, 'processing', 'tracking 404: delivered');
    $c->mock_faults({ queue_get => { status => 404,
                                     body => '{"iCode":404,"iMsg":"Not found"}' } });
    $tx = $c->wait_status($s->{id}, $TERMINAL, polling($s->{id}), timeout => 20);
    failed_like($tx, { code => 'queue_item_not_found' }, 'tracking 404');
    is(scalar($c->posts_for($s->{n})), 1, 'tracking 404: not sent again');
}


###########################################################################
# A zone full of pending transactions: the final event of a tracked
# transaction is still kept, with the queue id, in the place of its oldest
# kept event.

{
    my $f = FanbaseTest->new(
        mock   => { processing_after => 0.3, completed_after => 4 },
        files  => edge_files(),
        http   => edge_http(zone => '32k', timeout => '5s'),
        server => "location = $QUEUE { fanbase_submit async; }\n"
                . "location = /dead$QUEUE { fanbase_api %%DEAD%%; fanbase_submit async; }\n"
                . "location /transactions/ { fanbase_transaction; }\n",
    );
    $f->start;

    my $s = tracked(t => $f);
    my $tx = $f->wait_status($s->{id}, $DELIVERED, polling($s->{id}));
    is($tx && $tx->{status}, 'processing', 'full zone: a transaction delivered');
    my $qid = last_event($tx) && last_event($tx)->{data}{queue_id} // 'none';

    my ($full, $other) = (0, 0);
    for my $round (1 .. 50) {
        for my $res ($f->parallel(20, POST => "/dead$QUEUE", headers => [@CT],
                                  body => sub { body_for(evento => 'show',
                                                         n => 1000 * $round + $_[0]) })) {
            if ($res->{status} == 503) { $full++ }
            elsif ($res->{status} != 202) { $other++ }
        }
        last if $full || $other;
    }
    ok($full && !$other, 'full zone: then filled with pending transactions');

    $tx = $f->wait_status($s->{id}, $TERMINAL, polling($s->{id}), timeout => 20);
    is($tx && $tx->{status}, 'completed', 'full zone: the delivered one completed');
    json_like(last_event($tx), { event => 'transition', status => 'completed',
                                 data => { queue_id => $qid } },
              'full zone: its final event is kept, with the queue id');
    $f->log_unlike(qr/an event of transaction "\Q$s->{id}\E" is not kept/,
                   'full zone: no event of it lost');
    $f->stop;
}

done_testing;
