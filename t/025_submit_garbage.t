#!/usr/bin/perl

# Bodies no client should send: every prefix of a valid submission, random
# bytes, deep nesting, invalid UTF-8, huge numbers.  Each gets a JSON 400
# (or 201 when it is in fact valid), nothing else reaches Fanbase, and no
# worker suffers (the harness checks the error log and the sanitizers).

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;


my $t = FanbaseTest->new(
    files  => edge_files(),
    http   => edge_http(extra => "client_max_body_size 1m;\n"
                                 . "client_body_buffer_size 1m;\n"),
    server => "location = $QUEUE { fanbase_submit; }\n"
              . "location = /small { client_max_body_size 1k; "
              . "fanbase_submit; }\n",
);
$t->start;

my $valid = '{"action":"ticket-create","data":{"s":"\u00e9","n":[1,2.5e3,null]}}';

srand(20261123);

my @bodies = (
    (map { substr($valid, 0, $_) } 0 .. length($valid) - 1),
    (map { join '', map { chr int rand 256 } 1 .. 1 + int rand 64 } 1 .. 60),
    '[' x 20000,
    '{"action":"a","data":' . ('{"x":' x 400) . '1' . ('}' x 400) . '}',
    "{\"action\":\"\xff\xfe\",\"data\":{}}",
    "{\"action\":\"a\",\"data\":{\"k\":\"\xc3\"}}",
    '{"action":"a","data":{"n":' . ('9' x 5000) . '}}',
    "{\"action\":\"a\",\"data\":{}}\x00",
    '{"action":"a","data":{},"action":1}',
);

my ($bad, $ok, $other) = (0, 0, 0);

for my $body (@bodies) {
    my $res = $t->request(POST => $QUEUE, body => $body,
                          headers => [@CT]);

    if ($res->{status} == 400
        && ($res->{json}{error}{code} // '') =~ /^invalid_(json|submission)$/)
    {
        $bad++;

    } elsif ($res->{status} == 201) {
        $ok++;

    } else {
        $other++;
        diag("unexpected $res->{status} for body of " . length($body)
             . " bytes: $res->{body}");
    }
}

is $other, 0, scalar(@bodies) . ' bodies: each answered 400 JSON or 201';
cmp_ok $bad, '>=', scalar(@bodies) - 3, 'nearly all refused';
is $t->mock_stats->{queue_posts}, $ok, 'only the valid ones reached Fanbase';

# a chunked body has no Content-Length: nginx finds it too large while
# reading it, and its 413 is JSON too

my $big = '{"action":"a","data":{"pad":"' . ('x' x 2000) . '"}}';
my $chunked = sprintf("%x\r\n%s\r\n0\r\n\r\n", length $big, $big);

my $res = $t->request(POST => '/small', raw =>
    "POST /small HTTP/1.1\r\nHost: localhost\r\n"
    . "Content-Type: application/json\r\n"
    . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n$chunked");

is $res->{status}, 413, 'chunked body over client_max_body_size: 413';
like $res->{headers}{'content-type'} // '', qr{^application/json},
    'as JSON';
json_like $res->{json}, { error => { status => 413,
                                     code => 'body_too_large' } },
    'with the error body';
is $t->mock_stats->{queue_posts}, $ok, 'and nothing reached Fanbase';

done_testing;
