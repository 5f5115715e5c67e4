#!/usr/bin/perl

# Configuration: every error that makes nginx -t fail, each with a message
# that names the directive (or what is missing) and why; configurations that
# pass (inheritance, relative paths, the smallest zone, a fixed token alone);
# then, at run time, a fanbase_api with a trailing slash, a fixed token that
# Fanbase accepts, and a bogus fixed token answered 503 token_rejected after
# Fanbase's 401.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;


# The http-level lines of a working configuration, by key; a case replaces
# keys (a string) or drops them (undef), and may add 'extra' lines.
my @HTTP_KEYS = qw(zone api token_url client_id secret timeout extra);
my %HTTP = (
    zone      => 'fanbase_zone zone=fb:1m;',
    api       => 'fanbase_api %%MOCK%%;',
    token_url => 'fanbase_token_url %%MOCK%%/api/token;',
    client_id => 'fanbase_client_id demo-client;',
    secret    => 'fanbase_client_secret_file %%DIR%%/secret;',
    timeout   => 'fanbase_timeout 2s;',
);
my $SERVER = "location = $QUEUE { fanbase_submit; }\n"
           . "location $QUEUE/ { fanbase_status; }\n";
my %FILES = (secret => "demo-secret\n");

sub http_conf {
    my %c = (%HTTP, %{ shift || {} });
    return join '', map { "$_\n" } grep { defined } @c{@HTTP_KEYS};
}

# where nginx -t says the error is
my $WHERE = qr{ in \S*nginx\.conf:\d+};


###########################################################################
# nginx -t: configurations that must be refused.  A case: name, http (keys
# of %HTTP to replace or drop), server (default $SERVER), files (default
# %FILES), and error: the patterns the output must match.

my @refused = (
    {
        name   => 'fanbase_submit without fanbase_zone',
        http   => { zone => undef },
        server => "location = $QUEUE { fanbase_submit; }\n",
        error  => [qr/"fanbase_submit" requires "fanbase_zone"/, $WHERE],
    },
    {
        name   => 'fanbase_status without fanbase_zone',
        http   => { zone => undef },
        server => "location $QUEUE/ { fanbase_status; }\n",
        error  => [qr/"fanbase_status" requires "fanbase_zone"/, $WHERE],
    },
    {
        name   => 'fanbase_health without fanbase_zone',
        http   => { zone => undef },
        server => "location = /health { fanbase_health; }\n",
        error  => [qr/"fanbase_health" requires "fanbase_zone"/, $WHERE],
    },
    {
        name   => 'fanbase_health with an argument',
        server => "location = /health { fanbase_health on; }\n",
        error  => [qr/invalid number of arguments in "fanbase_health"/, $WHERE],
    },
    {
        name   => 'fanbase_submit without fanbase_api',
        http   => { api => undef },
        server => "location = $QUEUE { fanbase_submit; }\n",
        error  => [qr/"fanbase_submit" requires "fanbase_api"/, $WHERE],
    },
    {
        name   => 'fanbase_status without fanbase_api',
        http   => { api => undef },
        server => "location $QUEUE/ { fanbase_status; }\n",
        error  => [qr/"fanbase_status" requires "fanbase_api"/, $WHERE],
    },
    {
        name   => 'fanbase_api set only in another location',
        http   => { api => undef },
        server => "location /a { fanbase_api %%MOCK%%; }\n"
                . "location = $QUEUE { fanbase_submit; }\n",
        error  => [qr/"fanbase_submit" requires "fanbase_api"/, $WHERE],
    },
    {
        name   => 'no credentials at all',
        http   => { token_url => undef, client_id => undef, secret => undef },
        error  => [qr/"fanbase_(?:submit|status)" requires credentials/, $WHERE],
    },
    {
        name   => 'client id and token url but no secret',
        http   => { secret => undef },
        error  => [qr/requires credentials/, $WHERE],
    },
    {
        name   => 'fanbase_client_secret_file without fanbase_client_id',
        http   => { client_id => undef },
        error  => [qr/requires "fanbase_client_id"/, $WHERE],
    },
    {
        name   => 'fanbase_client_secret_file without fanbase_token_url',
        http   => { token_url => undef },
        error  => [qr/requires "fanbase_token_url"/, $WHERE],
    },
    {
        name   => 'secret file missing',
        files  => {},
        error  => [qr/"fanbase_client_secret_file": cannot open "[^"]*secret"/,
                   $WHERE],
    },
    {
        name   => 'secret file is a directory',
        files  => { 'secret/x' => "demo-secret\n" },
        error  => [qr/"fanbase_client_secret_file"/,
                   qr/cannot (?:open|read)|is not a (?:regular )?file|directory/i],
    },
    {
        name   => 'secret file empty',
        files  => { secret => '' },
        error  => [qr/"fanbase_client_secret_file": "[^"]*secret" is empty/,
                   $WHERE],
    },
    {
        name   => 'secret file holding only a newline',
        files  => { secret => "\n" },
        error  => [qr/"fanbase_client_secret_file": "[^"]*secret" is empty/],
    },
    {
        name   => 'secret file with two lines',
        files  => { secret => "demo-secret\nsecond\n" },
        error  => [qr/"fanbase_client_secret_file": "[^"]*secret" must hold one line/,
                   $WHERE],
    },
    {
        name   => 'fanbase_api: not http(s)',
        http   => { api => 'fanbase_api ftp://connect.example.com;' },
        error  => [qr{invalid URL "ftp://connect\.example\.com" in "fanbase_api"},
                   qr{must start with "http://" or "https://"}, $WHERE],
    },
    {
        name   => 'fanbase_api: no scheme',
        http   => { api => 'fanbase_api connect.fanbase.com.br;' },
        error  => [qr{invalid URL "connect\.fanbase\.com\.br" in "fanbase_api"},
                   qr{must start with "http://" or "https://"}],
    },
    {
        name   => 'fanbase_api: a port above 65535',
        http   => { api => 'fanbase_api http://127.0.0.1:99999;' },
        error  => [qr{invalid URL "http://127\.0\.0\.1:99999" in "fanbase_api": .*[Pp]ort}, $WHERE],
    },
    {
        name   => 'fanbase_api: a host that does not resolve, synchronous',
        http   => { api => 'fanbase_api https://connect.fanbase.invalid;' },
        error  => [qr{host not found in "fanbase_api" "https://connect\.fanbase\.invalid": a synchronous "fanbase_submit" resolves it when the configuration is loaded}, $WHERE],
    },
    {
        name   => 'fanbase_api: https by address, verified, synchronous',
        http   => { api => 'fanbase_api https://127.0.0.1:8443;' },
        error  => [qr{"fanbase_api" "https://127\.0\.0\.1:8443" names Fanbase by its address: a synchronous "fanbase_submit" checks Fanbase's certificate against a host name}, $WHERE],
    },
    {
        name   => 'fanbase_api: a user and password in the URL',
        http   => { api => 'fanbase_api https://ana:pa55w0rd-XyZ@connect.example.com/;' },
        error  => [qr{invalid URL in "fanbase_api": it holds a user name or password},
                   qr/\A(?!.*pa55w0rd-XyZ)/s, $WHERE],
    },
    {
        name   => 'fanbase_token_url: a variable',
        http   => { token_url => 'fanbase_token_url http://$host/api/token;' },
        error  => [qr{invalid URL "http://\$host/api/token" in "fanbase_token_url": the directive takes no variables}, $WHERE],
    },
    {
        name   => 'fanbase_api: no host',
        http   => { api => 'fanbase_api http://;' },
        error  => [qr{invalid URL "http://" in "fanbase_api": no host}, $WHERE],
    },
    {
        name   => 'fanbase_api: no host before the path',
        http   => { api => 'fanbase_api https:///api;' },
        error  => [qr{invalid URL "https:///api" in "fanbase_api": no host}],
    },
    {
        name   => 'fanbase_token_url: not http(s)',
        http   => { token_url => 'fanbase_token_url security.fanbase.com.br/api/token;' },
        error  => [qr{invalid URL "security\.fanbase\.com\.br/api/token" in "fanbase_token_url"},
                   qr{must start with "http://" or "https://"}],
    },
    {
        name   => 'fanbase_token_url: no host',
        http   => { token_url => 'fanbase_token_url https://;' },
        error  => [qr{invalid URL "https://" in "fanbase_token_url": no host}],
    },
    {
        name   => 'access token file and secret file in one location',
        http   => { extra => 'fanbase_access_token_file %%DIR%%/token;' },
        files  => { %FILES, token => "fixed.token.value\n" },
        error  => [qr/"fanbase_access_token_file" and "fanbase_client_secret_file"/,
                   $WHERE],
    },
    {
        name   => 'access token file in the location, secret file inherited',
        server => "location = $QUEUE { fanbase_access_token_file %%DIR%%/token; "
                . "fanbase_submit; }\n",
        files  => { %FILES, token => "fixed.token.value\n" },
        error  => [qr/"fanbase_access_token_file" and "fanbase_client_secret_file"/],
    },
    {
        name   => 'access token file missing',
        http   => { token_url => undef, client_id => undef, secret => undef,
                    extra => 'fanbase_access_token_file %%DIR%%/token;' },
        error  => [qr/"fanbase_access_token_file": cannot open "[^"]*token"/],
    },
    {
        name   => 'access token file empty',
        http   => { token_url => undef, client_id => undef, secret => undef,
                    extra => 'fanbase_access_token_file %%DIR%%/token;' },
        files  => { token => '' },
        error  => [qr/"fanbase_access_token_file": "[^"]*token" is empty/],
    },
    {
        name   => 'fanbase_zone: no zone= prefix',
        http   => { zone => 'fanbase_zone fb:1m;' },
        error  => [qr/"fb:1m"/, qr/zone=name:size/, $WHERE],
    },
    {
        name   => 'fanbase_zone: no size',
        http   => { zone => 'fanbase_zone zone=fb;' },
        error  => [qr/invalid zone "zone=fb"/, qr/zone=name:size/],
    },
    {
        name   => 'fanbase_zone: no name',
        http   => { zone => 'fanbase_zone zone=:1m;' },
        error  => [qr/invalid zone "zone=:1m"/],
    },
    {
        name   => 'fanbase_zone: size not a size',
        http   => { zone => 'fanbase_zone zone=fb:lots;' },
        error  => [qr/invalid zone size "zone=fb:lots"/],
    },
    {
        name   => 'fanbase_zone: below eight pages',
        http   => { zone => 'fanbase_zone zone=fb:16k;' },
        error  => [qr/zone "zone=fb:16k" is too small, the least is 32k/],
    },
    {
        name   => 'fanbase_zone: prefault neither on nor off',
        http   => { zone => 'fanbase_zone zone=fb:1m prefault=maybe;' },
        error  => [qr/invalid parameter "prefault=maybe"/,
                   qr/"prefault=on\|off"/, $WHERE],
    },
    {
        name   => 'fanbase_zone: state= twice',
        http   => { zone => 'fanbase_zone zone=fb:1m state=%%DIR%%/a.json '
                          . 'state=%%DIR%%/b.json;' },
        error  => [qr/invalid parameter "state=[^"]*b\.json"/, $WHERE],
    },
    {
        name   => 'fanbase_zone: four parameters',
        http   => { zone => 'fanbase_zone zone=fb:1m state=%%DIR%%/a.json '
                          . 'prefault=on prefault=off;' },
        error  => [qr/invalid number of arguments in "fanbase_zone"/],
    },
    {
        name   => 'fanbase_zone twice',
        http   => { extra => 'fanbase_zone zone=other:1m;' },
        error  => [qr/"fanbase_zone" directive is duplicate/, $WHERE],
    },
    {
        name   => 'fanbase_zone in a server block',
        http   => { zone => undef },
        server => "fanbase_zone zone=fb:1m;\n$SERVER",
        error  => [qr/"fanbase_zone" directive is not allowed here/],
    },
    {
        name   => 'fanbase_submit at server level',
        server => "fanbase_submit;\n",
        error  => [qr/"fanbase_submit" directive is not allowed here/],
    },
    {
        name   => 'fanbase_ssl_trusted_certificate missing',
        http   => { extra => 'fanbase_ssl_trusted_certificate %%DIR%%/no-ca.pem;' },
        error  => [qr/"fanbase_ssl_trusted_certificate"/,
                   qr/cannot (?:open|read) "[^"]*no-ca\.pem"/],
    },
    {
        name   => 'fanbase_ssl_trusted_certificate in a location, missing',
        server => "location = $QUEUE { fanbase_ssl_trusted_certificate "
                . "%%DIR%%/no-ca.pem; fanbase_submit; }\n",
        error  => [qr/"fanbase_ssl_trusted_certificate"/, qr/no-ca\.pem/],
    },
);

for my $case (@refused) {
    my ($ok, $out, $code) = FanbaseTest->nginx_t(
        http   => http_conf($case->{http}),
        server => $case->{server} // $SERVER,
        files  => $case->{files} // \%FILES,
    );
    ok(!$ok, "$case->{name}: nginx -t fails") or diag($out);
    isnt($code, -1, "$case->{name}: nginx -t exits, no signal");
    like($out, qr/\[emerg\]/, "$case->{name}: [emerg]");
    like($out, $_, "$case->{name}: output matches $_") for @{ $case->{error} };
}


###########################################################################
# nginx -t: configurations that pass.

my @accepted = (
    {
        name   => 'the typical configuration',
    },
    {
        name   => 'secret without a trailing newline',
        files  => { secret => 'demo-secret' },
    },
    {
        name   => 'relative secret path, from the prefix',
        http   => { secret => 'fanbase_client_secret_file secret;' },
    },
    {
        name   => 'https URLs, trailing slash on fanbase_api',
        http   => { api       => 'fanbase_api https://localhost/;',
                    token_url => 'fanbase_token_url '
                               . 'https://security.fantest.com.br/api/token;' },
    },
    {
        name   => 'fanbase_zone with prefault=off, then state=',
        http   => { zone => 'fanbase_zone zone=fb:1m prefault=off '
                          . 'state=%%DIR%%/state.json;' },
    },
    {
        name   => 'fanbase_zone with state=, then prefault=on',
        http   => { zone => 'fanbase_zone zone=fb:1m '
                          . 'state=%%DIR%%/state.json prefault=on;' },
    },
    {
        name   => 'the smallest zone, 32k',
        http   => { zone => 'fanbase_zone zone=fb:32k;' },
    },
    {
        name   => 'everything in the location',
        http   => { api => undef, token_url => undef, client_id => undef,
                    secret => undef, timeout => undef },
        server => "location = $QUEUE { fanbase_api %%MOCK%%; "
                . "fanbase_token_url %%MOCK%%/api/token; "
                . "fanbase_client_id demo-client; "
                . "fanbase_client_secret_file %%DIR%%/secret; fanbase_submit; }\n",
    },
    {
        name   => 'credentials at server level',
        http   => { token_url => undef, client_id => undef, secret => undef },
        server => "fanbase_token_url %%MOCK%%/api/token;\n"
                . "fanbase_client_id demo-client;\n"
                . "fanbase_client_secret_file %%DIR%%/secret;\n$SERVER",
    },
    {
        name   => 'a fixed token alone (no client id, no token url)',
        http   => { token_url => undef, client_id => undef, secret => undef,
                    extra => 'fanbase_access_token_file %%DIR%%/token;' },
        files  => { token => "fixed.token.value\n" },
    },
    {
        name   => 'every optional directive set',
        http   => { extra => "fanbase_connect_timeout 1s;\n"
                           . "fanbase_ssl_verify off;\n"
                           . "fanbase_ssl_trusted_certificate %%DIR%%/ca.pem;\n"
                           . "fanbase_status_refresh 0;\n"
                           . "fanbase_store_payload on;" },
        files  => { %FILES, 'ca.pem' => "-----BEGIN CERTIFICATE-----\n"
                                      . "-----END CERTIFICATE-----\n" },
        server => "$SERVER"
                . "location = /status { fanbase_status \$arg_id; }\n",
    },
    {
        name   => 'directives without a handler need nothing else',
        http   => { zone => undef, api => undef, token_url => undef,
                    client_id => undef, secret => undef },
        server => "location / { return 204; }\n",
    },
);

for my $case (@accepted) {
    my ($ok, $out) = FanbaseTest->nginx_t(
        http   => http_conf($case->{http}),
        server => $case->{server} // $SERVER,
        files  => $case->{files} // \%FILES,
    );
    ok($ok, "$case->{name}: nginx -t passes") or diag($out);
    unlike($out, qr/\[(?:emerg|alert|crit)\]/, "$case->{name}: no error");
}


###########################################################################
# At run time: a trailing slash on fanbase_api, a fixed token that Fanbase
# issued, and a bogus fixed token.

my $t = FanbaseTest->new(
    mock   => { clients => ['demo-client:demo-secret'] },
    files  => { %FILES, bogus => "bogus.fixed.token\n" },
    # the secret file only where it is used: a fixed token cannot apply
    # together with it (inherited included)
    http   => http_conf({ api => 'fanbase_api %%MOCK%%/;', secret => undef }),
    server => "location = $QUEUE { fanbase_client_secret_file %%DIR%%/secret; "
            . "fanbase_submit; }\n"
            . "location = /good$QUEUE { fanbase_access_token_file %%DIR%%/good; "
            . "fanbase_submit; }\n"
            . "location = /bogus$QUEUE { fanbase_access_token_file %%DIR%%/bogus; "
            . "fanbase_submit; }\n",
);

# a real fanbase_access_token_file: a token the mock issued, written before
# nginx starts (the master reads the file)
$t->start_mock;
my $issued = $t->request(POST => '/api/token?grant_type=client_credentials'
                               . '&client_id=demo-client&client_secret=demo-secret',
                         port => $t->mock_port);
my $good = $issued->{json}{access_token};
ok(defined $good && length $good, 'a token from the mock, for the fixed token file');
{
    open my $fh, '>', $t->dir . '/good' or die $!;
    print $fh "$good\n";
    close $fh;
}
$t->start_nginx;

my $body = '{"action":"ticket-create","data":{"k":"v"}}';

sub count_from_zero { $t->mock_reset }

$t->run_cases(
    {
        name    => 'trailing slash on fanbase_api is ignored',
        before  => \&count_from_zero,
        request => [POST => $QUEUE, headers => [@CT], body => $body],
        status  => 201,
        mock    => sub {
            my ($t) = @_;
            my $posts = $t->mock_requests(method => 'POST', path => qr/queue/);
            is(scalar @$posts, 1, 'trailing slash: one POST');
            is($posts->[0]{path}, $QUEUE, 'trailing slash: path without //');
        },
    },
    {
        name    => 'fixed token issued by Fanbase: used as is',
        before  => \&count_from_zero,
        request => [POST => "/good$QUEUE", headers => [@CT], body => $body],
        status  => 201,
        json    => { id => qr/\S/, processStatus => 'pending' },
        mock    => sub {
            my ($t) = @_;
            my $posts = $t->queue_posts;
            is(scalar @$posts, 1, 'fixed token: one POST');
            is_deeply($posts->[0]{headers}{accesstoken}, [$good],
                      'fixed token: the file\'s token, once, no newline');
            is($t->mock_stats->{token_requests}, 0,
               'fixed token: no token request');
        },
    },
    {
        name    => 'bogus fixed token: 503 token_rejected',
        before  => \&count_from_zero,
        request => [POST => "/bogus$QUEUE", headers => [@CT], body => $body],
        status  => 503,
        headers => { 'content-type' => qr{^application/json\b},
                     'retry-after'  => qr/^\d+$/ },
        json    => { error => { status => 503, code => 'token_rejected',
                                message => qr/\S/ } },
        log_like => qr/\[error\].*fanbase: Fanbase rejected the token/,
        mock    => sub {
            my ($t, $res) = @_;
            my $posts = $t->queue_posts;
            cmp_ok(scalar @$posts, '>=', 1, 'bogus token: Fanbase was asked');
            cmp_ok(scalar @$posts, '<=', 2, 'bogus token: at most once more');
            is_deeply([ map { @{ $_->{headers}{accesstoken} || [] } } @$posts ],
                      [ ('bogus.fixed.token') x @$posts ],
                      'bogus token: sent as is');
            is($t->mock_stats->{token_requests}, 0,
               'bogus token: no token request');
            unlike($res->{body}, qr/bogus\.fixed\.token/,
                   'bogus token: not in the answer');
        },
    },
    {
        name    => 'the other locations still work',
        request => [POST => $QUEUE, headers => [@CT], body => $body],
        status  => 201,
    },
);

done_testing;
