# The mock of Fanbase itself, without nginx: the harness's client talks to
# the mock's port directly.  Also the site it plays for notifications
# (/_site/*): recorded apart, answered as steered, kept across a restart.
# Client connections open at once, a short listen queue (--backlog) and a
# burst of 1024 pipelined POSTs on 64 connections.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;

use IO::Poll qw(POLLIN POLLOUT POLLERR POLLHUP);
use IO::Socket::INET;
use JSON::PP;
use Time::HiRes qw(time sleep);

my $t = FanbaseTest->new(
    mock => {
        clients          => ['demo-client:demo-secret', 'odd client:s3c&r=t+%/'],
        expires_in       => 1800,
        processing_after => 0.3,
        completed_after  => 0.6,
    },
);
$t->start_mock;    # no nginx: $t->request goes to the mock

my $TOKEN_PATH = '/api/token?grant_type=client_credentials'
               . '&client_id=demo-client&client_secret=demo-secret';
my $ISO_WHOLE = qr/^$ISO$/;    # the whole value, not a part

sub new_token {
    my $res = $t->request(POST => $TOKEN_PATH);
    return $res->{json}{access_token};
}

# the headers of a request made with this token
sub with_token { return (headers => [AccessToken => $_[0]]) }


# Security: tokens

my ($ok_token) = $t->run_cases(
    {
        name    => 'token',
        request => [POST => $TOKEN_PATH],
        status  => 200,
        headers => { 'content-type' => 'application/json; charset=utf-8' },
        json    => {
            access_token  => qr/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{20,}$/,
            token_type    => 'Bearer',
            expires_in    => 1800,
            refresh_token => qr/^\S{20,}$/,
            scope         => 'integration',
        },
    },
    {
        name    => 'token: percent-encoded credentials',
        request => [POST => '/api/token?grant_type=client_credentials'
                          . '&client_id=odd+client&client_secret=s3c%26r%3Dt%2B%25%2F'],
        status  => 200,
        json    => { token_type => 'Bearer' },
    },
    {
        name    => 'token: unknown client',
        request => [POST => '/api/token?grant_type=client_credentials'
                          . '&client_id=nobody&client_secret=demo-secret'],
        status  => 400,
        json    => { error => 'invalid_client',
                     error_description => 'The informed Client ID is invalid.' },
    },
    {
        name    => 'token: wrong secret',
        request => [POST => '/api/token?grant_type=client_credentials'
                          . '&client_id=demo-client&client_secret=wrong'],
        status  => 400,
        json    => { error => 'invalid_client',
                     error_description => 'The informed Client Secret does not '
                                        . 'match the correct secret.' },
    },
    {
        name    => 'token: other grant type',
        request => [POST => '/api/token?grant_type=password'
                          . '&client_id=demo-client&client_secret=demo-secret'],
        status  => 400,
        json    => { error => 'unsupported_grant_type' },
    },
    {
        name    => 'token: GET is not allowed',
        request => [GET => $TOKEN_PATH],
        status  => 405,
        headers => { allow => 'POST' },
    },
);

my $token = $ok_token->{json}{access_token};
cmp_ok(length $token, '>=', 150, 'token is JWT-sized');
isnt(new_token(), $token, 'every token is new');


# Connect: the queue

my $post = $t->submit(with_token($token),
                      data => { dados_do_ingresso => "valor \x{e7}" });
is($post->{status}, 201, 'queue post: 201');
is($post->{headers}{'content-type'}, 'application/json; charset=utf-8',
   'queue post: content type');
is_deeply([sort keys %{ $post->{json} }],
          [sort qw(id created iCode iMsg processDate processStatus processMsg)],
          'queue post: exactly the seed\'s fields');
like($post->{body}, qr/^\{"id":"[^"]+","created":"[^"]+","iCode":0,"iMsg":/,
     'queue post: fields in the seed\'s order');
json_like($post->{json}, {
    id => $UUID4, created => $ISO_WHOLE, iCode => 0,
    iMsg => 'Objeto criado com sucesso', processDate => undef,
    processStatus => 'pending', processMsg => undef,
}, 'queue post: values');
my $id = $post->{json}{id};

my $failing = $t->submit(with_token($token), data => { fail => JSON::PP::true });
is($failing->{status}, 201, 'queue post with data.fail: 201');

$t->run_cases(
    {
        name    => 'queue post: no token',
        request => [POST => $QUEUE, body => '{"action":"x","data":{}}'],
        status  => 401,
        json    => { message => 'Unauthorized' },
    },
    {
        name    => 'queue post: unknown token',
        request => [POST => $QUEUE, headers => [AccessToken => 'a.b.c'],
                    body => '{"action":"x","data":{}}'],
        status  => 401,
    },
    {
        name    => 'queue post: Bearer prefix is not accepted',
        request => [POST => $QUEUE, headers => [AccessToken => "Bearer $token"],
                    body => '{"action":"x","data":{}}'],
        status  => 401,
    },
    {
        name    => 'queue post: two AccessToken headers',
        request => [POST => $QUEUE, headers => [AccessToken => $token,
                    AccessToken => $token], body => '{"action":"x","data":{}}'],
        status  => 401,
    },
    {
        name    => 'queue post: invalid JSON',
        request => [POST => $QUEUE, headers => [AccessToken => $token],
                    body => '{"action":'],
        status  => 400,
        json    => { iCode => 400, iMsg => 'Invalid JSON' },
    },
    {
        name    => 'queue get: no token',
        request => [GET => "$QUEUE/$id"],
        status  => 401,
    },
    {
        name    => 'queue get: unknown id',
        request => [GET => "$QUEUE/00000000-0000-4000-8000-000000000000",
                    headers => [AccessToken => $token]],
        status  => 404,
        json    => { iCode => 404, iMsg => 'Not found' },
    },
    {
        name    => 'queue: PUT is not allowed',
        request => [PUT => $QUEUE, headers => [AccessToken => $token]],
        status  => 405,
        headers => { allow => 'POST' },
    },
    {
        name    => 'no route',
        request => [GET => '/elsewhere'],
        status  => 404,
        json    => { message => 'no route' },
    },
);

# pending, then processing, then completed, by time since creation
my $created = time;
my %get = (headers => [AccessToken => $token]);
my $msg = { action => 'ticket-create', data => { dados_do_ingresso => "valor \x{e7}" } };

my $res = $t->request(GET => "$QUEUE/$id", %get);
is($res->{status}, 200, 'queue get: 200');
json_like($res->{json}, { id => $id, created => $post->{json}{created},
    processStatus => 'pending', processDate => undef, processMsg => undef,
    msg => $msg }, 'queue get: pending, with msg');

sleep_until($created + 0.45);
json_like($t->request(GET => "$QUEUE/$id", %get)->{json},
    { processStatus => 'processing', processDate => undef, processMsg => undef },
    'queue get: processing');

sleep_until($created + 0.75);
$res = $t->request(GET => "$QUEUE/$id", %get);
json_like($res->{json}, {
    processStatus => 'completed', iCode => 0, iMsg => 'Processado com sucesso',
    processMsg => "Processamento conclu\x{ed}do", processDate => $ISO_WHOLE, msg => $msg,
}, 'queue get: completed');
cmp_ok($res->{json}{processDate}, 'ge', $res->{json}{created},
       'queue get: processDate not before created');

json_like($t->request(GET => "$QUEUE/$failing->{json}{id}", %get)->{json}, {
    processStatus => 'failed', iMsg => 'Falha no processamento',
    processMsg => 'Erro simulado', processDate => $ISO_WHOLE,
}, 'queue get: failed by data.fail');


# Keep-alive, pipelining, 100-continue, chunked bodies, Connection: close

sub raw_conn {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $t->mock_port, Proto => 'tcp', Timeout => 5)
        or die "connect: $!";
    return $s;
}

# The statuses of the whole responses (Content-Length bodies) at the start
# of $$buf, taken out of it.
sub take_responses {
    my $buf = shift;
    my @statuses;
    while ($$buf =~ m{^HTTP/1\.1 (\d+)[^\r\n]*\r\n((?:[^\r\n]+\r\n)*)\r\n}) {
        my ($status, $head, $head_len) = ($1, $2, $+[0]);
        my ($len) = $head =~ /^Content-Length: (\d+)/mi;
        last if length $$buf < $head_len + ($len // 0);
        substr $$buf, 0, $head_len + ($len // 0), '';
        push @statuses, $status;
    }
    return @statuses;
}

# Statuses of the next $count responses (Content-Length bodies).
sub read_responses {
    my ($sock, $count) = @_;
    my ($buf, @statuses) = ('');
    my $poll = IO::Poll->new;
    $poll->mask($sock, POLLIN);
    my $end = time + 5;
    while (@statuses < $count) {
        push @statuses, take_responses(\$buf);
        last if @statuses >= $count;
        last if time > $end || $poll->poll($end - time) <= 0;
        sysread($sock, $buf, 65536, length $buf) or last;
    }
    return @statuses;
}

# True when the peer closes the connection within 5 s.
sub closed_by_peer {
    my $sock = shift;
    my $poll = IO::Poll->new;
    $poll->mask($sock, POLLIN);
    return $poll->poll(5) > 0 && sysread($sock, my $buf, 1) == 0;
}

{
    my $s = raw_conn();
    print $s "GET /no/1 HTTP/1.1\r\nHost: x\r\n\r\n"
           . "POST $TOKEN_PATH HTTP/1.1\r\nHost: x\r\n\r\n"
           . "GET /no/2 HTTP/1.1\r\nHost: x\r\n\r\n";
    is_deeply([read_responses($s, 3)], [404, 200, 404],
              'three pipelined requests on one connection');

    ok($t->wait_for(sub { $t->mock_stats->{open_connections} == 1 }),
       'stats: one idle keep-alive connection open');

    print $s "GET /no/3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    is_deeply([read_responses($s, 1)], [404], 'Connection: close answered');
    ok(closed_by_peer($s), 'then the connection is closed');
}

{
    my $s = raw_conn();
    my $body = '{"action":"ticket-create","data":{}}';
    print $s "POST $QUEUE HTTP/1.1\r\nHost: x\r\nAccessToken: $token\r\n"
           . "Expect: 100-continue\r\nContent-Length: " . length($body) . "\r\n\r\n";
    sysread $s, my $interim, 100;
    is($interim, "HTTP/1.1 100 Continue\r\n\r\n", '100 Continue before the body');
    print $s $body;
    is_deeply([read_responses($s, 1)], [201], 'then the answer');
}

{
    my $s = raw_conn();
    print $s "POST $QUEUE HTTP/1.1\r\nHost: x\r\nAccessToken: $token\r\n"
           . "Transfer-Encoding: chunked\r\n\r\n"
           . "5\r\n{\"act\r\n1f\r\nion\":\"ticket-create\",\"data\":{}}\r\n0\r\n\r\n";
    is_deeply([read_responses($s, 1)], [201], 'chunked request body');
}

# a request arriving one byte at a time
{
    my $s = raw_conn();
    $s->autoflush(1);
    for my $byte (split //, "GET /bytes HTTP/1.1\r\nHost: x\r\n\r\n") {
        print $s $byte;
    }
    is_deeply([read_responses($s, 1)], [404], 'request in one-byte pieces');
}


# Faults

$t->mock_faults({ token => { delay_ms => 800, count => 1 } });
my @two = $t->parallel(2, POST => $TOKEN_PATH);
my ($slow, $fast) = sort { $b->{time} <=> $a->{time} } @two;
is_deeply([map { $_->{status} } @two], [200, 200], 'delay: both answered');
cmp_ok($slow->{time}, '>=', 0.75, 'delay: one waited');
cmp_ok($fast->{time}, '<', 0.5, 'delay: the other did not wait for it');

$t->mock_faults({ queue_post => { status => 503, count => 2, body => 'busy',
                                  content_type => 'text/plain',
                                  headers => { 'Retry-After' => '7' } } });
for my $i (1, 2) {
    my $r = $t->submit(with_token($token), action => 'a');
    is($r->{status}, 503, "status fault $i: status");
    is($r->{body}, 'busy', "status fault $i: body");
    is($r->{headers}{'content-type'}, 'text/plain', "status fault $i: content type");
    is($r->{headers}{'retry-after'}, '7', "status fault $i: extra header");
}
is($t->submit(with_token($token), action => 'a')->{status}, 201,
   'status fault: used up after count');

$t->mock_faults({ queue_get => { status => 502 } });
is($t->request(GET => "$QUEUE/$id", %get)->{body}, '{"message":"injected fault"}',
   'status fault: default body');
is($t->request(GET => "$QUEUE/$id", %get)->{status}, 502, 'status fault: no count, stays');
$t->mock_faults({ queue_get => undef });
is($t->request(GET => "$QUEUE/$id", %get)->{status}, 200, 'null clears a fault');

$t->mock_faults({ queue_post => { reset => JSON::PP::true, count => 1 } });
$res = $t->submit(with_token($token), action => 'a');
is($res->{status}, 0, 'reset: no answer');
like($res->{error}, qr/reset/, 'reset: the connection was reset');

$t->mock_faults({ queue_post => { malformed => JSON::PP::true, count => 1 } });
$res = $t->submit(with_token($token), action => 'a');
is($res->{status}, 201, 'malformed: success status');
like($res->{body}, qr/^\{"/, 'malformed: starts like JSON');
is($res->{json}, undef, 'malformed: is not JSON');

$t->mock_faults({ token => { malformed => JSON::PP::true, count => 1 } });
$res = $t->request(POST => $TOKEN_PATH);
ok($res->{status} == 200 && !defined $res->{json}, 'malformed token answer');

$t->mock_faults({ token => { no_token => JSON::PP::true, count => 1 } });
$res = $t->request(POST => $TOKEN_PATH);
is($res->{status}, 200, 'no_token: 200');
json_like($res->{json}, { token_type => 'Bearer' }, 'no_token: token type only');
ok(!exists $res->{json}{access_token}, 'no_token: no access_token');

$t->mock_faults({ token => { expires_in => 5, count => 1 } });
$res = $t->request(POST => $TOKEN_PATH);
is($res->{json}{expires_in}, 5, 'expires_in: in the answer');

$t->mock_faults({ token => { ttl_ms => 300, count => 1 } });
$res = $t->request(POST => $TOKEN_PATH);
is($res->{json}{expires_in}, 1800, 'ttl_ms: the answer still says expires_in');
my $short = $res->{json}{access_token};
is($t->submit(with_token($short), action => 'a')->{status}, 201,
   'ttl_ms: accepted at first');
sleep 0.4;
is($t->submit(with_token($short), action => 'a')->{status}, 401,
   'ttl_ms: refused after ttl_ms');

$res = $t->request(POST => '/_mock/faults', body => '{"token":{"delay":1}}');
is($res->{status}, 400, 'faults: a misspelt field is refused');
$res = $t->request(POST => '/_mock/faults', body => '{"queue_post":{"no_token":true}}');
is($res->{status}, 400, 'faults: no_token is for the token endpoint only');

# a delayed POST whose client gave up still creates its submission
$t->mock_faults({ queue_post => { delay_ms => 500, count => 1 } });
$res = $t->request(POST => $QUEUE, headers => [AccessToken => $token],
                body => '{"action":"late","data":{}}', timeout => 0.1);
is($res->{error}, 'timeout', 'delay: client timed out');
sleep 0.6;
my ($late) = grep { $_->{body} =~ /"late"/ } @{ $t->mock_requests(path => $QUEUE) };
ok($late, 'delay: the request was recorded');

my $fresh = new_token();
$t->mock_expire_tokens;
is($t->submit(with_token($fresh), action => 'a')->{status}, 401,
   'expire_tokens: tokens refused');
$token = new_token();
%get = (headers => [AccessToken => $token]);
is($t->submit(with_token($token), action => 'a')->{status}, 201,
   'expire_tokens: new tokens work');


# Stats and the request log

$t->mock_reset;
my $stats = $t->mock_stats;
json_like($stats, { token_requests => 0, queue_posts => 0, queue_gets => 0,
                    gets_by_id => {}, connections_accepted => 1 },
          'reset: counters at zero');
is_deeply($t->mock_requests, [], 'reset: request log empty');
is($t->submit(with_token($token), action => 'a')->{status}, 201,
   'reset: issued tokens stay valid');
is($t->request(GET => "$QUEUE/$id", %get)->{status}, 404, 'reset: submissions gone');

$t->request(POST => $TOKEN_PATH);
$t->request(POST => '/api/token?grant_type=client_credentials&client_id=x&client_secret=y');
$t->mock_faults({ token => { status => 500, count => 1 } });
$t->request(POST => $TOKEN_PATH);
my $sub = $t->submit(with_token($token), action => 'a')->{json}{id};
$t->request(GET => "$QUEUE/$sub", %get) for 1 .. 3;
$t->request(GET => "$QUEUE/nope", %get);

$stats = $t->mock_stats;
json_like($stats, {
    token_requests => 3, queue_posts => 2, queue_gets => 5,
    gets_by_id => { $id => 1, $sub => 3, nope => 1 },
    open_connections => qr/^\d+$/,
}, 'stats: counts, failed and faulty requests too');
# the requests above and the mock_* calls, each on its own connection
cmp_ok($stats->{connections_accepted}, '>=', 12, 'stats: connections accepted');
ok($t->wait_for(sub { $t->mock_stats->{open_connections} == 0 }),
   'stats: no connection left open');

$t->request(POST => "$QUEUE?x=1", body => '{"action":"log","data":{"k":"v"}}',
         headers => [AccessToken => $token, 'X-Dup' => 'one', 'X-Dup' => 'two',
                     @CT]);
my $log = $t->mock_requests;
is(scalar @$log, 11, 'requests: every Fanbase request, no /_mock ones');
json_like($t->mock_requests(path => '/api/token')->[0], { method => 'POST',
    query => 'grant_type=client_credentials&client_id=demo-client&client_secret=demo-secret',
    body => '' }, 'requests: the token request with its query');
json_like($log->[-1], {
    method  => 'POST', path => $QUEUE, query => 'x=1',
    headers => { 'x-dup' => ['one', 'two'], accesstoken => [$token],
                 'content-type' => ['application/json'], host => ['localhost'] },
    body    => '{"action":"log","data":{"k":"v"}}',
    time    => qr/^\d+(?:\.\d+)?$/,
}, 'requests: headers, duplicates and body');
ok($log->[0]{time} <= $log->[-1]{time}, 'requests: oldest first');
is(scalar @{ $t->mock_requests(path => qr{^/api/v1/}, method => 'GET') }, 5,
   'requests: filtered');


# The request log says what was answered

{
    my @log = @{ $t->mock_requests(path => $QUEUE, method => 'POST') };
    my ($logged) = grep { $_->{body} eq '{"action":"log","data":{"k":"v"}}' } @log;
    is($logged && $logged->{status}, 201, 'requests: the status answered');
    like($logged && $logged->{queue_id}, $UUID4, 'requests: the queue id created');
    my $r = $t->submit(with_token($token), action => 'ids');
    my ($e) = grep { $_->{body} =~ /"ids"/ } @{ $t->mock_requests(path => $QUEUE) };
    is($e && $e->{queue_id}, $r->{json}{id}, 'requests: queue_id is the id answered');
    my ($get) = @{ $t->mock_requests(method => 'GET', path => "$QUEUE/nope") };
    is($get && $get->{status}, 404, 'requests: a GET\'s status');
    ok($get && !exists $get->{queue_id}, 'requests: no queue_id but for a created item');
}


# close: the whole request read, no answer, a FIN

$t->mock_faults({ queue_post => { close => JSON::PP::true, count => 1 } });
$res = $t->submit(with_token($token), action => 'closed');
is($res->{status}, 0, 'close: no answer');
is($res->{error}, 'connection closed', 'close: the connection was closed (FIN)');
{
    my ($e) = grep { $_->{body} =~ /"closed"/ } @{ $t->mock_requests(path => $QUEUE) };
    is($e && $e->{status}, 'close', 'close: logged as close');
    ok($e && !exists $e->{queue_id}, 'close: no queue item created');
}
is($t->submit(with_token($token), action => 'a')->{status}, 201,
   'close: used up after count');


# Queue requests in flight: now and at most at once

$t->mock_reset;
json_like($t->mock_stats, { queue_posts_in_flight => 0, queue_posts_in_flight_max => 0,
                            queue_requests_in_flight => 0,
                            queue_requests_in_flight_max => 0 },
          'in flight: zero after reset');
is($t->submit(with_token($token), action => 'a')->{status}, 201, 'in flight: one POST');
json_like($t->mock_stats, { queue_posts_in_flight => 0, queue_posts_in_flight_max => 1 },
          'in flight: an answered POST counts once');

$t->mock_faults({ queue_post => { delay_ms => 600 } });
my $post_body = encode_json({ action => 'a', data => {} });
my @post_opts = (body => $post_body,
                 headers => [AccessToken => $token, @CT]);
my $bg = $t->background(sub {
    map { $_->{status} } $t->parallel(3, POST => $QUEUE, @post_opts, port => $t->mock_port)
});
ok($t->wait_for(sub { $t->mock_stats->{queue_posts_in_flight} == 3 }, timeout => 2),
   'in flight: three held POSTs are in flight');
$t->mock_faults({ queue_post => undef });
is($t->mock_stats->{queue_requests_in_flight}, 3, 'in flight: queue requests too');
is_deeply([$bg->()], [201, 201, 201], 'in flight: all answered after the delay');
json_like($t->mock_stats, { queue_posts_in_flight => 0, queue_posts_in_flight_max => 3,
                            queue_requests_in_flight_max => 3 },
          'in flight: none left, three at most');

$t->mock_faults({ queue_get => { delay_ms => 400, count => 1 } });
$t->request(GET => "$QUEUE/nope", %get);
json_like($t->mock_stats, { queue_posts_in_flight_max => 3, queue_requests_in_flight => 0 },
          'in flight: a held GET is not a POST');


# Client connections open at once: from their first request line on; the
# harness's own /_mock/* calls are not counted

$t->mock_reset;
ok($t->wait_for(sub { $t->mock_stats->{open_connections} == 0 }),
   'connections: none open before');
$t->mock_reset;
is($t->mock_stats->{connections_open_max}, 0, 'connections: none at most after reset');
{
    my @clients = map { raw_conn() } 1 .. 3;
    my $silent = raw_conn();
    for my $i (0 .. $#clients) {
        my $s = $clients[$i];
        print $s "GET /no/$i HTTP/1.1\r\nHost: x\r\n\r\n";
        read_responses($s, 1);
    }
    ok($t->wait_for(sub { $t->mock_stats->{open_connections} == 4 }),
       'connections: three clients and a silent one open');
    json_like($t->mock_stats, { connections_open_max => 3 },
              'connections: the three that asked, not the silent one, not the admin');
    close $_ for splice @clients, 0, 2;
    ok($t->wait_for(sub { $t->mock_stats->{open_connections} == 2 }),
       'connections: two of them closed');
    is($t->mock_stats->{connections_open_max}, 3, 'connections: the most is kept');
    $t->mock_reset;
    is($t->mock_stats->{connections_open_max}, 1,
       'connections: reset starts again from the client still open');
    close $_ for @clients, $silent;
}
ok($t->wait_for(sub { $t->mock_stats->{open_connections} == 0 }),
   'connections: all closed');
$t->mock_reset;
is($t->mock_stats->{connections_open_max}, 0, 'connections: none open, none at most');

# a client that goes away while its POST is held, then comes back on a new
# connection: one connection at a time, two POSTs in the mock's hands
$t->mock_faults({ queue_post => { delay_ms => 800, count => 1 } });
{
    my $s = raw_conn();
    my $body = '{"action":"held","data":{}}';
    print $s "POST $QUEUE HTTP/1.1\r\nHost: x\r\nAccessToken: $token\r\n"
           . 'Content-Length: ' . length($body) . "\r\n\r\n$body";
    ok($t->wait_for(sub { $t->mock_stats->{queue_posts_in_flight} == 1 }),
       'connections: a POST held');
    close $s;
}
is($t->submit(with_token($token), action => 'after')->{status}, 201,
   'connections: the client again, on a new connection');
json_like($t->mock_stats, { connections_open_max => 1, queue_posts_in_flight => 1,
                            queue_posts_in_flight_max => 2 },
          'connections: the one it left no longer counts, its POST still held');
ok($t->wait_for(sub { $t->mock_stats->{queue_posts_in_flight} == 0 }),
   'connections: the held POST answered to no one');


# Stopped and started again on the same port: the same Fanbase

$t->mock_reset;
my $kept = $t->submit(with_token($token), action => 'kept', data => { n => 1 });
is($kept->{status}, 201, 'restart: a submission before');
$t->mock_faults({ queue_get => { status => 503, count => 5 } });
my $port = $t->mock_port;
$t->stop_mock;
$res = $t->request(POST => $QUEUE, port => $port, body => '{}');
is($res->{status}, 0, 'restart: nothing answers while stopped');
like($res->{error}, qr/refused/, 'restart: connection refused while stopped');
$t->start_mock;
is($t->mock_port, $port, 'restart: on the same port');
is($t->submit(with_token($token), action => 'a')->{status}, 201,
   'restart: a token issued before is still valid');
$res = $t->request(GET => "$QUEUE/$kept->{json}{id}", %get);
is($res->{status}, 503, 'restart: the faults are kept');
$t->mock_faults({ queue_get => undef });
$res = $t->request(GET => "$QUEUE/$kept->{json}{id}", %get);
is($res->{status}, 200, 'restart: the queue item is still there');
json_like($res->{json}, { msg => { action => 'kept', data => { n => 1 } } },
          'restart: with its message');
json_like($t->mock_stats, { queue_posts => 2, queue_gets => 2 },
          'restart: the counters go on');
is(scalar @{ $t->mock_requests(path => $QUEUE, method => 'POST') }, 2,
   'restart: the request log goes on');



# The site: notifications land under /_site/, in their own log

$t->mock_reset;
$res = $t->request(POST => '/_site/hook?from=edge',
                   headers => [@CT,
                               'webhook-id' => 'msg_a', 'X-Dup' => 'one',
                               'X-Dup' => 'two'],
                   body => "{\"k\":\"\xc3\xa7\"}\x00\xff");
is($res->{status}, 204, 'site: 204 by default');
is($res->{body}, '', 'site: no body');
ok(!exists $res->{headers}{'content-length'}, 'site: a 204 has no Content-Length');
is($t->request(GET => '/_site/elsewhere')->{status}, 204, 'site: any path under /_site/');
{
    my $all = $t->mock_site_requests;
    is(scalar @$all, 2, 'site: both requests recorded');
    json_like($all->[0], {
        method => 'POST', path => '/_site/hook', query => 'from=edge',
        headers => { 'webhook-id' => ['msg_a'], 'x-dup' => ['one', 'two'],
                     'content-type' => ['application/json'] },
        time => qr/^\d+(?:\.\d+)?$/, answered => qr/^\d+(?:\.\d+)?$/,
        status => 204,
    }, 'site: method, path, query, headers, times, status');
    is($all->[0]{body}, "{\"k\":\"\xc3\xa7\"}\x00\xff", 'site: the raw body, byte for byte');
    is($all->[1]{path}, '/_site/elsewhere', 'site: the other path');
    is(scalar @{ $t->mock_site_requests(id => 'msg_a') }, 1, 'site: filtered by webhook-id');
    is(scalar @{ $t->mock_site_requests(method => 'GET', path => qr/else/) }, 1,
       'site: filtered by method and path');
    is_deeply($t->mock_requests, [], 'site: not in the Fanbase request log');
    json_like($t->mock_stats, { token_requests => 0, queue_posts => 0, queue_gets => 0 },
              'site: not in the Fanbase counters');
    json_like($t->mock_site_stats, { requests => 2, site_in_flight => 0,
                                     site_in_flight_max => 1 }, 'site: its counters');
}

$t->mock_site({ status => 503, count => 2, body => '{"down":true}' });
is_deeply([map { $t->request(POST => '/_site/hook', body => '{}')->{status} } 1 .. 3],
          [503, 503, 204], 'site: 503 for count requests, then 204 again');
$t->mock_site({ status => 500 });
is_deeply([map { $t->request(POST => '/_site/hook', body => '{}')->{status} } 1 .. 3],
          [500, 500, 500], 'site: without count, until changed');
json_like($t->_mock_call(GET => '/_mock/site'), { status => 500 }, 'site: the behaviour in force');
$t->mock_site({});
is($t->request(POST => '/_site/hook', body => '{}')->{status}, 204, 'site: {} is 204 again');
$t->mock_site({ status => 200, headers => { 'X-Site' => 'yes' }, body => 'ok',
                content_type => 'text/plain', count => 1 });
$res = $t->request(POST => '/_site/hook', body => '{}');
ok($res->{status} == 200 && $res->{body} eq 'ok' && $res->{headers}{'x-site'} eq 'yes'
   && $res->{headers}{'content-type'} eq 'text/plain', 'site: status, body, headers, type');

$t->mock_site({ reset => JSON::PP::true, count => 1 });
$res = $t->request(POST => '/_site/hook', body => '{"r":1}');
like($res->{error} // '', qr/reset/, 'site: reset');
$t->mock_site({ close => JSON::PP::true, count => 1 });
$res = $t->request(POST => '/_site/hook', body => '{"c":1}');
is($res->{error}, 'connection closed', 'site: close');
is(join(',', map { $_->{status} } @{ $t->mock_site_requests(path => '/_site/hook') }[-2, -1]),
   'reset,close', 'site: logged as reset and close');
$res = $t->request(POST => '/_mock/site', body => '{"status":503,"delay":1}');
is($res->{status}, 400, 'site: a misspelt field is refused');

$t->mock_site_reset;
$t->mock_site({ delay_ms => 600 });
{
    my $bg = $t->background(sub {
        map { [$_->{status}, $_->{time}] }
            $t->parallel(2, POST => '/_site/hook', body => '{}', port => $t->mock_port)
    });
    ok($t->wait_for(sub { $t->mock_site_stats->{site_in_flight} == 2 }, timeout => 2),
       'site delay: two held at once');
    ok(!grep({ exists $_->{status} } @{ $t->mock_site_requests }),
       'site delay: no status while held');
    $t->mock_site({});
    my @r = $bg->();
    is(join(',', map { $_->[0] } @r), '204,204', 'site delay: answered');
    ok(!grep({ $_->[1] < 0.55 } @r), 'site delay: after the delay');
    json_like($t->mock_site_stats, { site_in_flight => 0, site_in_flight_max => 2 },
              'site delay: none left, two at most');
}

$t->mock_site({ status => 503 });
$t->request(POST => '/_site/hook', body => '{"before":"stop"}');
$port = $t->mock_port;
$t->stop_mock;
is($t->request(POST => '/_site/hook', port => $port, body => '{}')->{status}, 0,
   'site: down (refused) while the mock is stopped');
$t->start_mock;
is($t->request(POST => '/_site/hook', body => '{}')->{status}, 503,
   'site restart: the behaviour is kept');
is(scalar @{ $t->mock_site_requests }, 4, 'site restart: the request log goes on');
$t->mock_reset;
is_deeply($t->mock_site_requests, [], 'site: mock_reset clears the site\'s requests');
is($t->request(POST => '/_site/hook', body => '{}')->{status}, 204,
   'site: mock_reset clears its behaviour');


# The log file: every request, never a secret

$t->stop;
my $file = do { local (@ARGV, $/) = ($t->dir . '/mock.log'); <> };
like($file, qr{^\S+ POST /api/token 200$}m, 'log: token request line');
like($file, qr{^\S+ POST /api/token 400$}m, 'log: failed token request line');
like($file, qr{^\S+ POST /api/v1/integration/queue reset$}m, 'log: reset line');
unlike($file, qr/secret|grant_type|s3c/, 'log: no query strings');
ok(!-e $t->dir . '/mock.pid', 'mock exited cleanly on SIGTERM');


# A short listen queue (--backlog 16), then a burst: 1024 queue POSTs
# pipelined on 64 keep-alive connections, all sent at once

my $b = FanbaseTest->new(mock => { backlog => 16 });
$b->start_mock;
my $b_token = $b->request(POST => $TOKEN_PATH)->{json}{access_token};

# Non-blocking connects to the mock: the sockets.
sub connect_many {
    my ($port, $n) = @_;
    return map {
        IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                              Proto => 'tcp', Blocking => 0)
            // die "connect: $!"
    } 1 .. $n;
}

# How many of the sockets are connected after $wait seconds.
sub connected {
    my ($wait, @socks) = @_;
    my $poll = IO::Poll->new;
    $poll->mask($_, POLLOUT) for @socks;
    my $end = time + $wait;
    while ((my $left = $end - time) > 0) {
        $poll->poll($left);
    }
    $poll->poll(0);
    return scalar grep { $poll->events($_) & POLLOUT } @socks;
}

{
    # the mock stopped: the kernel completes as many handshakes as the queue
    # holds (Linux: backlog + 1) and drops the other SYNs
    my $pid = $b->mock_pid;
    kill STOP => $pid;
    my @socks = connect_many($b->mock_port, 40);
    my $n = connected(0.5, @socks);
    kill CONT => $pid;
    ok($n >= 16 && $n <= 17, "backlog 16: $n of 40 connections queued while "
                             . 'the mock does not accept');
    ok($b->wait_for(sub { $b->mock_stats->{connections_accepted} >= 41 },
                    timeout => 10),
       'backlog 16: every connection accepted once the mock goes on');
    close $_ for @socks;
    ok($b->wait_for(sub { $b->mock_stats->{open_connections} == 0 }),
       'backlog 16: all closed again');
}

$b->mock_reset;
{
    my ($conns, $each) = (64, 16);
    my @socks = connect_many($b->mock_port, $conns);
    my (%out, %in, %got, %answers);
    for my $i (0 .. $#socks) {
        for my $k (0 .. $each - 1) {
            my $body = encode_json({ action => 'create',
                                     data => { n => $i * $each + $k } });
            $out{ $socks[$i] } .= "POST $QUEUE HTTP/1.1\r\nHost: x\r\n"
                . "AccessToken: $b_token\r\nContent-Type: application/json\r\n"
                . 'Content-Length: ' . length($body) . "\r\n\r\n$body";
        }
        $in{ $socks[$i] } = '';
    }

    # write and read on all of them until every answer is in
    my $poll = IO::Poll->new;
    $poll->mask($_, POLLOUT | POLLIN) for @socks;
    my $end = time + 30;
    my $done = 0;
    while ($done < @socks && time < $end) {
        $poll->poll(1) > 0 or next;
        for my $s (@socks) {
            my $ev = $poll->events($s) or next;
            if ($ev & POLLOUT && length $out{$s}) {
                my $w = syswrite $s, $out{$s};
                substr $out{$s}, 0, $w, '' if $w;
            }
            if ($ev & (POLLIN | POLLHUP | POLLERR)) {
                sysread $s, $in{$s}, 65536, length $in{$s};
            }
            push @{ $got{$s} }, take_responses(\$in{$s});
            if (@{ $got{$s} || [] } >= $each) {
                $answers{$_}++ for @{ $got{$s} };
                $poll->remove($s);
                $done++;
            } else {
                $poll->mask($s, length $out{$s} ? POLLOUT | POLLIN : POLLIN);
            }
        }
    }
    is(join(',', map { "$_:$answers{$_}" } sort keys %answers),
       '201:' . $conns * $each,
       "burst: $conns connections x $each pipelined POSTs, each answered 201");
    my %bodies;
    $bodies{ $_->{body} }++ for @{ $b->mock_requests(method => 'POST', path => $QUEUE) };
    is(scalar keys %bodies, $conns * $each, 'burst: every body received');
    ok(!grep({ $_ != 1 } values %bodies), 'burst: each once');
    json_like($b->mock_stats, { queue_posts => $conns * $each,
                                connections_open_max => $conns },
              "burst: counted, $conns connections open at most");
    close $_ for @socks;
}
$b->stop;

done_testing;
