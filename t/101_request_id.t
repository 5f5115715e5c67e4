#!/usr/bin/perl

# Request ids (docs/directives.md, "Request ids"): the client's
# X-Request-ID when it is 1 to 64 visible ASCII characters without '"' and
# '\', else nginx's $request_id (the value an access log prints), goes to
# Fanbase as X-Request-ID with the synchronous submission and the status
# read-through; an asynchronous transaction keeps the id of the request
# that accepted it, in the zone and across a restart (the state file), and
# its delivery, its status polls and its outbound webhooks carry it; the
# error log lines of a request end with ', request_id: "..."', and an
# invalid id never reaches the error log nor Fanbase.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;

use JSON::PP;
use Time::HiRes qw(time sleep);

my $NOTIFY_SECRET = webhook_secret();
my $HEX32 = qr/^[0-9a-f]{32}$/;

my $SERVER = <<"CONF";
access_log %%DIR%%/rid.log rid;
location = $QUEUE { fanbase_submit; }
location $QUEUE/ { fanbase_status; }
location = /async$QUEUE { fanbase_submit async; }
location /transactions/ { fanbase_transaction; }
location = /dead$QUEUE { fanbase_api %%DEAD%%; fanbase_submit; }
CONF

my $t = FanbaseTest->new(
    mock   => { clients => ['demo-client:demo-secret'],
                processing_after => 0.3, completed_after => 1 },
    files  => { %{ edge_files() }, 'notify.secret' => "$NOTIFY_SECRET\n" },
    http   => edge_http(timeout => '3s', state => '%%DIR%%/fanbase.state',
                        extra => "fanbase_notify %%MOCK%%/_site/hook;\n"
                               . "fanbase_notify_secret_file "
                               . "%%DIR%%/notify.secret;\n")
              . "log_format rid 'tag=\$http_x_tag rid=\$request_id';\n",
    server => $SERVER,
);
$t->start;


# Helpers

my $serial = 0;

# a submission body no other request of this file sends
sub unique_body { body_for(rid_test => $$ . '-' . ++$serial) }

sub hdr { my ($r, $name) = @_; ($r->{headers}{$name} || [])->[0] }

# the request ids Fanbase received with the queue POSTs of $body
sub rids_for_body {
    my $body = shift;
    return map { hdr($_, 'x-request-id') // '(none)' }
           grep { $_->{body} eq $body } @{ $t->queue_posts };
}

# a new tag, and the header that sends it: the request's access log line
# (written after its answer) is found by it
sub tag {
    my $tag = 'tag-' . ++$serial;
    return ($tag, 'X-Tag' => $tag);
}

# the $request_id of the access log line of the request tagged $tag
sub logged_rid {
    my $tag = shift;
    my $rid;
    $t->wait_for(sub {
        ($rid) = FanbaseTest::slurp($t->dir . '/rid.log')
                 =~ /^tag=\Q$tag\E rid=(\S+)$/m;
        return $rid;
    }, timeout => 5);
    return $rid // '(no line)';
}

# waits until the transaction is completed (one test); its queue id, and
# the X-Request-ID of the queue POST that delivered it
sub completed {
    my ($id, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $tx = $t->wait_status($id, 'completed', timeout => 20);
    is($tx && $tx->{status}, 'completed', "$name: completed");
    my ($qid) = grep { defined } map { $_->{data}{queue_id} }
                @{ $tx ? $tx->{events} : [] };
    $qid //= 'none';
    my ($post) = grep { ($_->{queue_id} // '') eq $qid } @{ $t->queue_posts };
    return ($qid, $post ? hdr($post, 'x-request-id') // '(none)' : '(no POST)');
}

# the lines of the state file with this transaction id, decoded
sub state_record {
    my ($type, $re) = @_;
    my $rec;
    $t->wait_for(sub {
        for (split /\n/, FanbaseTest::slurp($t->dir . '/fanbase.state')) {
            my $d = eval { decode_json($_) } or next;
            next unless ($d->{type} // '') eq $type && ($d->{id} // '') =~ $re;
            return $rec = $d;
        }
        return undef;
    }, timeout => 5);
    return $rec;
}


###########################################################################
# Synchronous submissions: the client's id, or a new one, to Fanbase

my @cases = (
    # name, X-Request-ID (undef: none), kept (1) or replaced (0)
    ['a UUID',                 '4b1c2a5e-8f9d-4c3b-9a7e-1f2d3c4b5a69', 1],
    ['visible ASCII',          'req:42/a+b=c;d@e!~#$%&*()[]{}<>?,.`^|\'', 1],
    ['one character',          'x', 1],
    ['64 characters',          'k' x 64, 1],
    ['65 characters',          'k' x 65, 0],
    ['200 characters',         'a' x 200, 0],
    ['empty',                  '', 0],
    ['a space inside',         'has space', 0],
    ['a double quote',         'quo"te', 0],
    ['a backslash',            'back\\slash', 0],
    ['a tab',                  "tab\there", 0],
    ['non-ASCII (UTF-8)',      "caf\xc3\xa9-1", 0],
    ['a DEL byte',             "del\x7f", 0],
    ['a log line forged',      'x", upstream: "evil', 0],
    ['none',                   undef, 0],
);

for my $c (@cases) {
    my ($name, $id, $kept) = @$c;
    my $body = unique_body();
    my ($tag, @tag) = tag();
    my $res = $t->submit(body => $body, status => 201,
                         headers => [@tag, defined $id ? ('X-Request-ID' => $id)
                                                       : ()],
                         name => "submission, X-Request-ID $name: 201");
    my @got = rids_for_body($body);
    is(scalar @got, 1, "submission, X-Request-ID $name: one POST at Fanbase");
    my $logged = logged_rid($tag);
    if ($kept) {
        is($got[0], $id, "submission, X-Request-ID $name: Fanbase got it");
    } else {
        like($got[0] // '', $HEX32,
             "submission, X-Request-ID $name: Fanbase got a new one");
        is($got[0], $logged,
           "submission, X-Request-ID $name: the new one is \$request_id");
    }
}

# an invalid id is said at info, by its length, never by its bytes
$t->log_like(qr/\[info\].*X-Request-ID of 200 bytes is not 1 to 64 visible ASCII .*replaced/,
             'an invalid X-Request-ID is said at info, by its length');
$t->log_unlike(qr/has space|quo"te|caf\xc3\xa9|x", upstream: "evil|a{200}/,
               'no invalid X-Request-ID is written to the error log');

# a token rejected by Fanbase: the call sent again carries the same id
{
    $t->mock_expire_tokens;
    my $body = unique_body();
    $t->submit(body => $body, status => 201, headers => ['X-Request-ID' => 'retried-1'],
               name => 'submission after a token rejection: 201');
    is(join(',', rids_for_body($body)), 'retried-1,retried-1',
       'after a token rejection: both POSTs carry the id');
}


###########################################################################
# Status read-through

{
    my $qid = new_uuid();
    my $res = $t->request(GET => "$QUEUE/$qid",
                          headers => ['X-Request-ID' => 'status-read-1']);
    is($res->{status}, 404, 'status of an id Fanbase does not know: 404');
    my @gets = @{ $t->mock_requests(method => 'GET', path => "$QUEUE/$qid") };
    is(join(',', map { hdr($_, 'x-request-id') // '(none)' } @gets),
       'status-read-1', 'status read-through: Fanbase got the client\'s id');

    $qid = new_uuid();
    my ($tag, @tag) = tag();
    $t->request(GET => "$QUEUE/$qid", headers => [@tag]);
    @gets = @{ $t->mock_requests(method => 'GET', path => "$QUEUE/$qid") };
    my $logged = logged_rid($tag);
    like($logged, $HEX32, 'status read-through without an id: $request_id logged');
    is(join(',', map { hdr($_, 'x-request-id') // '(none)' } @gets), $logged,
       'status read-through without an id: Fanbase got $request_id');
}


###########################################################################
# The error log lines of a request end with its id

{
    my $res = $t->submit(path => "/dead$QUEUE", body => unique_body(),
                         headers => ['X-Request-ID' => 'dead-end-1']);
    like($res->{status}, qr/^50[234]$/, 'Fanbase down: 502, 503 or 504');
    $t->log_like(qr/\[error\] .*fanbase: submission: .*, request: "POST \/dead\Q$QUEUE\E HTTP\/1\.1".*, request_id: "dead-end-1"$/m,
                 'Fanbase down: the [error] line ends with the client\'s id');

    my ($tag, @tag) = tag();
    $t->submit(path => "/dead$QUEUE", body => unique_body(), headers => [@tag]);
    my $logged = logged_rid($tag);
    like($logged, $HEX32, 'Fanbase down, no id: $request_id logged');
    $t->log_like(qr/\[error\] .*fanbase: submission: .*, request_id: "\Q$logged\E"$/m,
                 'Fanbase down, no id: the [error] line ends with $request_id');
}


###########################################################################
# Asynchronous: the accepting request's id on the delivery, the status
# polls and the outbound webhooks

my %async;    # name => { id, rid }

for my $c (['client', 'async-accept-1'], ['generated', undef]) {
    my ($name, $rid) = @$c;
    my ($tag, @tag) = tag();
    my $res = $t->submit(path => "/async$QUEUE", body => unique_body(),
                         headers => [@tag, defined $rid ? ('X-Request-ID' => $rid)
                                                        : ()],
                         status => 202, name => "async ($name): 202");
    $rid //= logged_rid($tag);
    $async{$name} = { id => tx_id($res), rid => $rid };
}

for my $name (sort keys %async) {
    my ($id, $rid) = @{ $async{$name} }{qw(id rid)};
    my ($qid, $sent) = completed($id, "async ($name)");
    is($sent, $rid,
       "async ($name): the delivery carries the accepting request's id");
    my @gets = @{ $t->mock_requests(method => 'GET', path => "$QUEUE/$qid") };
    ok(@gets && !(grep { (hdr($_, 'x-request-id') // '') ne $rid } @gets),
       "async ($name): every status poll carries it")
        or diag(join ',', map { hdr($_, 'x-request-id') // '(none)' } @gets);
    my $hooks;
    $t->wait_for(sub {
        $hooks = $t->mock_site_requests(id => qr/^msg_\Q$id\E_/);
        return grep { ($_->{status} // '') eq '204'
                      && hdr($_, 'webhook-id') =~ /_completed$/ } @$hooks;
    }, timeout => 10);
    is(join(',', map { hdr($_, 'x-request-id') // '(none)' } @$hooks),
       join(',', ($rid) x @$hooks),
       "async ($name): every webhook to the site carries it");
    cmp_ok(scalar @$hooks, '>=', 2, "async ($name): processing and completed sent");
    $t->log_like(qr/\[info\] .*transaction "\Q$id\E" \(request "\Q$rid\E"\) delivered to Fanbase/,
                 "async ($name): the line of its delivery names the request");
}


###########################################################################
# Across a restart: pending transactions and a pending notification keep
# their ids in the state file, and carry them after it is loaded

{
    # C: delivered, its notification refused by the site, so still pending
    $t->mock_site({ status => 503 });
    my $res = $t->submit(path => "/async$QUEUE", body => unique_body(),
                         headers => ['X-Request-ID' => 'restart-C'],
                         status => 202, name => 'restart, C: 202');
    my $c = tx_id($res);
    $t->wait_status($c, qr/^(?:processing|completed)$/);
    $t->wait_for(sub { @{ $t->mock_site_requests(id => qr/^msg_\Q$c\E_/) } },
                 timeout => 10);

    # A and B: Fanbase (and the site) down, so they stay pending
    $t->stop_mock;
    $res = $t->submit(path => "/async$QUEUE", body => unique_body(),
                      headers => ['X-Request-ID' => 'restart-A'],
                      status => 202, name => 'restart, A: 202');
    my $a = tx_id($res);
    my ($tag, @tag) = tag();
    $res = $t->submit(path => "/async$QUEUE", body => unique_body(),
                      headers => [@tag], status => 202,
                      name => 'restart, B: 202');
    my $b = tx_id($res);
    my $b_rid = logged_rid($tag);

    $t->stop_nginx;

    is(state_record(transaction => qr/^\Q$a\E$/)->{request_id} // '(none)',
       'restart-A', 'the state file keeps A\'s request id');
    is(state_record(transaction => qr/^\Q$b\E$/)->{request_id} // '(none)',
       $b_rid, 'the state file keeps B\'s ($request_id)');
    my $n = state_record(notification => qr/^msg_\Q$c\E_/);
    is($n ? $n->{request_id} // '(none)' : '(no record)', 'restart-C',
       'the state file keeps the pending notification\'s request id');

    $t->start_mock;
    $t->mock_site({});
    $t->start_nginx;

    for ([A => $a, 'restart-A'], [B => $b, $b_rid]) {
        my ($name, $id, $rid) = @$_;
        my (undef, $sent) = completed($id, "restart, $name");
        is($sent, $rid,
           "restart, $name: delivered with the accepting request's id");
    }

    # the site refused it before the restart: a 2xx now is the loaded one
    my $mid = $n ? $n->{id} : 'none';
    my $hooks;
    $t->wait_for(sub {
        $hooks = [ grep { ($_->{status} // '') eq '204' }
                   @{ $t->mock_site_requests(id => $mid) } ];
        return @$hooks;
    }, timeout => 15);
    is(join(',', map { hdr($_, 'x-request-id') // '(none)' } @$hooks),
       'restart-C', 'restart, C: the notification loaded from the state '
                    . 'file is sent with its id');
}

done_testing;
