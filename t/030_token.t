#!/usr/bin/perl

# Token management: one token per credential set for the whole host, fetched
# once (even under a cold-start burst), refreshed ahead of expiry while the
# old one keeps serving, never used past expiry, replaced once after a
# rejection, failed fetches answered 503 token_unavailable with exponential
# backoff, several credential sets side by side, and neither the secret nor
# any token in error.log or in an answer to a client.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;

use JSON::PP;
use Time::HiRes qw(time sleep);

my $TOKEN = '/api/token';

# characters that must be percent-encoded in a query string
my $SECRET = 's3cr&t+/=%x y';

# every other credential set of the first nginx: id => secret
my %SETS = (
    a    => 'alpha-Secr3t-Q7x',
    b    => 'bravo-Secr3t-R8z',
    rej  => 'rej-Secr3t-K2m',
    dead => 'dead-Secr3t-P4n',
    bo   => 'backoff-Secr3t-J9w',
    mal  => 'malformed-Secr3t-H3v',
    nt   => 'notoken-Secr3t-G5u',
    rst  => 'reset-Secr3t-F6t',
    ws   => 'whiskey-Secr3t-E1s',
    slow => 'slow-Secr3t-D8r',
    echo => 'echo-Secr3t-B7q',
);
my $WRONG_SECRET = 'wrong-Secr3t-C0q';    # what the file of "ws" holds


# Helpers

# a valid submission that names the location it went through ($via) and
# its number, spelt out in that order (not body_for's canonical JSON)
sub via_body {
    my ($via, $n) = @_;
    return qq({"action":"ticket-create","data":{"via":"$via","n":$n}});
}

# options of one submission through the location of set $via
sub sub_opts {
    my ($via, $n) = @_;
    return (headers => [@CT],
            body    => via_body($via, $n // 0));
}

sub path_of { my $via = shift; return $via eq 'main' ? $QUEUE : "/$via$QUEUE" }

# the query string's pairs, decoded as the mock decodes them
sub query_pairs {
    my @pairs;
    for my $pair (split /&/, shift // '') {
        my ($k, $v) = split /=/, $pair, 2;
        for ($k, $v) {
            $_ //= '';
            tr/+/ /;
            s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
        }
        push @pairs, [$k, $v];
    }
    return @pairs;
}

sub client_of {
    my $req = shift;
    my %q = map { @$_ } query_pairs($req->{query});
    return $q{client_id} // '';
}

sub access_tokens { @{ $_[0]{headers}{accesstoken} || [] } }

sub via_of {
    my $req = shift;
    my ($via) = ($req->{body} // '') =~ /"via":"([^"]*)"/;
    return $via // '';
}

sub percent_encode {
    my $s = shift;
    $s =~ s/([^A-Za-z0-9\-._~])/sprintf '%%%02X', ord $1/ge;
    return $s;
}

# the mock's log (one line per answered request: time method path status),
# from line $from on
sub mock_log {
    my ($t, $from) = @_;
    open my $fh, '<', $t->dir . '/mock.log' or return [];
    my @lines = map { chomp; [ (split / /)[1, 2, 3] ] } <$fh>;
    return [ @lines[($from // 0) .. $#lines] ];
}

sub histogram {
    my %h;
    $h{ $_->{status} . ($_->{error} ? " ($_->{error})" : '') }++ for @_;
    return join ', ', map { "$_ x$h{$_}" } sort keys %h;
}

# the checks of a 503 token_unavailable answer, for run_cases
my %UNAVAILABLE = error_case(503, 'token_unavailable',
                             'retry-after' => qr/^[1-9][0-9]*$/);

sub is_unavailable {
    my ($res, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $ok = $res->{status} == 503
        && ($res->{headers}{'retry-after'} // '') =~ /^[1-9][0-9]*$/
        && ($res->{headers}{'content-type'} // '') =~ m{^application/json\b}
        && ref $res->{json} eq 'HASH' && ref $res->{json}{error} eq 'HASH'
        && ($res->{json}{error}{code} // '') eq 'token_unavailable'
        && ($res->{json}{error}{status} // 0) == 503;
    ok($ok, $name) or diag("got $res->{status}"
        . ($res->{error} ? " ($res->{error})" : '')
        . ', Retry-After: ' . ($res->{headers}{'retry-after'} // 'none')
        . ', Content-Type: ' . ($res->{headers}{'content-type'} // 'none')
        . ", body: $res->{body}");
    return $ok;
}


###########################################################################
# The first nginx: one credential set at http level (a secret that needs
# percent-encoding) and one location per other set.  Debug log, for the
# check that nothing secret reaches it.

my $server = "location = $QUEUE { fanbase_submit; }\n"
           . "location $QUEUE/ { fanbase_status; }\n";
for my $id (sort keys %SETS) {
    my $extra = $id eq 'dead' ? "fanbase_token_url %%DEAD%%$TOKEN; "
              : $id eq 'slow' ? 'fanbase_timeout 1s; '
              :                 '';
    $server .= "location = /$id$QUEUE { ${extra}fanbase_client_id $id; "
             . "fanbase_client_secret_file %%DIR%%/secret_$id; "
             . "fanbase_submit; }\n";
}

my $t = FanbaseTest->new(
    error_log_level => 'debug',
    mock  => { clients => ["demo-client:$SECRET",
                           map { "$_:$SETS{$_}" } sort keys %SETS],
               processing_after => 30, completed_after => 60 },
    files => { secret => "$SECRET\n",
               map { ("secret_$_" => ($_ eq 'ws' ? $WRONG_SECRET : $SETS{$_})
                                     . "\n") } keys %SETS },
    http  => <<'CONF',
fanbase_zone zone=fb:1m;
fanbase_api %%MOCK%%;
fanbase_token_url %%MOCK%%/api/token;
fanbase_client_id demo-client;
fanbase_client_secret_file %%DIR%%/secret;
fanbase_timeout 5s;
CONF
    server => $server,
);
$t->start;

my $MOCK_HOST = qr/127\.0\.0\.1:${\ $t->mock_port }/;

my @client_answers;    # every answer nginx gave, for the secrecy check
my %tokens_seen;       # every token the mock received

sub harvest_tokens {
    for my $r (@{ $t->mock_requests }) {
        $tokens_seen{$_} = 1 for access_tokens($r);
    }
}

sub reset_mock {
    harvest_tokens();
    $t->mock_reset;
}

# $t->submit's options for a submission through the location of set $via,
# its answer kept for the secrecy check
sub via {
    my ($via, $n) = @_;
    return (path => path_of($via), body => via_body($via, $n),
            record => \@client_answers);
}


# Cold start: 500 concurrent submissions on an empty zone make exactly one
# token request, and every one of them is answered 201.

my @cold = $t->parallel(500, POST => $QUEUE,
                        headers => [@CT],
                        body => sub { via_body('cold', $_[0]) },
                        timeout => 30);
push @client_answers, @cold;
is(scalar(grep { $_->{status} == 201 } @cold), 500,
   'cold start: 500 concurrent submissions all answered 201')
    or diag('statuses: ' . histogram(@cold));

my $stats = $t->mock_stats;
is($stats->{token_requests}, 1, 'cold start: exactly one token request');
is($stats->{queue_posts}, 500, 'cold start: 500 POSTs reached the mock');

my $token_reqs = $t->mock_requests(path => $TOKEN);
is(scalar @$token_reqs, 1, 'cold start: one token request in the mock\'s log');
{
    my $tr = $token_reqs->[0] || { query => '', body => undef, method => '' };
    is($tr->{method}, 'POST', 'token request: POST');
    is($tr->{body}, '', 'token request: no body');
    my @pairs = query_pairs($tr->{query});
    is(scalar @pairs, 3, 'token request: exactly three query parameters')
        or diag('parameter names: ' . join ', ', map { $_->[0] } @pairs);
    my %q = map { @$_ } @pairs;
    is($q{grant_type}, 'client_credentials',
       'token request: grant_type=client_credentials');
    is($q{client_id}, 'demo-client', 'token request: client_id');
    ok(defined $q{client_secret} && $q{client_secret} eq $SECRET,
       'token request: client_secret, percent-decoded, is the secret');
    ok(index($tr->{query}, $SECRET) < 0 && $tr->{query} !~ /[ \/]/
           && $tr->{query} !~ /%(?![0-9A-Fa-f]{2})/,
       'token request: the secret is percent-encoded in the query string');
}

my $posts = $t->queue_posts;
my ($main_token) = access_tokens($posts->[0] || {});
ok(defined $main_token && length $main_token, 'cold start: POSTs carry a token');
is(scalar(grep { my @v = access_tokens($_);
                 @v == 1 && $v[0] eq ($main_token // '') } @$posts), 500,
   'cold start: every POST carries exactly one AccessToken, the same one');


# The token is shared by both workers and by many requests.

my @seq = map { $t->submit(via(main => $_)) } 1 .. 50;
is(scalar(grep { $_->{status} == 201 } @seq), 50,
   '50 sequential submissions answered 201')
    or diag('statuses: ' . histogram(@seq));
is($t->mock_stats->{token_requests}, 1,
   'after 550 submissions: still one token request');
$posts = $t->queue_posts;
is(scalar @$posts, 550, '550 POSTs at the mock');
is(scalar(grep { my @v = access_tokens($_);
                 @v == 1 && $v[0] eq ($main_token // '') } @$posts), 550,
   'every POST carries the same AccessToken');
{
    # debug lines start with "PID#TID: *CONN"
    my %pids = $t->log_pids('error.log',
        qr{\[debug\] (\d+)#\d+: \*\d+ http request line: "POST \Q$QUEUE\E });
    cmp_ok(scalar keys %pids, '>=', 2,
           'both workers served submissions with that one token')
        or diag('pids that served: ' . join ' ', sort keys %pids);
}


# Status requests carry the same token (they feed the secrecy check too).

for my $res (@cold[0 .. 2]) {
    my $id = $res->{json} && $res->{json}{id} or next;
    my $st = $t->request(GET => "$QUEUE/$id");
    push @client_answers, $st;
    is($st->{status}, 200, "status of a submission: 200");
}
{
    my $st = $t->request(GET => "$QUEUE/unknown-id-0001");
    push @client_answers, $st;
    is($st->{status}, 404, 'status of an id Fanbase does not know: 404');
    is($t->mock_stats->{token_requests}, 1,
       'status read-through used the shared token (no new token request)');
    my @gets = @{ $t->mock_requests(path => qr{^\Q$QUEUE\E/}, method => 'GET') };
    ok(@gets && !grep({ my @v = access_tokens($_);
                        !(@v == 1 && $v[0] eq ($main_token // '')) } @gets),
       'status read-through GETs carry the same token');
}


# Several credential sets side by side: each gets its own token, each
# request carries its own set's token.

reset_mock();
for my $n (1 .. 6) {
    for my $via (qw(a b)) {
        is($t->submit(via($via, $n))->{status}, 201, "set $via: submission $n: 201");
    }
}
is($t->submit(via(main => 99))->{status}, 201, 'main set still served alongside');
{
    my $treqs = $t->mock_requests(path => $TOKEN);
    my %per_client;
    $per_client{ client_of($_) }++ for @$treqs;
    is_deeply(\%per_client, { a => 1, b => 1 },
              'two sets: one token request per client id (main set cached)');

    my %tok;    # via => { token => count }
    for my $p (@{ $t->queue_posts }) {
        my @v = access_tokens($p);
        $tok{ via_of($p) }{ @v == 1 ? $v[0] : "(@{[scalar @v]} tokens)" }++;
    }
    my @ta = keys %{ $tok{a} || {} };
    my @tb = keys %{ $tok{b} || {} };
    is(scalar @ta, 1, 'set a: every POST carries one and the same token');
    is(scalar @tb, 1, 'set b: every POST carries one and the same token');
    is(($tok{a} || {})->{ $ta[0] // '' }, 6, 'set a: 6 POSTs with it');
    is(($tok{b} || {})->{ $tb[0] // '' }, 6, 'set b: 6 POSTs with it');
    ok(@ta && @tb && $ta[0] ne $tb[0], 'sets a and b: different tokens');
    is(jwt_claims($ta[0])->{sub}, 'a', 'POSTs through /a carry client a\'s token');
    is(jwt_claims($tb[0])->{sub}, 'b', 'POSTs through /b carry client b\'s token');
    is_deeply([keys %{ $tok{main} || {} }], [$main_token // ''],
              'the main location kept its own token');
}


# Token rejection: a token that Fanbase refuses (401) is dropped, a new one
# fetched and the POST sent once more.

reset_mock();
$t->mock_faults({ token => { ttl_ms => 300 } });    # tokens die early
is($t->submit(via(rej => 1))->{status}, 201, 'rejection: first submission 201');
sleep 0.5;
{
    my $mark = scalar @{ mock_log($t) };
    my $res = $t->submit(via(rej => 2));
    is($res->{status}, 201,
       'rejection: after the token died at Fanbase, a submission still gets 201')
        or diag("body: $res->{body}");

    my @reqs = @{ $t->mock_requests };
    is_deeply([map { $_->{path} eq $TOKEN ? 'token' : 'POST' } @reqs],
              [qw(token POST POST token POST)],
              'rejection: token, POST, POST (refused), new token, POST');
    my @pt = map { [access_tokens($_)]->[0] // '' }
             grep { $_->{path} eq $QUEUE } @reqs;
    ok(@pt == 3 && $pt[0] eq $pt[1] && $pt[2] ne $pt[1],
       'rejection: the repeated POST carries a different (new) token');
    ok(@reqs == 5 && via_of($reqs[2]) eq 'rej' && $reqs[2]{body} eq $reqs[4]{body},
       'rejection: the same submission was sent again');
    is_deeply([map { $_->[2] } grep { $_->[1] eq $QUEUE } @{ mock_log($t, $mark) }],
              [401, 201], 'rejection: the mock answered 401, then 201');
    $t->log_like(qr/\[warn\] .*fanbase: Fanbase rejected the token of client "rej" at $MOCK_HOST/,
                 'rejection: logged at warn');
}

# only one retry: rejected again -> 503 token_rejected
reset_mock();
$t->mock_faults({ queue_post => { status => 401 } });
$t->run_cases({
    name    => 'rejected twice',
    request => [POST => path_of('rej'), sub_opts(rej => 3)],
    status  => 503,
    headers => { 'retry-after'  => qr/^[0-9]+$/,
                 'content-type' => qr{^application/json\b} },
    json    => { error => { status => 503, code => 'token_rejected',
                            message => qr/\S/ } },
    mock    => sub {
        my ($t, $res) = @_;
        push @client_answers, $res;
        my $s = $t->mock_stats;
        is($s->{queue_posts}, 2, 'rejected twice: exactly 2 POSTs');
        is($s->{token_requests}, 1, 'rejected twice: one new token in between');
    },
});
$t->mock_faults({ queue_post => undef, token => undef });


# Token endpoint down: 503 token_unavailable at once, then backoff.

$t->run_cases({
    name    => 'token endpoint refuses connections',
    before  => sub { reset_mock() },
    request => [POST => path_of('dead'), sub_opts(dead => 1)],
    %UNAVAILABLE,
    log_like => qr/\[error\] .*fanbase: token request for client "dead" at 127\.0\.0\.1:\d+ failed/,
    mock    => sub {
        my ($t, $res) = @_;
        push @client_answers, $res;
        cmp_ok($res->{time}, '<', 1, 'endpoint down: answered in under 1 s');
        is_deeply([map { "$_->{method} $_->{path}" } @{ $t->mock_requests }], [],
                  'endpoint down: nothing sent to the mock');
    },
});
{
    my @five = $t->parallel(5, POST => path_of('dead'), sub_opts(dead => 2));
    push @client_answers, @five;
    my $n = 0;
    for my $res (@five) {
        is_unavailable($res, 'endpoint down, in backoff: 503 token_unavailable #' . ++$n);
    }
    cmp_ok((sort { $b <=> $a } map { $_->{time} } @five)[0], '<', 1,
           'endpoint down, in backoff: all five answered at once');
}

# backoff against the mock: 1 s, then 2 s, without token requests meanwhile
reset_mock();
$t->mock_faults({ token => { status => 500 } });
{
    my $tok = sub { $t->mock_stats->{token_requests} };

    my $s0 = time;
    is_unavailable($t->submit(via(bo => 1)),
                   'backoff: failed fetch -> 503 token_unavailable');
    my $e0 = time;
    is($tok->(), 1, 'backoff: one token request for the first submission');

    for my $k (1 .. 4) {
        sleep_until($s0 + 0.15 * $k);
        my $res = $t->submit(via(bo => 1 + $k));
        is_unavailable($res, "backoff: +" . 0.15 * $k . " s: 503");
        cmp_ok($res->{time}, '<', 0.5, "backoff: +" . 0.15 * $k . " s: at once");
    }
    is($tok->(), 1, 'backoff: no token request during the first second');

    sleep_until($e0 + 1.3);
    my $s1 = time;
    is_unavailable($t->submit(via(bo => 10)), 'backoff: after 1 s, a new attempt -> 503');
    my $e1 = time;
    is($tok->(), 2, 'backoff: after 1 s, a second token request');

    for my $d (0.3, 1.0, 1.6) {
        sleep_until($s1 + $d);
        is_unavailable($t->submit(via(bo => 11)), "backoff: second failure +$d s: 503");
    }
    is($tok->(), 2, 'backoff: the next backoff is 2 s (no request in it)');

    sleep_until($e1 + 2.4);
    is_unavailable($t->submit(via(bo => 12)), 'backoff: after 2 s, a new attempt -> 503');
    is($tok->(), 3, 'backoff: after 2 s, a third token request');

    $t->log_like(qr/\[error\] .*fanbase: token request for client "bo" at $MOCK_HOST failed/,
                 'backoff: failure logged at error');
}
$t->mock_faults({ token => undef });


# Other ways the token endpoint fails: each set asks once and answers 503.

my @failures = (
    [ 'malformed token answer', mal  => { malformed => JSON::PP::true } ],
    [ 'answer without a token', nt   => { no_token  => JSON::PP::true } ],
    [ 'connection reset',       rst  => { reset     => JSON::PP::true } ],
    [ 'wrong secret (400)',     ws   => undef ],
    # what the endpoint said is logged, the secret it echoes is not
    [ 'a 400 that echoes the secret', echo => {
          status => 400, content_type => 'application/json',
          body => '{"error":"invalid_client","client_secret":"echo-Secr3t-B7q",'
                . '"query":"client_id=echo&client_secret=echo-Secr3t-B7q"}' },
      qr/answered 400: "\{'error':'invalid_client','client_secret':'\*\*\*','query':'client_id=echo&client_secret=\*\*\*'\}"/ ],
);
$t->run_cases(map {
    my ($name, $via, $fault, $said) = @$_;
    my $before;
    +{
        name    => $name,
        before  => sub {
            $t->mock_faults({ token => $fault });
            $before = scalar @{ $t->mock_requests(path => $TOKEN) };
        },
        request => [POST => path_of($via), sub_opts($via => 1)],
        %UNAVAILABLE,
        log_like => $said
                    ? qr/\[error\] .*fanbase: token request for client "$via" at $MOCK_HOST failed: $said/
                    : qr/\[error\] .*fanbase: token request for client "$via" at $MOCK_HOST failed/,
        mock    => sub {
            my ($t, $res) = @_;
            push @client_answers, $res;
            my @mine = grep { client_of($_) eq $via }
                       @{ $t->mock_requests(path => $TOKEN) };
            cmp_ok(scalar @mine, '>=', 1, "$name: the edge asked the token endpoint");
            cmp_ok($res->{time}, '<', 1, "$name: answered in under 1 s");
            $t->mock_faults({ token => undef });
        },
    }
} @failures);

# a hanging token endpoint: 503 within about fanbase_timeout (1 s)
$t->run_cases({
    name    => 'slow token endpoint',
    before  => sub { $t->mock_faults({ token => { delay_ms => 3000 } }) },
    request => [POST => path_of('slow'), sub_opts(slow => 1), timeout => 10],
    %UNAVAILABLE,
    log_like => qr/\[error\] .*fanbase: token request for client "slow" at $MOCK_HOST failed/,
    mock    => sub {
        my ($t, $res) = @_;
        push @client_answers, $res;
        cmp_ok($res->{time}, '>=', 0.9, 'slow token endpoint: waited for the timeout');
        # fanbase_timeout is 5 s at http level, 1 s here: well under 5 s
        cmp_ok($res->{time}, '<', 2.5,
               'slow token endpoint: 503 within about 1-1.5 s (the location\'s 1 s)');
        $t->mock_faults({ token => undef });
    },
});


# Secrets stay secret: not in error.log (debug level), not in any answer.

harvest_tokens();
$t->stop;
{
    my $log = $t->error_log;
    like($log, qr/\[debug\]/, 'secrecy: error.log is at debug level');
    like($log, qr/\[info\] .*fanbase: new token for client "demo-client" at $MOCK_HOST, valid for \d+ s/,
         'secrecy: new tokens are logged by client id and host');

    my @secrets = ($SECRET, values %SETS, $WRONG_SECRET);
    my @needles = map { ($_, percent_encode($_)) } @secrets;
    (my $plus = percent_encode($SECRET)) =~ s/%20/+/g;
    push @needles, $plus;
    my @tokens = sort keys %tokens_seen;
    cmp_ok(scalar @tokens, '>=', 5, 'secrecy: tokens collected from the mock');
    for my $tok (@tokens) {
        push @needles, $tok, grep { length >= 16 } split /\./, $tok;
    }
    my %uniq = map { $_ => 1 } @needles;
    @needles = keys %uniq;

    my @in_log = grep { index($log, $_) >= 0 } @needles;
    ok(!@in_log, 'secrecy: error.log holds neither a secret nor a token')
        or diag(scalar(@in_log) . ' secret strings found in error.log, e.g. a line: '
                . (grep { index($_, $in_log[0]) >= 0 } split /\n/, $log)[0]);

    my @in_answers;
    for my $res (@client_answers) {
        my $text = join "\n", $res->{body} // '',
                   map { "$_->[0]: $_->[1]" } @{ $res->{header_list} || [] };
        push @in_answers, grep { index($text, $_) >= 0 } @needles;
    }
    cmp_ok(scalar @client_answers, '>=', 550, 'secrecy: answers collected');
    ok(!@in_answers, 'secrecy: no answer to a client holds a secret or a token');
}


###########################################################################
# Refresh ahead of expiry: expires_in 3 s.  The edge refreshes at 70-80%
# (2.1-2.4 s) while the old token keeps serving, and treats it as expired
# at 2.7 s.

{
    my $r = FanbaseTest->new(
        mock  => { clients => ['demo-client:demo-secret'], expires_in => 3,
                   processing_after => 30, completed_after => 60 },
        files => edge_files(),
        http  => edge_http(timeout => '2s'),
        server => "location = $QUEUE { fanbase_submit; }\n",
    );
    $r->start;

    my @res;
    my $start = time;
    my $n = 0;
    while (time < $start + 5.2) {
        my $s = time;
        push @res, $r->request(POST => $QUEUE, sub_opts(refresh => $n++));
        sleep_until($s + 0.1);
    }

    is(scalar(grep { $_->{status} == 201 } @res), scalar @res,
       'refresh: every submission during ~5 s answered 201')
        or diag('statuses: ' . histogram(@res));
    cmp_ok((sort { $b <=> $a } map { $_->{time} } @res)[0], '<', 1,
           'refresh: no submission waited');

    my $treqs = $r->mock_requests(path => $TOKEN);
    my @tt = map { $_->{time} } @$treqs;
    cmp_ok(scalar @tt, '>=', 2, 'refresh: a second token request');
    if (@tt >= 2) {
        my $dt = $tt[1] - $tt[0];
        ok($dt >= 2.0 && $dt < 2.7,
           'refresh: second token request 2.1-2.4 s after the first, before expiry (2.7 s)')
            or diag(sprintf 'second token request %.3f s after the first', $dt);
    }

    # at the mock: every POST was accepted, none carried a dead token
    my @log = grep { $_->[1] eq $QUEUE } @{ mock_log($r) };
    my $posts = $r->queue_posts;
    is(scalar @$posts, scalar @res, 'refresh: one POST per submission');
    is(scalar(grep { $_->[2] eq '401' } @log), 0, 'refresh: the mock answered no 401');
    is(scalar(grep { $_->[2] eq '201' } @log), scalar @$posts,
       'refresh: the mock answered 201 to every POST');

    # the k-th distinct token was issued no earlier than the k-th token
    # request: its age at each POST is at most POST time - that time
    my (%rank, @order);
    for my $p (@$posts) {
        my ($v) = access_tokens($p);
        $rank{$v // ''} //= do { push @order, $v; $#order };
    }
    cmp_ok(scalar @order, '<=', scalar @tt, 'refresh: no token the mock did not issue');
    cmp_ok(scalar @order, '>=', 2, 'refresh: POSTs moved to the new token');
    my @old;
    for my $p (@$posts) {
        my ($v) = access_tokens($p);
        my $k = $rank{$v // ''};
        next unless defined $tt[$k];
        push @old, sprintf('%.3f s', $p->{time} - $tt[$k])
            if $p->{time} - $tt[$k] >= 3;
    }
    ok(!@old, 'refresh: every POST carried a token issued less than 3 s before')
        or diag("token ages: @old");
    $r->log_like(qr/\[info\] .*fanbase: new token for client "demo-client" at 127\.0\.0\.1:\d+, valid for 3 s/,
                 'refresh: new token logged with its lifetime');
    $r->stop;
}


###########################################################################
# Never past expiry: expires_in 2 s (the edge treats it as expired at
# 1.8 s); the token endpoint fails from the first token on.

{
    my $e = FanbaseTest->new(
        mock  => { clients => ['demo-client:demo-secret'], expires_in => 2,
                   processing_after => 30, completed_after => 60 },
        files => edge_files(),
        http  => edge_http(timeout => '2s'),
        server => "location = $QUEUE { fanbase_submit; }\n",
    );
    $e->start;

    my $first = $e->request(POST => $QUEUE, sub_opts(expiry => 0));
    is($first->{status}, 201, 'expiry: first submission 201');
    my $t0 = ($e->mock_requests(path => $TOKEN)->[0] || {})->{time} // time;
    $e->mock_faults({ token => { status => 500 } });

    my (@early, @late, @between);
    my $n = 0;
    while (time < $t0 + 3.2) {
        my $s = time;
        my $res = $e->request(POST => $QUEUE, sub_opts(expiry => ++$n));
        my $at = $s - $t0;
        push @{ $at < 1.3 ? \@early : $at >= 1.95 ? \@late : \@between },
             [$at, $res];
        sleep_until($s + 0.1);
    }

    ok(@early >= 5 && !grep({ $_->[1]{status} != 201 } @early),
       'expiry: while the token is valid, submissions get 201')
        or diag(join ', ', map { sprintf '%.2f s: %d', $_->[0], $_->[1]{status} } @early);
    my @odd = grep { !($_->[1]{status} == 201
                       || $_->[1]{status} == 503
                          && ($_->[1]{json}{error}{code} // '') eq 'token_unavailable') }
              @between;
    ok(!@odd, 'expiry: around 1.8 s, 201 or 503 token_unavailable only')
        or diag(join ', ', map { sprintf '%.2f s: %d %s', $_->[0], $_->[1]{status},
                                 $_->[1]{body} } @odd);
    cmp_ok(scalar @late, '>=', 5, 'expiry: submissions after 1.95 s');
    for my $l (@late) {
        is_unavailable($l->[1], sprintf 'expiry: +%.2f s: 503 token_unavailable', $l->[0]);
    }
    cmp_ok((sort { $b <=> $a } map { $_->[1]{time} } @late)[0] // 0, '<', 1,
           'expiry: those answered at once');

    my $posts = $e->queue_posts;
    my $ok201 = grep { $_->[1]{status} == 201 } @early, @between, @late;
    my @log = grep { $_->[1] eq $QUEUE } @{ mock_log($e) };
    is(scalar(grep { $_->[2] eq '401' } @log), 0,
       'expiry: the mock never saw an expired token (no 401)');
    is(scalar @$posts, $ok201 + 1, 'expiry: a POST only for each 201 answer');
    my @after = grep { $_->{time} >= $t0 + 2 } @$posts;
    ok(!@after, 'expiry: no POST at the mock 2 s or more after the token was issued')
        or diag(sprintf '%d POSTs after expiry, first at +%.3f s',
                scalar @after, $after[0]{time} - $t0);
    cmp_ok($e->mock_stats->{token_requests}, '>=', 2,
           'expiry: the edge tried to get a new token');
    $e->log_like(qr/\[error\] .*fanbase: token request for client "demo-client" at 127\.0\.0\.1:\d+ failed/,
                 'expiry: failed token requests logged at error');
    $e->stop;
}

done_testing;
