#!/usr/bin/perl

# fanbase_status: methods, ids, the queue item's exact shape, the
# pending -> processing -> completed life seen through the zone, terminal
# answers kept forever, the read-through shared by concurrent requests,
# unknown ids, the id from a variable, and Fanbase failing during a
# read-through (STALE, 502, 504).

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;

use B ();
use IO::Poll qw(POLLIN);
use IO::Socket::INET;
use JSON::PP;
use Time::HiRes qw(time sleep);


# the mock: pending, processing after 1.5 s, completed (or failed) after 3.5 s
my ($PROCESSING, $COMPLETED) = (1.5, 3.5);

my $PAYLOAD_PORT = FanbaseTest::free_port();    # a server with the payload kept

my $t = FanbaseTest->new(
    mock  => { clients => ['demo-client:demo-secret'],
               processing_after => $PROCESSING, completed_after => $COMPLETED },
    files => { secret => "demo-secret\n" },
    http  => <<"CONF",
fanbase_zone zone=fb:1m;
fanbase_api %%MOCK%%;
fanbase_token_url %%MOCK%%/api/token;
fanbase_client_id demo-client;
fanbase_client_secret_file %%DIR%%/secret;
fanbase_timeout 1s;

server {
    listen 127.0.0.1:$PAYLOAD_PORT;
    fanbase_store_payload on;
    location = $QUEUE { fanbase_submit; }
    location $QUEUE/ { fanbase_status; }
}
CONF
    server => <<"CONF",
location = $QUEUE { fanbase_submit; }
location $QUEUE/ { fanbase_status; }
location = /status { fanbase_status \$arg_id; }
location /r0/ { fanbase_status_refresh 0; fanbase_status; }
CONF
);
$t->start;


# helpers

my $JSON_UTF8  = JSON::PP->new->utf8->allow_nonref;
my $JSON_ASCII = JSON::PP->new->ascii->allow_nonref;

sub get_status {
    my ($id, %o) = @_;
    return $t->request(GET => "$QUEUE/$id", %o);
}

sub is_json_number {
    my $v = shift;
    return 0 if !defined $v || ref $v;
    my $f = B::svref_2object(\$v)->FLAGS;
    return ($f & (B::SVp_IOK | B::SVp_NOK)) && !($f & B::SVp_POK);
}

# The expected item: [key => value] pairs in Fanbase's order.  A value is
# undef (null), \N (a number), a string, a qr// (a string matching it), or
# a hashref (an object, compared decoded).
sub item {
    my (%v) = @_;
    return [ map { [$_ => $v{$_}] }
             qw(id created iCode iMsg processDate processStatus processMsg msg) ];
}

sub pending {
    my ($id, $created, $msg) = @_;
    return item(id => $id, created => $created, iCode => \0,
                iMsg => 'Objeto criado com sucesso', processDate => undef,
                processStatus => 'pending', processMsg => undef, msg => $msg);
}

sub processing {
    my ($id, $created, $msg) = @_;
    return item(id => $id, created => $created, iCode => \0,
                iMsg => 'Objeto criado com sucesso', processDate => undef,
                processStatus => 'processing', processMsg => undef, msg => $msg);
}

sub completed {
    my ($id, $created, $msg) = @_;
    return item(id => $id, created => $created, iCode => \0,
                iMsg => 'Processado com sucesso', processDate => $ISO,
                processStatus => 'completed',
                processMsg => "Processamento conclu\x{ed}do", msg => $msg);
}

sub failed {
    my ($id, $created, $msg) = @_;
    return item(id => $id, created => $created, iCode => \0,
                iMsg => 'Falha no processamento', processDate => $ISO,
                processStatus => 'failed', processMsg => 'Erro simulado',
                msg => $msg);
}

# The raw body as a regexp: keys in order, nulls as null, numbers bare,
# strings quoted (non-ASCII as UTF-8 or as \u escapes), objects as {...}.
sub item_re {
    my $pairs = shift;
    my @parts;
    for my $p (@$pairs) {
        my ($k, $v) = @$p;
        my $val = !defined $v          ? 'null'
                : ref $v eq 'SCALAR'   ? quotemeta($$v)
                : ref $v eq 'Regexp'   ? "\"(?:$v)\""
                : ref $v eq 'HASH'     ? '\{.*\}'
                : '(?:' . quotemeta($JSON_UTF8->encode($v)) . '|'
                  . quotemeta($JSON_ASCII->encode($v)) . ')';
        push @parts, quotemeta($JSON_UTF8->encode($k)) . '\s*:\s*' . $val;
    }
    my $re = '^\s*\{\s*' . join('\s*,\s*', @parts) . '\s*\}\s*$';
    return qr/$re/s;
}

# The body of a 200 status answer: raw shape, decoded values and types.
sub item_ok {
    my ($res, $pairs, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;

    like($res->{body}, item_re($pairs), "$name: raw body, keys in order");

    my $doc = $res->{json};
    is(ref $doc, 'HASH', "$name: body is a JSON object") or return;
    is_deeply([sort keys %$doc], [sort map { $_->[0] } @$pairs],
              "$name: exactly the queue item's keys");

    my %want;
    for my $p (@$pairs) {
        my ($k, $v) = @$p;
        $want{$k} = ref $v eq 'SCALAR' ? $$v : $v;
        if (ref $v eq 'SCALAR') {
            ok(is_json_number($doc->{$k}), "$name: $k is a number");
        } elsif (!defined $v) {
            ok(exists $doc->{$k} && !defined $doc->{$k}, "$name: $k is null");
        }
    }
    my %objects = map { ($_ => delete $want{$_}) }
                  grep { ref $want{$_} eq 'HASH' } keys %want;
    json_like($doc, \%want, "$name: values");
    is_deeply($doc->{$_}, $objects{$_}, "$name: $_ is the submitted object")
        for sort keys %objects;
}

sub cache_is {
    my ($res, $want, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($res->{status}, 200, "$name: 200")
        or diag("body: $res->{body}" . ($res->{error} ? " ($res->{error})" : ''));
    is($res->{headers}{'x-fanbase-cache'}, $want, "$name: X-Fanbase-Cache $want");
    like($res->{headers}{'content-type'} // '', qr{^application/json\b},
         "$name: Content-Type");
}

sub error_json {
    my ($status, $code) = @_;
    return { error => { status => $status, code => $code, message => qr/./ } };
}

sub uuid {
    return sprintf '%08x-%04x-4%03x-%04x-%012x', int rand 2**32,
        int rand 2**16, int rand 2**12, 0x8000 | int rand 2**14,
        int rand 2**48;
}


# Methods and ids

my $some = uuid();
my $id64 = 'A' x 30 . '-' . 'b' x 30 . '_9Z';
is(length $id64, 64, 'the 64 character id is 64 characters');

$t->run_cases(
    (map { +{
        name    => "$_ is not allowed",
        request => [$_ => "$QUEUE/$some",
                    $_ eq 'POST' ? (body => '{"action":"x","data":{}}',
                        headers => [@CT]) : ()],
        status  => 405,
        headers => { allow => 'GET, HEAD',
                     'content-type' => qr{^application/json\b} },
        json    => error_json(405, 'method_not_allowed'),
    } } qw(POST DELETE)),
    (map { +{
        name    => "invalid id: $_->[0]",
        request => [GET => $_->[1]],
        status  => 400,
        headers => { 'content-type' => qr{^application/json\b} },
        json    => error_json(400, 'invalid_id'),
    } } (['a dot', "$QUEUE/abc.def"],
         ['65 characters', "$QUEUE/${id64}x"],
         ['empty last segment', "$QUEUE/"],
         ['query id with a dot', '/status?id=abc.def'],
         ['no query id', '/status'])),
    {
        name    => '64 characters is a valid id (unknown at Fanbase: 404)',
        request => [GET => "$QUEUE/$id64"],
        status  => 404,
        json    => error_json(404, 'not_found'),
    },
);
is($t->mock_gets("${id64}x"), 0, 'an invalid id is never asked of Fanbase');
is($t->mock_gets($some), 0, 'a refused method is never asked of Fanbase');


# Pending: answered from the zone right after the submission

my %sub;    # name => { id, created, time }
for my $s ([plain => {}], [failing => { fail => JSON::PP::true }],
           [shared => { seat => 'S1' }], [stale => { seat => 'S2' }])
{
    my $time = time;
    my $res = $t->submit(data => $s->[1], status => 201);
    $sub{ $s->[0] } = { id => $res->{json}{id}, created => $res->{json}{created},
                        time => $time };
}

my $payload_doc = { action => 'ticket-create',
                    data => { seat => 'P9', name => "Jo\x{e3}o", n => 3 } };
{
    my $time = time;
    my $res = $t->submit(port => $PAYLOAD_PORT, status => 201,
                        body => $JSON_UTF8->encode($payload_doc));
    $sub{payload} = { id => $res->{json}{id}, created => $res->{json}{created},
                      time => $time };
}
my $t0 = $sub{plain}{time};
my ($id, $created) = @{ $sub{plain} }{qw(id created)};

my $res = get_status($id);
cache_is($res, 'HIT', 'pending');
item_ok($res, pending($id, $created), 'pending');
my $pending_body = $res->{body};

$res = get_status($sub{failing}{id});
cache_is($res, 'HIT', 'pending (to fail)');
item_ok($res, pending(@{ $sub{failing} }{qw(id created)}), 'pending (to fail)');

$res = get_status($sub{payload}{id}, port => $PAYLOAD_PORT);
cache_is($res, 'HIT', 'payload kept, pending');
item_ok($res, pending(@{ $sub{payload} }{qw(id created)}, $payload_doc),
        'payload kept, pending');

$res = $t->request(GET => "/status?id=$id");
cache_is($res, 'HIT', 'id from $arg_id');
is($res->{body}, $pending_body, 'id from $arg_id: the same answer as by path');

# HEAD: the headers of GET and not one byte of body
{
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port,
                                  Proto => 'tcp', Timeout => 5)
        or die "connect: $!";
    print $s "HEAD $QUEUE/$id HTTP/1.1\r\nHost: localhost\r\n"
           . "Connection: close\r\n\r\n";
    my ($raw, $poll, $end) = ('', IO::Poll->new, time + 5);
    $poll->mask($s, POLLIN);
    while (time < $end && $poll->poll($end - time) > 0) {
        sysread($s, $raw, 65536, length $raw) or last;
    }
    my ($head, $rest) = split /\r\n\r\n/, $raw, 2;
    like($head // '', qr{^HTTP/1\.1 200 }, 'HEAD: 200');
    like($head // '', qr/^X-Fanbase-Cache: HIT\r?$/mi, 'HEAD: X-Fanbase-Cache');
    like($head // '', qr{^Content-Type: application/json}mi, 'HEAD: Content-Type');
    if (($head // '') =~ /^Content-Length: (\d+)\r?$/mi) {
        is($1, length $pending_body, 'HEAD: Content-Length of the GET body');
    }
    is($rest, '', 'HEAD: no body');
}

# the last known answer of the "stale" one, not asked again until it fails
my $stale_body = get_status($sub{stale}{id})->{body};

is($t->mock_gets($_->{id}), 0, 'pending answers came from the zone, no GET at the mock')
    for @sub{qw(plain failing payload stale)};


# An id Fanbase does not know: 404, cached for the refresh interval

my $unknown = uuid();
$t->run_cases(
    {
        name    => 'unknown at Fanbase',
        request => [GET => "$QUEUE/$unknown"],
        status  => 404,
        headers => { 'content-type' => qr{^application/json\b} },
        json    => error_json(404, 'not_found'),
        mock    => sub { is($t->mock_gets($unknown), 1, 'unknown: asked Fanbase once') },
    },
    {
        name    => 'unknown at Fanbase, again within the interval',
        request => [GET => "$QUEUE/$unknown"],
        status  => 404,
        json    => error_json(404, 'not_found'),
        mock    => sub { is($t->mock_gets($unknown), 1, 'unknown again: no new GET') },
    },
);


# An id the mock knows and the zone does not (submitted before the edge
# existed): 100 parallel requests, one GET at Fanbase

my $token = $t->request(POST => '/api/token?grant_type=client_credentials'
                              . '&client_id=demo-client&client_secret=demo-secret',
                        port => $t->mock_port)->{json}{access_token};
ok($token, 'a token from the mock');
my $direct = $t->request(POST => $QUEUE, port => $t->mock_port,
    headers => [AccessToken => $token, @CT],
    body => '{"action":"ticket-create","data":{"seat":"D4"}}');
is($direct->{status}, 201, 'submitted directly to the mock');
my $did = $direct->{json}{id};

my @all = $t->parallel(100, GET => "$QUEUE/$did");
is(scalar(grep { $_->{status} == 200 } @all), 100,
   'unknown to the zone, 100 parallel: all 200')
    or diag(join ' ', map { "$_->{status}:" . ($_->{error} // '') } @all);
is(scalar(grep { $_->{body} eq $all[0]{body} } @all), 100,
   'unknown to the zone, 100 parallel: all the same body');
item_ok($all[0], pending($did, $direct->{json}{created}),
        'unknown to the zone, read through');
is($t->mock_gets($did), 1, 'unknown to the zone, 100 parallel: one GET at the mock');
is(scalar(grep { ($_->{headers}{'x-fanbase-cache'} // '') =~ /^(?:MISS|HIT)$/ }
           @all), 100, 'unknown to the zone, 100 parallel: MISS or HIT');


# fanbase_status_refresh 0: every request reads through, concurrent ones
# still share one read

my $r0 = $t->submit(data => { seat => 'R0' }, status => 201)->{json}{id};
for my $i (1 .. 5) {
    $res = $t->request(GET => "/r0/$r0");
    cache_is($res, 'MISS', "refresh 0, request $i");
}
is($t->mock_gets($r0), 5, 'refresh 0: five requests, five GETs at the mock');

$t->mock_faults({ queue_get => { delay_ms => 400 } });
@all = $t->parallel(50, GET => "/r0/$r0");
$t->mock_faults({ queue_get => undef });
is(scalar(grep { $_->{status} == 200 } @all), 50,
   'refresh 0, 50 parallel while Fanbase is slow: all 200');
is($t->mock_gets($r0), 6, 'refresh 0, 50 parallel: they shared one GET at the mock');


# Fanbase down for an id the zone does not know: 502

for my $f ([status => { status => 500 }, 'upstream_error'],
           [reset  => { reset => JSON::PP::true }, 'upstream_unreachable'])
{
    my $u = uuid();
    $t->mock_faults({ queue_get => $f->[1] });
    $t->run_cases({
        name    => "unknown id, Fanbase fails ($f->[0])",
        request => [GET => "$QUEUE/$u"],
        status  => 502,
        headers => { 'content-type' => qr{^application/json\b} },
        json    => error_json(502, $f->[2]),
    });
    $t->mock_faults({ queue_get => undef });
}


# Refresh due (1 s after the submission): 100 parallel requests share one
# read-through

note(sprintf 'refresh tests start %.2f s after the first submission', time - $t0);
sleep_until($sub{shared}{time} + 1.1);
my $shared = $sub{shared}{id};
@all = $t->parallel(100, GET => "$QUEUE/$shared");
is(scalar(grep { $_->{status} == 200 } @all), 100,
   'refresh due, 100 parallel: all 200');
is(scalar(grep { $_->{body} eq $all[0]{body} } @all), 100,
   'refresh due, 100 parallel: all the same body');
is($t->mock_gets($shared), 1, 'refresh due, 100 parallel: exactly one GET at the mock');


# Fanbase down for a known, non-terminal id: the last known answer, STALE

my $stale = $sub{stale}{id};
is($t->mock_gets($stale), 0, 'stale: the last known answer is the submission');
sleep_until($sub{stale}{time} + 1.1);
for my $f ([status => { status => 500 }], [reset => { reset => JSON::PP::true }]) {
    $t->mock_faults({ queue_get => $f->[1] });
    $res = get_status($stale);
    cache_is($res, 'STALE', "Fanbase fails ($f->[0]), known id");
    is($res->{body}, $stale_body, "Fanbase fails ($f->[0]): the last known body");
    $t->mock_faults({ queue_get => undef });
}
cmp_ok($t->mock_gets($stale), '>=', 2, 'stale: Fanbase was asked');


# Processing: read through once the refresh is due, then from the zone

sleep_until($t0 + $PROCESSING + 0.1);
cmp_ok(time - $t0, '<', $COMPLETED - 0.3, 'still in the processing window')
    or diag('the test ran too slowly for the mock\'s timeline');
$res = get_status($id);
cache_is($res, 'MISS', 'processing, read through');
item_ok($res, processing($id, $created), 'processing, read through');
my $processing_body = $res->{body};
$res = get_status($id);
cache_is($res, 'HIT', 'processing, again within the interval');
is($res->{body}, $processing_body, 'processing, again: the same body');
is($t->mock_gets($id), 1, 'processing: one GET at the mock');


# Completed and failed: read through once, then from the zone forever

sleep_until($t0 + $COMPLETED + 0.15);
$res = get_status($id);
cache_is($res, 'MISS', 'completed, read through');
item_ok($res, completed($id, $created), 'completed, read through');
my $completed_body = $res->{body};
$res = get_status($id);
cache_is($res, 'HIT', 'completed, again');
is($res->{body}, $completed_body, 'completed, again: the same body');
is($t->mock_gets($id), 2, 'completed: one more GET at the mock');

my ($fid, $fcreated) = @{ $sub{failing} }{qw(id created)};
sleep_until($sub{failing}{time} + $COMPLETED + 0.15);
$res = get_status($fid);
cache_is($res, 'MISS', 'failed, read through');
item_ok($res, failed($fid, $fcreated), 'failed, read through');
$res = get_status($fid);
cache_is($res, 'HIT', 'failed, again');
is($t->mock_gets($fid), 1, 'failed: one GET at the mock');

my ($pid, $pcreated) = @{ $sub{payload} }{qw(id created)};
sleep_until($sub{payload}{time} + $COMPLETED + 0.15);
$res = get_status($pid, port => $PAYLOAD_PORT);
cache_is($res, 'MISS', 'payload kept, completed');
item_ok($res, completed($pid, $pcreated, $payload_doc), 'payload kept, completed');
$res = get_status($pid, port => $PAYLOAD_PORT);
cache_is($res, 'HIT', 'payload kept, completed, again');
item_ok($res, completed($pid, $pcreated, $payload_doc),
        'payload kept, completed, again');

# terminal: 20 more requests over more than a second, none reaches Fanbase
my ($start, @bodies) = (time);
for (1 .. 20) {
    my $r = get_status($id);
    push @bodies, $r->{body};
    is($r->{headers}{'x-fanbase-cache'}, 'HIT', "terminal, request $_: HIT");
    sleep 0.06;
}
cmp_ok(time - $start, '>', 1, 'terminal: the requests spanned over a second');
is(scalar(grep { $_ eq $completed_body } @bodies), 20,
   'terminal: the same completed body every time');
is($t->mock_gets($id), 2, 'terminal: no GET at the mock');
is($t->request(GET => "/r0/$id")->{headers}{'x-fanbase-cache'}, 'HIT',
   'terminal with refresh 0: still from the zone');
is($t->mock_gets($id), 2, 'terminal with refresh 0: no GET at the mock');


# Fanbase slower than fanbase_timeout for an unknown id: 504

my $slow = uuid();
$t->mock_faults({ queue_get => { delay_ms => 1500 } });
$t->run_cases({
    name    => 'unknown id, Fanbase slower than fanbase_timeout',
    request => [GET => "$QUEUE/$slow"],
    status  => 504,
    headers => { 'content-type' => qr{^application/json\b} },
    json    => error_json(504, 'upstream_timeout'),
    mock    => sub {
        cmp_ok($_[1]{time}, '<', 1.45, 'answered at about fanbase_timeout');
    },
});
$t->mock_faults({ queue_get => undef });

done_testing;
