#!/usr/bin/perl

# Edge token management across hosts (issue 15): three nginx hosts, one
# Redis (fanbase_redis), one mock Fanbase.  A cold start with submissions
# at once on every host fetches one token; a token that Fanbase expired
# (rejected with 401 on every host) is fetched again once, not once per
# host; the refresh ahead of expiry is one fetch for all hosts, and no
# POST carries a dead token; with Redis down at start each host still
# gets its own token, and says so once.  The token never reaches a log
# line (error_log debug).

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;
use FanbaseRedis;

use File::Temp qw(tempdir);
use Time::HiRes qw(time sleep);

my $TOKEN = '/api/token';

my $redis = FanbaseRedis->new(
    dir => tempdir('fanbase-redis-' . 'X' x 6, TMPDIR => 1,
                   CLEANUP => !$ENV{TEST_NGINX_KEEP}));
$redis->start;

# the first host runs the mock; the others name it ($mock)
my $first = FanbaseTest->new(
    error_log_level => 'debug',
    mock   => { clients => ['demo-client:demo-secret'],
                processing_after => 600, completed_after => 1200 },
    files  => edge_files(),
    http   => edge_http(extra => 'fanbase_redis ' . $redis->url . ";\n"),
    server => "location = $QUEUE { fanbase_submit; }\n",
);
$first->start;

# another host of the cluster, with Redis at $url
sub new_host {
    my ($url) = @_;
    my $http = edge_http(extra => "fanbase_redis $url;\n");
    my $mock = $first->mock_url;
    $http =~ s/%%MOCK%%/$mock/g;
    return FanbaseTest->new(
        error_log_level => 'debug',
        mock   => undef,
        files  => edge_files(),
        http   => $http,
        server => "location = $QUEUE { fanbase_submit; }\n",
    );
}

my @hosts = ($first, new_host($redis->url), new_host($redis->url));
$_->start_nginx for @hosts[1, 2];

my $n = 0;
sub body { qq({"action":"ticket-create","data":{"n":) . ++$n . '}}' }

# $count submissions at once on each host, all hosts at once: the
# statuses, host by host
sub on_all {
    my ($count, @on) = @_;
    @on = @hosts unless @on;
    my @bodies = map { [map { body() } 1 .. $count] } @on;
    my @wait;
    for my $i (0 .. $#on) {
        my ($h, $mine) = ($on[$i], $bodies[$i]);
        push @wait, $h->background(sub {
            map { $_->{status} }
                $h->parallel($count, POST => $QUEUE, headers => [@CT],
                             body => sub { $mine->[$_[0]] }, timeout => 30);
        });
    }
    return map { [$_->()] } @wait;
}

sub all_201 { !grep { $_ != 201 } map { @$_ } @_ }

sub histogram {
    my %h;
    $h{$_}++ for map { @$_ } @_;
    return join ', ', map { "$_ x$h{$_}" } sort keys %h;
}

sub token_requests { $first->mock_stats->{token_requests} }

# the tokens POSTs carried, in order of arrival, from POST number $from on
sub post_tokens {
    my ($from) = @_;
    my @p = @{ $first->queue_posts };
    return map { $_->{headers}{accesstoken}[0] // '' } @p[($from // 0) .. $#p];
}

# the mock's log (a line per answered request: time method path status),
# from line $from on
sub mock_log {
    my ($from) = @_;
    open my $fh, '<', $first->dir . '/mock.log' or return ();
    my @lines = map { chomp; [ (split / /)[1, 2, 3] ] } <$fh>;
    return @lines[($from // 0) .. $#lines];
}

my %tokens_seen;


# Cold start under load: the first token request takes 300 ms, so that
# every host wants a token while one host fetches it.

$first->mock_faults({ token => { delay_ms => 300, count => 1 } });

my @cold = on_all(40);
ok(all_201(@cold), 'cold start: 3 x 40 submissions at once, all 201')
    or diag('statuses: ' . histogram(@cold));
is(token_requests(), 1, 'cold start on three hosts: one token request');
{
    my @t = post_tokens();
    my %t = map { $_ => 1 } @t;
    is(scalar @t, 120, 'cold start: 120 POSTs');
    is(scalar keys %t, 1, 'cold start: all carry the one token');
    $tokens_seen{$_} = 1 for keys %t;
}
{
    my @fetched = grep { $_->error_log =~ /fanbase: new token for/ } @hosts;
    my @shared = grep { $_->error_log =~ /fanbase: token for client "demo-client" at [^,]+ from redis, fetched by another host/ } @hosts;
    is(scalar @fetched, 1, 'cold start: one host fetched it');
    is(scalar @shared, 2, 'cold start: the two others took it from Redis');
}


# Fanbase expires every token: each host meets 401 with it; one new token
# for all.  (A token of the default lifetime: a short one could come up
# for its refresh while a loaded machine is still sending these.)

{
    my $before = token_requests();
    my $posts = scalar @{ $first->queue_posts };
    $first->mock_expire_tokens;

    my @res = on_all(20);
    ok(all_201(@res), 'expired token: 3 x 20 submissions, all 201')
        or diag('statuses: ' . histogram(@res));
    is(token_requests(), $before + 1,
       'expired token: one new token for the three hosts');
    my @t = post_tokens($posts);
    my %new = map { $_ => 1 } grep { !$tokens_seen{$_} } @t;
    is(scalar keys %new, 1, 'expired token: the POSTs sent again carry the '
                            . 'one new token');
    $tokens_seen{$_} = 1 for @t;
    for my $i (0 .. 2) {
        $hosts[$i]->log_like(qr/\[warn\] .*fanbase: Fanbase rejected the token of client "demo-client"/,
                             "expired token: host $i met the rejection");
    }
}


# Refresh ahead of expiry (4 s tokens: refreshed at 2.8-3.2 s, used until
# 3.6 s): submissions on every host for 7 s.  One host refreshes for all:
# consecutive token requests are a refresh apart, not three at a time.

{
    # tokens from here on live 4 s: the one in use is expired, and a round
    # of submissions on every host moves them to the next one, of those
    $first->mock_faults({ token => { expires_in => 4 } });
    $first->mock_expire_tokens;
    my @warm = on_all(2);
    ok(all_201(@warm), 'refresh: a 4 s token in use on every host')
        or diag('statuses: ' . histogram(@warm));

    my $before = scalar @{ $first->mock_requests(path => $TOKEN) };
    my $posts = scalar @{ $first->queue_posts };
    my $mark = scalar mock_log();
    my $start = time;
    my @res;
    while (time < $start + 7) {
        my $s = time;
        push @res, on_all(2);
        sleep_until($s + 0.2);
    }
    ok(all_201(@res), 'refresh: every submission on every host for 7 s '
                      . 'answered 201') or diag('statuses: ' . histogram(@res));

    my @all = @{ $first->mock_requests(path => $TOKEN) };
    my @tt = map { $_->{time} } @all[$before .. $#all];
    cmp_ok(scalar @tt, '>=', 2, 'refresh: two refreshes in 7 s')
        or diag(scalar(@tt) . ' token requests');
    cmp_ok(scalar @tt, '<=', 3, 'refresh: at most three token requests in '
                                . '7 s of 4 s tokens, for three hosts');
    my @gaps = map { $tt[$_] - $tt[$_ - 1] } 1 .. $#tt;
    ok(!grep({ $_ < 2 } @gaps),
       'refresh: token requests at least 2 s apart (one per refresh, for '
       . 'all hosts)')
        or diag('gaps: ' . join ', ', map { sprintf '%.3f s', $_ } @gaps);

    is(scalar(grep { $_->[1] eq $QUEUE && $_->[2] eq '401' }
                  mock_log($mark)), 0, 'refresh: the mock answered no 401');
    my @t = post_tokens($posts);
    my %t = map { $_ => 1 } @t;
    cmp_ok(scalar keys %t, '>=', 2, 'refresh: the POSTs moved to new tokens');
    $tokens_seen{$_} = 1 for @t;

    # each host took each token once: fetched it, or from Redis
    my $fetched = token_requests();
    for my $i (0 .. 2) {
        my $log = $hosts[$i]->error_log;
        my $own = () = $log =~ /\] [^\n]*fanbase: new token for client/g;
        my $shared = () = $log =~ /\] [^\n]*fanbase: token for client "demo-client" at [^,]+ from redis/g;
        is($own + $shared, $fetched,
           "refresh: host $i took each of the $fetched tokens once")
            or diag("fetched $own, from Redis $shared");
    }
}
$first->mock_faults({ token => undef });


# Redis down at start: three more hosts whose Redis does not listen; each
# gets its own token (as without Redis), and says so once a worker.

my @alone;
{
    my $dead = 'redis://127.0.0.1:' . FanbaseTest::free_port() . '/0';
    my $before = token_requests();
    @alone = map { new_host($dead) } 1 .. 3;
    $_->start_nginx for @alone;

    my @res = on_all(20, @alone);
    ok(all_201(@res), 'Redis down: 3 x 20 submissions, all 201')
        or diag('statuses: ' . histogram(@res));
    is(token_requests(), $before + 3, 'Redis down: one token per host');

    @res = on_all(10, @alone);
    ok(all_201(@res), 'Redis down: 3 x 10 more, all 201');
    is(token_requests(), $before + 3, 'Redis down: still one token per host');

    for my $i (0 .. 2) {
        my @said = $alone[$i]->error_log
                   =~ /\[warn\] [^\n]*fanbase: redis "[^"]*" does not answer: this host fetches its own Fanbase tokens/g;
        ok(@said >= 1 && @said <= 2,
           "Redis down: host $i said so at warn, once a worker at most")
            or diag(scalar(@said) . ' lines');
    }
    $tokens_seen{$_} = 1 for post_tokens();
}


# The token is a secret: in no error.log (debug), on no host.

$_->stop for @alone, @hosts[1, 2], $first;
{
    my @tokens = sort keys %tokens_seen;
    cmp_ok(scalar @tokens, '>=', 5, 'secrecy: tokens collected at the mock');
    my @needles = map { ($_, grep { length >= 16 } split /\./) } @tokens;
    my $i = 0;
    for my $h ($first, @hosts[1, 2], @alone) {
        my $log = $h->error_log;
        like($log, qr/\[debug\]/, "secrecy: host $i logs at debug");
        my @in = grep { index($log, $_) >= 0 } @needles;
        ok(!@in, "secrecy: no token in host $i\'s error.log")
            or diag((grep { index($_, $in[0]) >= 0 } split /\n/, $log)[0]);
        $i++;
    }
}

done_testing;
