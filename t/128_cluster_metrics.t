#!/usr/bin/perl

# The shared engine in fanbase_metrics and fanbase_health, with a Redis of
# the test's own: after accepts and status reads, its commands counted ok
# and timed (the histogram's count is the answered commands, its buckets
# cumulative), an error reply counted as an error (Redis refusing writes),
# connected 1 and the engine in health; Redis killed with kill -9: the
# commands that found no connection counted no_answer, connected 0,
# accepts 503 and health 503 "unavailable" (fallback=off); back: connected
# 1, health 200, accepts 202 again.  With fallback=local: while Redis is
# down, fallback 1, health 200 "degraded" with "fallback":true, accepts
# 202 from the zone; back, fallback 0.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;
use FanbaseMetrics;
use FanbaseRedis;

use JSON::PP;

plan(skip_all => 'no redis-server') unless -x ($ENV{TEST_REDIS_SERVER}
                                              // '/usr/bin/redis-server');

my $SERVER = <<"CONF";
location = /metrics { fanbase_metrics; }
location = /health { fanbase_health; }
location = $QUEUE {
    fanbase_transaction_path /transactions;
    fanbase_submit async;
}
location /transactions/ { fanbase_transaction; }
CONF

# an edge on the Redis at $port, its fanbase_redis parameters, the log
# lines a Redis that goes away makes
sub edge {
    my ($port, $params) = @_;
    return FanbaseTest->new(
        mock      => { processing_after => 60, completed_after => 120 },
        files     => edge_files(),
        http      => edge_http(timeout => '3s',
                               extra => "fanbase_redis redis://127.0.0.1:"
                                      . "$port/0 $params;\n"
                                      . "fanbase_redis_timeout 500ms;\n"),
        server    => $SERVER,
        log_allow => qr/fanbase: redis/,
    );
}

# every worker answers (each scrape may land on either): $code true $n
# times in a row
sub steadily {
    my ($t, $code, $n) = @_;
    return $t->wait_for(sub {
        for (1 .. ($n // 6)) { return 0 unless $code->() }
        return 1;
    }, timeout => 15, interval => 0.1);
}

sub health {
    my $res = $_[0]->request(GET => '/health');
    return ($res, $res->{json} || {});
}

my $C = 'fanbase_redis_commands_total';
my $D = 'fanbase_redis_command_duration_seconds';


###########################################################################
# fallback=off

my $port = FanbaseRedis::free_port();
my $t = edge($port, 'fallback=off');
my $redis = FanbaseRedis->new(dir => $t->dir, name => 'engine', port => $port);
$redis->start;
$t->start;

ok(steadily($t, sub { metric((scrape($t))[1], 'fanbase_redis_connected{}') == 1 }),
   'connected: 1 on every worker');

my ($res, $m, $samples, $errors) = scrape($t);
ok($samples, 'the reference parser reads it') or diag($errors);
my %type = map { $_->{family} => $_->{type} } @{ $samples || [] };
is($type{fanbase_redis_commands}, 'counter', 'commands: a counter');
is($type{$D}, 'histogram', 'durations: a histogram');
is($type{fanbase_redis_connected}, 'gauge', 'connected: a gauge');
is($type{fanbase_redis_fallback}, 'gauge', 'fallback: a gauge');
is(metric($m, 'fanbase_redis_fallback{}'), 0, 'fallback: 0');
my $ok0 = metric($m, "$C\{result=ok}");

my ($hres, $h) = health($t);
is($hres->{status}, 200, 'health: 200');
is($h->{status}, 'ok', '... ok');
is_deeply($h->{engine}, { name => 'redis', connected => JSON::PP::true,
                          fallback => JSON::PP::false },
          '... the engine: redis, connected');

# real traffic: accepts and status reads, each one command or more
my @ids;
for my $i (1 .. 5) {
    my $r = $t->submit(data => { n => $i }, status => 202, name => "accept $i: 202");
    push @ids, tx_id($r);
}
for my $id (@ids) {
    is($t->request(GET => "/transactions/$id")->{status}, 200, "read $id: 200");
}

($res, $m) = scrape($t);
cmp_ok(metric($m, "$C\{result=ok}") - $ok0, '>=', 5,
       'ok: at least one command per accept');
is(metric($m, "$C\{result=error}"), 0, 'error: 0');
is(metric($m, "$C\{result=no_answer}"), 0, 'no_answer: 0');
my $answered = metric($m, "$C\{result=ok}") + metric($m, "$C\{result=error}");
# the background (claims) may answer between two lines of the scrape
cmp_ok(metric($m, "${D}_count{}"), '>=', $answered - 2, 'timed: the answered ones');
cmp_ok(metric($m, "${D}_count{}"), '<=', $answered + 2, '... no more');
is(metric($m, "${D}_bucket{le=+Inf}"), metric($m, "${D}_count{}"), '+Inf bucket: the count');
my @le = map { metric($m, "${D}_bucket{le=$_}") }
         qw(0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 30 +Inf);
is_deeply([sort { $a <=> $b } @le], \@le, 'the buckets are cumulative');
cmp_ok(metric($m, "${D}_sum{}"), '>', 0, 'their sum');
cmp_ok(metric($m, "${D}_sum{}") / (metric($m, "${D}_count{}") || 1), '<', 0.5,
       '... on average well below a second (a local Redis)');

# an error reply: Redis refuses writes (no replica to write to)
$redis->cli('CONFIG', 'SET', 'min-replicas-to-write', '1');
$res = $t->submit(data => { n => 'refused' });
is($res->{status}, 503, 'Redis refuses writes: the accept 503');
is(($res->{json} || {})->{error}{code}, 'engine_unavailable', '... engine_unavailable');
$redis->cli('CONFIG', 'SET', 'min-replicas-to-write', '0');
($res, $m) = scrape($t);
cmp_ok(metric($m, "$C\{result=error}"), '>=', 1, 'error: counted');

# Redis killed
$redis->kill9;
ok(steadily($t, sub { metric((scrape($t))[1], 'fanbase_redis_connected{}') == 0 }),
   'Redis killed: connected 0 on every worker');
($res, $m) = scrape($t);
my $lost = metric($m, "$C\{result=no_answer}");
$res = $t->submit(data => { n => 'down' });
is($res->{status}, 503, 'an accept while Redis is down: 503');
is(($res->{json} || {})->{error}{code}, 'engine_unavailable', '... engine_unavailable');
($res, $m) = scrape($t);
cmp_ok(metric($m, "$C\{result=no_answer}"), '>', $lost, 'no_answer: it counted');
is(metric($m, 'fanbase_redis_fallback{}'), 0, 'fallback=off: fallback 0');

($hres, $h) = health($t);
is($hres->{status}, 503, 'health: 503');
is($h->{status}, 'unavailable', '... unavailable');
is_deeply($h->{engine}, { name => 'redis', connected => JSON::PP::false,
                          fallback => JSON::PP::false },
          '... the engine: redis, not connected, not working alone');

# Redis back
$redis->restart;
ok(steadily($t, sub { metric((scrape($t))[1], 'fanbase_redis_connected{}') == 1 }),
   'Redis back: connected 1 on every worker');
($hres, $h) = health($t);
is($hres->{status}, 200, 'health: 200 again');
is($h->{engine}{connected}, JSON::PP::true, '... connected');
($res, $m) = scrape($t);
my $ok1 = metric($m, "$C\{result=ok}");
$t->submit(data => { n => 'back' }, status => 202, name => 'an accept: 202 again');
($res, $m) = scrape($t);
cmp_ok(metric($m, "$C\{result=ok}"), '>', $ok1, 'ok: counted again');

# a reload keeps them: they live in the zone
my $no_answer = metric($m, "$C\{result=no_answer}");
$t->reload;
($res, $m) = scrape($t);
cmp_ok(metric($m, "$C\{result=no_answer}"), '>=', $no_answer,
       'after a reload: the counts kept');

$t->stop;
$redis->stop;


###########################################################################
# fallback=local

$port = FanbaseRedis::free_port();
my $l = edge($port, 'fallback=local');
$redis = FanbaseRedis->new(dir => $l->dir, name => 'engine', port => $port);
$redis->start;
$l->start;

ok(steadily($l, sub { metric((scrape($l))[1], 'fanbase_redis_connected{}') == 1 }),
   'fallback=local: connected 1');
is(metric((scrape($l))[1], 'fanbase_redis_fallback{}'), 0, '... fallback 0');

$redis->kill9;
ok(steadily($l, sub { metric((scrape($l))[1], 'fanbase_redis_fallback{}') == 1 }),
   'Redis killed: fallback 1 on every worker');
is(metric((scrape($l))[1], 'fanbase_redis_connected{}'), 0, '... connected 0');
$l->submit(data => { n => 'alone' }, status => 202,
           name => 'an accept while Redis is down: 202, from the zone');
($hres, $h) = health($l);
is($hres->{status}, 200, 'health: 200');
is($h->{status}, 'degraded', '... degraded');
is_deeply($h->{engine}, { name => 'redis', connected => JSON::PP::false,
                          fallback => JSON::PP::true },
          '... the engine: redis, not connected, working alone');

$redis->restart;
ok(steadily($l, sub { metric((scrape($l))[1], 'fanbase_redis_fallback{}') == 0 }),
   'Redis back: fallback 0 on every worker');
is(metric((scrape($l))[1], 'fanbase_redis_connected{}'), 1, '... connected 1');
($hres, $h) = health($l);
is($h->{engine}{fallback}, JSON::PP::false, 'health: not working alone');

$l->stop;

done_testing;
