#!/usr/bin/perl

# HTTPS towards Fanbase.  A throwaway CA and certificates are made here
# with the openssl command line; "Fanbase" is the mock behind TLS fronts
# (second nginx processes, start_tls_front): "good" has a certificate for
# localhost and 127.0.0.1 from the CA, "other" one for the same names from
# another CA, "wrongname" one from the CA for wrong.example.  A front adds
# X-TLS-Front to what it passes on, so the mock's log tells what came over
# TLS, through which front.
#
# - fanbase_ssl_trusted_certificate the CA: a synchronous submission is
#   201, its token fetched over https too; by IP address, an asynchronous
#   one is delivered (libcurl checks the address; nginx -t refuses a
#   synchronous one, t/010);
# - fanbase_ssl_verify on without the CA (the system's bundle), with the
#   CA but a certificate from another, or for another name: 502
#   upstream_unreachable, nothing sent, the error log says why; a token
#   endpoint whose certificate is not trusted: 503 token_unavailable;
# - fanbase_ssl_verify off: 201 with the untrusted certificates;
# - the status read-through and the asynchronous delivery and tracking
#   over https: answered and delivered; neither reaches Fanbase without
#   the CA.
#
# The error log lines are matched in the wording of libcurl and of
# nginx's upstream SSL both, so that the test holds for either transport.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;

my ($GOOD, $OTHER, $WRONG) = map { FanbaseTest::free_port() } 1 .. 3;

# The queue over https; tokens over http, unless the case is about them.
# A credential set (token URL, client id, secret) fetches its token with
# the TLS settings of the first location that uses it, so the locations
# that take tokens over https each have a token URL of their own.
my $SERVER = <<"CONF";
location /ok/ {
    fanbase_api https://localhost:$GOOD;
    fanbase_token_url https://localhost:$GOOD/api/token;
    fanbase_ssl_trusted_certificate %%DIR%%/ca.crt;
    fanbase_transaction_path /ok/transactions;

    location = /ok$QUEUE { fanbase_submit; }
    location /ok$QUEUE/ { fanbase_status; }
    location = /ok/async$QUEUE { fanbase_submit async; }
    location /ok/transactions/ { fanbase_transaction; }
}

location /ip/ {
    fanbase_api https://127.0.0.1:$GOOD;
    fanbase_token_url https://127.0.0.1:$GOOD/api/token;
    fanbase_ssl_trusted_certificate %%DIR%%/ca.crt;
    fanbase_transaction_path /ip/transactions;

    location = /ip/async$QUEUE { fanbase_submit async; }
    location /ip/transactions/ { fanbase_transaction; }
}

location /noca/ {
    fanbase_api https://localhost:$GOOD;
    fanbase_token_url %%MOCK%%/api/token;
    fanbase_transaction_path /noca/transactions;

    location = /noca$QUEUE { fanbase_submit; }
    location /noca$QUEUE/ { fanbase_status; }
    location = /noca/async$QUEUE { fanbase_submit async; }
    location /noca/transactions/ { fanbase_transaction; }
}

location /otherca/ {
    fanbase_api https://localhost:$OTHER;
    fanbase_token_url %%MOCK%%/api/token;
    fanbase_ssl_trusted_certificate %%DIR%%/ca.crt;

    location = /otherca$QUEUE { fanbase_submit; }
}

location /wrongname/ {
    fanbase_api https://localhost:$WRONG;
    fanbase_token_url %%MOCK%%/api/token;
    fanbase_ssl_trusted_certificate %%DIR%%/ca.crt;

    location = /wrongname$QUEUE { fanbase_submit; }
}

location /badtoken/ {
    fanbase_api https://localhost:$GOOD;
    fanbase_token_url https://localhost:$OTHER/api/token;
    fanbase_ssl_trusted_certificate %%DIR%%/ca.crt;

    location = /badtoken$QUEUE { fanbase_submit; }
}

location /noverify/ {
    fanbase_api https://localhost:$OTHER;
    fanbase_token_url %%MOCK%%/api/token;
    fanbase_ssl_verify off;

    location = /noverify$QUEUE { fanbase_submit; }
}

location /noverify-name/ {
    fanbase_api https://localhost:$WRONG;
    fanbase_token_url %%MOCK%%/api/token;
    fanbase_ssl_trusted_certificate %%DIR%%/ca.crt;
    fanbase_ssl_verify off;

    location = /noverify-name$QUEUE { fanbase_submit; }
}
CONF

my $t = FanbaseTest->new(
    mock   => { clients => ['demo-client:demo-secret'],
                processing_after => 0.5, completed_after => 1 },
    files  => edge_files(),
    http   => <<"CONF",
fanbase_zone zone=fb:1m;
fanbase_client_id demo-client;
fanbase_client_secret_file %%DIR%%/secret;
fanbase_timeout 5s;
CONF
    server => $SERVER,
);

$t->tls_ca('ca');
$t->tls_ca('other-ca');
$t->tls_cert('good', ca => 'ca');
$t->tls_cert('other', ca => 'other-ca');
$t->tls_cert('wrongname', ca => 'ca', cn => 'wrong.example',
             san => 'DNS:wrong.example');

$t->start_mock;
$t->start_tls_front(good      => cert => 'good',      port => $GOOD);
$t->start_tls_front(other     => cert => 'other',     port => $OTHER);
$t->start_tls_front(wrongname => cert => 'wrongname', port => $WRONG);
$t->start_nginx;


# Helpers

# the front a request at the mock came through, and its TLS protocol, or
# "direct" (plain http)
sub via {
    my $r = shift;
    return ($r->{headers}{'x-tls-front'} || [])->[0] // 'direct';
}

sub via_is {
    my ($r, $front, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $want = $front eq 'direct' ? qr/^direct$/
             :                      qr/^\Q$front\E TLSv1\.[23]$/;
    like(via($r), $want, "$name: " . ($front eq 'direct' ? 'over http'
                                      : "over https, through $front"));
}

# one AccessToken, issued by the mock to demo-client
sub token_ok {
    my ($r, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @tok = @{ $r->{headers}{accesstoken} || [] };
    is(scalar @tok, 1, "$name: one AccessToken");
    json_like(jwt_claims($tok[0]),
              { iss => 'mock-fanbase', sub => 'demo-client' },
              "$name: a token the mock issued");
}

sub token_requests { $t->mock_requests(path => '/api/token') }

# Certificate checks that failed, in libcurl's words or in nginx's
# upstream SSL's (which checks the chain after the handshake: error 21, not
# 20).
my $UNTRUSTED = qr/SSL\ certificate\ (?:problem|verify\ error):
                   .*[\ :]unable\ to\ (?:get\ local\ issuer\ certificate
                                     |verify\ the\ first\ certificate)/x;
my $WRONG_NAME = qr/no\ alternative\ certificate\ subject\ name\ matches
                    \ target\ host\ name\ 'localhost'
                    |SSL\ certificate\ does\ not\ match\ "localhost"/x;

# An [error] line written since the mark that matches $re.
sub error_since {
    my ($mark, $re) = @_;
    return grep { /\[error\]/ && $_ =~ $re } split /\n/, $t->log_since($mark);
}

my $N = 0;

# A synchronous submission as run_cases data: the mock is reset first,
# then the answer and what the mock received are checked:
#   status, code  the answer; with code, one of the edge's JSON errors,
#                 whose message does not say the submission was sent,
#                 with the headers (as error_case's)
#   posts         how many queue POSTs reached the mock (0: nothing sent),
#                 each through the front via, with the token, the body
#                 byte for byte; the 201 relays the id the mock gave
#   tokens        how many token requests reached the mock (undef: not
#                 checked), each through the front token_via (default:
#                 plain http)
#   log           a qr// that an [error] line of the case matches
sub submission {
    my (%c) = @_;
    my $name = $c{name};
    my $body = body_for(case => $name, n => ++$N);
    my $mark;
    return {
        name    => $name,
        request => [POST => $c{path}, headers => [@CT], body => $body],
        before  => sub {
            $t->mock_reset;
            $mark = $t->log_mark;
        },
        defined $c{code}
            ? error_case($c{status}, $c{code}, %{ $c{headers} || {} })
            : (status => $c{status}),
        mock    => sub {
            my ($t, $res) = @_;
            my $posts = $t->queue_posts;
            is(scalar @$posts, $c{posts},
               "$name: $c{posts} queue POST(s) at the mock")
                or diag(explain($posts));
            for my $p ($c{posts} ? @$posts : ()) {
                via_is($p, $c{via}, "$name: the POST");
                token_ok($p, "$name: the POST");
                is($p->{body}, $body, "$name: the POST's body byte for byte");
            }
            if ($res->{status} == 201) {
                is($res->{json}{id}, $posts->[0]{queue_id},
                   "$name: the 201 relays the queue id the mock gave");
            }
            if (defined $c{code}) {
                unlike($res->{json}{error}{message} // '', qr/\bsent\b/,
                       "$name: the message does not say it was sent");
            }
            if (defined $c{tokens}) {
                my $tokens = token_requests();
                is(scalar @$tokens, $c{tokens},
                   "$name: $c{tokens} token request(s) at the mock");
                via_is($_, $c{token_via} // 'direct',
                       "$name: the token request")
                    for $c{tokens} ? @$tokens : ();
            }
            ok(error_since($mark, $c{log}), "$name: the error log says why")
                or diag($t->log_since($mark)) if $c{log};
        },
    };
}


###########################################################################
# 1. The CA trusted: a synchronous submission over https, its token
# fetched over https too; by host name and by IP address (the
# certificate's subjectAltName has both; nginx 1.22's own upstream SSL
# checks host names only, X509_check_host(), and refuses the IP address).

$t->run_cases(
    submission(name => 'the CA trusted', path => "/ok$QUEUE",
               status => 201, posts => 1, via => 'good',
               tokens => 1, token_via => 'good'),
    submission(name => 'the CA trusted, again (the token kept)',
               path => "/ok$QUEUE",
               status => 201, posts => 1, via => 'good', tokens => 0),
);

# by address: the asynchronous delivery (libcurl) checks the address in
# the certificate; a synchronous fanbase_submit, on nginx's upstream,
# checks host names only and nginx -t refuses it (t/010_config.t)

{
    my $name = 'async, Fanbase as https://127.0.0.1';
    $t->mock_reset;
    my $body = body_for(case => $name);
    my $res = $t->submit(path => "/ip/async$QUEUE", body => $body,
                         status => 202, name => "$name: 202");
    my $id = tx_id($res);
    my $tx = $t->wait_status($id, 'completed', path => "/ip/transactions/$id",
                             timeout => 20, interval => 0.1);
    is($tx && $tx->{status}, 'completed', "$name: delivered and completed")
        or diag(explain($tx));
    my @posts = grep { $_->{body} eq $body } @{ $t->queue_posts };
    is(scalar @posts, 1, "$name: one POST at the mock");
    via_is($_, 'good', "$name: the POST"), token_ok($_, "$name: the POST")
        for @posts;
}


###########################################################################
# 2 and 3. fanbase_ssl_verify on (the default) and a certificate the edge
# must refuse: 502 upstream_unreachable, nothing sent.  The token comes
# over plain http, so that the queue POST is the call that meets the
# certificate; a token endpoint over https whose certificate is refused
# makes the submission 503 token_unavailable.

$t->run_cases(
    submission(name => 'no trusted certificate (the system\'s bundle)',
               path => "/noca$QUEUE",
               status => 502, code => 'upstream_unreachable', posts => 0,
               log => $UNTRUSTED),
    submission(name => 'a certificate from another CA',
               path => "/otherca$QUEUE",
               status => 502, code => 'upstream_unreachable', posts => 0,
               log => $UNTRUSTED),
    submission(name => 'a certificate for another name',
               path => "/wrongname$QUEUE",
               status => 502, code => 'upstream_unreachable', posts => 0,
               log => $WRONG_NAME),
    submission(name => 'the token endpoint\'s certificate from another CA',
               path => "/badtoken$QUEUE",
               status => 503, code => 'token_unavailable',
               headers => { 'retry-after' => qr/^\d+$/ },
               posts => 0, tokens => 0, log => $UNTRUSTED),
);


###########################################################################
# 4. fanbase_ssl_verify off: the same certificates are taken.

$t->run_cases(
    submission(name => 'verify off, a certificate from another CA',
               path => "/noverify$QUEUE",
               status => 201, posts => 1, via => 'other'),
    submission(name => 'verify off, a certificate for another name',
               path => "/noverify-name$QUEUE",
               status => 201, posts => 1, via => 'wrongname'),
);


###########################################################################
# 5. The status read-through and the asynchronous transactions over
# https.

# an id the mock knows and the zone does not: submitted to the mock itself
# (after mock_reset, which forgets submissions)
my $token = $t->request(POST => '/api/token?grant_type=client_credentials'
                              . '&client_id=demo-client'
                              . '&client_secret=demo-secret',
                        port => $t->mock_port)->{json}{access_token};

sub direct {
    my $res = $t->request(POST => $QUEUE, port => $t->mock_port,
                          headers => [AccessToken => $token, @CT],
                          body => body_for(seat => 'direct'));
    is($res->{status}, 201, 'submitted to the mock itself');
    return $res->{json}{id} // 'none';
}

{
    $t->mock_reset;
    my ($id, $name) = (direct(), 'status read through over https');
    $t->run_cases({
        name    => $name,
        request => [GET => "/ok$QUEUE/$id"],
        status  => 200,
        headers => { 'x-fanbase-cache' => 'MISS' },
        json    => { id => $id,
                     processStatus => qr/^(?:pending|processing|completed)$/ },
    });
    my $gets = $t->mock_requests(method => 'GET', path => "$QUEUE/$id");
    is(scalar @$gets, 1, "$name: one GET at the mock");
    via_is($_, 'good', "$name: the GET"), token_ok($_, "$name: the GET")
        for @$gets;
}

{
    $t->mock_reset;
    my ($id, $name) = (direct(), 'status read through, no trusted certificate');
    my $mark = $t->log_mark;
    $t->run_cases({
        name    => $name,
        request => [GET => "/noca$QUEUE/$id"],
        error_case(502, 'upstream_unreachable'),
    });
    is($t->mock_stats->{queue_gets}, 0, "$name: no GET at the mock");
    ok(error_since($mark, $UNTRUSTED), "$name: the error log says why")
        or diag($t->log_since($mark));
}

# fanbase_submit async with the CA: delivered over https, then followed
# there until it ends

{
    my $name = 'async, the CA trusted';
    $t->mock_reset;
    my $body = body_for(case => $name);
    my $res = $t->submit(path => "/ok/async$QUEUE", body => $body,
                         status => 202, name => "$name: 202");
    my $id = tx_id($res);
    is($res->{json}{links}[0]{path}, "/ok/transactions/$id", "$name: its link");

    my $tx = $t->wait_status($id, 'completed', path => "/ok/transactions/$id",
                             timeout => 20, interval => 0.1);
    is($tx && $tx->{status}, 'completed', "$name: delivered and completed")
        or diag(explain($tx));

    my @posts = grep { $_->{body} eq $body } @{ $t->queue_posts };
    is(scalar @posts, 1, "$name: one POST at the mock");
    via_is($_, 'good', "$name: the POST"), token_ok($_, "$name: the POST")
        for @posts;
    my $qid = $posts[0]{queue_id} // 'none';
    is(last_event($tx) && last_event($tx)->{data}{queue_id}, $qid,
       "$name: the queue id the mock gave");

    my $gets = $t->mock_requests(method => 'GET', path => "$QUEUE/$qid");
    cmp_ok(scalar @$gets, '>=', 1, "$name: followed at the mock");
    is(scalar(grep { via($_) =~ /^good TLSv1\.[23]$/ } @$gets), scalar @$gets,
       "$name: every GET over https, through good");
}

# without the CA: accepted, never sent, retried; a [warn] line says why

{
    my $name = 'async, no trusted certificate';
    $t->mock_reset;
    my $body = body_for(case => $name);
    my $res = $t->submit(path => "/noca/async$QUEUE", body => $body,
                         status => 202, name => "$name: 202");
    my $id = tx_id($res);
    ok($t->wait_for(sub {
           grep { /\Q$id\E/ && /not delivered/ && $_ =~ $UNTRUSTED }
               split /\n/, $t->error_log
       }, timeout => 10),
       "$name: the error log says why, with the transaction id");
    is($t->tx_status($id, path => "/noca/transactions/$id"), 'pending',
       "$name: still pending");
    is($t->posts_with($body), 0, "$name: nothing at the mock");
}

done_testing;
