#!/usr/bin/perl

# The Redis engine's configuration (issue 15): nginx -t refuses a bad
# fanbase_redis URL (scheme, port, db, no host, no path, a host name that
# does not resolve), an unknown parameter or a bad value of a known one,
# fanbase_redis without fanbase_zone, a password file that is missing, a
# directory, empty or of two lines, a bad fanbase_redis_timeout: each at
# [emerg] with the directive's name and the reason, never the password;
# it takes every form of the spec.  A Redis with requirepass: two hosts
# with fanbase_redis_password_file work together (accepted on A, read on
# B, delivered once), and with error_log debug the password is in no line
# of any log and in no answer; a host with a wrong password answers 503
# engine_unavailable and says why, without either password.  Redis over a
# unix socket: two hosts, accepted on A, read on B, delivered once.
# Skipped when the module is built without fanbase_redis.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;
use FanbaseCluster;

use Time::HiRes qw(time sleep);

skip_without_redis();

my $URL = 'redis://127.0.0.1:6379/0';
my $ZONE = "fanbase_zone zone=fb:1m;\n";
my $SERVER = "location = $QUEUE { fanbase_submit async; }\n"
           . "location /transactions/ { fanbase_transaction; }\n";
my $PASSWORD = 'redis-Pw-9fQ2-do-not-log';


###########################################################################
# nginx -t: refused.  A case: name, http (lines after edge_http's, or
# 'nozone' => the lines without fanbase_zone), files, the patterns the
# [emerg] line must match.

my $WITHOUT_ZONE = edge_http() =~ s/^fanbase_zone .*\n//mr;

my @refused = (
    ['URL: another scheme', redis_line('http://127.0.0.1:6379/0'),
     qr/invalid|unsupported|scheme|redis:\/\//i],
    ['URL: no scheme', redis_line('127.0.0.1:6379'),
     qr/invalid|unsupported|scheme|redis:\/\//i],
    ['URL: port out of range', redis_line('redis://127.0.0.1:70000/0'),
     qr/port/i],
    ['URL: port not a number', redis_line('redis://127.0.0.1:abc/0'),
     qr/port|invalid/i],
    ['URL: db not a number', redis_line('redis://127.0.0.1:6379/abc'),
     qr/\bdb\b|database|invalid/i],
    ['URL: no host', redis_line('redis://'), qr/host|invalid|empty/i],
    ['URL: unix without a path', redis_line('unix:'), qr/path|invalid|empty/i],
    ['URL: a host that does not resolve',
     redis_line('redis://fanbase-no-such-host.invalid:6379/0'),
     qr/host not found|resolve|fanbase-no-such-host/i],
    ['an unknown parameter', redis_line($URL, 'colour=blue'),
     qr/colour/],
    ['fallback: a bad value', redis_line($URL, 'fallback=maybe'),
     qr/fallback/],
    ['prefix: empty', redis_line($URL, 'prefix='), qr/prefix/],
    ['retain: not a time', redis_line($URL, 'retain=forever'), qr/retain/],
    ['fanbase_redis twice', redis_line($URL) . redis_line($URL),
     qr/duplicate|twice|already/i],
    { name => 'fanbase_redis_timeout: not a time',
      http => redis_line($URL) . "fanbase_redis_timeout soon;\n",
      error => [qr/"fanbase_redis_timeout"/, qr/invalid|soon/i] },
    { name => 'fanbase_redis without fanbase_zone',
      nozone => 1, http => redis_line($URL),
      server => "location / { return 204; }\n",
      error => [qr/"fanbase_redis"/, qr/fanbase_zone/,
                qr/requires|without|needs|only with/i] },
    { name => 'password file missing',
      http => redis_line($URL)
            . "fanbase_redis_password_file %%DIR%%/no-such.password;\n",
      error => [qr/"fanbase_redis_password_file"/,
                qr/cannot open|no such file|not found/i, qr/no-such\.password/] },
    { name => 'password file is a directory',
      http => redis_line($URL)
            . "fanbase_redis_password_file %%DIR%%/pwdir;\n",
      files => { 'pwdir/x' => "x\n" },
      error => [qr/"fanbase_redis_password_file"/,
                qr/cannot (?:open|read)|is not a (?:regular )?file|directory/i] },
    { name => 'password file empty',
      http => redis_line($URL)
            . "fanbase_redis_password_file %%DIR%%/empty.password;\n",
      files => { 'empty.password' => '' },
      error => [qr/"fanbase_redis_password_file"/, qr/empty/i] },
    { name => 'password file of two lines',
      http => redis_line($URL)
            . "fanbase_redis_password_file %%DIR%%/two.password;\n",
      files => { 'two.password' => "$PASSWORD\nsecond-line-Zq8\n" },
      error => [qr/"fanbase_redis_password_file"/, qr/one line/i] },
    { name => 'fanbase_redis_password_file without fanbase_redis',
      http => "fanbase_redis_password_file %%DIR%%/redis.password;\n",
      files => { 'redis.password' => "$PASSWORD\n" },
      error => [qr/"fanbase_redis_password_file"/, qr/"fanbase_redis"/,
                qr/requires|without|needs|only with|is not/i] },
);

for my $case (@refused) {
    $case = { name => $case->[0], http => $case->[1],
              error => [qr/"fanbase_redis"/, @$case[2 .. $#$case]] }
        if ref $case eq 'ARRAY';
    my $name = "nginx -t: $case->{name}";
    my ($ok, $out) = FanbaseTest->nginx_t(
        files  => { %{ edge_files() }, %{ $case->{files} || {} } },
        http   => ($case->{nozone} ? $WITHOUT_ZONE : edge_http())
                . $case->{http},
        server => $case->{server} // $SERVER);
    ok(!$ok, "$name: refused") or diag($out);
    my ($emerg) = grep { /\[emerg\]/ } split /\n/, $out;
    ok(defined $emerg, "$name: at [emerg]") or diag($out);
    like($emerg // '', $_, "$name: the message matches $_") for @{ $case->{error} };
    unlike($emerg // '', qr/unknown directive/, "$name: not an unknown directive");
    unlike($out, qr/\Q$PASSWORD\E|second-line-Zq8/, "$name: no password in the output");
}


###########################################################################
# nginx -t: accepted.

for my $case (
    ['redis:// with host, port and db', redis_line('redis://127.0.0.1:6380/3')],
    ['redis:// without port nor db', redis_line('redis://127.0.0.1')],
    ['redis:// by host name', redis_line('redis://localhost:6379/0')],
    ['unix: path', redis_line('unix:/run/redis/redis.sock')],
    ['unix: path and db', redis_line('unix:/run/redis/redis.sock:2')],
    ['every parameter', redis_line($URL, 'prefix=edge1', 'fallback=local',
                                   'retain=1h')],
    ['fallback=off', redis_line($URL, 'fallback=off')],
    ['a password file and a timeout',
     redis_line($URL) . "fanbase_redis_password_file %%DIR%%/redis.password;\n"
     . "fanbase_redis_timeout 500ms;\n"],
) {
    my ($name, $http) = @$case;
    my ($ok, $out) = FanbaseTest->nginx_t(
        files  => { %{ edge_files() }, 'redis.password' => "$PASSWORD\n" },
        http   => edge_http() . $http,
        server => $SERVER);
    ok($ok, "nginx -t: $name: accepted") or diag($out);
}


###########################################################################
# A Redis with requirepass, two hosts with its password, error_log debug.

my @answers;    # every answer of the edges, searched for the password

{
    my $c = FanbaseCluster->new(
        hosts => 2, error_log_level => 'debug',
        redis => { password => $PASSWORD },
        mock  => { processing_after => 60, completed_after => 120 });
    my ($A, $B) = $c->start;

    my $body = body_for(case => 'password');
    my $res = $A->submit(body => $body, record => \@answers);
    is($res->{status}, 202, 'requirepass: accepted on A');
    my $id = tx_id($res);
    is($B->get_tx($id, record => \@answers)->{status}, 200,
       'requirepass: read on B');
    my $tx = $B->wait_status($id, qr/^processing$/, timeout => 20,
                             record => \@answers);
    is($tx && $tx->{status}, 'processing', 'requirepass: delivered');
    is($A->posts_with($body), 1, 'requirepass: sent once');
    $res = $B->hook('/hooks/status', { id => $id, status => 'completed' });
    push @answers, $res;
    is($res->{status}, 204, 'requirepass: a webhook on B: 204');
    is($A->tx_status($id, record => \@answers), 'completed',
       'requirepass: read on A completed');
    push @answers, $A->get_tx($id, wait => 1, inm => '"x"');

    # a host whose password is wrong: down, and it says why
    my $w = FanbaseTest->new(
        mock_of => $A->{args}{mock_of}, name => 'W', error_log_level => 'debug',
        files => { %{ edge_files() },
                   'redis.password' => { content => "wrong-Pw-Kk3\n", mode => 0600 } },
        http => edge_http(extra => redis_line($c->redis->url)
                          . "fanbase_redis_password_file %%DIR%%/redis.password;\n"),
        server => $SERVER);
    $w->start;
    sleep 0.5;
    $res = $w->submit(data => { case => 'wrong password' });
    push @answers, $res;
    error_ok($res, 503, 'engine_unavailable', 'a wrong password');
    ok($w->wait_for(sub { $w->error_log =~ /WRONGPASS|invalid (?:username-)?password|auth/i },
                    timeout => 3),
       'a wrong password: the error log says the authentication failed');
    $w->stop;
    unlike($w->error_log, qr/wrong-Pw-Kk3|\Q$PASSWORD\E/,
           'a wrong password: neither password in its error log');

    $_->stop for $B, $A;
    for my $h ($A, $B) {
        my $log = $h->error_log;
        like($log, qr/\[debug\]/, $h->name . ': its error log is at debug');
        my @lines = grep { index($_, $PASSWORD) >= 0 } split /\n/, $log;
        is(scalar @lines, 0, $h->name . ': the password in no line of its error log')
            or diag($lines[0]);
        my @other = grep { index(FanbaseTest::slurp($_), $PASSWORD) >= 0 }
                    grep { -f $_ && !m{/redis\.password$} } glob($h->dir . '/*');
        is(scalar @other, 0, $h->name . ': nor in any other file it wrote')
            or diag("@other");
    }
    my @leak = grep {
        my $r = $_;
        index(join("\n", $r->{body} // '',
                   map { "$_->[0]: $_->[1]" } @{ $r->{header_list} || [] }),
              $PASSWORD) >= 0
    } @answers;
    is(scalar @leak, 0, 'requirepass: the password in no answer');
}


###########################################################################
# Redis over a unix socket.

{
    my $c = FanbaseCluster->new(
        hosts => 2, redis => { unix => 1 },
        mock  => { processing_after => 60, completed_after => 120 });
    like($c->redis->url, qr{^unix:/}, 'unix socket: the url is unix:/PATH');
    my ($A, $B) = $c->start;
    my $body = body_for(case => 'unix socket');
    my $id = tx_id($A->submit(body => $body, status => 202,
                              name => 'unix socket: accepted on A'));
    is($B->get_tx($id)->{status}, 200, 'unix socket: read on B');
    my $tx = $B->wait_status($id, qr/^processing$/, timeout => 20);
    is($tx && $tx->{status}, 'processing', 'unix socket: delivered');
    sleep 1;
    is($A->posts_with($body), 1, 'unix socket: sent once');
}

done_testing;
