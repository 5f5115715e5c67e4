#!/usr/bin/perl

# fanbase_notify: the signed POSTs that tell the site about every status
# change of its transactions (docs/webhooks.md, "Outbound"), as the site
# (the mock's /_site/hook) receives them.  One per change (processing after
# delivery, completed and failed at Fanbase, cancelled by DELETE, completed
# by an inbound webhook), none for anything else; Content-Type, webhook-id
# msg_<transaction id>_<status>, webhook-timestamp of the attempt,
# webhook-signature; the body is the transaction as GET shows it at that
# moment.  Every notification received is verified by the standardwebhooks
# npm package (t/lib/verify_webhook.js), which must also refuse a tampered
# body, id or timestamp and another secret, and by a computation here.  The
# site down (503, other non-2xx, a reset, connection refused) and back:
# retried with backoff, the same webhook-id and body with a newer timestamp
# each attempt, delivered once it answers 2xx, never again after a 2xx.
# fanbase_notify_horizon (dropped with an [error] line), the concurrency
# bound (fanbase_notify_concurrency 1), pending notifications across a
# restart (state file), and the secret nowhere: not in error.log at debug
# level, not in anything sent to the site, Fanbase or clients.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;

use JSON::PP;
use MIME::Base64 qw(decode_base64);
use Time::HiRes qw(time sleep);

my $JSON   = JSON::PP->new->canonical;
my @TX_KEYS = sort qw(created_at updated_at id code operation trigger_endpoint
                      status events);

my $NOTIFY_SECRET = webhook_secret();
my $HOOK_SECRET   = webhook_secret();
my @SECRETS = ($NOTIFY_SECRET, $HOOK_SECRET,
               map { /^whsec_(.+)$/ ? $1 : () } $NOTIFY_SECRET, $HOOK_SECRET);

my $NOTIFY_HTTP = "fanbase_notify %%MOCK%%/_site/hook;\n"
                . "fanbase_notify_secret_file %%DIR%%/notify.secret;\n";
my $SERVER = <<"CONF";
location = $QUEUE { fanbase_submit async; }
location = /dead$QUEUE { fanbase_token_url %%DEAD%%/api/token; fanbase_submit async; }
location /transactions/ { fanbase_transaction; }
location $QUEUE/ { fanbase_status; }
location = /hooks/status {
    fanbase_webhook;
    fanbase_webhook_secret_file %%DIR%%/hook.secret;
}
CONF
my %FILES = (%{ edge_files() }, 'notify.secret' => "$NOTIFY_SECRET\n",
             'hook.secret' => "$HOOK_SECRET\n");

our $t = FanbaseTest->new(
    error_log_level => 'debug',
    mock   => { clients => ['demo-client:demo-secret'],
                processing_after => 0.3, completed_after => 1.5 },
    files  => { %FILES },
    http   => edge_http(timeout => '5s', extra => $NOTIFY_HTTP),
    server => $SERVER,
);
$t->start;


# Helpers

my @answers;    # every answer of the edge to a client, for the secrecy check
my %expect;     # transaction id => { status => 1 }: the notifications due

sub req {
    my $res = $t->request(@_);
    push @answers, $res;
    return $res;
}

# a submission, accepted (one test), its answer kept; the transaction id
sub accepted {
    my ($path, $data) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $res = $t->submit(path => $path, data => $data, record => \@answers,
                         status => 202, name => "submission to $path: 202");
    return tx_id($res) || 'none';
}

# a transaction that stays pending (no token can be had; the same API and
# client id as /transactions/), cancelled now:
# exactly one notification; returns (id, the DELETE's transaction)
sub cancelled_tx {
    my $tag = shift;
    my $id = accepted("/dead$QUEUE", { tag => $tag });
    # 409 while a worker holds it for a (refused) delivery attempt
    my $res;
    $t->wait_for(sub { $res = req(DELETE => "/transactions/$id");
                       $res->{status} != 409 }, timeout => 5, interval => 0.1);
    is($res->{status}, 200, "$tag: cancelled") or diag($res->{body});
    $expect{$id}{cancelled} = 1;
    return ($id, $res->{json}, time);
}

sub msg_id { "msg_$_[0]_$_[1]" }

sub hdr { my ($r, $name) = @_; ($r->{headers}{$name} || [])->[0] }

# what the site received for a webhook-id (or a transaction: a qr//)
sub attempts { $t->mock_site_requests(id => $_[0]) }

sub is_2xx { ($_[0]{status} // '') =~ /^2\d\d$/ }

# wait until the site answered a 2xx for the webhook-id; the attempts
sub wait_delivered {
    my ($mid, $timeout) = @_;
    my $all;
    $t->wait_for(sub { $all = attempts($mid); grep { is_2xx($_) } @$all },
                 timeout => $timeout // 15, interval => 0.1);
    return $all || [];
}

# The checks of one attempt as received: method, path, headers, signature
# (computed here), body (the transaction, with this status).
sub attempt_ok {
    my ($r, $id, $status, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    unless ($r && $r->{method}) {
        fail("$name: the notification");
        diag('nothing received');
        return undef;
    }
    my @why;
    push @why, "method $r->{method}" unless $r->{method} eq 'POST';
    push @why, "path $r->{path}" unless $r->{path} eq '/_site/hook';
    push @why, 'Content-Type ' . (hdr($r, 'content-type') // 'none')
        unless (hdr($r, 'content-type') // '') =~ m{^application/json\b};
    for my $h (qw(webhook-id webhook-timestamp webhook-signature)) {
        my $n = @{ $r->{headers}{$h} || [] };
        push @why, "$n $h headers" unless $n == 1;
    }
    my ($mid, $ts, $sig) = map { hdr($r, $_) // '' }
                           qw(webhook-id webhook-timestamp webhook-signature);
    push @why, "webhook-id $mid" unless $mid eq msg_id($id, $status);
    push @why, "webhook-timestamp $ts" unless $ts =~ /^\d+$/;
    push @why, "webhook-timestamp $ts is not the attempt's time ($r->{time})"
        unless $ts =~ /^\d+$/ && abs($ts - $r->{time}) <= 2;
    push @why, "webhook-signature $sig" unless $sig =~ m{^v1,[A-Za-z0-9+/]{43}=$};
    my $want = webhook_signature($NOTIFY_SECRET, $mid, $ts, $r->{body});
    push @why, 'the signature is not HMAC-SHA256(key, id.timestamp.body)'
        unless grep { $_ eq $want } split / /, $sig;
    my $body = eval { decode_json($r->{body}) };
    if (ref $body ne 'HASH') {
        push @why, "the body is not a JSON object: $r->{body}";
    } else {
        my $keys = join ',', sort keys %$body;
        push @why, "body keys $keys" unless $keys eq join ',', @TX_KEYS;
        push @why, "body id $body->{id}" unless ($body->{id} // '') eq $id;
        push @why, "body status $body->{status}" unless ($body->{status} // '') eq $status;
        my $last = ref $body->{events} eq 'ARRAY' ? $body->{events}[-1] : undef;
        push @why, 'the last event is not ' . $status
            unless $last && ($last->{status} // '') eq $status;
    }
    ok(!@why, "$name: the notification") or diag(join "\n", @why);
    return $body;
}

# The body of a notification is the transaction as it was then: the same
# as now for a terminal one; for an earlier one, the same created_at, code
# and first events.
sub body_matches_ok {
    my ($body, $id, $name, %o) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $now = $t->tx($id, record => \@answers);
    if ($o{same}) {
        is_deeply($body, $now, "$name: the body is GET /transactions/ID")
            or diag('body: ' . $JSON->encode($body) . "\nGET: " . $JSON->encode($now));
        return;
    }
    my $n = ref $body->{events} eq 'ARRAY' ? @{ $body->{events} } : 0;
    my @first = $now ? @{ $now->{events} }[0 .. $n - 1] : ();
    ok($now && $n && $n < @{ $now->{events} }
       && $JSON->encode($body->{events}) eq $JSON->encode(\@first)
       && (grep { ($body->{$_} // '') eq ($now->{$_} // '') }
                qw(created_at id code operation trigger_endpoint)) == 5,
       "$name: the body is the transaction as it was then (an earlier GET)")
        or diag('body: ' . $JSON->encode($body) . "\nGET: " . $JSON->encode($now));
}

# Node's standardwebhooks on attempts: the list of results.
sub node_verify {
    my ($secret, @reqs) = @_;
    return verify_webhooks([ map { [$secret, $_->{headers}, $_->{body}] } @reqs ]);
}


###########################################################################
# The verifier itself: standardwebhooks under Node.js, installed by
# "make deps".  It must accept what it should and refuse the rest, or
# nothing below means anything.

{
    my $body = '{"id":"x","status":"completed","note":"caf' . "\xc3\xa9" . '"}';
    my @h = sign_webhook(secret => $NOTIFY_SECRET, id => 'msg_selftest', body => $body);
    my @r = verify_webhooks([[$NOTIFY_SECRET, [@h], $body],
                             [$NOTIFY_SECRET, [@h], "$body "],
                             [$HOOK_SECRET, [@h], $body]]);
    ok($r[0]{ok}, 'verifier: accepts a message signed here') or diag($r[0]{error});
    is($r[0]{payload} && $r[0]{payload}{note}, "caf\x{e9}", 'verifier: and parses it');
    ok(!$r[1]{ok} && !$r[2]{ok}, 'verifier: refuses a changed body and another secret');
}


###########################################################################
# The life of a transaction: processing (delivered), then completed.

my ($happy, %happy_note);
{
    $happy = accepted($QUEUE, { case => 'happy' });
    $expect{$happy}{$_} = 1 for qw(processing completed);
    my $tx = $t->wait_status($happy, 'completed', timeout => 20,
                             record => \@answers);
    is($tx && $tx->{status}, 'completed', 'happy: completed');
    for my $status (qw(processing completed)) {
        my $all = wait_delivered(msg_id($happy, $status));
        is(scalar @$all, 1, "happy, $status: sent once")
            or diag(join ' ', map { $_->{status} // 'held' } @$all);
        is($all->[0] && $all->[0]{status}, 204, "happy, $status: the site answered 204");
        $happy_note{$status} = $all->[0] || { headers => {}, body => '', time => 0 };
        my $body = attempt_ok($happy_note{$status}, $happy, $status, "happy, $status");
        body_matches_ok($body, $happy, "happy, $status", same => $status eq 'completed');
    }
    cmp_ok($happy_note{processing}{time}, '<', $happy_note{completed}{time},
           'happy: processing told before completed');
}


###########################################################################
# Failed at Fanbase, cancelled by the site, completed by an inbound
# webhook.

my %notes;    # name => [transaction id, status, attempt]
{
    my $id = accepted($QUEUE, { case => 'failed', fail => JSON::PP::true });
    $expect{$id}{$_} = 1 for qw(processing failed);
    $t->wait_status($id, 'failed', timeout => 20, record => \@answers);
    my $all = wait_delivered(msg_id($id, 'failed'));
    is(scalar @$all, 1, 'failed at Fanbase: sent once');
    my $body = attempt_ok($all->[0] || {}, $id, 'failed', 'failed at Fanbase');
    body_matches_ok($body, $id, 'failed at Fanbase', same => 1);
    is($body && $body->{events}[-1]{event}, 'failure', 'failed at Fanbase: a failure event');
    $notes{failed} = [$id, 'failed', $all->[0]];
}
{
    my ($id, $deleted) = cancelled_tx('cancelled');
    my $all = wait_delivered(msg_id($id, 'cancelled'));
    is(scalar @$all, 1, 'cancelled: sent once');
    my $body = attempt_ok($all->[0] || {}, $id, 'cancelled', 'cancelled');
    is_deeply($body, $deleted, 'cancelled: the body is the transaction DELETE answered');
    body_matches_ok($body, $id, 'cancelled', same => 1);
    $notes{cancelled} = [$id, 'cancelled', $all->[0]];
}
{
    # polls fail meanwhile: only the webhook can end it
    $t->mock_faults({ queue_get => { status => 503 } });
    my $id = accepted($QUEUE, { case => 'inbound' });
    $expect{$id}{$_} = 1 for qw(processing completed);
    ok($t->wait_status($id, 'processing', record => \@answers), 'inbound: delivered');
    my $body = $JSON->encode({ id => $id, status => 'completed' });
    my $res = req(POST => '/hooks/status', body => $body,
                  headers => [@CT, sign_webhook(secret => $HOOK_SECRET, body => $body)]);
    is($res->{status}, 204, 'inbound: the webhook applied');
    my $all = wait_delivered(msg_id($id, 'completed'));
    is(scalar @$all, 1, 'inbound: completed told once');
    my $got = attempt_ok($all->[0] || {}, $id, 'completed', 'inbound');
    body_matches_ok($got, $id, 'inbound', same => 1);
    $t->mock_faults({ queue_get => undef });
    $notes{inbound} = [$id, 'completed', $all->[0]];
}


###########################################################################
# Every notification so far, verified by standardwebhooks; and what it
# must refuse.

{
    my @all = ((map { $happy_note{$_} } qw(processing completed)),
               map { $notes{$_}[2] || { headers => {}, body => '' } } sort keys %notes);
    my @r = node_verify($NOTIFY_SECRET, @all);
    my @bad = grep { !$r[$_]{ok} } 0 .. $#r;
    is(scalar @bad, 0, 'standardwebhooks verifies every notification (' . @all . ')')
        or diag(join "\n", map { hdr($all[$_], 'webhook-id') . ": $r[$_]{error}" } @bad);
    my @differ = grep { $r[$_]{ok}
                        && $JSON->encode($r[$_]{payload})
                           ne $JSON->encode(eval { decode_json($all[$_]{body}) }) } 0 .. $#r;
    is(scalar @differ, 0, 'standardwebhooks: the payload is the body');

    my $one = $happy_note{completed};
    (my $tampered = $one->{body}) =~ s/"completed"/"cancelled"/;
    my %hid = (%{ $one->{headers} }, 'webhook-id' => [msg_id($happy, 'failed')]);
    my %hts = (%{ $one->{headers} },
               'webhook-timestamp' => [(hdr($one, 'webhook-timestamp') // 0) + 1]);
    my @no = verify_webhooks([
        [$NOTIFY_SECRET, $one->{headers}, $tampered],
        [$NOTIFY_SECRET, $one->{headers}, "$one->{body}\n"],
        [$NOTIFY_SECRET, \%hid, $one->{body}],
        [$NOTIFY_SECRET, \%hts, $one->{body}],
        [$HOOK_SECRET, $one->{headers}, $one->{body}],
    ]);
    ok($tampered ne $one->{body} && !$no[0]{ok},
       'standardwebhooks refuses a tampered body') or diag(explain($no[0]));
    ok(!$no[1]{ok}, 'standardwebhooks refuses a byte more');
    ok(!$no[2]{ok}, 'standardwebhooks refuses another webhook-id');
    ok(!$no[3]{ok}, 'standardwebhooks refuses another timestamp');
    ok(!$no[4]{ok}, 'standardwebhooks refuses another secret');
}


###########################################################################
# The site down (503), then back: the same webhook-id, body and a newer
# timestamp at each attempt, with backoff; delivered once it answers 2xx.

{
    $t->mock_site({ status => 503 });
    my ($id) = cancelled_tx('site down');
    my $mid = msg_id($id, 'cancelled');
    my $all;
    ok($t->wait_for(sub { $all = attempts($mid); @$all >= 3 }, timeout => 15, interval => 0.1),
       'site down: retried (3 attempts)') or diag(scalar(@{ $all || [] }) . ' attempts');
    $t->mock_site({});
    $all = wait_delivered($mid, 20);
    my @a = @$all;
    my @fails = grep { !is_2xx($_) } @a;
    ok(@fails >= 3 && !grep({ ($_->{status} // '') ne '503' } @fails),
       'site down: the attempts before were answered 503');
    is(scalar(grep { is_2xx($_) } @a), 1, 'site back: delivered once');
    ok(is_2xx($a[-1]), 'site back: the 2xx was the last attempt');
    is(scalar(grep { (hdr($_, 'webhook-id') // '') eq $mid } @a), scalar @a,
       'site down: the same webhook-id at every attempt');
    is(scalar(grep { $_->{body} eq $a[0]{body} } @a), scalar @a,
       'site down: the same body at every attempt');
    my @ts = map { hdr($_, 'webhook-timestamp') // 0 } @a;
    ok(!grep({ $ts[$_] < $ts[$_ - 1] } 1 .. $#ts) && $ts[-1] > $ts[0],
       'site down: each attempt with its own timestamp, newer') or diag("timestamps: @ts");
    my @gaps = map { sprintf '%.2f', $a[$_]{time} - $a[$_ - 1]{time} } 1 .. $#a;
    ok(@gaps >= 2 && !grep({ $_ < 0.45 } @gaps), 'site down: backoff, not a tight loop')
        or diag("gaps: @gaps");
    cmp_ok($a[2]{time} - $a[0]{time}, '>=', 1.4, 'site down: the backoff grows')
        if @a >= 3;
    my $i = 0;
    attempt_ok($_, $id, 'cancelled', 'site down, attempt ' . ++$i) for @a;
    my @r = node_verify($NOTIFY_SECRET, @a);
    is(scalar(grep { $_->{ok} } @r), scalar @a,
       'site down: standardwebhooks verifies every attempt')
        or diag(join "\n", map { $_->{error} // 'ok' } @r);
}

# other answers that are not 2xx, and 2xx that are not 204
for my $case (
    ['a 400', { status => 400, body => '{"error":"bad"}', count => 1 }, '400,204'],
    ['a 301', { status => 301, headers => { Location => '/elsewhere' }, count => 1 }, '301,204'],
    ['a connection reset', { reset => JSON::PP::true, count => 1 }, 'reset,204'],
    ['a 200 with a body', { status => 200, body => '{"ok":true}', count => 1 }, '200'],
    ['a 202', { status => 202, count => 1 }, '202'],
) {
    my ($name, $site, $want) = @$case;
    $t->mock_site($site);
    my ($id) = cancelled_tx("site answers $name");
    my $all = wait_delivered(msg_id($id, 'cancelled'));
    is(join(',', map { $_->{status} // 'held' } @$all), $want,
       "site answers $name: " . ($want =~ /,/ ? 'retried, then delivered' : 'delivered, not retried'));
    $t->mock_site({});
}


###########################################################################
# The site unreachable (connection refused: the mock stopped), then back.

{
    $t->stop_mock;
    my ($id, undef, $at) = cancelled_tx('site unreachable');
    sleep 2.5;
    $t->start_mock;
    my $all = wait_delivered(msg_id($id, 'cancelled'), 20);
    my @ok = grep { is_2xx($_) } @$all;
    is(scalar @ok, 1, 'site unreachable, then back: delivered once');
    cmp_ok(hdr($ok[0] || {}, 'webhook-timestamp') // 0, '>=', int($at) + 2,
           'site unreachable: delivered by a later attempt, with its own timestamp');
    attempt_ok($ok[0] || {}, $id, 'cancelled', 'site unreachable');
    my ($r) = node_verify($NOTIFY_SECRET, $ok[0] || { headers => {}, body => '' });
    ok($r->{ok}, 'site unreachable: standardwebhooks verifies it') or diag($r->{error});
}


###########################################################################
# The whole story at the site: for every transaction, exactly the
# notifications due, each answered 2xx once and never sent after that.

{
    sleep 2;    # a notification re-sent after its 2xx would show by now
    my (%seen, @after_2xx, @unexpected);
    my $all = $t->mock_site_requests;
    for my $r (@$all) {
        my $mid = hdr($r, 'webhook-id') // 'none';
        push @after_2xx, $mid if $seen{$mid} && grep { is_2xx($_) } @{ $seen{$mid} };
        push @{ $seen{$mid} }, $r;
    }
    my %want = map { my $id = $_; map { (msg_id($id, $_) => 1) } keys %{ $expect{$id} } }
               keys %expect;
    @unexpected = grep { !$want{$_} } sort keys %seen;
    my @missing = grep { !$seen{$_} } sort keys %want;
    my @not_once = grep { $seen{$_} && (grep { is_2xx($_) } @{ $seen{$_} }) != 1 }
                   sort keys %want;
    is(scalar @missing, 0, 'site: every status change told') or diag("missing: @missing");
    is(scalar @unexpected, 0, 'site: nothing else (no pending, no repeats under other ids)')
        or diag("unexpected: @unexpected");
    is(scalar @not_once, 0, 'site: each answered 2xx exactly once') or diag("@not_once");
    is(scalar @after_2xx, 0, 'site: nothing sent again after a 2xx') or diag("@after_2xx");
}


###########################################################################
# The secrets: nowhere in error.log (debug), the site's requests, Fanbase's
# requests, or the answers to clients.

{
    my $site = join "\n", map { $JSON->encode($_->{headers}) . $_->{body} }
                          @{ $t->mock_site_requests };
    my $fanbase = join "\n", map { $JSON->encode($_->{headers}) . $_->{body} . $_->{query} }
                             @{ $t->mock_requests };
    my $clients = join "\n", map { join("\n", map { "@$_" } @{ $_->{header_list} || [] })
                                   . ($_->{body} // '') } @answers;
    $t->stop;
    my $log = $t->error_log;
    like($log, qr/\[debug\]/, 'secrecy: error.log is at debug level');
    for my $case (['error.log', $log], ['the site\'s requests', $site],
                  ['Fanbase\'s requests', $fanbase], ['the answers to clients', $clients]) {
        my ($where, $text) = @$case;
        my @found = grep { index($text, $_) >= 0 } @SECRETS;
        ok(!@found, "secrecy: no secret in $where") or diag("found: @found");
    }
}


###########################################################################
# fanbase_notify_horizon 2s, the site down: dropped with an [error] line.

{
    my $h = FanbaseTest->new(
        mock   => { clients => ['demo-client:demo-secret'] },
        files  => { %FILES },
        http   => edge_http(timeout => '2s',
                            extra => $NOTIFY_HTTP . "fanbase_notify_horizon 2s;\n"),
        server => $SERVER,
    );
    $h->start;
    local $t = $h;
    $h->mock_site({ status => 503 });
    my ($id, undef, $at) = cancelled_tx('horizon');
    my $mid = msg_id($id, 'cancelled');
    my $line;
    $h->wait_for(sub {
        ($line) = grep { /\[error\]/ && /notif|webhook/i
                         && /drop|gave up|give up|giving up|horizon/i }
                  split /\n/, $h->error_log;
        return $line;
    }, timeout => 10, interval => 0.1);
    my $dropped = time;
    ok($line, 'horizon: an [error] line when dropped')
        or diag(join "\n", grep { /\[error\]/ } split /\n/, $h->error_log);
    like($line // '', qr/\Q$id\E/, 'horizon: naming the transaction');
    my $after = $dropped - $at;
    cmp_ok($after, '>=', 1.8, 'horizon: not dropped before 2 s');
    cmp_ok($after, '<=', 6, 'horizon: dropped within a few seconds of 2 s');
    my $n = @{ attempts($mid) };
    cmp_ok($n, '>=', 2, 'horizon: retried until then');
    sleep 2.5;
    is(scalar @{ attempts($mid) }, $n, 'horizon: no attempt after it was dropped');
    $h->mock_site({});
    sleep 1.5;
    is(scalar @{ attempts($mid) }, $n, 'horizon: not sent when the site is back');
    $h->stop;
}


###########################################################################
# fanbase_notify_concurrency 1 with one worker: one at a time.

{
    my $c = FanbaseTest->new(
        workers => 1,
        mock    => { clients => ['demo-client:demo-secret'] },
        files   => { %FILES },
        http    => edge_http(timeout => '5s',
                             extra => $NOTIFY_HTTP . "fanbase_notify_concurrency 1;\n"),
        server  => $SERVER,
    );
    $c->start;
    local $t = $c;
    $c->mock_site({ delay_ms => 700 });
    my @ids = map { accepted("/dead$QUEUE", { tag => "concurrency $_" }) } 1 .. 4;
    sleep 0.2;    # their first (refused) delivery attempts are over
    my $start = time;
    my @left = @ids;
    $c->wait_for(sub {
        @left = grep { req(DELETE => "/transactions/$_")->{status} != 200 } @left;
        !@left }, timeout => 5, interval => 0.1);
    is(scalar @left, 0, 'concurrency 1: four cancelled at once');
    my $done = $c->wait_for(sub {
        !grep { !grep { is_2xx($_) } @{ attempts(msg_id($_, 'cancelled')) } } @ids
    }, timeout => 20, interval => 0.1);
    ok($done, 'concurrency 1: all four delivered');
    cmp_ok(time - $start, '>=', 4 * 0.7 - 0.2, 'concurrency 1: one after the other');
    my $stats = $c->mock_site_stats;
    is($stats->{site_in_flight_max}, 1, 'concurrency 1: never more than one in flight');
    is($stats->{requests}, 4, 'concurrency 1: four requests, each once');
    $c->stop;
}


###########################################################################
# A restart with a state file: a pending notification is not lost.

{
    my $r = FanbaseTest->new(
        mock   => { clients => ['demo-client:demo-secret'] },
        files  => { %FILES },
        http   => edge_http(timeout => '2s', state => '%%DIR%%/fanbase.state',
                            extra => $NOTIFY_HTTP),
        server => $SERVER,
    );
    $r->start;
    local $t = $r;
    $r->mock_site({ status => 503 });
    my ($id) = cancelled_tx('restart');
    my $mid = msg_id($id, 'cancelled');
    ok($r->wait_for(sub { @{ attempts($mid) } >= 1 }, timeout => 10),
       'restart: tried while the site is down');
    $r->stop_nginx;
    my $before = @{ attempts($mid) };
    $r->start_nginx;
    ok($r->wait_for(sub { @{ attempts($mid) } > $before }, timeout => 15, interval => 0.1),
       'restart: tried again by the new nginx');
    $r->mock_site({});
    my $all = wait_delivered($mid, 20);
    is(scalar(grep { is_2xx($_) } @$all), 1, 'restart: delivered once the site is back');
    my @ok = grep { is_2xx($_) } @$all;
    attempt_ok($ok[0] || {}, $id, 'cancelled', 'restart');
    my ($v) = node_verify($NOTIFY_SECRET, $ok[0] || { headers => {}, body => '' });
    ok($v->{ok}, 'restart: standardwebhooks verifies it') or diag($v->{error});
    $r->stop;
}

done_testing;
