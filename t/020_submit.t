#!/usr/bin/perl

# fanbase_submit: Fanbase's 201 relayed (its bytes, Content-Type, Location),
# the body forwarded byte for byte, client AccessToken headers dropped, the
# method, type, size and shape checks (405, 415, 413, 400) before anything
# is sent, Fanbase's 4xx relayed (429 with Retry-After), one resend after a
# 401/403 and 503 token_rejected when it is rejected again, 5xx -> 502,
# connection failures -> 502, a malformed 2xx -> 502 without a resend, a
# slow Fanbase -> 504, the recorded submission answered from the zone, and
# a Location built from an escaped path (no header injection by %0d%0a).

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;

use Encode qw(encode_utf8);
use JSON::PP;

my $UUID  = qr/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;

my $t = FanbaseTest->new(
    mock   => { clients => ['demo-client:demo-secret'],
                processing_after => 60, completed_after => 120 },
    files  => edge_files(),
    http   => edge_http(timeout => '2s'),
    server => <<"CONF",
location = $QUEUE { fanbase_submit; }
location $QUEUE/ { fanbase_status; }
location = /small$QUEUE {
    client_max_body_size 1k;
    client_body_buffer_size 1k;
    fanbase_submit;
}
location = /t1$QUEUE { fanbase_timeout 1s; fanbase_submit; }
location = /dead$QUEUE { fanbase_api %%DEAD%%; fanbase_submit; }
location /p/ { fanbase_submit; }
CONF
);
$t->start;


# Helpers

my $BODY = '{"action":"ticket-create","data":{"evento":"show","qtd":2}}';

# a submission request: [POST, path, headers, body]
sub post {
    my (%o) = @_;
    return [POST => $o{path} // $QUEUE,
            headers => $o{headers} // [@CT],
            body    => $o{body} // $BODY];
}

# Extra keys of a case, turned into before/mock for run_cases:
#   fault   faults for the mock (after a reset, so counts start at zero)
#   expire  the mock forgets every token it issued
#   posts, tokens, gets   expected numbers of queue POSTs, token requests
#                         and queue GETs at the mock during the case
#   check   more checks: code ref called with ($t, $res)
sub prep {
    my %c = @_;
    my ($fault, $expire, $check) = delete @c{qw(fault expire check)};
    my %want = map { $_ => delete $c{$_} } qw(posts tokens gets);
    my $name = $c{name};
    $c{before} = sub {
        my $t = shift;
        $t->mock_reset;
        $t->mock_faults($fault) if $fault;
        $t->mock_expire_tokens if $expire;
    };
    $c{mock} = sub {
        my ($t, $res) = @_;
        my $stats = $t->mock_stats;
        for ([posts => 'queue_posts'], [tokens => 'token_requests'],
             [gets => 'queue_gets']) {
            my ($k, $stat) = @$_;
            next unless defined $want{$k};
            is($stats->{$stat}, $want{$k}, "$name: $stat at the mock")
                or diag(explain($t->mock_requests));
        }
        $check->($t, $res) if $check;
    };
    return \%c;
}

sub cases { $t->run_cases(map { prep(%$_) } @_) }


###########################################################################
# 201: relayed with Fanbase's bytes, Content-Type and Location; the body
# reaches Fanbase byte for byte; then the zone answers for it.

# whitespace, key order (data first), raw UTF-8 (2- and 4-byte sequences),
# \u escapes, numbers as written, nested values, a trailing newline
my $ODD_BODY = encode_utf8(
    qq({ "data" :\t{"nome": "Jo\x{e3}o \x{1F3AB}", "esc": "\\u00e7\\n\\"",\n)
  . qq(   "n": [1, 2.50, -0e0, 1E+2, true, false, null], "vazio": {}, "z": 0 },\n)
  . qq(  "action" : "ticket-create"  }\n));

my ($first) = cases(
    {
        name    => 'first submission (cold: fetches the token)',
        request => post(),
        status  => 201,
        tokens  => 1,
        posts   => 1,
    },
);

my ($created) = cases(
    {
        name    => '201 relayed',
        request => post(body => $ODD_BODY),
        status  => 201,
        headers => { 'content-type' => 'application/json; charset=utf-8',
                     location => qr{^(?:http://[^/]+)?\Q$QUEUE\E/$UUID$} },
        # the mock's own bytes, in its order and spacing
        body    => qr/^\{"id":"$UUID","created":"$ISO","iCode":0,
                      "iMsg":"Objeto\ criado\ com\ sucesso","processDate":null,
                      "processStatus":"pending","processMsg":null\}$/x,
        posts   => 1,
        tokens  => 0,
        check   => sub {
            my ($t, $res) = @_;
            my $id = $res->{json}{id} // '';
            like($res->{headers}{location} // '', qr{\Q$QUEUE/$id\E$},
                 '201 relayed: Location ends with the id Fanbase gave');
            my ($p) = @{ $t->queue_posts };
            ok($p && $p->{body} eq $ODD_BODY,
               '201 relayed: body reached Fanbase byte for byte')
                or diag('sent:     ' . unpack('H*', $ODD_BODY) . "\n"
                      . 'received: ' . unpack('H*', $p ? $p->{body} : ''));
            is($p && $p->{query}, '', '201 relayed: no query string added');
        },
    },
);

my $id = $created->{json}{id} // 'none';
(my $location = $created->{headers}{location} // "$QUEUE/none") =~ s{^http://[^/]+}{};

cases(
    {
        name    => 'recorded submission: answered from the zone',
        request => [GET => $location],
        status  => 200,
        headers => { 'x-fanbase-cache' => 'HIT',
                     'content-type' => qr{^application/json\b} },
        json    => { id => $id, created => $created->{json}{created},
                     iCode => 0, iMsg => 'Objeto criado com sucesso',
                     processDate => undef, processStatus => 'pending',
                     processMsg => undef, msg => undef },
        body    => qr/^\{"id":"\Q$id\E","created":"$ISO","iCode":0,"iMsg":"[^"]*",
                      "processDate":null,"processStatus":"pending",
                      "processMsg":null,"msg":null\}$/x,
        gets    => 0,
    },
);

# Location from the path the client sent: at a prefix location the path is
# the client's, and what nginx decoded from it (%0d%0a, spaces, bytes over
# 127) goes out escaped, never as header lines of its own.
my $EVIL = '/p/x%0d%0aX-Injected:%20yes%0d%0a%0d%0a<html>%C3%A7';

cases(
    {
        name    => 'CR LF in the path: no header of its own, Location escaped',
        request => post(path => $EVIL),
        status  => 201,
        headers => { 'x-injected' => undef,
                     location => qr{^(?:http://[^/]+)?/p/x%0D%0AX-Injected:
                                    %20yes%0D%0A%0D%0A%3Chtml%3E%C3%A7/$UUID$}x },
        posts   => 1,
        check   => sub {
            my ($t, $res) = @_;
            my @names = map { lc $_->[0] } @{ $res->{header_list} };
            ok(!grep({ /injected|html/ } @names),
               'CR LF in the path: no header line made of it')
                or diag(explain($res->{header_list}));
            is($res->{json}{id} && $res->{body} =~ /^\{"id"/ ? 1 : 0, 1,
               'CR LF in the path: the body is Fanbase\'s, not the path');
        },
    },
);

# Fanbase's own spacing and content type: relayed as they are
my $OWN = '{ "id" : "own-bytes-0001",  "created": "2025-01-01T00:00:00Z", '
        . '"iCode": 0, "iMsg": "Objeto criado com sucesso", "processDate": null, '
        . '"processStatus": "pending", "processMsg": null }';

cases(
    {
        name    => '201 with Fanbase\'s own spacing: its bytes relayed',
        fault   => { queue_post => { status => 201, count => 1, body => $OWN,
                                     content_type => 'application/json;charset=UTF-8' } },
        request => post(),
        status  => 201,
        headers => { 'content-type' => 'application/json;charset=UTF-8',
                     location => qr{^(?:http://[^/]+)?\Q$QUEUE/own-bytes-0001\E$} },
        body    => $OWN,
        posts   => 1,
    },
    {
        name    => 'that one too is answered from the zone',
        request => [GET => "$QUEUE/own-bytes-0001"],
        status  => 200,
        headers => { 'x-fanbase-cache' => 'HIT' },
        json    => { id => 'own-bytes-0001', created => '2025-01-01T00:00:00Z',
                     processStatus => 'pending', msg => undef },
        gets    => 0,
    },
);


###########################################################################
# The client's AccessToken headers never reach Fanbase; the edge's does.

cases(
    {
        name    => 'client AccessToken copies dropped',
        request => post(headers => [@CT, AccessToken => 'client.token.one',
                                    AccessToken => 'client.token.two',
                                    accesstoken => 'client.token.three']),
        status  => 201,
        json    => { id => $UUID },
        posts   => 1,
        check   => sub {
            my ($t, $res) = @_;
            my ($p) = @{ $t->queue_posts };
            my @sent = @{ $p ? $p->{headers}{accesstoken} || [] : [] };
            is(scalar @sent, 1, 'AccessToken: exactly one at Fanbase');
            ok(!grep({ /client\.token/ } @sent),
               'AccessToken: none of the client\'s values')
                or diag("sent: @sent");
            json_like(jwt_claims($sent[0]), { iss => 'mock-fanbase',
                                              sub => 'demo-client' },
                      'AccessToken: a token the mock issued to demo-client');
            is($p && $p->{body}, $BODY, 'AccessToken: body unchanged');
            # what else Fanbase reads: the type, the request id, no Accept
            is(join(',', @{ $p ? $p->{headers}{'content-type'} || [] : [] }),
               'application/json', 'Content-Type: application/json at Fanbase');
            is(scalar @{ $p ? $p->{headers}{'x-request-id'} || [] : [] }, 1,
               'X-Request-ID: one at Fanbase');
            ok($p && !exists $p->{headers}{accept},
               'no Accept at Fanbase (it answers JSON only)');
        },
    },
    {
        name    => 'a lone client AccessToken dropped too',
        request => post(headers => [AccessToken => 'client.token.one', @CT]),
        status  => 201,
        posts   => 1,
        check   => sub {
            my ($t) = @_;
            my ($p) = @{ $t->queue_posts };
            my @sent = @{ $p ? $p->{headers}{accesstoken} || [] : [] };
            ok(@sent == 1 && $sent[0] ne 'client.token.one',
               'lone AccessToken: replaced by the edge\'s') or diag("sent: @sent");
        },
    },
);


###########################################################################
# Checks before anything is sent: method, type, size, shape.

cases(
    (map { +{
        name    => "$_: 405",
        request => [$_ => $QUEUE, headers => [@CT],
                    $_ eq 'GET' || $_ eq 'DELETE' ? () : (body => $BODY)],
        error_case(405, 'method_not_allowed', allow => 'POST'),
        posts   => 0,
    } } qw(GET PUT DELETE PATCH)),
    {
        name    => 'HEAD: 405',
        request => [HEAD => $QUEUE],
        status  => 405,
        headers => { allow => 'POST' },
        posts   => 0,
    },
    {
        name    => 'no Content-Type: 415',
        request => post(headers => []),
        error_case(415, 'unsupported_media_type'),
        posts   => 0,
    },
    {
        name    => 'text/plain: 415',
        request => post(headers => ['Content-Type' => 'text/plain']),
        error_case(415, 'unsupported_media_type'),
        posts   => 0,
    },
    {
        name    => 'application/json-seq: 415',
        request => post(headers => ['Content-Type' => 'application/json-seq']),
        error_case(415, 'unsupported_media_type'),
        posts   => 0,
    },
    {
        name    => 'form type: 415',
        request => post(headers => ['Content-Type' =>
                                    'application/x-www-form-urlencoded']),
        error_case(415, 'unsupported_media_type'),
        posts   => 0,
    },
    {
        name    => 'application/json; charset=utf-8: accepted',
        request => post(headers => ['Content-Type' => 'application/json; charset=utf-8']),
        status  => 201,
        posts   => 1,
    },
    {
        name    => 'application/json;charset=UTF-8: accepted',
        request => post(headers => ['Content-Type' => 'application/json;charset=UTF-8']),
        status  => 201,
        posts   => 1,
    },
    {
        name    => 'body of client_max_body_size + 1: 413',
        request => post(path => "/small$QUEUE", body => padded(1025)),
        error_case(413, 'body_too_large'),
        posts   => 0,
    },
    {
        name    => 'body of exactly client_max_body_size: accepted',
        request => post(path => "/small$QUEUE", body => padded(1024)),
        status  => 201,
        headers => { location => qr{/small\Q$QUEUE\E/$UUID$} },
        posts   => 1,
    },
);

my @invalid_json = (
    ['not JSON',            'hello'],
    ['empty body',          ''],
    ['truncated JSON',      '{"action":"ticket-create","data":{'],
    ['truncated string',    '{"action":"ticket-cr'],
    ['trailing comma',      '{"action":"ticket-create","data":{},}'],
    ['trailing garbage',    '{"action":"ticket-create","data":{}} garbage'],
    ['two documents',       '{"action":"ticket-create","data":{}}{}'],
    ['single quotes',       "{'action':'ticket-create','data':{}}"],
);
my @invalid_submission = (
    ['array root',          '[{"action":"ticket-create","data":{}}]'],
    ['empty array root',    '[]'],
    ['string root',         '"ticket-create"'],
    ['number root',         '42'],
    ['null root',           'null'],
    ['empty object',        '{}'],
    ['missing action',      '{"data":{}}'],
    ['numeric action',      '{"action":1,"data":{}}'],
    ['null action',         '{"action":null,"data":{}}'],
    ['object action',       '{"action":{"a":1},"data":{}}'],
    ['missing data',        '{"action":"ticket-create"}'],
    ['data as string',      '{"action":"ticket-create","data":"{}"}'],
    ['data as array',       '{"action":"ticket-create","data":[]}'],
    ['data as null',        '{"action":"ticket-create","data":null}'],
    ['data as number',      '{"action":"ticket-create","data":0}'],
);

cases(
    (map { +{
        name    => "$_->[0]: 400 invalid_json",
        request => post(body => $_->[1]),
        error_case(400, 'invalid_json'),
        posts   => 0,
    } } @invalid_json),
    (map { +{
        name    => "$_->[0]: 400 invalid_submission",
        request => post(body => $_->[1]),
        error_case(400, 'invalid_submission'),
        posts   => 0,
    } } @invalid_submission),
    {
        name    => 'nothing inside data is checked; action passed through',
        request => post(body => '{"action":"update_fandata","data":'
                              . '{"id":"abc","cpf":null,"x":[{"y":[]}]}}'),
        status  => 201,
        posts   => 1,
        check   => sub {
            my ($t) = @_;
            my ($p) = @{ $t->queue_posts };
            is($p && $p->{body}, '{"action":"update_fandata","data":'
                               . '{"id":"abc","cpf":null,"x":[{"y":[]}]}}',
               'update_fandata: forwarded unchanged');
        },
    },
);


###########################################################################
# Fanbase's answers other than 201.

my $PROBLEM = '{"iCode":422,"iMsg":"Dados invalidos","fields":["data.cpf"]}';

cases(
    {
        name    => 'Fanbase 422: relayed as is',
        fault   => { queue_post => { status => 422, count => 1, body => $PROBLEM,
                                     content_type => 'application/problem+json' } },
        request => post(),
        status  => 422,
        headers => { 'content-type' => 'application/problem+json',
                     'retry-after' => undef, location => undef },
        body    => $PROBLEM,
        posts   => 1,
    },
    {
        name    => 'Fanbase 429: relayed with Retry-After',
        fault   => { queue_post => { status => 429, count => 1,
                                     body => 'slow down', content_type => 'text/plain',
                                     headers => { 'Retry-After' => '17' } } },
        request => post(),
        status  => 429,
        headers => { 'content-type' => 'text/plain', 'retry-after' => '17' },
        body    => 'slow down',
        posts   => 1,
    },
    {
        name    => 'Fanbase 400: relayed as is',
        fault   => { queue_post => { status => 400, count => 1,
                                     body => '{"iCode":400,"iMsg":"Invalid JSON"}' } },
        request => post(),
        status  => 400,
        headers => { 'content-type' => 'application/json; charset=utf-8' },
        body    => '{"iCode":400,"iMsg":"Invalid JSON"}',
        posts   => 1,
    },
    {
        name    => 'Fanbase 401 once (tokens expired): new token, sent again',
        expire  => 1,
        request => post(),
        status  => 201,
        json    => { id => $UUID, processStatus => 'pending' },
        posts   => 2,
        tokens  => 1,
        log_like => qr/\[warn\].*fanbase: Fanbase rejected the token of/,
        check   => sub {
            my ($t) = @_;
            my @p = @{ $t->queue_posts };
            my @tok = map { join ',', @{ $_->{headers}{accesstoken} || [] } } @p;
            ok(@p == 2 && $tok[0] ne $tok[1], '401 once: the second POST '
               . 'carries another token');
            ok(@p == 2 && $p[0]{body} eq $BODY && $p[1]{body} eq $BODY,
               '401 once: the same body both times');
        },
    },
    {
        name    => 'Fanbase 403 once: new token, sent again',
        fault   => { queue_post => { status => 403, count => 1 } },
        request => post(),
        status  => 201,
        posts   => 2,
        tokens  => 1,
    },
    {
        name    => 'Fanbase 401 again after the new token: 503 token_rejected',
        fault   => { queue_post => { status => 401 } },
        request => post(),
        error_case(503, 'token_rejected', 'retry-after' => qr/^\d+$/),
        posts   => 2,
        tokens  => 1,
    },
    {
        name    => 'Fanbase 403 twice: 503 token_rejected',
        fault   => { queue_post => { status => 403 } },
        request => post(),
        error_case(503, 'token_rejected', 'retry-after' => qr/^\d+$/),
        posts   => 2,
    },
    {
        name    => 'and then submissions work again',
        request => post(),
        status  => 201,
        posts   => 1,
    },
    {
        name    => 'Fanbase 500: 502 upstream_error',
        fault   => { queue_post => { status => 500, count => 1 } },
        request => post(),
        error_case(502, 'upstream_error'),
        posts   => 1,
    },
    {
        name    => 'Fanbase 503 with Retry-After: 502 upstream_error, not resent',
        fault   => { queue_post => { status => 503, count => 1, body => 'busy',
                                     content_type => 'text/plain',
                                     headers => { 'Retry-After' => '5' } } },
        request => post(),
        error_case(502, 'upstream_error'),
        posts   => 1,
    },
    # a few times: a reset on a connection kept alive from an earlier call
    # must not be resent either
    (map { +{
        name    => "connection reset ($_): 502 upstream_unreachable, not resent",
        fault   => { queue_post => { reset => JSON::PP::true, count => 1 } },
        request => post(),
        error_case(502, 'upstream_unreachable'),
        posts   => 1,
    } } 1 .. 3),
    {
        name    => 'every connection reset: 502 upstream_unreachable, sent once',
        fault   => { queue_post => { reset => JSON::PP::true } },
        request => post(),
        error_case(502, 'upstream_unreachable'),
        posts   => 1,
    },
    {
        name    => 'connection refused: 502 upstream_unreachable',
        request => post(path => "/dead$QUEUE"),
        error_case(502, 'upstream_unreachable'),
        posts   => 0,
    },
    {
        name    => 'malformed 201: 502 upstream_invalid_response, not resent',
        fault   => { queue_post => { malformed => JSON::PP::true, count => 1 } },
        request => post(),
        error_case(502, 'upstream_invalid_response', location => undef),
        posts   => 1,
    },
    {
        name    => '201 that is not JSON: 502 upstream_invalid_response',
        fault   => { queue_post => { status => 201, count => 1, body => 'Created',
                                     content_type => 'text/plain' } },
        request => post(),
        error_case(502, 'upstream_invalid_response', location => undef),
        posts   => 1,
    },
    {
        name    => '201 without an id: 502 upstream_invalid_response',
        fault   => { queue_post => { status => 201, count => 1,
                                     body => '{"iCode":0,"iMsg":"ok"}' } },
        request => post(),
        error_case(502, 'upstream_invalid_response', location => undef),
        posts   => 1,
    },
    {
        name    => 'slower than fanbase_timeout: 504 upstream_timeout',
        fault   => { queue_post => { delay_ms => 2500, count => 1 } },
        request => post(path => "/t1$QUEUE"),
        error_case(504, 'upstream_timeout'),
        posts   => 1,
        check   => sub {
            my ($t, $res) = @_;
            cmp_ok($res->{time}, '>=', 0.9, 'timeout: not before fanbase_timeout');
            cmp_ok($res->{time}, '<', 1.8, 'timeout: answered in about 1 s');
        },
    },
    {
        name    => 'after all that: 201',
        request => post(),
        status  => 201,
        posts   => 1,
    },
);

done_testing;
