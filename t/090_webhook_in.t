#!/usr/bin/perl

# fanbase_webhook: inbound status callbacks (docs/webhooks.md, "Inbound").
# Applied updates (204; GET /transactions/ID shows the new status and one
# new event), by the edge's transaction id and by Fanbase's queue id (the
# transaction then ends and is no longer polled at Fanbase), in both
# shapes (transaction, queue item), records created for unknown ids
# (fanbase_webhook_create on: a transaction, or a queue item answered by
# fanbase_status) or not (off); authentication (standard: missing headers,
# bad signature, another secret, a tampered body or id, timestamps just
# inside and just outside the tolerance both ways, one good signature in a
# list, two secret files for rotation; hmac hex/base64 with and without
# "sha256="; token), each refusal 401 and one [warn] line with its reason
# and neither the secret nor the body; 400 for bodies that are not JSON or
# not an update (checked after the signature), 405, 413, a body spilled to
# a temporary file and a chunked one verified over their exact bytes;
# deduplication by message id (twice in a row, with another body, on
# another location, 20 copies at once on both workers, forgotten after
# fanbase_webhook_dedup); the state machine (stale and out-of-order
# updates 204, not applied, [info] "stale"; terminal transactions never
# change); 503 zone_full with Retry-After when the zone is full, and the
# sender's retry applied once there is room; nginx -t refusals (no secret,
# empty, unreadable or missing secret files, a standard secret that is not
# whsec_<base64>, fanbase_notify without its secret); no secret in
# error.log.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;

use JSON::PP;
use Time::HiRes qw(time sleep);

my $JSON = JSON::PP->new->canonical;

my $HOOK_SECRET  = webhook_secret();
my $OLD_SECRET   = webhook_secret();    # rotation: the secret being retired
my $NEW_SECRET   = webhook_secret();    # rotation: the next one
my $OTHER_SECRET = webhook_secret();    # nobody's
my $HMAC_SECRET  = 'hmac-S3cret-Qx7w-do-not-log';
my $TOKEN_SECRET = 'token-S3cret-Vb4k-do-not-log';
my @SECRETS = ($HOOK_SECRET, $OLD_SECRET, $NEW_SECRET, $HMAC_SECRET, $TOKEN_SECRET,
               map { /^whsec_(.+)$/ ? $1 : () } $HOOK_SECRET, $OLD_SECRET, $NEW_SECRET);

my $RP_PORT = FanbaseTest::free_port();    # reuseport: webhooks on both workers

sub hook_location {
    my ($path, @lines) = @_;
    return "location = $path {\n    fanbase_webhook;\n"
         . join('', map { "    $_\n" } @lines) . "}\n";
}

my $SECRET_LINE = 'fanbase_webhook_secret_file %%DIR%%/hook.secret;';

# The mock keeps its queue items pending for a minute: a delivered
# transaction stays processing until a webhook moves it.
our $t = FanbaseTest->new(
    mock   => { clients => ['demo-client:demo-secret'],
                processing_after => 60, completed_after => 120 },
    files  => { %{ edge_files() },
                'hook.secret'      => "$HOOK_SECRET\n",
                'hook-2026.secret' => "$OLD_SECRET\n",
                'hook-2027.secret' => "$NEW_SECRET\n",
                'hmac.secret'      => "$HMAC_SECRET\n",
                'token.secret'     => "$TOKEN_SECRET\n" },
    http   => edge_http(timeout => '5s', extra => <<"CONF"),
server {
    listen 127.0.0.1:$RP_PORT reuseport;
    access_log %%DIR%%/workers.log fb_pid;
    location = /hooks/status {
        fanbase_webhook;
        $SECRET_LINE
    }
}
CONF
    server => "location = $QUEUE { fanbase_submit async; }\n"
            . "location = /dead$QUEUE { fanbase_token_url %%DEAD%%/api/token; "
            . "fanbase_submit async; }\n"
            . "location /transactions/ { fanbase_transaction; }\n"
            . "location $QUEUE/ { fanbase_status; }\n"
            . hook_location('/hooks/status', $SECRET_LINE)
            . hook_location('/hooks/rotated',
                  'fanbase_webhook_secret_file %%DIR%%/hook-2026.secret;',
                  'fanbase_webhook_secret_file %%DIR%%/hook-2027.secret;')
            . hook_location('/hooks/tolerance', $SECRET_LINE,
                            'fanbase_webhook_tolerance 10s;')
            . hook_location('/hooks/dedup1s', $SECRET_LINE,
                            'fanbase_webhook_dedup 1s;')
            . hook_location('/hooks/nocreate', $SECRET_LINE,
                            'fanbase_webhook_create off;')
            . hook_location('/hooks/small', $SECRET_LINE,
                            'client_max_body_size 1k;')
            . hook_location('/hooks/spill', $SECRET_LINE,
                            'client_body_buffer_size 1k;',
                            'client_max_body_size 64k;')
            . hook_location('/hooks/hmac', 'fanbase_webhook_auth hmac X-Signature;',
                            'fanbase_webhook_secret_file %%DIR%%/hmac.secret;')
            . hook_location('/hooks/hmac-hex',
                            'fanbase_webhook_auth hmac X-Signature hex;',
                            'fanbase_webhook_secret_file %%DIR%%/hmac.secret;')
            . hook_location('/hooks/hmac-b64',
                            'fanbase_webhook_auth hmac X-Hub-Signature-256 base64;',
                            'fanbase_webhook_secret_file %%DIR%%/hmac.secret;')
            . hook_location('/hooks/token', 'fanbase_webhook_auth token X-Token;',
                            'fanbase_webhook_secret_file %%DIR%%/token.secret;'),
    hook_secret => $HOOK_SECRET,
);
$t->start;


# Helpers

sub body_of { ref $_[0] ? $JSON->encode($_[0]) : $_[0] }

sub n_events  { my $tx = $t->tx($_[0]); $tx ? scalar @{ $tx->{events} || [] } : -1 }

# The error log from byte $mark on.
sub log_mark { length $t->error_log }
sub log_since { substr $t->error_log, $_[0] }

# A pool of delivered transactions (processing at the edge; pending at
# the mock for a minute), each { id, qid }.
my @POOL;
sub fill_pool {
    my $n = shift;
    my $base = @POOL;
    my @res = $t->parallel($n, POST => $QUEUE, headers => [@CT],
        body => sub { qq({"action":"ticket-create","data":{"pool":) . ($base + $_[0]) . '}}' });
    my @ids = map { $_->{status} == 202 ? $_->{json}{transaction_id} : () } @res;
    is(scalar @ids, $n, "pool: $n transactions accepted")
        or diag(join ' ', map { "$_->{status}" } @res);
    my %qid;
    $t->wait_for(sub {
        for my $id (grep { !$qid{$_} } @ids) {
            my $tx = $t->tx($id) or next;
            next unless ($tx->{status} // '') eq 'processing';
            my ($ev) = grep { $_->{status} eq 'processing' } @{ $tx->{events} || [] };
            $qid{$id} = $ev->{data}{queue_id} if $ev && $ev->{data}{queue_id};
        }
        return keys %qid == @ids;
    }, timeout => 30, interval => 0.2);
    is(scalar keys %qid, $n, "pool: $n delivered (processing, with a queue id)");
    push @POOL, map { { id => $_, qid => $qid{$_} } } grep { $qid{$_} } @ids;
}

sub take {
    my $p = shift @POOL or BAIL_OUT('the pool of delivered transactions is empty');
    return $p;
}

# The transaction is as it was: same status, same events.
sub unchanged_ok {
    my ($before, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $now = $t->tx($before->{id});
    is($now && $now->{status}, $before->{status}, "$name: status unchanged");
    is($now && scalar @{ $now->{events} || [] }, scalar @{ $before->{events} || [] },
       "$name: no event added");
}

# The update was applied once: the status and exactly one new event.
sub applied_ok {
    my ($before, $status, $name, $event) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $now = $t->tx($before->{id});
    is($now && $now->{status}, $status, "$name: now $status") or diag(explain($now));
    is($now && scalar @{ $now->{events} || [] }, @{ $before->{events} || [] } + 1,
       "$name: one event added");
    json_like(last_event($now), { status => $status, created_at => $ISO_MS,
                                  event => $status eq 'failed' ? 'failure' : 'transition',
                                  %{ $event || {} } },
              "$name: the new event");
    return $now;
}

sub no_content_ok {
    my ($res, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($res->{status}, 204, "$name: 204")
        or diag("body: $res->{body}" . ($res->{error} ? " ($res->{error})" : ''));
}

# A refusal: 401 unauthorized, the transaction untouched, and one [warn]
# line since $mark with the reason, without a secret or the body's marker.
sub refused_ok {
    my ($res, $before, $mark, $reason, $marker, $name, %o) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    error_ok($res, 401, 'unauthorized', $name);
    unchanged_ok($before, $name) if $before;
    my @warn = grep { /\[warn\]/ && !($o{ignore} && $_ =~ $o{ignore}) }
               split /\n/, log_since($mark);
    is(scalar @warn, 1, "$name: logged once at [warn]") or diag(join "\n", @warn);
    like($warn[0] // '', $reason, "$name: the [warn] line says why");
    my @leaks = grep { my $s = $_; grep { index($_, $s) >= 0 } @warn }
                @SECRETS, $marker;
    ok(!@leaks, "$name: neither a secret nor the body in the log")
        or diag("found: @leaks");
}

# nginx's clock ticks in whole seconds: start a case early in a second, so
# that "now" is the same second for the test and for the edge.
sub early_in_second {
    my $frac = time - int time;
    sleep(1.02 - $frac) if $frac > 0.4;
}

my $MARK = 0;
sub marker { 'marker-' . ++$MARK . '-' . int(rand 1e9) }

# the body of an update in the transaction shape, with a marker in it
sub tx_update {
    my ($id, $status, %more) = @_;
    return { id => $id, status => $status, note => marker(), %more };
}


###########################################################################
# By Fanbase's queue id, right after delivery: the transaction completes
# and is no longer polled at Fanbase (checked at the end of the file, many
# seconds and several poll intervals later).

my ($by_qid, $qid_gets);
{
    my $res = $t->request(POST => $QUEUE, headers => [@CT],
                          body => '{"action":"ticket-create","data":{"by":"queue id"}}');
    is($res->{status}, 202, 'by queue id: accepted');
    my $id = $res->{json} ? $res->{json}{transaction_id} : 'none';
    my ($tx, $qid);
    $t->wait_for(sub {
        $tx = $t->tx($id);
        my ($ev) = grep { $_->{status} eq 'processing' } @{ $tx ? $tx->{events} : [] };
        $qid = $ev && $ev->{data}{queue_id};
        return $qid;
    }, timeout => 15, interval => 0.05);
    ok($qid, 'by queue id: delivered, the event has data.queue_id') or diag(explain($tx));
    $qid //= 'none';

    no_content_ok($t->hook('/hooks/status', { id => $qid, processStatus => 'completed',
                                              processMsg => 'Processado pelo webhook',
                                              processDate => '2026-12-01T18:31:14Z',
                                              iCode => 0, iMsg => 'Processado com sucesso' }),
                  'by queue id: completed');
    applied_ok($tx, 'completed', 'by queue id');
    $by_qid = { id => $id, qid => $qid, at => time };
    sleep 0.3;    # a poll on the wire when the webhook came ends
    $qid_gets = $t->mock_gets($qid);
}

fill_pool(64);


###########################################################################
# Applied: by the edge's transaction id, both shapes.

{
    my $p = take();
    my $before = $t->tx($p->{id});
    my $res = $t->hook('/hooks/status', tx_update($p->{id}, 'completed'));
    no_content_ok($res, 'transaction shape, completed');
    is($res->{body}, '', 'transaction shape, completed: no body');
    applied_ok($before, 'completed', 'transaction shape, completed');
}
{
    my $p = take();
    my $before = $t->tx($p->{id});
    no_content_ok($t->hook('/hooks/status', tx_update($p->{id}, 'failed', events => [
                      { event => 'transition', message => 'sent to the acquirer',
                        data => {}, status => 'processing' },
                      { event => 'failure', message => 'refused by the acquirer',
                        data => { error_message => 'card declined' }, status => 'failed' },
                  ])), 'transaction shape, failed with events');
    applied_ok($before, 'failed', 'transaction shape, failed with events',
               { message => 'refused by the acquirer',
                 data => { error_message => 'card declined' } });
}
{
    my $p = take();
    my $before = $t->tx($p->{id});
    no_content_ok($t->hook('/hooks/status', { id => $p->{id}, processStatus => 'failed',
                                              processMsg => 'Recusado pelo emissor',
                                              iCode => 0, iMsg => 'Falha no processamento' }),
                  'queue item shape by transaction id, failed');
    applied_ok($before, 'failed', 'queue item shape by transaction id, failed',
               { data => { error_message => 'Recusado pelo emissor' } });
}
{
    my $p = take();
    my $before = $t->tx($p->{id});
    no_content_ok($t->hook('/hooks/status', { id => $p->{qid}, processStatus => 'failed',
                                              processMsg => 'Sem estoque' }),
                  'queue item shape by queue id, failed');
    applied_ok($before, 'failed', 'queue item shape by queue id, failed',
               { data => { error_message => 'Sem estoque' } });
}
{
    my $p = take();
    my $before = $t->tx($p->{id});
    no_content_ok($t->hook('/hooks/status', tx_update($p->{qid}, 'completed')),
                  'transaction shape by queue id, completed');
    my $now = applied_ok($before, 'completed', 'transaction shape by queue id, completed');
    is($now && $now->{id}, $p->{id}, 'transaction shape by queue id: the transaction keeps its id');
    my $res = $t->request(GET => "/transactions/$p->{qid}");
    ok($res->{status} == 404
       || ($res->{status} == 200 && ($res->{json}{id} // '') eq $p->{id}),
       'transaction shape by queue id: no record created under the queue id')
        or diag("$res->{status} $res->{body}");
}


###########################################################################
# Unknown ids: created (fanbase_webhook_create on, the default), or
# ignored (off).

{
    my $id = new_uuid();
    no_content_ok($t->hook('/hooks/status', { id => $id, processStatus => 'completed',
                                              processMsg => 'Criado pelo webhook',
                                              processDate => '2026-12-01T18:31:14Z',
                                              iCode => 0, iMsg => 'Processado com sucesso' }),
                  'unknown queue id, create on');
    my $res = $t->request(GET => "$QUEUE/$id");
    is($res->{status}, 200, 'unknown queue id, create on: fanbase_status answers it')
        or diag($res->{body});
    json_like($res->{json}, { id => $id, processStatus => 'completed',
                              processMsg => 'Criado pelo webhook',
                              iMsg => 'Processado com sucesso' },
              'unknown queue id, create on: the queue item as sent');
    is($t->mock_gets($id), 0,
       'unknown queue id, create on: answered from the zone, Fanbase not asked');
}
{
    my $id = new_uuid();
    no_content_ok($t->hook('/hooks/status', { id => $id, status => 'completed' }),
                  'unknown transaction id, create on');
    my $res = $t->request(GET => "/transactions/$id");
    is($res->{status}, 200, 'unknown transaction id, create on: fanbase_transaction answers it')
        or diag($res->{body});
    json_like($res->{json}, { id => $id, status => 'completed' },
              'unknown transaction id, create on: the transaction');
}
{
    my $id = new_uuid();
    my $mark = log_mark();
    no_content_ok($t->hook('/hooks/nocreate', { id => $id, status => 'completed' }),
                  'unknown transaction id, create off');
    is($t->request(GET => "/transactions/$id")->{status}, 404,
       'unknown transaction id, create off: nothing created');
    ok($t->wait_for(sub { index(log_since($mark), $id) >= 0 }, timeout => 1),
       'unknown transaction id, create off: logged');

    my $qid = new_uuid();
    no_content_ok($t->hook('/hooks/nocreate', { id => $qid, processStatus => 'completed' }),
                  'unknown queue id, create off');
    my $res = $t->request(GET => "$QUEUE/$qid");
    isnt($res->{status}, 200, 'unknown queue id, create off: nothing created '
                              . '(fanbase_status asks Fanbase, which does not know it)');

    my $p = take();
    my $before = $t->tx($p->{id});
    no_content_ok($t->hook('/hooks/nocreate', tx_update($p->{id}, 'completed')),
                  'known id, create off');
    applied_ok($before, 'completed', 'known id, create off');
}


###########################################################################
# Standard Webhooks authentication.  A refused message would complete the
# victim: it must stay processing.

my $victim = take();
sub victim { $t->tx($victim->{id}) }

{
    my $ts = int time;
    my @missing = (
        ['no webhook-id', 'webhook-id'],
        ['no webhook-timestamp', 'webhook-timestamp'],
        ['no webhook-signature', 'webhook-signature'],
    );
    for my $case (@missing) {
        my ($name, $drop) = @$case;
        my $body = body_of(tx_update($victim->{id}, 'completed'));
        my ($marker) = $body =~ /(marker-[\d-]+)/;
        my %h = sign_webhook(secret => $HOOK_SECRET, id => new_msg_id(), timestamp => $ts,
                             body => $body);
        delete $h{$drop};
        my $before = victim();
        my $mark = log_mark();
        my $res = $t->hook('/hooks/status', $body, headers => [%h]);
        refused_ok($res, $before, $mark, qr/missing/i, $marker, $name);
    }

    my $body = body_of(tx_update($victim->{id}, 'completed'));
    my ($marker) = $body =~ /(marker-[\d-]+)/;
    my $before = victim();
    my $mark = log_mark();
    refused_ok($t->hook('/hooks/status', $body, headers => []), $before, $mark,
               qr/missing/i, $marker, 'no signature headers at all');
}

for my $case (
    ['a bad signature', sub { (signatures => ['v1,' . ('A' x 43) . '=']) }],
    ['a signature that is not base64', sub { (signatures => ['v1,not*base64!']) }],
    ['a signature made with another secret', sub { (secret => $OTHER_SECRET) }],
    ['a good signature labelled v2', sub {
         my ($id, $ts, $body) = @_;
         my $good = webhook_signature($HOOK_SECRET, $id, $ts, $body);
         $good =~ s/^v1,/v2,/;
         (signatures => [$good]);
     }],
    ['a good signature without "v1,"', sub {
         my ($id, $ts, $body) = @_;
         my $good = webhook_signature($HOOK_SECRET, $id, $ts, $body);
         $good =~ s/^v1,//;
         (signatures => [$good]);
     }],
) {
    my ($name, $how) = @$case;
    my $body = body_of(tx_update($victim->{id}, 'completed'));
    my ($marker) = $body =~ /(marker-[\d-]+)/;
    my ($id, $ts) = (new_msg_id(), int time);
    my $before = victim();
    my $mark = log_mark();
    my $res = $t->hook('/hooks/status', $body, id => $id, timestamp => $ts,
                       $how->($id, $ts, $body));
    refused_ok($res, $before, $mark, qr/signature/i, $marker, $name);
}

# signed for one thing, sent with another: the body, the id, the timestamp
{
    my $body = body_of(tx_update($victim->{id}, 'completed'));
    my ($marker) = $body =~ /(marker-[\d-]+)/;
    my ($id, $ts) = (new_msg_id(), int time);
    my $good = webhook_signature($HOOK_SECRET, $id, $ts, $body);
    my @tampered = (
        ['a tampered body', $id, $ts, do { (my $b = $body) =~ s/"completed"/"failed"/; $b }],
        ['a body with a byte more', $id, $ts, "$body "],
        ['a tampered webhook-id', "${id}x", $ts, $body],
        ['a tampered webhook-timestamp', $id, $ts - 1, $body],
    );
    for my $case (@tampered) {
        my ($name, $sid, $sts, $sbody) = @$case;
        my $before = victim();
        my $mark = log_mark();
        my $res = $t->hook('/hooks/status', $sbody,
                           headers => ['webhook-id' => $sid, 'webhook-timestamp' => $sts,
                                       'webhook-signature' => $good]);
        refused_ok($res, $before, $mark, qr/signature/i, $marker, $name);
    }
}

# the tolerance, 5 minutes by default and 10 s where set, both ways
{
    for my $case (['/hooks/status', 301, '5m'], ['/hooks/tolerance', 11, '10s']) {
        my ($path, $off, $tol) = @$case;
        for my $sign (-1, 1) {
            my $name = "tolerance $tol: a timestamp $off s "
                     . ($sign < 0 ? 'in the past' : 'in the future');
            my $body = body_of(tx_update($victim->{id}, 'completed'));
            my ($marker) = $body =~ /(marker-[\d-]+)/;
            my $before = victim();
            early_in_second();
            my $mark = log_mark();
            my $res = $t->hook($path, $body, timestamp => int(time) + $sign * $off);
            refused_ok($res, $before, $mark, qr/stale|timestamp|tolerance|old|future/i,
                       $marker, $name);
        }
    }
    for my $case (['/hooks/status', 299, '5m'], ['/hooks/tolerance', 9, '10s']) {
        my ($path, $off, $tol) = @$case;
        for my $sign (-1, 1) {
            my $name = "tolerance $tol: a timestamp $off s "
                     . ($sign < 0 ? 'in the past' : 'in the future');
            my $p = take();
            my $before = $t->tx($p->{id});
            early_in_second();
            no_content_ok($t->hook($path, tx_update($p->{id}, 'completed'),
                                   timestamp => int(time) + $sign * $off), $name);
            applied_ok($before, 'completed', $name);
        }
    }
    my $body = body_of(tx_update($victim->{id}, 'completed'));
    my ($marker) = $body =~ /(marker-[\d-]+)/;
    my $before = victim();
    my $mark = log_mark();
    refused_ok($t->hook('/hooks/status', $body, timestamp => 'yesterday'), $before, $mark,
               qr/timestamp|stale|missing|invalid/i, $marker, 'a timestamp that is not a number');
}

# several signatures: one good among bad ones is enough
{
    my $p = take();
    my $before = $t->tx($p->{id});
    my $body = body_of(tx_update($p->{id}, 'completed'));
    my ($id, $ts) = (new_msg_id(), int time);
    my $good = webhook_signature($HOOK_SECRET, $id, $ts, $body);
    no_content_ok($t->hook('/hooks/status', $body, id => $id, timestamp => $ts, signatures => [
                      webhook_signature($OTHER_SECRET, $id, $ts, $body),
                      'v1,' . ('B' x 43) . '=', $good,
                      webhook_signature($NEW_SECRET, $id, $ts, $body)]),
                  'one good signature among bad ones');
    applied_ok($before, 'completed', 'one good signature among bad ones');
}

# rotation: two secret files, either signs
for my $case (['the retiring secret', $OLD_SECRET], ['the next secret', $NEW_SECRET]) {
    my ($name, $secret) = @$case;
    my $p = take();
    my $before = $t->tx($p->{id});
    no_content_ok($t->hook('/hooks/rotated', tx_update($p->{id}, 'completed'), secret => $secret),
                  "rotation, $name");
    applied_ok($before, 'completed', "rotation, $name");
}
{
    my $body = body_of(tx_update($victim->{id}, 'completed'));
    my ($marker) = $body =~ /(marker-[\d-]+)/;
    my $before = victim();
    my $mark = log_mark();
    refused_ok($t->hook('/hooks/rotated', $body, secret => $HOOK_SECRET), $before, $mark,
               qr/signature/i, $marker, 'rotation, a secret of neither file');
}


###########################################################################
# The body: checked for its signature before it is parsed; 400, 405, 413;
# spilled to a temporary file or chunked, verified over its exact bytes.

{
    my $mark = log_mark();
    my $res = $t->hook('/hooks/status', 'this is not JSON', headers => []);
    is($res->{status}, 401, 'unsigned and not JSON: 401 (the signature comes first)');
    $res = $t->hook('/hooks/status', 'this is not JSON', secret => $OTHER_SECRET);
    is($res->{status}, 401, 'badly signed and not JSON: 401');
}

$t->run_cases(
    map({
        my ($name, $body, $code) = @$_;
        +{
            name    => $name,
            request => [POST => '/hooks/status', body => $body,
                        headers => [@CT, sign_webhook(secret => $HOOK_SECRET,
                                                      id => new_msg_id(), body => $body)]],
            status  => 400,
            json    => { error => { status => 400, code => $code, message => qr/\S/ } },
        }
    } ['signed, not JSON', 'this is not JSON', 'invalid_json'],
      ['signed, cut JSON', qq({"id":"$victim->{id}","status":"comp), 'invalid_json'],
      ['signed, empty body', '', 'invalid_json'],
      ['signed, no id', '{"status":"completed"}', 'invalid_update'],
      ['signed, no status', qq({"id":"$victim->{id}"}), 'invalid_update'],
      ['signed, an unknown status', qq({"id":"$victim->{id}","status":"shipped"}),
       'invalid_update'],
      ['signed, an unknown processStatus',
       qq({"id":"$victim->{id}","processStatus":"shipped"}), 'invalid_update'],
      ['signed, a JSON array', qq([{"id":"$victim->{id}","status":"completed"}]),
       qr/^invalid_(?:update|json)$/]),
    {
        name    => 'GET: 405',
        request => [GET => '/hooks/status'],
        status  => 405,
    },
    {
        name    => 'PUT: 405',
        request => [PUT => '/hooks/status', headers => [@CT], body => '{}'],
        status  => 405,
    },
);
unchanged_ok(victim(), 'after the 400s');
is((victim() // {})->{status}, 'processing', 'the victim is still processing');

# larger than client_max_body_size (1k there)
{
    my $body = body_of(tx_update($victim->{id}, 'completed', padding => 'p' x 2000));
    error_ok($t->hook('/hooks/small', $body), 413, qr/\S/, 'over client_max_body_size');
}

# a body nginx wrote to a temporary file (client_body_buffer_size 1k)
{
    my $p = take();
    my $before = $t->tx($p->{id});
    my $body = body_of(tx_update($p->{id}, 'completed', padding => 'x' x 8000));
    my $mark = log_mark();
    no_content_ok($t->hook('/hooks/spill', $body), 'an 8k body in a temporary file');
    like(log_since($mark), qr/buffered to a temporary file/,
         'an 8k body in a temporary file: nginx did write it to a file');
    applied_ok($before, 'completed', 'an 8k body in a temporary file');

    my $q = take();
    my $qbefore = $t->tx($q->{id});
    my $good = body_of(tx_update($q->{id}, 'completed', padding => 'y' x 8000));
    my ($id, $ts) = (new_msg_id(), int time);
    my @h = sign_webhook(secret => $HOOK_SECRET, id => $id, timestamp => $ts, body => $good);
    (my $bad = $good) =~ s/yyyy"/yyyz"/;
    $mark = log_mark();
    my $res = $t->hook('/hooks/spill', $bad, headers => \@h);
    refused_ok($res, $qbefore, $mark, qr/signature/i, 'y' x 64,
               'an 8k body in a temporary file, its last bytes tampered',
               ignore => qr/buffered to a temporary file/);
}

# a chunked body: the signature is over the body, not its chunks
{
    my $p = take();
    my $before = $t->tx($p->{id});
    my $body = body_of(tx_update($p->{id}, 'completed'));
    my @h = sign_webhook(secret => $HOOK_SECRET, id => new_msg_id(), body => $body);
    my $half = int(length($body) / 2);
    my $raw = "POST /hooks/status HTTP/1.1\r\nHost: localhost\r\n"
            . "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n";
    for (my $k = 0; $k < @h; $k += 2) { $raw .= "$h[$k]: $h[$k + 1]\r\n" }
    $raw .= "\r\n";
    for my $chunk (substr($body, 0, $half), substr($body, $half)) {
        $raw .= sprintf("%x\r\n", length $chunk) . "$chunk\r\n";
    }
    $raw .= "0\r\n\r\n";
    no_content_ok($t->request(POST => '/hooks/status', raw => $raw), 'a chunked body');
    applied_ok($before, 'completed', 'a chunked body');
}


###########################################################################
# The hmac and token schemes.

for my $case (
    ['hmac, hex by default', '/hooks/hmac', 'X-Signature', 'hex', ''],
    ['hmac hex', '/hooks/hmac-hex', 'X-Signature', 'hex', ''],
    ['hmac hex with sha256=', '/hooks/hmac-hex', 'X-Signature', 'hex', 'sha256='],
    ['hmac base64', '/hooks/hmac-b64', 'X-Hub-Signature-256', 'base64', ''],
    ['hmac base64 with sha256=', '/hooks/hmac-b64', 'X-Hub-Signature-256', 'base64', 'sha256='],
) {
    my ($name, $path, $header, $enc, $prefix) = @$case;
    my $p = take();
    my $before = $t->tx($p->{id});
    my $body = body_of(tx_update($p->{id}, 'completed'));
    no_content_ok($t->hook($path, $body, headers => [hmac_webhook(
                      secret => $HMAC_SECRET, body => $body, header => $header,
                      encoding => $enc, prefix => $prefix)]), $name);
    applied_ok($before, 'completed', $name);
}
{
    my $body = body_of(tx_update($victim->{id}, 'completed'));
    my ($marker) = $body =~ /(marker-[\d-]+)/;
    my @refused = (
        ['hmac: no header', '/hooks/hmac-hex', [], qr/missing/i],
        ['hmac: another secret', '/hooks/hmac-hex', [hmac_webhook(
             secret => 'not-the-secret', body => $body, header => 'X-Signature')],
         qr/signature/i],
        ['hmac: a tampered body', '/hooks/hmac-hex', [hmac_webhook(
             secret => $HMAC_SECRET, body => "$body ", header => 'X-Signature')],
         qr/signature/i],
        ['hmac: base64 where hex is expected', '/hooks/hmac-hex', [hmac_webhook(
             secret => $HMAC_SECRET, body => $body, header => 'X-Signature',
             encoding => 'base64')], qr/signature/i],
        ['hmac: hex where base64 is expected', '/hooks/hmac-b64', [hmac_webhook(
             secret => $HMAC_SECRET, body => $body, header => 'X-Hub-Signature-256')],
         qr/signature/i],
        ['hmac: in another header', '/hooks/hmac-hex', [hmac_webhook(
             secret => $HMAC_SECRET, body => $body, header => 'X-Other')], qr/missing/i],
        ['token: no header', '/hooks/token', [], qr/missing/i],
        ['token: a wrong token', '/hooks/token', [token_webhook(
             secret => 'token-S3cret-Vb4k-do-not-lo', header => 'X-Token')],
         qr/signature|token/i],
        ['token: the token and more', '/hooks/token', [token_webhook(
             secret => "${TOKEN_SECRET}x", header => 'X-Token')], qr/signature|token/i],
        ['token: an HMAC instead', '/hooks/token', [hmac_webhook(
             secret => $TOKEN_SECRET, body => $body, header => 'X-Token')],
         qr/signature|token/i],
    );
    for my $case (@refused) {
        my ($name, $path, $headers, $reason) = @$case;
        my $before = victim();
        my $mark = log_mark();
        refused_ok($t->hook($path, $body, headers => $headers), $before, $mark, $reason,
                   $marker, $name);
    }
}
{
    my $p = take();
    my $before = $t->tx($p->{id});
    no_content_ok($t->hook('/hooks/token', tx_update($p->{id}, 'completed'),
                           headers => [token_webhook(secret => $TOKEN_SECRET,
                                                     header => 'X-Token')]),
                  'token');
    applied_ok($before, 'completed', 'token');
}
# hmac: the message id is the body's SHA-256: the same body again is a
# repeat, answered 204 and not applied again
{
    my $p = take();
    my $before = $t->tx($p->{id});
    my $body = body_of(tx_update($p->{id}, 'completed'));
    my @h = hmac_webhook(secret => $HMAC_SECRET, body => $body, header => 'X-Signature');
    no_content_ok($t->hook('/hooks/hmac-hex', $body, headers => \@h), 'hmac, first');
    no_content_ok($t->hook('/hooks/hmac-hex', $body, headers => \@h), 'hmac, the same body again');
    applied_ok($before, 'completed', 'hmac, the same body twice');
}


###########################################################################
# Deduplication by webhook-id.

{
    my $p = take();
    my $before = $t->tx($p->{id});
    my $body = body_of(tx_update($p->{id}, 'completed'));
    my ($id, $ts) = (new_msg_id(), int time);
    no_content_ok($t->hook('/hooks/status', $body, id => $id, timestamp => $ts), 'twice: first');
    no_content_ok($t->hook('/hooks/status', $body, id => $id, timestamp => $ts), 'twice: second');
    applied_ok($before, 'completed', 'twice: applied once');

    # the same id with another body (for another transaction): a repeat
    my $q = take();
    my $qbefore = $t->tx($q->{id});
    no_content_ok($t->hook('/hooks/status', tx_update($q->{id}, 'failed'), id => $id),
                  'the same webhook-id with another body');
    unchanged_ok($qbefore, 'the same webhook-id with another body: not applied');

    # and on another location
    no_content_ok($t->hook('/hooks/tolerance', tx_update($q->{id}, 'failed'), id => $id),
                  'the same webhook-id on another location');
    unchanged_ok($qbefore, 'the same webhook-id on another location: not applied');
}

# fanbase_webhook_dedup 1s: after that, the id is forgotten
{
    my ($p, $q) = (take(), take());
    my ($pbefore, $qbefore) = ($t->tx($p->{id}), $t->tx($q->{id}));
    my $id = new_msg_id();
    no_content_ok($t->hook('/hooks/dedup1s', tx_update($p->{id}, 'completed'), id => $id),
                  'dedup 1s: first');
    applied_ok($pbefore, 'completed', 'dedup 1s: first');
    no_content_ok($t->hook('/hooks/dedup1s', tx_update($q->{id}, 'completed'), id => $id),
                  'dedup 1s: the same id at once');
    unchanged_ok($qbefore, 'dedup 1s: the same id at once: not applied');
    sleep 2.2;
    no_content_ok($t->hook('/hooks/dedup1s', tx_update($q->{id}, 'completed'), id => $id),
                  'dedup 1s: the same id 2 s later');
    applied_ok($qbefore, 'completed', 'dedup 1s: the same id 2 s later: applied (forgotten)');
}

# 20 copies at once, on both workers
{
    my $p = take();
    my $before = $t->tx($p->{id});
    my $body = body_of(tx_update($p->{id}, 'completed'));
    my @h = sign_webhook(secret => $HOOK_SECRET, id => new_msg_id(), body => $body);
    my $skip = $t->log_lines('workers.log');
    my @res = $t->parallel(20, POST => '/hooks/status', port => $RP_PORT,
                           headers => [@CT, @h], body => $body);
    is(scalar(grep { $_->{status} == 204 } @res), 20, '20 copies at once: all 204')
        or diag(join ' ', map { "$_->{status}" . ($_->{error} ? ":$_->{error}" : '') } @res);
    applied_ok($before, 'completed', '20 copies at once: applied once');
    my %pids = $t->log_pids('workers.log', qr/^(\d+) POST \/hooks\/status 204/,
                            from => $skip);
    is(scalar keys %pids, 2, '20 copies at once: both workers answered some')
        or diag('pids: ' . join ' ', keys %pids);
}

# 20 messages with the same webhook-id at once, each for another
# transaction: the id is claimed once, so exactly one is applied
{
    my @ps = map { take() } 1 .. 20;
    my $id = new_msg_id();
    my $ts = int time;
    my @bodies = map { body_of(tx_update($_->{id}, 'completed')) } @ps;
    my $skip = $t->log_lines('workers.log');
    my @res = $t->parallel(20, POST => '/hooks/status', port => $RP_PORT, body => sub { $bodies[$_[0]] },
        headers => sub { [@CT, sign_webhook(secret => $HOOK_SECRET, id => $id, timestamp => $ts,
                                            body => $bodies[$_[0]])] });
    is(scalar(grep { $_->{status} == 204 } @res), 20,
       'one webhook-id, 20 bodies at once: all 204')
        or diag(join ' ', map { "$_->{status}" . ($_->{error} ? ":$_->{error}" : '') } @res);
    my @done = grep { $t->tx_status($_->{id}) ne 'processing' } @ps;
    is(scalar @done, 1, 'one webhook-id, 20 bodies at once: exactly one applied')
        or diag(join ' ', map { $t->tx_status($_->{id}) } @ps);
    my %pids = $t->log_pids('workers.log', qr/^(\d+) POST \/hooks\/status 204/,
                            from => $skip);
    is(scalar keys %pids, 2, 'one webhook-id, 20 bodies at once: on both workers')
        or diag('pids: ' . join ' ', keys %pids);
}


###########################################################################
# The state machine: forward only, terminal for ever.

{
    my $p = take();
    my $before = $t->tx($p->{id});
    no_content_ok($t->hook('/hooks/status', tx_update($p->{id}, 'processing')),
                  'processing again (equal)');
    unchanged_ok($before, 'processing again (equal): not applied');

    no_content_ok($t->hook('/hooks/status', tx_update($p->{id}, 'completed')),
                  'out of order: completed first');
    my $done = applied_ok($before, 'completed', 'out of order: completed first');
    my $mark = log_mark();
    no_content_ok($t->hook('/hooks/status', tx_update($p->{id}, 'processing')),
                  'out of order: processing after completed');
    unchanged_ok($done, 'out of order: processing after completed: not applied');
    like(log_since($mark), qr/\[info\].*stale/i,
         'out of order: logged at [info] as stale');
    no_content_ok($t->hook('/hooks/status', { id => $p->{qid}, processStatus => 'pending' }),
                  'out of order: pending (queue item) after completed');
    unchanged_ok($done, 'out of order: pending after completed: not applied');
}
{
    my $p = take();
    my $before = $t->tx($p->{id});
    no_content_ok($t->hook('/hooks/status', tx_update($p->{id}, 'failed')), 'terminal: failed');
    my $failed = applied_ok($before, 'failed', 'terminal: failed');
    for my $status (qw(completed cancelled failed)) {
        my $mark = log_mark();
        no_content_ok($t->hook('/hooks/status', tx_update($p->{id}, $status)),
                      "terminal: $status after failed");
        unchanged_ok($failed, "terminal: $status after failed: not applied");
        like(log_since($mark), qr/\[info\].*stale/i,
             "terminal: $status after failed: logged at [info] as stale");
    }
    no_content_ok($t->hook('/hooks/status', { id => $p->{qid}, processStatus => 'completed' }),
                  'terminal: completed by queue id after failed');
    unchanged_ok($failed, 'terminal: completed by queue id after failed: not applied');
}
{
    # cancelled at the edge (no token can be had for this one: the same
    # API and client id as /transactions/)
    my $res = $t->request(POST => "/dead$QUEUE", headers => [@CT],
                          body => '{"action":"ticket-create","data":{"cancel":1}}');
    my $id = $res->{json} ? $res->{json}{transaction_id} : 'none';
    # 409 while a worker holds it for a (refused) delivery attempt
    my $del;
    $t->wait_for(sub { $del = $t->request(DELETE => "/transactions/$id");
                       $del->{status} != 409 }, timeout => 5, interval => 0.1);
    is($del->{status}, 200, 'terminal: cancelled');
    my $cancelled = $t->tx($id);
    is($cancelled && $cancelled->{status}, 'cancelled', 'terminal: cancelled status');
    no_content_ok($t->hook('/hooks/status', tx_update($id, 'completed')),
                  'terminal: completed after cancelled');
    unchanged_ok($cancelled, 'terminal: completed after cancelled: not applied');
}


###########################################################################
# The transaction completed by its queue id at the start is not polled.

{
    # polls come 1, 2, 4 s after delivery: 4.5 s after the webhook, one
    # would have come
    my $left = $by_qid->{at} + 4.5 - time;
    sleep $left if $left > 0;
    my $tx = $t->tx($by_qid->{id});
    is($tx && $tx->{status}, 'completed', 'by queue id: still completed');
    my $gets = $t->mock_stats->{gets_by_id};
    is($gets->{ $by_qid->{qid} } // 0, $qid_gets,
       'by queue id: no poll at Fanbase since it ended by webhook');
    cmp_ok($gets->{ $victim->{qid} } // 0, '>', 0,
           'by queue id: while one still processing was polled (control)');
}


###########################################################################
# No secret in error.log.

{
    my $log = $t->error_log;
    my @found = grep { index($log, $_) >= 0 } @SECRETS;
    ok(!@found, 'error.log holds no webhook secret') or diag("found: @found");
}
$t->stop;


###########################################################################
# A full zone: 503 zone_full with Retry-After; the sender's retry is
# applied once there is room.

{
    my $z = FanbaseTest->new(
        mock   => undef,
        files  => { %{ edge_files() }, 'hook.secret' => "$HOOK_SECRET\n" },
        http   => edge_http(zone => '32k', timeout => '2s'),
        server => "location = $QUEUE { fanbase_api %%DEAD%%; fanbase_submit async; }\n"
                . "location /transactions/ { fanbase_transaction; }\n"
                . hook_location('/hooks/status', $SECRET_LINE),
        hook_secret => $HOOK_SECRET,
    );
    $z->start;
    local $t = $z;

    my (@ids, $full, $other);
    for my $round (1 .. 50) {
        for my $res ($z->parallel(20, POST => $QUEUE, headers => [@CT],
                     body => sub { qq({"action":"ticket-create","data":{"z":"$round.$_[0]"}}) })) {
            if ($res->{status} == 202) { push @ids, $res->{json}{transaction_id} }
            elsif ($res->{status} == 503) { $full++ }
            else { $other = $res }
        }
        last if $full || $other;
    }
    ok($full && !$other, 'full zone: filled with pending transactions')
        or diag($other ? "got $other->{status} $other->{body}" : 'never full');

    # webhooks that create transactions until there is no room
    my ($refused, $refused_msg, @created, $odd);
    for (1 .. 500) {
        my $uuid = new_uuid();
        my $body = body_of({ id => $uuid, status => 'processing' });
        my ($id, $ts) = (new_msg_id(), int time);
        my $res = $t->hook('/hooks/status', $body, id => $id, timestamp => $ts);
        if ($res->{status} == 204) { push @created, $uuid; next }
        if ($res->{status} == 503) { ($refused, $refused_msg) = ($res, [$uuid, $body, $id]) }
        else { $odd = $res }
        last;
    }
    ok(!$odd, 'full zone: webhooks answered 204 until the 503')
        or diag("got $odd->{status} $odd->{body}");
    ok($refused, 'full zone: a webhook answered 503') or diag(scalar(@created) . ' created');
    if ($refused) {
        error_ok($refused, 503, 'zone_full', 'full zone, webhook');
        like($refused->{headers}{'retry-after'} // '', qr/^[1-9]\d*$/,
             'full zone, webhook: Retry-After');
        my ($uuid, $body, $id) = @$refused_msg;
        is($z->request(GET => "/transactions/$uuid")->{status}, 404,
           'full zone, webhook: nothing created');

        # room: cancel some pending transactions (terminal: evictable)
        my $cancelled = grep { $z->request(DELETE => "/transactions/$_")->{status} == 200 }
                        @ids[0 .. 9];
        cmp_ok($cancelled, '>=', 1, 'full zone: some transactions cancelled for room');

        # the sender retries the same message (same id, a new timestamp)
        no_content_ok($t->hook('/hooks/status', $body, id => $id),
                      'full zone, the retry once there is room');
        my $res = $z->request(GET => "/transactions/$uuid");
        is($res->{status}, 200, 'full zone, the retry: applied (the id was not kept '
                                . 'as seen when it was refused)');
        is($res->{json} && $res->{json}{status}, 'processing', 'full zone, the retry: its status');
    }
    $z->stop;
}


###########################################################################
# nginx -t: what must be refused, each naming the directive or the file.

my $T_HTTP = edge_http();
my $T_SERVER = "location = $QUEUE { fanbase_submit async; }\n";
my $GOOD = webhook_secret();

my @t_refused = (
    {
        name   => 'fanbase_webhook without a secret file',
        server => hook_location('/hooks/status'),
        error  => qr/fanbase_webhook.*secret|secret.*fanbase_webhook/i,
    },
    {
        name   => 'an empty secret file',
        files  => { 'empty.secret' => '' },
        server => hook_location('/hooks/status',
                                'fanbase_webhook_secret_file %%DIR%%/empty.secret;'),
        error  => qr/empty\.secret/,
    },
    {
        name   => 'a secret file with only a newline',
        files  => { 'blank.secret' => "\n" },
        server => hook_location('/hooks/status',
                                'fanbase_webhook_secret_file %%DIR%%/blank.secret;'),
        error  => qr/blank\.secret/,
    },
    {
        name   => 'a secret file that does not exist',
        server => hook_location('/hooks/status',
                                'fanbase_webhook_secret_file %%DIR%%/nope.secret;'),
        error  => qr/nope\.secret/,
    },
    {
        name   => 'a secret file that cannot be read (a directory)',
        files  => { 'secrets.d/readme' => "x\n" },
        server => hook_location('/hooks/status',
                                'fanbase_webhook_secret_file %%DIR%%/secrets.d;'),
        error  => qr/secrets\.d/,
    },
    {
        name   => 'a standard secret without whsec_',
        files  => { 'plain.secret' => "just-a-password\n" },
        server => hook_location('/hooks/status',
                                'fanbase_webhook_secret_file %%DIR%%/plain.secret;'),
        error  => qr/plain\.secret|whsec_/,
    },
    {
        name   => 'a standard secret whsec_ and no key',
        files  => { 'nokey.secret' => "whsec_\n" },
        server => hook_location('/hooks/status',
                                'fanbase_webhook_secret_file %%DIR%%/nokey.secret;'),
        error  => qr/nokey\.secret|whsec_/,
    },
    {
        name   => 'a standard secret whsec_ and not base64',
        files  => { 'bad64.secret' => "whsec_not*base64!\n" },
        server => hook_location('/hooks/status',
                                'fanbase_webhook_secret_file %%DIR%%/bad64.secret;'),
        error  => qr/bad64\.secret|whsec_|base64/,
    },
    {
        name   => 'an empty secret file for the hmac scheme',
        files  => { 'empty.secret' => '' },
        server => hook_location('/hooks/status', 'fanbase_webhook_auth hmac X-Signature;',
                                'fanbase_webhook_secret_file %%DIR%%/empty.secret;'),
        error  => qr/empty\.secret/,
    },
    {
        name   => 'fanbase_webhook_auth with an unknown scheme',
        files  => { 'hook.secret' => "$GOOD\n" },
        server => hook_location('/hooks/status', 'fanbase_webhook_auth magic;', $SECRET_LINE),
        error  => qr/fanbase_webhook_auth|magic/,
    },
    {
        name   => 'fanbase_webhook_auth hmac with an unknown encoding',
        files  => { 'hook.secret' => "$GOOD\n" },
        server => hook_location('/hooks/status', 'fanbase_webhook_auth hmac X-Sig base32;',
                                $SECRET_LINE),
        error  => qr/fanbase_webhook_auth|base32/,
    },
    {
        name   => 'fanbase_notify without fanbase_notify_secret_file',
        http   => "fanbase_notify %%MOCK%%/_site/hook;\n",
        error  => qr/fanbase_notify_secret_file.* in \S*nginx\.conf:\d+/,
    },
    {
        name   => 'fanbase_notify with a secret that is not whsec_',
        files  => { 'notify.secret' => "just-a-password\n" },
        http   => "fanbase_notify %%MOCK%%/_site/hook;\n"
                . "fanbase_notify_secret_file %%DIR%%/notify.secret;\n",
        error  => qr/notify\.secret|whsec_/,
    },
    {
        name   => 'fanbase_notify with a secret file that does not exist',
        http   => "fanbase_notify %%MOCK%%/_site/hook;\n"
                . "fanbase_notify_secret_file %%DIR%%/nope-notify.secret;\n",
        error  => qr/nope-notify\.secret/,
    },
    {
        name   => 'fanbase_notify with an empty secret file',
        files  => { 'notify.secret' => '' },
        http   => "fanbase_notify %%MOCK%%/_site/hook;\n"
                . "fanbase_notify_secret_file %%DIR%%/notify.secret;\n",
        error  => qr/notify\.secret/,
    },
);

for my $case (@t_refused) {
    my ($ok, $out) = FanbaseTest->nginx_t(
        files  => { %{ edge_files() }, %{ $case->{files} || {} } },
        http   => $T_HTTP . ($case->{http} // ''),
        server => $T_SERVER . ($case->{server} // ''),
    );
    ok(!$ok, "nginx -t: $case->{name}: refused") or diag($out);
    like($out, qr/\[emerg\]/, "nginx -t: $case->{name}: [emerg]");
    my ($emerg) = grep { /\[emerg\]/ } split /\n/, $out;
    like($emerg // '', $case->{error}, "nginx -t: $case->{name}: the message names it")
        or diag($out);
    unlike($emerg // '', qr/unknown directive/,
           "nginx -t: $case->{name}: refused for that reason, not an unknown directive");
    my @leak = grep { index($out, $_) >= 0 } 'just-a-password', $GOOD;
    ok(!@leak, "nginx -t: $case->{name}: no secret in the output") or diag($out);
}

for my $case (
    {
        name   => 'standard, a whsec_ secret',
        files  => { 'hook.secret' => "$GOOD\n" },
        server => hook_location('/hooks/status', $SECRET_LINE),
    },
    {
        name   => 'a secret inherited from the server level',
        files  => { 'hook.secret' => "$GOOD\n" },
        server => "$SECRET_LINE\n" . hook_location('/hooks/status'),
    },
    {
        name   => 'hmac and token, plain secrets',
        files  => { 'hmac.secret' => "$HMAC_SECRET\n", 'token.secret' => "$TOKEN_SECRET\n" },
        server => hook_location('/hooks/hmac', 'fanbase_webhook_auth hmac X-Sig base64;',
                                'fanbase_webhook_secret_file %%DIR%%/hmac.secret;')
                . hook_location('/hooks/token', 'fanbase_webhook_auth token X-Token;',
                                'fanbase_webhook_secret_file %%DIR%%/token.secret;'),
    },
    {
        name   => 'fanbase_notify with its secret',
        files  => { 'notify.secret' => "$GOOD\n" },
        http   => "fanbase_notify %%MOCK%%/_site/hook;\n"
                . "fanbase_notify_secret_file %%DIR%%/notify.secret;\n"
                . "fanbase_notify_horizon 1h;\nfanbase_notify_concurrency 2;\n",
    },
    {
        name   => 'every inbound directive',
        files  => { 'hook.secret' => "$GOOD\n" },
        server => hook_location('/hooks/status', $SECRET_LINE, 'fanbase_webhook_auth standard;',
                                'fanbase_webhook_tolerance 1m;', 'fanbase_webhook_dedup 1h;',
                                'fanbase_webhook_create off;'),
    },
) {
    my ($ok, $out) = FanbaseTest->nginx_t(
        files  => { %{ edge_files() }, %{ $case->{files} || {} } },
        http   => $T_HTTP . ($case->{http} // ''),
        server => $T_SERVER . ($case->{server} // ''),
    );
    ok($ok, "nginx -t: $case->{name}: accepted") or diag($out);
}

done_testing;
