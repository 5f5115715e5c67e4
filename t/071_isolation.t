#!/usr/bin/perl

# Credential sets stay apart in one zone.  Two servers share the zone, one
# as client "a", one as client "b" of the same Fanbase: the same
# Idempotency-Key and body sent to both are two transactions, each
# delivered once with its own token; a key one client used is free for the
# other (no 422 across them); a transaction of one is 404 to the other
# (GET, HEAD, a long poll, DELETE: it is not cancelled and is delivered),
# exactly as an unknown id; fanbase_status of the other's queue item reads
# it through with its own token instead of answering from the other's
# cache; a webhook at one server neither finds nor changes the other's
# transactions or queue items, and one it creates is its own; a fixed
# token (fanbase_access_token_file) is a set of its own; nginx -t refuses
# fanbase_transaction and fanbase_webhook where no credential set is in
# effect; a restart through the state file keeps every record's credential
# set, and a file without scopes loads each where it was accepted; a new
# secret and token URL keep a client's records its own.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;

use JSON::PP;
use Time::HiRes qw(time sleep);

my $JSON = JSON::PP->new->canonical;

my $HOOK_SECRET = webhook_secret();
my $B_PORT = FanbaseTest::free_port();
my $C_PORT = FanbaseTest::free_port();    # a fixed token: no client id

# the same locations in both servers, each with its own client
sub locations {
    my $id = shift;
    return <<"CONF";
fanbase_client_id $id;
fanbase_client_secret_file %%DIR%%/secret_$id;
location = $QUEUE { fanbase_submit async; }
location = /sync$QUEUE { fanbase_submit; }
location $QUEUE/ { fanbase_status; }
location /transactions/ { fanbase_transaction; }
location = /hook { fanbase_webhook; }
location = /hook-nocreate { fanbase_webhook_create off; fanbase_webhook; }
CONF
}

my $t = FanbaseTest->new(
    mock  => { clients => ['a:sa', 'b:sb'],
               processing_after => 60, completed_after => 120 },
    files => { secret_a => "sa\n", secret_b => "sb\n",
               'hook.secret' => "$HOOK_SECRET\n",
               'fixed.token' => "not-a-token-the-mock-knows\n" },
    http  => <<"CONF",
fanbase_zone zone=fb:1m state=%%DIR%%/fb.state;
fanbase_api %%MOCK%%;
fanbase_token_url %%MOCK%%/api/token;
fanbase_timeout 2s;
fanbase_webhook_secret_file %%DIR%%/hook.secret;

server {
    listen 127.0.0.1:$B_PORT;
${\ locations('b') }
}

server {
    listen 127.0.0.1:$C_PORT;
    fanbase_access_token_file %%DIR%%/fixed.token;
    location = $QUEUE { fanbase_submit async; }
    location /transactions/ { fanbase_transaction; }
}
CONF
    server => locations('a'),
    hook_secret => $HOOK_SECRET,
);
$t->start;


# Helpers

my %PORT = (a => undef, b => $B_PORT, c => $C_PORT);

# a request, a transaction's answer, its status, a webhook: at server a,
# b or c
sub req_at {
    my ($who, $method, $path, %o) = @_;
    return $t->request($method, $path, port => $PORT{$who}, %o);
}

sub get_tx_at    { $t->get_tx($_[1], port => $PORT{ $_[0] }) }
sub tx_status_at { $t->tx_status($_[1], port => $PORT{ $_[0] }) }
sub hook_at      { $t->hook($_[1], $_[2], port => $PORT{ $_[0] }) }

# the client id a request to the mock was made as: the "sub" of its token
# (030's client_of reads the client_id a token request asked for)
sub token_client {
    my $r = shift;
    my @v = @{ $r->{headers}{accesstoken} || [] };
    return '(no token)' unless @v == 1;
    return jwt_claims($v[0])->{sub} // '(no sub)';
}

# the clients whose POST of this body Fanbase took, sorted
sub posted_by {
    my $body = shift;
    return [sort map { token_client($_) }
                 grep { $_->{body} eq $body && $_->{queue_id} }
                 @{ $t->queue_posts }];
}

# the answer to an id nobody has: what the other set's ids must look like
sub not_found_ok {
    my ($res, $unknown, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($res->{status}, 404, "$name: 404") or diag($res->{body});
    is($res->{body}, $unknown->{body}, "$name: the body of an unknown id");
    is($res->{headers}{'content-type'}, $unknown->{headers}{'content-type'},
       "$name: the Content-Type of an unknown id");
}


###########################################################################
# One Idempotency-Key and body at both servers: two transactions, each
# delivered once, each with its own client's token.

my $body1 = body_for(case => 'same key', n => 1);
my $ida = tx_id($t->submit(port => $PORT{a}, body => $body1, key => 'order-1'));
my $idb = tx_id($t->submit(port => $PORT{b}, body => $body1, key => 'order-1'));
like($ida, $UUID4, 'same key and body: a: 202 with an id');
like($idb, $UUID4, 'same key and body: b: 202 with an id');
isnt($idb, $ida, 'same key and body: b gets a transaction of its own');

ok($t->wait_for(sub { @{ posted_by($body1) } >= 2 }, timeout => 10),
   'same key and body: both reach Fanbase');
is(tx_id($t->submit(port => $PORT{a}, body => $body1, key => 'order-1')), $ida,
   'same key and body: a repeat at a is a\'s transaction');
is(tx_id($t->submit(port => $PORT{b}, body => $body1, key => 'order-1')), $idb,
   'same key and body: a repeat at b is b\'s transaction');
sleep 0.5;
is_deeply(posted_by($body1), ['a', 'b'],
          'same key and body: Fanbase received it once as a and once as b');


###########################################################################
# A key one client used: free for the other, with any body; 422 stays
# within one client.

{
    my $x = body_for(case => 'reused', who => 'a');
    my $y = body_for(case => 'reused', who => 'b');
    my $ka = tx_id($t->submit(port => $PORT{a}, body => $x, key => 'order-2'));
    like($ka, $UUID4, 'key used by a: 202');
    my $res = $t->submit(port => $PORT{b}, body => $y, key => 'order-2');
    is($res->{status}, 202, 'the same key, another body, at b: 202, not 422')
        or diag($res->{body});
    isnt(tx_id($res), $ka, 'the same key, another body, at b: its own transaction');
    $res = $t->submit(port => $PORT{a}, body => $y, key => 'order-2');
    is($res->{status}, 422, 'the same key, another body, at a: still 422');
    is($res->{json} && $res->{json}{error}{code}, 'idempotency_key_reused',
       'the same key, another body, at a: idempotency_key_reused');
}


###########################################################################
# A transaction of a is unknown to b: GET, HEAD, a long poll, DELETE are
# 404 as for an id nobody has; it is not cancelled, and is delivered.

my $unknown_b = get_tx_at(b => new_uuid());
is($unknown_b->{status}, 404, 'an unknown id at b: 404');

$t->mock_faults({ queue_post => { status => 503, count => 100000 } });
my $body3 = body_for(case => 'read and cancel across', n => 3);
my $idw = tx_id($t->submit(port => $PORT{a}, body => $body3));
like($idw, $UUID4, 'a\'s transaction, Fanbase refusing: 202');
is(tx_status_at(a => $idw), 'pending', 'a\'s transaction: pending at a');

not_found_ok(get_tx_at(b => $idw), $unknown_b, 'GET of a\'s transaction at b');
is(req_at(b => HEAD => "/transactions/$idw")->{status}, 404,
   'HEAD of a\'s transaction at b: 404');
{
    my $t0 = time;
    my $res = req_at(b => GET => "/transactions/$idw?wait=5");
    not_found_ok($res, $unknown_b, 'long poll of a\'s transaction at b');
    cmp_ok(time - $t0, '<', 2, 'long poll of a\'s transaction at b: at once');
}
not_found_ok(req_at(b => DELETE => "/transactions/$idw"), $unknown_b,
             'DELETE of a\'s transaction at b');
is(tx_status_at(a => $idw), 'pending', 'after b\'s DELETE: still pending at a');

$t->mock_faults({ queue_post => undef });
ok($t->wait_for(sub { tx_status_at(a => $idw) eq 'processing' }, timeout => 15),
   'after b\'s DELETE: a\'s transaction is delivered');
is_deeply(posted_by($body3), ['a'], 'after b\'s DELETE: Fanbase received it as a');
my $qidw = do {
    my $tx = get_tx_at(a => $idw)->{json} || {};
    my ($ev) = grep { ($_->{data}{queue_id} // '') ne '' } @{ $tx->{events} || [] };
    $ev ? $ev->{data}{queue_id} : '';
};
ok($qidw ne '', 'a\'s transaction: its queue id');


###########################################################################
# fanbase_status: a's queue item is not answered from a's cache at b; b
# reads it through as b.

{
    my $res = $t->submit(path => "/sync$QUEUE",
                         body => body_for(case => 'status across'),
                         status => 201, name => 'synchronous submission at a: 201');
    my $qid = $res->{json} ? $res->{json}{id} // '' : '';

    $res = req_at(a => GET => "$QUEUE/$qid");
    is($res->{headers}{'x-fanbase-cache'}, 'HIT', 'a\'s queue item at a: HIT');

    my $before = scalar @{ $t->mock_requests(method => 'GET', path => "$QUEUE/$qid") };
    $res = req_at(b => GET => "$QUEUE/$qid");
    is($res->{status}, 200, 'a\'s queue item at b: 200 (Fanbase answers b)');
    is($res->{headers}{'x-fanbase-cache'}, 'MISS',
       'a\'s queue item at b: read through, not from a\'s cache');
    my @gets = @{ $t->mock_requests(method => 'GET', path => "$QUEUE/$qid") };
    is_deeply([map { token_client($_) } @gets[$before .. $#gets]], ['b'],
              'a\'s queue item at b: Fanbase asked once, with b\'s token');

    # a webhook at b changes b's record of it, not a's
    is(hook_at(b => '/hook', { id => $qid, processStatus => 'failed',
                               processMsg => 'b says failed' })->{status}, 204,
       'webhook at b for a\'s queue item: 204');
    $res = req_at(a => GET => "$QUEUE/$qid");
    is($res->{json} && $res->{json}{processStatus}, 'pending',
       'webhook at b for a\'s queue item: a\'s item unchanged');
    is($res->{headers}{'x-fanbase-cache'}, 'HIT', 'a\'s item: still a HIT at a');
}


###########################################################################
# Webhooks: one at b finds none of a's transactions, by transaction id or
# by queue id; the same at a does.  One created at b is b's.

my $made;
{
    my $before = get_tx_at(a => $idw)->{json};
    is(hook_at(b => '/hook-nocreate', { id => $idw, status => 'completed' })->{status},
       204, 'webhook at b naming a\'s transaction id: 204');
    is(hook_at(b => '/hook-nocreate', { id => $qidw, processStatus => 'completed' })->{status},
       204, 'webhook at b naming a\'s queue id: 204');
    my $now = get_tx_at(a => $idw)->{json};
    is($now->{status}, 'processing', 'webhooks at b: a\'s transaction not moved');
    is(scalar @{ $now->{events} }, scalar @{ $before->{events} },
       'webhooks at b: no event added to a\'s transaction');
    $t->log_like(qr/fanbase: webhook for unknown "\Q$qidw\E" ignored/,
                 'webhook at b: a\'s queue id is unknown there');

    is(hook_at(a => '/hook', { id => $qidw, processStatus => 'completed' })->{status},
       204, 'the same webhook at a: 204');
    is(tx_status_at(a => $idw), 'completed', 'the same webhook at a: applied');

    $made = new_uuid();
    is(hook_at(b => '/hook', { id => $made, status => 'completed' })->{status}, 204,
       'webhook at b creating a transaction: 204');
    is(tx_status_at(b => $made), 'completed', 'the created transaction: b\'s');
    not_found_ok(get_tx_at(a => $made), $unknown_b, 'the created transaction at a');
}


###########################################################################
# A fixed token (fanbase_access_token_file) is a credential set of its own,
# named by its file: its transactions are its own.

my $idc = tx_id($t->submit(port => $PORT{c}, body => body_for(case => 'fixed token')));
like($idc, $UUID4, 'fixed token: 202');
is(get_tx_at(c => $idc)->{status}, 200, 'fixed token: its transaction at c');
not_found_ok(get_tx_at(a => $idc), $unknown_b, 'fixed token: its transaction at a');
not_found_ok(get_tx_at(c => $ida), $unknown_b, 'fixed token: a\'s transaction at c');


###########################################################################
# nginx -t: fanbase_transaction and fanbase_webhook need a credential set
# to know whose records they see.

for my $case (['fanbase_transaction', 'location /t/ { fanbase_transaction; }'],
              ['fanbase_webhook',
               'location = /h { fanbase_webhook; '
               . 'fanbase_webhook_secret_file %%DIR%%/hook.secret; }'])
{
    my ($name, $loc) = @$case;
    my ($ok, $output) = FanbaseTest->nginx_t(
        files => { 'hook.secret' => "$HOOK_SECRET\n" },
        http  => "fanbase_zone zone=fb:1m;\nfanbase_api http://127.0.0.1:1;\n",
        server => "$loc\n");
    ok(!$ok, "$name without a client id: nginx -t fails");
    like($output,
         qr/"\Q$name\E" requires "fanbase_api" and "fanbase_client_id" \(or "fanbase_access_token_file"\)/,
         "$name without a client id: says what it needs");
}


###########################################################################
# A restart through the state file: each record keeps its credential set.

$t->stop_nginx(signal => 'QUIT');
{
    open my $fh, '<', $t->dir . '/fb.state';
    my @records = map { eval { $JSON->decode($_) } || () } $fh ? <$fh> : ();
    my @txns = grep { ($_->{type} // '') eq 'transaction' } @records;
    my @keys = grep { ($_->{type} // '') eq 'idempotency' } @records;
    ok(@txns >= 5, 'state file: the transactions saved');
    is(scalar(grep { ($_->{scope} // '') =~ /^[0-9a-f]{16}$/ } @txns, @keys),
       @txns + @keys, 'state file: every transaction and key has its scope');
}
$t->start_nginx;

is(tx_status_at(a => $ida), 'processing', 'after a restart: a\'s transaction at a');
is(tx_status_at(b => $idb), 'processing', 'after a restart: b\'s transaction at b');
not_found_ok(get_tx_at(b => $ida), $unknown_b, 'after a restart: a\'s transaction at b');
not_found_ok(get_tx_at(a => $idb), $unknown_b, 'after a restart: b\'s transaction at a');
not_found_ok(get_tx_at(b => $idw), $unknown_b, 'after a restart: a\'s completed one at b');
is(tx_status_at(b => $idw), 'HTTP 404', 'after a restart: b still cannot see it');
is(tx_status_at(b => $made), 'completed', 'after a restart: b\'s webhook-made one at b');
is(tx_status_at(a => $made), 'HTTP 404', 'after a restart: b\'s webhook-made one not at a');
is(get_tx_at(c => $idc)->{status}, 200, 'after a restart: the fixed token\'s at c');
is(get_tx_at(a => $idc)->{status}, 404, 'after a restart: the fixed token\'s not at a');
is(tx_id($t->submit(port => $PORT{a}, body => $body1, key => 'order-1')), $ida,
   'after a restart: a\'s key is a\'s transaction');
is(tx_id($t->submit(port => $PORT{b}, body => $body1, key => 'order-1')), $idb,
   'after a restart: b\'s key is b\'s transaction');


###########################################################################
# A state file written before records had a scope: a transaction takes
# that of the location that accepted it, a key that of its transaction;
# one no location accepted (a webhook's) is not loaded, with a [warn].

$t->stop_nginx(signal => 'QUIT');
{
    my $file = $t->dir . '/fb.state';
    my $state = do { local (@ARGV, $/) = ($file); <> } // '';
    my $n = ($state =~ s/,"scope":"[0-9a-f]{16}"|"scope":"[0-9a-f]{16}",//g);
    ok($n >= 5, "an older state file: $n scopes removed");
    $t->write_file('fb.state', $state);
}
$t->start_nginx;

is(tx_status_at(a => $ida), 'processing', 'older state file: a\'s transaction at a');
is(tx_status_at(b => $idb), 'processing', 'older state file: b\'s transaction at b');
is(tx_status_at(b => $ida), 'HTTP 404', 'older state file: a\'s transaction not at b');
is(tx_status_at(a => $idb), 'HTTP 404', 'older state file: b\'s transaction not at a');
is(tx_status_at(a => $idw), 'completed', 'older state file: a\'s completed one at a');
is(tx_id($t->submit(port => $PORT{a}, body => $body1, key => 'order-1')), $ida,
   'older state file: a\'s key is a\'s transaction');
is(tx_id($t->submit(port => $PORT{b}, body => $body1, key => 'order-1')), $idb,
   'older state file: b\'s key is b\'s transaction');
is(get_tx_at(c => $idc)->{status}, 200, 'older state file: the fixed token\'s at c');
$t->log_like(qr/\[warn\] .*fanbase: state file ".*", line \d+: the record is skipped: a record without a scope that belongs to no credential set/,
             'older state file: the webhook\'s transaction is not loaded, said at warn');


###########################################################################
# A new secret and another token URL for client a: the same credential
# set, its transactions and keys still a's.

ok($t->reload(files => { secret_a => "sa-rotated\n" },
              server => "fanbase_token_url %%MOCK%%/api/token?rotated=1;\n"
                        . locations('a')),
   'a\'s secret and token URL changed: reloaded');
is(tx_status_at(a => $ida), 'processing', 'after the rotation: a\'s transaction at a');
is(tx_status_at(b => $ida), 'HTTP 404', 'after the rotation: still not at b');
is(tx_id($t->submit(port => $PORT{a}, body => $body1, key => 'order-1')), $ida,
   'after the rotation: a\'s key is a\'s transaction');

$t->stop;

done_testing();
