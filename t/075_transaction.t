#!/usr/bin/perl

# fanbase_transaction: the transaction's shape (dates, code, operation,
# events); one followed to completed (data.queue_id is the id Fanbase gave,
# the submission reached Fanbase unchanged, tracking stops) and one to
# failed; fanbase_transaction_events keeps the newest; HEAD; ETag and
# If-None-Match; the id from a variable; 404, 400, 405; DELETE: a pending
# transaction is cancelled and never delivered, also when Fanbase comes
# back, DELETE again is 200, once delivery has started (on the wire,
# processing, ended) it is 409; DELETE racing the delivery: cancelled and
# never sent, or 409 and sent exactly once (right after the 202, and while
# deliveries queue up behind fanbase_deliver_concurrency 1 in a second
# nginx); long polling: woken by the delivery and by a DELETE on another
# connection (also for polls held by both workers), 304 when nothing
# changed, capped by fanbase_long_poll, at once for a terminal transaction.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;

use IO::Poll qw(POLLIN);
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(_exit);
use Time::HiRes qw(time sleep);
use Time::Local qw(timegm);

my %STATUSES = map { $_ => 1 } qw(pending processing completed failed cancelled);
my %TERMINAL = map { $_ => 1 } qw(completed failed cancelled);

my $LP_PORT = FanbaseTest::free_port();    # reuseport: polls on both workers

# a package variable: the helpers below work on the edge in $t, and a
# block can point them at another one with "local $t = ..."
our $t = FanbaseTest->new(
    mock   => { clients => ['demo-client:demo-secret'],
                processing_after => 0.3, completed_after => 0.6 },
    files  => edge_files(),
    http   => edge_http(timeout => '2s', extra => <<"CONF"),
server {
    listen 127.0.0.1:$LP_PORT reuseport;
    access_log %%DIR%%/longpoll.log fb_pid;
    location /transactions/ { fanbase_transaction; }
}
CONF
    server => <<"CONF",
location = $QUEUE { fanbase_submit async; }
location = /dead$QUEUE {
    # no token can be had: its transactions wait, pending; the same API and
    # client id, so /transactions/ sees them
    fanbase_token_url %%DEAD%%/api/token;
    fanbase_submit async;
}
location = /ev2$QUEUE { fanbase_transaction_events 2; fanbase_submit async; }
location /transactions/ { fanbase_transaction; }
location /short/ { fanbase_long_poll 1s; fanbase_transaction; }
location = /by-arg { fanbase_transaction \$arg_id; }
CONF
);
$t->start;


# Helpers

my $JSON = JSON::PP->new->canonical;

# a submission accepted, with a transaction id (one test); the id
sub accepted_id {
    my ($body, %o) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $res = $t->submit(body => $body, path => $o{path});
    my $id = tx_id($res);
    ok($id =~ $UUID4, ($o{name} // 'submission') . ': 202 with an id')
        or diag("$res->{status} $res->{body}"
                . ($res->{error} ? " ($res->{error})" : ''));
    return $id;
}

sub tx_path { "/transactions/$_[0]" }

sub del_tx { $t->request(DELETE => tx_path($_[0])) }

# The checks of a 200 with a transaction: shape, types, invariants.
sub tx_ok {
    my ($res, $id, $name, %want) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;

    is($res->{status}, 200, "$name: 200")
        or diag("body: $res->{body}" . ($res->{error} ? " ($res->{error})" : ''));
    like($res->{headers}{'content-type'} // '', qr{^application/json\b},
         "$name: Content-Type JSON");
    like($res->{headers}{etag} // '', qr/^(?:W\/)?"[^"]+"$/, "$name: ETag");

    my $d = $res->{json};
    is(ref $d, 'HASH', "$name: a JSON object") or return;
    is_deeply([sort keys %$d],
              [sort qw(created_at updated_at id code operation trigger_endpoint
                       status events)], "$name: exactly the transaction's keys");
    json_like($d, { created_at => $ISO_MS, updated_at => $ISO_MS, id => $id,
                    code => uc substr($id, 0, 8), operation => 'create',
                    trigger_endpoint => 'api/v1/integration/queue',
                    status => $want{status} // qr/./ }, "$name: values");
    ok($STATUSES{ $d->{status} // '' }, "$name: a known status")
        or diag("status: " . ($d->{status} // 'null'));
    ok(($d->{updated_at} // '') ge ($d->{created_at} // ''),
       "$name: updated_at not before created_at");

    my $ev = $d->{events};
    ok(ref $ev eq 'ARRAY' && @$ev, "$name: events, not empty") or return;
    my $bad = 0;
    my $prev = '';
    for my $i (0 .. $#$ev) {
        my $e = $ev->[$i];
        my @why;
        push @why, 'not an object' unless ref $e eq 'HASH';
        if (ref $e eq 'HASH') {
            my $keys = join ',', sort keys %$e;
            push @why, "keys $keys" if $keys ne 'created_at,data,event,message,status';
            push @why, 'event' unless defined $e->{event} && !ref $e->{event}
                                      && length $e->{event};
            push @why, 'message' unless defined $e->{message} && !ref $e->{message};
            push @why, 'data' unless ref $e->{data} eq 'HASH';
            push @why, 'status' unless $STATUSES{ $e->{status} // '' };
            push @why, 'created_at' unless ($e->{created_at} // '') =~ $ISO_MS;
            push @why, 'created_at before the previous event'
                if ($e->{created_at} // '') lt $prev;
            $prev = $e->{created_at} // '';
        }
        next unless @why;
        $bad++;
        diag("$name: event $i: @why: " . $JSON->encode($e));
    }
    ok(!$bad, "$name: every event has event, message, data, status, created_at");
    is($ev->[-1]{status}, $d->{status}, "$name: the newest event has its status");
    ok(($d->{updated_at} // '') ge ($ev->[-1]{created_at} // ''),
       "$name: updated_at not before the newest event");
    return $d;
}

# Raw HTTP/1.1 with Connection: close, read to the end: (head, rest).
sub raw_request {
    my ($method, $path, @headers) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port,
                                  Proto => 'tcp', Timeout => 5)
        or die "connect: $!";
    my $req = "$method $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
    while (my ($n, $v) = splice @headers, 0, 2) { $req .= "$n: $v\r\n" }
    print $s "$req\r\n";
    my ($raw, $poll, $end) = ('', IO::Poll->new, time + 5);
    $poll->mask($s, POLLIN);
    while (time < $end && $poll->poll($end - time) > 0) {
        sysread($s, $raw, 65536, length $raw) or last;
    }
    my ($head, $rest) = split /\r\n\r\n/, $raw, 2;
    return ($head // '', $rest // '');
}

sub raw_header {
    my ($head, $name) = @_;
    return $head =~ /^\Q$name\E:[ \t]*(.*?)\r?$/mi ? $1 : undef;
}

# Run $code in a child process after $delay seconds; its return value
# (a string) is written to a file.  Returns a sub that waits for the child
# and gives that string.
sub later {
    my ($delay, $code) = @_;
    my $file = $t->dir . "/later.$$." . int(rand 1e9);
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        sleep $delay;
        my $out = eval { $code->() } // "died: $@";
        open my $fh, '>', $file or _exit(1);
        print $fh $out;
        close $fh;
        _exit(0);
    }
    return sub {
        waitpid $pid, 0;
        open my $fh, '<', $file or return "no result from the child";
        local $/;
        return scalar <$fh>;
    };
}

# the token the mock issues, to read a queue item as Fanbase has it
my $mock_token;
sub mock_item {
    my $qid = shift;
    $mock_token //= $t->request(POST => '/api/token?grant_type=client_credentials'
                                     . '&client_id=demo-client&client_secret=demo-secret',
                                port => $t->mock_port)->{json}{access_token};
    my $res = $t->request(GET => "$QUEUE/$qid", port => $t->mock_port,
                          headers => [AccessToken => $mock_token]);
    return $res->{status} == 200 ? $res->{json} : undef;
}


###########################################################################
# The shape of a pending transaction (Fanbase unreachable: it stays so).

my $dead = accepted_id(body_for(case => 'dead', n => 1), path => "/dead$QUEUE", name => 'dead');
my $t0 = time;
{
    my $res = $t->get_tx($dead);
    my $d = tx_ok($res, $dead, 'pending', status => 'pending');
    json_like($d && $d->{events}, [ { event => 'transition',
                                      message => 'accepted by the edge',
                                      data => {}, status => 'pending' } ],
              'pending: the first event is the acceptance');
    is_deeply($d && $d->{events}[0]{data}, {}, 'pending: its data is empty');

    # the dates are now, in UTC
    my ($y, $mo, $dd, $h, $mi, $s) =
        ($d && $d->{created_at} // '') =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)/;
    my $created = defined $s ? timegm($s, $mi, $h, $dd, $mo - 1, $y) : 0;
    cmp_ok(abs($created - $t0), '<', 5, 'pending: created_at is now (UTC)')
        or diag("created_at $d->{created_at}, now " . gmtime($t0));

    my $again = $t->get_tx($dead);
    is($again->{json}{created_at}, $d && $d->{created_at},
       'pending: created_at does not change');
    is($again->{json}{status}, 'pending', 'pending: still pending');
    is($t->posts_with(body_for(case => 'dead', n => 1)), 0, 'pending: nothing at the mock');

    my $arg = $t->request(GET => "/by-arg?id=$dead");
    tx_ok($arg, $dead, 'id from $arg_id', status => 'pending');
}


###########################################################################
# Errors: unknown, malformed, other methods.

{
    my $unknown = '0f0e0d0c-0b0a-4908-8706-050403020100';
    error_ok($t->get_tx($unknown), 404, 'not_found', 'unknown id');
    error_ok($t->request(DELETE => tx_path($unknown)), 404, 'not_found',
             'DELETE of an unknown id');
    my $head = $t->request(HEAD => tx_path($unknown));
    is($head->{status}, 404, 'HEAD of an unknown id: 404');

    for my $bad (['a word', 'not-a-uuid'],
                 ['one character short', substr($dead, 0, 35)],
                 ['one character more', "${dead}0"],
                 ['a non-hex character', 'g' . substr($dead, 1)],
                 ['a dot', 'abc.def'],
                 ['empty', '']) {
        error_ok($t->get_tx($bad->[1]), 400, 'invalid_id', "malformed id, $bad->[0]");
    }
    error_ok($t->request(DELETE => tx_path('not-a-uuid')), 400, 'invalid_id',
             'DELETE of a malformed id');

    for my $m (qw(POST PUT PATCH)) {
        my $res = $t->request($m => tx_path($dead), headers => [@CT],
                              body => body_for(case => '405', n => $m));
        error_ok($res, 405, qr/\S/, "$m of a transaction",
                 allow => 'GET, HEAD, DELETE');
    }
    is($t->tx_status($dead), 'pending', 'the refused methods changed nothing');
}


###########################################################################
# Followed to completed, and to failed.

my ($done, $done_res, $failed);
{
    my $body = body_for(case => 'follow', n => 1);
    $done = accepted_id($body, name => 'to completed');
    my $body_f = body_for(case => 'follow', n => 2, fail => JSON::PP::true);
    $failed = accepted_id($body_f, name => 'to failed');
    my $first = $t->get_tx($done);

    $t->wait_status($done, qr/^(?:completed|failed|cancelled)$/, answer => \$done_res);
    my $d = tx_ok($done_res, $done, 'completed', status => 'completed');
    my @ev = @{ $d && $d->{events} || [] };

    json_like($ev[0], { event => 'transition', message => 'accepted by the edge',
                        status => 'pending', data => {} },
              'completed: the first event is the acceptance');
    my ($proc) = grep { ($_->{status} // '') eq 'processing' } @ev;
    my $qid = $proc && ref $proc->{data} eq 'HASH' ? $proc->{data}{queue_id} : undef;
    json_like($proc, { event => 'transition', status => 'processing',
                       data => { queue_id => qr/\S/ } },
              'completed: a transition to processing with the queue id');
    json_like($ev[-1], { event => 'transition', status => 'completed',
                         data => { queue_id => $qid // 'none',
                                   process_msg => "Processamento conclu\x{ed}do" } },
              'completed: the last event: completed, queue id, process_msg');
    is($d && $d->{created_at}, $first->{json}{created_at},
       'completed: created_at unchanged');
    isnt($done_res->{headers}{etag}, $first->{headers}{etag},
         'completed: another ETag than when pending');

    # Fanbase has it: the queue id is the one it gave for this submission
    my $item = defined $qid ? mock_item($qid) : undef;
    is_deeply($item && $item->{msg}, $JSON->decode($body),
              'completed: the queue id is Fanbase\'s item for this submission');
    my @posts = grep { $_->{body} eq $body } @{ $t->queue_posts };
    is(scalar @posts, 1, 'completed: one POST at the mock, the body unchanged');
    is(scalar @{ $posts[0] ? $posts[0]{headers}{accesstoken} || [] : [] }, 1,
       'completed: sent with one AccessToken');
    my $gets = defined $qid ? $t->mock_gets($qid) : 0;
    cmp_ok($gets, '>=', 1, 'completed: followed with GETs of the queue item');
    ok(!$t->wait_for(sub { $t->mock_gets($qid // '') > $gets },
                     timeout => 2.5),
       'completed: no more GETs once terminal');
    is($t->get_tx($done)->{body}, $done_res->{body}, 'completed: the same answer later');

    $t->wait_status($failed, qr/^(?:completed|failed|cancelled)$/, answer => \my $fres);
    my $f = tx_ok($fres, $failed, 'failed', status => 'failed');
    my @fev = @{ $f && $f->{events} || [] };
    my ($fproc) = grep { ($_->{status} // '') eq 'processing' } @fev;
    my $fqid = $fproc && ref $fproc->{data} eq 'HASH' ? $fproc->{data}{queue_id} : undef;
    json_like($fev[-1], { event => 'failure', status => 'failed',
                          data => { queue_id => $fqid // qr/\S/,
                                    error_message => 'Erro simulado' } },
              'failed: the last event: failure, queue id, Fanbase\'s processMsg');
    is($t->posts_with($body_f), 1, 'failed: one POST at the mock');
}


# fanbase_transaction_events 2: the newest two, oldest first
{
    my $id = accepted_id(body_for(case => 'two events', n => 1), path => "/ev2$QUEUE",
                         name => 'two events');
    $t->wait_status($id, qr/^(?:completed|failed|cancelled)$/, answer => \my $res);
    my $d = tx_ok($res, $id, 'two events', status => 'completed');
    my @ev = @{ $d && $d->{events} || [] };
    is(scalar @ev, 2, 'fanbase_transaction_events 2: two events kept')
        or diag($res->{body});
    json_like(\@ev, [ { event => 'transition', status => 'processing',
                        data => { queue_id => qr/\S/ } },
                      { event => 'transition', status => 'completed' } ],
              'fanbase_transaction_events 2: the newest two, oldest first');
}


###########################################################################
# HEAD, ETag, If-None-Match (on the completed one: it does not change).

{
    my $path = tx_path($done);
    my ($ghead, $gbody) = raw_request(GET => $path);
    my ($hhead, $hbody) = raw_request(HEAD => $path);
    like($hhead, qr{^HTTP/1\.1 200 }, 'HEAD: 200');
    is($hbody, '', 'HEAD: no body');
    for my $h (qw(Content-Type ETag)) {
        is(raw_header($hhead, $h), raw_header($ghead, $h), "HEAD: the $h of GET");
    }
    my $len = raw_header($hhead, 'Content-Length');
    is($len, length $gbody, 'HEAD: the Content-Length of the GET body')
        if defined $len;

    my $etag = $done_res->{headers}{etag} // '"none"';
    my ($nhead, $nbody) = raw_request(GET => $path, 'If-None-Match' => $etag);
    like($nhead, qr{^HTTP/1\.1 304 }, 'If-None-Match current: 304');
    is($nbody, '', 'If-None-Match current: no body');
    is(raw_header($nhead, 'ETag'), $etag, 'If-None-Match current: the ETag');

    my $res = $t->get_tx($done, method => 'HEAD', inm => $etag);
    is($res->{status}, 304, 'HEAD with If-None-Match current: 304');

    $res = $t->get_tx($done, inm => '"stale"');
    tx_ok($res, $done, 'If-None-Match stale', status => 'completed');
    is($res->{body}, $done_res->{body}, 'If-None-Match stale: the transaction');

    $res = $t->get_tx($done, inm => "\"stale\", $etag");
    is($res->{status}, 304, 'If-None-Match with the current tag in a list: 304');
}


###########################################################################
# DELETE of a pending transaction: cancelled, never delivered.

{
    my $before = $t->get_tx($dead);
    my $res = del_tx($dead);
    my $d = tx_ok($res, $dead, 'DELETE pending', status => 'cancelled');
    is($d && $d->{events}[-1]{status}, 'cancelled',
       'DELETE pending: the newest event says cancelled');
    isnt($res->{headers}{etag}, $before->{headers}{etag},
         'DELETE pending: another ETag');
    tx_ok($t->get_tx($dead), $dead, 'after DELETE, GET', status => 'cancelled');
    tx_ok(del_tx($dead), $dead, 'DELETE again', status => 'cancelled');
    my ($h, $b) = raw_request(HEAD => tx_path($dead));
    like($h, qr{^HTTP/1\.1 200 }, 'cancelled: HEAD 200');
}

# Fanbase refuses (503) until the DELETE; then it is back: nothing is sent
{
    $t->mock_faults({ queue_post => { status => 503, count => 100000 } });
    my $body = body_for(case => 'cancel then Fanbase back', n => 1);
    my $id = accepted_id($body, name => 'Fanbase refusing');
    ok($t->wait_for(sub { $t->posts_with($body) >= 1 }, timeout => 5),
       'Fanbase refusing: a delivery was tried');

    # a DELETE while an attempt is on the wire may be 409 delivery_started;
    # once the attempt is refused the transaction waits at the edge again
    my ($res, $busy) = (undef, 0);
    $t->wait_for(sub {
        $res = del_tx($id);
        return 1 unless $res->{status} == 409
                        && ($res->{json}{error}{code} // '') eq 'delivery_started';
        $busy++;
        return 0;
    }, timeout => 5, interval => 0.05);
    note("DELETE met $busy attempts in flight");
    tx_ok($res, $id, 'DELETE while Fanbase refuses', status => 'cancelled');

    my $sent = $t->posts_with($body);
    $t->mock_faults({ queue_post => undef });
    ok(!$t->wait_for(sub { $t->posts_with($body) > $sent }, timeout => 3),
       'cancelled, Fanbase back: never sent again')
        or diag($t->posts_with($body) - $sent . ' POSTs after the DELETE');
    is($t->tx_status($id), 'cancelled', 'cancelled, Fanbase back: still cancelled');
}


###########################################################################
# DELETE once delivery has started: 409.

# on the wire: Fanbase holds its answer 1.5 s
{
    $t->mock_faults({ queue_post => { delay_ms => 1500, count => 1 } });
    my $body = body_for(case => 'on the wire', n => 1);
    my $id = accepted_id($body, name => 'on the wire');
    ok($t->wait_for(sub { $t->posts_with($body) >= 1 }, timeout => 5),
       'on the wire: Fanbase has the request');
    error_ok(del_tx($id), 409, 'delivery_started', 'DELETE while on the wire');
    $t->wait_status($id, qr/^(?:completed|failed|cancelled)$/, answer => \my $res);
    is($res->{json}{status}, 'completed', 'on the wire: completed all the same');
    is($t->posts_with($body), 1, 'on the wire: one POST at the mock');
}

# processing (delivered, followed)
{
    my $body = body_for(case => 'processing', n => 1);
    my $id = accepted_id($body, name => 'processing');
    $t->wait_status($id, qr/^(?:processing|completed|failed|cancelled)$/,
                    timeout => 10, answer => \my $res);
    is($res->{json}{status}, 'processing', 'caught while processing');
    error_ok(del_tx($id), 409, 'delivery_started', 'DELETE while processing');
    $t->wait_status($id, qr/^(?:completed|failed|cancelled)$/, answer => \$res);
    is($res->{json}{status}, 'completed', 'processing: completed all the same');
}

# ended
for my $c ([completed => $done], [failed => $failed]) {
    error_ok(del_tx($c->[1]), 409, qr/^(?:terminal|delivery_started)$/,
             "DELETE of a $c->[0] transaction");
    is($t->tx_status($c->[1]), $c->[0], "DELETE of a $c->[0] one: unchanged");
}


###########################################################################
# DELETE racing the delivery, Fanbase up: cancelled and never sent, or
# 409 and sent exactly once.  Two DELETEs at once each time (they may land
# on both workers): they agree.

# the checks of a race: @race of { i, id, body, del => [two DELETE answers] }
sub race_ok {
    my ($name, @race) = @_;
    my %outcome;
    for my $r (@race) {
        my @codes = map { $_->{status} } @{ $r->{del} };
        my $kind = (grep { $_ == 200 } @codes) == 2 ? 'cancelled'
                 : (grep { $_ == 409 } @codes) == 2 ? 'started'
                 : 'mixed';
        $r->{kind} = $kind;
        $outcome{$kind}++;
        ok($kind ne 'mixed', "$name $r->{i}: both DELETEs agree")
            or diag(join ' | ', map { "$_->{status} $_->{body}" } @{ $r->{del} });
        for my $del (@{ $r->{del} }) {
            if ($del->{status} == 200) {
                is($del->{json}{status}, 'cancelled', "$name $r->{i}: 200 is cancelled");
            } else {
                is($del->{json}{error}{code}, 'delivery_started',
                   "$name $r->{i}: 409 delivery_started");
            }
        }
    }
    diag("$name: " . join ', ', map { "$_ $outcome{$_}" } sort keys %outcome);

    my @started = grep { $_->{kind} ne 'cancelled' } @race;
    ok($t->wait_for(sub { !grep { !$TERMINAL{ $t->tx_status($_->{id}) } } @started },
                    timeout => 20), "$name: the delivered ones ended");
    # a cancelled one must not be sent later either
    my %cancelled = map { $_->{body} => 1 } grep { $_->{kind} eq 'cancelled' } @race;
    ok(!$t->wait_for(sub { grep { $cancelled{ $_->{body} } } @{ $t->queue_posts } },
                     timeout => 2.5), "$name: no cancelled one sent");
    my %n;
    $n{ $_->{body} }++ for @{ $t->queue_posts };
    for my $r (@race) {
        my $posts = $n{ $r->{body} } // 0;
        if ($r->{kind} eq 'cancelled') {
            is($posts, 0, "$name $r->{i}: cancelled, never sent");
            is($t->tx_status($r->{id}), 'cancelled', "$name $r->{i}: still cancelled");
        } else {
            is($posts, 1, "$name $r->{i}: delivery started, sent exactly once");
            is($t->tx_status($r->{id}), 'completed', "$name $r->{i}: completed");
        }
    }
}

# DELETE right after the 202
{
    my @race;
    for my $i (0 .. 9) {
        my $body = body_for(case => 'race', n => $i);
        my $id = accepted_id($body, name => "race $i");
        sleep 0.002 * $i;
        my @del = $t->parallel(2, DELETE => tx_path($id));
        push @race, { i => $i, id => $id, body => $body, del => \@del };
    }
    race_ok('race', @race);
}

# DELETEs while the transactions are being claimed one after the other:
# one delivery per worker at a time (fanbase_deliver_concurrency 1), each
# taking 0.3 s at Fanbase, 12 transactions, a DELETE every 0.1 s
{
    my $t2 = FanbaseTest->new(
        mock   => { clients => ['demo-client:demo-secret'],
                    processing_after => 0.3, completed_after => 0.6 },
        files  => edge_files(),
        http   => edge_http(timeout => '2s',
                            extra => "fanbase_deliver_concurrency 1;\n"),
        server => <<"CONF",
location = $QUEUE { fanbase_submit async; }
location /transactions/ { fanbase_transaction; }
CONF
    );
    $t2->start;
    local $t = $t2;
    $t->mock_faults({ queue_post => { delay_ms => 300 } });

    my @race = map { +{ i => $_, body => body_for(case => 'queued race', n => $_) } } 0 .. 11;
    $_->{id} = accepted_id($_->{body}, name => "queued race $_->{i}") for @race;
    my $start = time;
    for my $r (@race) {
        my $at = $start + 0.1 * $r->{i};
        sleep($at - time) if $at > time;
        $r->{del} = [ $t->parallel(2, DELETE => tx_path($r->{id})) ];
    }
    race_ok('queued race', @race);
    $t->mock_faults({ queue_post => undef });
    $t2->stop;
}


###########################################################################
# Long polling woken by the delivery: Fanbase refuses (503) and comes back
# after 1 s.

{
    $t->mock_faults({ queue_post => { status => 503, count => 100000 } });
    my $body = body_for(case => 'long poll delivery', n => 1);
    my $id = accepted_id($body, name => 'long poll, Fanbase refusing');
    ok($t->wait_for(sub { $t->posts_with($body) >= 1 }, timeout => 5),
       'long poll: a delivery was tried and refused');
    my $res = $t->get_tx($id);
    is($res->{json}{status}, 'pending', 'long poll: pending');
    my $etag = $res->{headers}{etag} // '"none"';

    my $result = later(1, sub { $t->mock_faults({ queue_post => undef }); 'ok' });
    my $start = time;
    my ($first, $last);
    for (1 .. 10) {
        $last = $t->get_tx($id, wait => 5, inm => $etag);
        $first //= $last;
        last unless $last->{status} == 200
                    && ($last->{json}{status} // '') eq 'pending';
        # a retry may change it while still pending: wait again
        $etag = $last->{headers}{etag} // '"none"';
        last if time - $start > 5;
    }
    my $elapsed = time - $start;
    is($result->(), 'ok', 'long poll: Fanbase came back');

    is($first->{status}, 200, 'long poll: 200 on a change');
    cmp_ok($first->{time}, '<', 4.5, 'long poll: answered well before ?wait=5');
    isnt($first->{headers}{etag}, $res->{headers}{etag},
         'long poll: answered with another ETag');
    like($last->{json}{status} // '', qr/^(?:processing|completed)$/,
         'long poll: the answer shows the delivery');
    cmp_ok($elapsed, '<', 5, 'long poll: the delivery seen within 5 s')
        or diag("after $elapsed s");
}


###########################################################################
# Transactions that do not change: Fanbase answers 503 with Retry-After: 30,
# so the next attempt is 30 s away (the breaker's pause: those not tried
# before it opened wait parked, t/082).

$t->mock_faults({ queue_post => { status => 503, count => 100000,
                                  headers => { 'Retry-After' => '30' } } });
my @quiet;
for my $i (1 .. 3) {
    my $body = body_for(case => 'quiet', n => $i);
    my $id = accepted_id($body, name => "quiet $i");
    push @quiet, { id => $id, body => $body };
}
ok($t->wait_for(sub { grep { $t->posts_with($_->{body}) >= 1 } @quiet }, timeout => 5),
   'quiet: tried and refused');
for my $q (@quiet) {
    # the refusal has been taken in when two reads 0.3 s apart agree
    $t->wait_for(sub {
        my $a = $t->get_tx($q->{id});
        sleep 0.3;
        my $b = $t->get_tx($q->{id});
        $q->{etag} = $b->{headers}{etag};
        return $a->{headers}{etag} && $q->{etag}
               && $a->{headers}{etag} eq $q->{etag};
    }, timeout => 5);
    is($t->tx_status($q->{id}), 'pending', 'quiet: pending');
}
my ($q1, $q2, $q3) = @quiet;

# nothing changes: 304 after ?wait
{
    my $res = $t->get_tx($q3->{id}, wait => 1, inm => $q3->{etag});
    is($res->{status}, 304, 'wait=1, If-None-Match current, no change: 304');
    cmp_ok($res->{time}, '>=', 0.9, 'wait=1, no change: held about 1 s');
    cmp_ok($res->{time}, '<', 2, 'wait=1, no change: not much longer');
    is($res->{headers}{etag}, $q3->{etag}, 'wait=1, no change: the ETag');

    $res = $t->get_tx($q3->{id}, wait => 1);
    is($res->{status}, 200, 'wait=1 without If-None-Match, no change: 200');
    cmp_ok($res->{time}, '>=', 0.9, 'wait=1 without If-None-Match: held about 1 s');
    is($res->{headers}{etag}, $q3->{etag}, 'wait=1 without If-None-Match: same ETag');

    $res = $t->get_tx($q3->{id}, wait => 5, inm => '"stale"');
    is($res->{status}, 200, 'wait=5, If-None-Match stale: 200');
    cmp_ok($res->{time}, '<', 0.5, 'wait=5, If-None-Match stale: at once');

    $res = $t->get_tx($q3->{id}, wait => 30, inm => $q3->{etag}, prefix => '/short');
    is($res->{status}, 304, 'fanbase_long_poll 1s, wait=30: 304');
    cmp_ok($res->{time}, '>=', 0.9, 'fanbase_long_poll 1s, wait=30: held about 1 s');
    cmp_ok($res->{time}, '<', 1.6, 'fanbase_long_poll 1s, wait=30: capped at 1 s');
}

# a DELETE on another connection ends the wait
{
    my $result = later(1, sub { del_tx($q1->{id})->{status} });
    my $res = $t->get_tx($q1->{id}, wait => 5, inm => $q1->{etag});
    is($result->(), 200, 'long poll woken by DELETE: the DELETE got 200');
    tx_ok($res, $q1->{id}, 'long poll woken by DELETE', status => 'cancelled');
    cmp_ok($res->{time}, '>', 0.8, 'long poll woken by DELETE: held until it');
    cmp_ok($res->{time}, '<', 2.5, 'long poll woken by DELETE: answered at once');
    isnt($res->{headers}{etag}, $q1->{etag}, 'long poll woken by DELETE: new ETag');
}

# 16 polls held by both workers, woken by one DELETE
{
    my $skip = $t->log_lines('longpoll.log');
    my $result = later(1, sub { del_tx($q2->{id})->{status} });
    my @res = $t->parallel(16, GET => tx_path($q2->{id}) . '?wait=10',
                           headers => ['If-None-Match' => $q2->{etag}],
                           port => $LP_PORT, timeout => 15);
    is($result->(), 200, 'polls on both workers: the DELETE got 200');
    is(scalar(grep { $_->{status} == 200
                     && ($_->{json}{status} // '') eq 'cancelled' } @res), 16,
       'polls on both workers: all 200 cancelled')
        or diag(join ' ', map { "$_->{status}:" . ($_->{json} ? $_->{json}{status}
                                                   : $_->{error} // '') } @res);
    my @slow = grep { $_->{time} < 0.8 || $_->{time} > 3 } @res;
    ok(!@slow, 'polls on both workers: all answered within 2 s of the DELETE')
        or diag('times: ' . join ' ', map { sprintf '%.2f', $_->{time} } @res);

    my %pids = $t->log_pids('longpoll.log',
        qr/^(\d+) GET \/transactions\/\Q$q2->{id}\E\?wait=10 /, from => $skip);
    is(scalar keys %pids, 2, 'polls on both workers: both workers held some')
        or diag(explain(\%pids));
}

# terminal: ?wait answers at once
{
    my $res = $t->get_tx($q1->{id}, wait => 5);
    is($res->{status}, 200, 'terminal, wait=5: 200');
    cmp_ok($res->{time}, '<', 0.5, 'terminal, wait=5: at once');
    my $etag = $res->{headers}{etag};
    $res = $t->get_tx($q1->{id}, wait => 5, inm => $etag);
    is($res->{status}, 304, 'terminal, wait=5, If-None-Match current: 304');
    cmp_ok($res->{time}, '<', 0.5, 'terminal, wait=5, If-None-Match current: at once');
}

# the quiet ones that were cancelled were never sent again (tried once and
# refused, or parked by the breaker before their turn)
cmp_ok($t->posts_with($q1->{body}), '<=', 1, 'quiet 1: at most the refused attempt at the mock');
cmp_ok($t->posts_with($q2->{body}), '<=', 1, 'quiet 2: at most the refused attempt at the mock');
$t->mock_faults({ queue_post => undef });

done_testing;
