#!/usr/bin/perl

# Input that once broke the state or a worker (issue 11, docs/state.md):
# texts cut in the middle of a UTF-8 character (a webhook's message and
# error text, Fanbase's processMsg in a cached fanbase_status answer), a
# webhook-id of other bytes than visible ASCII, a signed webhook nested
# 300,000 levels deep, an error text that takes six times its length once
# escaped, and state files with bad, deep, inconsistent or truncated
# records, and request ids that are not what X-Request-ID may be.
# Whatever comes in, every answer is valid JSON in valid UTF-8,
# the state file stays readable record by record, a restart keeps every
# transaction, and no worker dies.  The state file is fsynced before its
# rename and its directory after.

use strict;
use warnings;
use utf8;

use lib 't/lib';
use FanbaseTest;

use JSON::PP;
use Encode ();
use Digest::MD5 qw(md5 md5_hex);

my $STATE = '%%DIR%%/fanbase.state';
my $HOOK_SECRET = webhook_secret();
my $STRICT = JSON::PP->new->utf8;    # refuses bytes that are not UTF-8
our ($SCOPE, $TARGET);    # of the test's credential set, set by edge()

my $SERVER = <<"CONF";
location = $QUEUE { fanbase_submit async; }
location = /sync$QUEUE { fanbase_submit; }
location /transactions/ { fanbase_transaction; }
location $QUEUE/ { fanbase_status; fanbase_status_refresh 60s; }
location = /hooks/status {
    fanbase_webhook;
    fanbase_webhook_secret_file %%DIR%%/hook.secret;
    client_max_body_size 2m;
}
CONF

# An edge whose state file is written by hand (%o: state => a sub that
# gets the scope of the test's credential set, 16 hex digits, and returns
# the file's content) or by nginx.
sub edge {
    my (%o) = @_;
    my $t = FanbaseTest->new(
        mock   => { processing_after => 60, completed_after => 120 },
        files  => { %{ edge_files() }, 'hook.secret' => "$HOOK_SECRET\n",
                    %{ $o{files} || {} } },
        http   => edge_http(timeout => '3s', state => $STATE),
        server => $SERVER,
        hook_secret => $HOOK_SECRET,
        %{ $o{args} || {} },
    );
    return $t unless $o{state};
    $t->start_mock;
    my $api = $t->mock_url;
    # the scope: MD5 of fanbase_api and the client id (module.c); a target
    # (for files without scopes) begins with the MD5 of the queue URL and
    # the credential set's key (token URL, client id, secret)
    local $SCOPE = substr(md5_hex("$api\0client\0demo-client"), 0, 16);
    local $TARGET = md5_hex("$api/api/v1/integration/queue\0"
                            . md5("$api/api/token\0demo-client\0demo-secret"))
                    . ('00' x 16);
    $t->write_file('fanbase.state', $o{state}->());
    return $t;
}

# starts what edge() has not started yet
sub up {
    my $t = shift;
    $t->{mock_pid} ? $t->start_nginx : $t->start;
    return $t;
}

my $SEQ = 0;

# a new transaction at $t (fanbase_submit async): its id
sub new_tx {
    my ($t) = @_;
    return tx_id($t->submit(data => { n => ++$SEQ })) || 'none';
}

# the raw body decodes as strict UTF-8 JSON
sub strict_json {
    my $body = shift;
    return eval { $STRICT->decode($body) };
}

# $t->tx, but decoded as strict UTF-8 JSON
sub strict_tx {
    my ($t, $id) = @_;
    my $res = $t->get_tx($id);
    return $res->{status} == 200 ? strict_json($res->{body}) : undef;
}

# every line of the state file is strict UTF-8 JSON; the records' ids
sub state_ids {
    my $t = shift;
    open my $fh, '<:raw', $t->dir . '/fanbase.state' or return undef;
    my %ids;
    while (my $line = <$fh>) {
        my $r = strict_json($line) or return undef;
        $ids{ $r->{id} } = 1 if defined $r->{id};
    }
    return \%ids;
}

# Ordinary Portuguese, so long that the cuts of old (512 bytes for an
# event's message, 4096 for its error text and for Fanbase's iMsg and
# processMsg) land inside a character; the test says so itself.
my $PT  = 'Erro: ' . ('ação ' x 120) . 'fim';
my $ERR = 'Erro no envio:' . ('não processado, ' x 300) . 'fim';

sub splits {
    my ($text, $at) = @_;
    my $bytes = Encode::encode('UTF-8', $text);
    return (ord(substr $bytes, $at, 1) & 0xc0) == 0x80;
}

ok(splits($PT, 512) && splits($ERR, 4096),
   'the texts: a cut at 512 and at 4096 bytes would split a character');


###########################################################################
# Texts cut on a character boundary; a restart keeps every transaction.

{
    my $t = edge();
    $t->start;

    # a cached fanbase_status answer: the MISS and the HIT are both valid
    # (first: no tracking poll of a delivered transaction takes the fault)
    my $qid = 'hostile-item-1';
    $t->mock_faults({ queue_get => { count => 1, status => 200,
        content_type => 'application/json',
        body => JSON::PP->new->utf8->encode({
            id => $qid, created => '2026-12-04T10:00:00Z', iCode => 0,
            iMsg => $ERR, processDate => '2026-12-04T10:00:01Z',
            processStatus => 'failed', processMsg => $ERR, msg => {} }) } });
    my $miss = $t->request(GET => "$QUEUE/$qid");
    my $hit  = $t->request(GET => "$QUEUE/$qid");
    is($miss->{status}, 200, 'fanbase_status: read through');
    ok(strict_json($miss->{body}), 'fanbase_status: the first answer is strict UTF-8 JSON');
    is($hit->{status}, 200, 'fanbase_status: answered again');
    my $h = strict_json($hit->{body});
    ok($h, 'fanbase_status: the answer from the zone is strict UTF-8 JSON')
        or diag(substr($hit->{body}, -40));
    ok($h && index($ERR, $h->{processMsg} // "\x{fffd}") == 0,
       'fanbase_status: processMsg from the zone is a prefix');

    my @ids = map { new_tx($t) } 1 .. 3;
    is(scalar(grep { /^[0-9a-f-]{36}$/ } @ids), 3, 'cut texts: 3 accepted');

    # the first fails by webhook, with long Portuguese texts
    my $body = JSON::PP->new->utf8->encode({
        id => $ids[0], status => 'failed',
        events => [{ event => 'failure', message => $PT,
                     data => { error_message => $ERR } }] });
    my $res = $t->hook('/hooks/status', $body);
    is($res->{status}, 204, 'cut texts: the webhook is applied');

    my $tx = strict_tx($t, $ids[0]);
    ok($tx, 'cut texts: GET answers strict UTF-8 JSON');
    my $ev = $tx && $tx->{events}[-1];
    is($tx && $tx->{status}, 'failed', 'cut texts: failed');
    ok($ev && length($ev->{message}) < length($PT)
       && index($PT, $ev->{message}) == 0,
       'cut texts: the message is a prefix, cut between characters');
    ok($ev && index($ERR, $ev->{data}{error_message} // "\x{fffd}") == 0
       && length($ev->{data}{error_message}) < length($ERR),
       'cut texts: the error text is a prefix, cut between characters');

    ok($t->wait_for(sub { my $s = state_ids($t); $s && !grep { !$s->{$_} } @ids },
                    timeout => 10),
       'cut texts: the state file is strict UTF-8 JSON with all three');

    $t->stop_nginx;
    $t->start_nginx;

    is(scalar(grep { strict_tx($t, $_) } @ids), 3, 'cut texts: all three after a restart');
    ok(!-e $t->dir . '/fanbase.state.bad', 'cut texts: nothing set aside');
    $t->log_unlike(qr/the record is skipped|cannot be read|ends early/,
                   'cut texts: no record skipped');

    # a webhook-id of bytes that are not visible ASCII: refused at the door
    $res = $t->hook('/hooks/status', qq({"id":"$ids[1]","status":"processing"}),
                    id => "msg_\xc3\xa7\xc3");
    is($res->{status}, 401, 'webhook-id of other bytes: 401');
    $t->log_like(qr/webhook-id is not visible ASCII/, 'webhook-id: the reason is logged');

    $t->stop;
}


###########################################################################
# A signed webhook nested 300,000 levels deep: 400 invalid_json, no worker
# dies; an error text of 1500 U+0001 (9000 bytes escaped): applied, cut.

{
    my $t = edge();
    $t->start;
    my @pids = sort $t->worker_pids;

    my $deep = '[' x 300000 . ']' x 300000;
    for (1 .. 2) {
        my $res = $t->hook('/hooks/status', $deep);
        is($res->{status}, 400, "deep webhook $_: 400");
        is($res->{json} && $res->{json}{error}{code}, 'invalid_json',
           "deep webhook $_: invalid_json");
    }
    my $deep_obj = '{"id":"x","status":"failed","events":' . ('[' x 100) . (']' x 100) . '}';
    is($t->hook('/hooks/status', $deep_obj)->{status}, 400, 'webhook 101 levels deep: 400');
    is_deeply([sort $t->worker_pids], \@pids, 'deep webhooks: the same workers');

    my $id = new_tx($t);
    my $res = $t->hook('/hooks/status', JSON::PP->new->encode({ id => $id, status => 'failed',
        events => [{ message => 'x', data => { error_message => "\x01" x 1500 } }] }));
    is($res->{status}, 204, 'an error text of 1500 U+0001: applied (204, not 500)');
    my $tx = strict_tx($t, $id);
    my $err = $tx && $tx->{events}[-1]{data}{error_message};
    ok(defined $err && $err =~ /^\x01+$/ && length($err) < 1500 && length($err) > 500,
       'and kept, cut by its escaped length');
    $t->stop;
}


###########################################################################
# State files written by hand (or by a disk): each bad record is skipped at
# warn, the rest loaded.

my $UUID = sub { sprintf '%08x-0000-4000-8000-%012x', 0x1234, $_[0] };

# a transaction record of the test's credential set (edge() sets both)
sub txn_line {
    my ($n, %f) = @_;
    my %r = (type => 'transaction', id => $UUID->($n), target => $TARGET,
             scope => $SCOPE,
             status => 'pending', created => 1764842400000, updated => 1764842400000,
             deliver_by => 4102444800000, track_by => 4102444800000,
             version => 1, attempts => 0, sent => JSON::PP::false,
             max_events => 16,
             payload => qq({"action":"ticket-create","data":{"n":$n}}),
             events => [], %f);
    delete $r{$_} for grep { !defined $r{$_} } keys %r;
    return JSON::PP->new->canonical->encode(\%r);
}

{
    my $deep_line = '{"type":"transaction","x":' . ('[' x 200000) . (']' x 200000) . '}';
    my $t = up(edge(state => sub { join("\n",
        '{"version":2}',
        txn_line(1),
        txn_line(2, events => ["{\"event\":\"x\",\"message\":\"\xc3\"}"]) =~ s/\\u00c3/\xc3/r,
        $deep_line,
        txn_line(3, status => 'completed', payload => undef, queue_id => 'abc'),
        txn_line(4, created => undef),
        txn_line(5, events => ['not json']),
        txn_line(6, payload => '[1,2]'),
        txn_line(7, queue_id => "bad id"),
        txn_line(8, status => 'lost'),
        txn_line(9, id => 'not-a-uuid'),
        txn_line(1),                        # the same id again
        '{"type":"idempotency","key":"k1","scope":"' . $SCOPE . '","digest":"'
            . ('00' x 16) . '","id":"' . $UUID->(1) . '","expires":4102444800000}',
        '{"type":"idempotency","key":"k\u00e7","scope":"' . $SCOPE . '","digest":"'
            . ('00' x 16) . '","id":"' . $UUID->(1) . '","expires":4102444800000}',
        '{"type":"notification","id":"msg_1","body":"not an object"}',
        '{"type":"unknown"}',
        txn_line(10),
        '{"end":16}') . "\n" }));

    ok(strict_tx($t, $UUID->(1)), 'hand-written state: a valid record is loaded');
    ok(strict_tx($t, $UUID->(10)), 'hand-written state: so is the one after the bad ones');
    ok(strict_tx($t, $UUID->(3)), 'hand-written state: a terminal one with a queue_id is loaded without it');
    is(scalar(grep { strict_tx($t, $UUID->($_)) } 2, 4 .. 8), 0,
       'hand-written state: the invalid ones are not');
    ok(!-e $t->dir . '/fanbase.state.bad', 'hand-written state: the file is not set aside');
    for my $l (3, 4, 6 .. 12, 14, 15, 16) {
        $t->log_like(qr/\[warn\].*state file ".*", line $l: the record is skipped/,
                     "hand-written state: line $l skipped at warn");
    }
    $t->log_like(qr/\[warn\].*1 Idempotency-Keys.*12 records skipped/,
                 'hand-written state: the count, at warn');
    $t->log_unlike(qr/not an object".*not json|k\xc3\xa7/, 'no record content in the log');
    $t->stop;
}

# The state file of the previous release (version 1, one document), with a
# character cut as its writer cut them, and the corrupted record that
# crashed the master: read, the cut byte replaced; nginx -t passes.
{
    my $t = edge(state => sub {
        local $SCOPE;    # version 1 had none: the target names the location
        return '{"version":1,"transactions":[' . "\n"
        . txn_line(21, events => ["{\"event\":\"x\",\"message\":\"a\xc3\"}"]) =~ s/\\u00c3/\xc3/r
        . ",\n" . '{"id":"' . $UUID->(22) . '","target":"' . $TARGET
        . '","status":"completed","queue_id":"abc"}'
        . ",\n" . txn_line(23) . '],"idempotency":[]}' . "\n" });
    my ($ok, $out) = $t->test_config;
    ok($ok, 'version 1 state with a corrupted record: nginx -t passes') or diag($out);
    like($out, qr/\[warn\].*line 2: the record is skipped/, 'nginx -t: and says which record');
    up($t);
    my $tx = strict_tx($t, $UUID->(21));
    ok($tx, 'version 1 state: the record with a cut character is loaded');
    # (it may be delivered already: the event is looked for among all)
    is(scalar(grep { ($_->{message} // '') =~ /^a\?$/ }
                   @{ $tx ? $tx->{events} : [] }), 1, 'its cut byte is a "?"');
    ok(strict_tx($t, $UUID->(23)), 'version 1 state: the rest is loaded');
    $t->log_like(qr/\[warn\].*line 2: the record is skipped: a transaction with a missing/,
                 'version 1 state: the corrupted record is skipped at warn');
    ok($t->wait_for(sub { open my $fh, '<', $t->dir . '/fanbase.state' or return 0;
                          return scalar(<$fh>) eq qq({"version":2}\n) },
                    timeout => 5) || do { $t->request(POST => $QUEUE, headers => [@CT],
                        body => '{"action":"a","data":{}}');
                    $t->wait_for(sub { open my $fh, '<', $t->dir . '/fanbase.state' or return 0;
                                       return scalar(<$fh>) eq qq({"version":2}\n) },
                                 timeout => 5) },
       'version 1 state: the next save is version 2');
    $t->stop;
}

# Request ids (optional: older files have none) are checked as the doors
# check X-Request-ID: a transaction or notification with a bad one is
# skipped; a good one is loaded and its delivery carries it.
{
    my $note = sub {
        my ($n, %f) = @_;
        JSON::PP->new->canonical->ascii->encode({ type => 'notification',
            id => "msg_$n", created => 1764842400000, attempts => 0,
            body => '{"id":"' . $UUID->($n) . '","status":"processing"}', %f });
    };
    my $t = up(edge(files => { 'notify.secret' => webhook_secret() . "\n" },
                    args => { http => edge_http(timeout => '3s', state => $STATE,
                        extra => "fanbase_notify %%MOCK%%/_site/hook;\n"
                            . "fanbase_notify_secret_file %%DIR%%/notify.secret;\n") },
                    state => sub { join("\n",
        '{"version":2}',
        txn_line(41, request_id => 'kept-41'),
        txn_line(42, request_id => 'bad id'),
        txn_line(43, request_id => 'x' x 65),
        txn_line(44, request_id => 44),
        txn_line(45, request_id => ''),
        txn_line(46, request_id => 'bad"46'),
        txn_line(47),
        $note->(48, request_id => 'kept-48'),
        $note->(49, request_id => "caf\x{e9}"),
        '{"end":9}') . "\n" }));

    ok(strict_tx($t, $UUID->(41)), 'request ids: a valid one is loaded');
    ok(strict_tx($t, $UUID->(47)), 'request ids: a record without one is loaded');
    is(scalar(grep { strict_tx($t, $UUID->($_)) } 42 .. 46), 0,
       'request ids: records with invalid ones are not');
    for my $l (3 .. 7) {
        $t->log_like(qr/\[warn\].*line $l: the record is skipped: a transaction with an invalid request_id/,
                     "request ids: line $l skipped at warn");
    }
    $t->log_like(qr/\[warn\].*line 10: the record is skipped: a notification with an invalid request_id/,
                 'request ids: the notification with an invalid one skipped at warn');
    $t->log_unlike(qr/bad id|bad"46|x{65}/, 'request ids: never written to the log');

    my %rid;
    $t->wait_for(sub {
        %rid = map { (JSON::PP->new->decode($_->{body})->{data}{n} // '')
                     => ($_->{headers}{'x-request-id'} || ['(none)'])->[0] }
               @{ $t->queue_posts };
        return exists $rid{41} && exists $rid{47};
    }, timeout => 10);
    is($rid{41}, 'kept-41', 'request ids: the loaded one goes with the delivery');
    is($rid{47}, '(none)', 'request ids: none for a record that had none');

    my $hooks = $t->wait_for(sub {
        my $r = $t->mock_site_requests(id => 'msg_48');
        return @$r ? $r : undef;
    }, timeout => 10) || [];
    is(join(',', map { ($_->{headers}{'x-request-id'} || ['(none)'])->[0] } @$hooks),
       'kept-48', 'request ids: the loaded notification is sent with its id');
    $t->stop;
}

# A state file cut short (a disk that lost its end): what is whole loads.
{
    my $t = up(edge(state => sub {
        join("\n", '{"version":2}', txn_line(31), txn_line(32)) . "\n"
        . substr(txn_line(33), 0, 50) }));
    is(scalar(grep { strict_tx($t, $UUID->($_)) } 31, 32), 2, 'cut state: the whole records load');
    $t->log_like(qr/\[warn\].*ends early, after 3 records/, 'cut state: said at warn');
    $t->stop;
}


###########################################################################
# fsync: the temporary file before its rename, the directory after.

{
    my ($strace) = grep { -x } map { "$_/strace" } split /:/, $ENV{PATH};
    ok($strace, 'strace is installed (make deps installs it)') or $strace = 'strace';

    my $t = edge();
    $t->start;
    new_tx($t);
    my $out = $t->dir . '/strace.out';
    my $pid = $t->nginx_pid;
    my $st = open(my $fh, '-|', $strace, '-f', '-y', '-qq', '-e', 'trace=fsync,rename',
                  '-o', $out, '-p', $pid);
    sleep 1;
    # the master saves once more at stop, its workers gone
    new_tx($t);
    $t->stop_nginx;
    close $fh;
    my $trace = do { local (@ARGV, $/) = ($out); <> } // '';
    like($trace, qr/fsync\(\d+<[^>]*fanbase\.state\.\d+\.tmp>\)\s+= 0.*rename\("[^"]*fanbase\.state\.\d+\.tmp", "[^"]*fanbase\.state"\)\s+= 0.*fsync\(\d+<[^>]*>\)\s+= 0/s,
         'the save at stop: fsync of the file, rename, fsync of the directory')
        or diag($trace);
    ok(state_ids($t), 'and the file is whole');
    $t->stop;
}

done_testing;
