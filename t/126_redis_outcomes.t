#!/usr/bin/perl

# The Redis engine (issue 15): an outcome that Redis cannot take is not
# lost.  A delivery's POST is held by Fanbase; Redis is killed (kill -9)
# meanwhile, so when Fanbase answers 201 the worker cannot give the outcome
# to Redis: it keeps it, and, with a state file, writes it to its outcomes
# file next to it.  nginx is then killed with kill -9 too.  Once Redis and
# nginx are back, the new worker replays the file: the transaction ends
# delivered with Fanbase's queue id (not delivery_outcome_unknown, which is
# what a lost outcome would have made of it), POSTed once.
# Skipped when the module is built without fanbase_redis.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;
use FanbaseCluster;
use FanbaseRedis;

use Time::HiRes qw(time sleep);

skip_without_redis();

my $redis = FanbaseRedis->new(dir => FanbaseTest::new_dir(),
                              appendfsync => 'always');
$redis->start;

my $t = FanbaseTest->new(
    mock   => { clients => ['demo-client:demo-secret'],
                processing_after => 600, completed_after => 1200 },
    files  => edge_files(),
    log_allow => [qr/\[crit\].*never reached|cannot connect/],
    http   => edge_http(timeout => '5s', state => '%%DIR%%/state',
                        extra => redis_line($redis->url)),
    server => "location = $QUEUE { fanbase_submit async; }\n"
            . "location /transactions/ { fanbase_transaction; }\n",
);
$t->start;
$t->stop_with($redis);

my $DELIVERED = qr/^(?:processing|completed)$/;

# a first one, delivered: the token is there, the path is warm
my $w = $t->numbered(data => { case => 'warm' });
is($w->{res}{status}, 202, 'warm: accepted');
like(($t->wait_status($w->{id}, $DELIVERED, timeout => 20) || {})->{status} // '',
     $DELIVERED, 'warm: delivered');

# X: Fanbase holds the POST for 3 s, then answers 201
$t->mock_faults({ queue_post => { delay_ms => 3000, count => 1 } });
my $x = $t->numbered(data => { case => 'held' });
is($x->{res}{status}, 202, 'X: accepted');
ok($t->wait_for(sub { scalar $t->posts_for($x->{n}) }, timeout => 5),
   'X: its POST reached Fanbase, which holds it');

$redis->kill9;
ok(!$redis->running, 'Redis killed with kill -9 while Fanbase holds the POST');

# Fanbase answers; the outcome cannot reach Redis and goes to the file
my $file;
ok($t->wait_for(sub {
        ($file) = grep { -s $_ } glob($t->dir . '/state.redis.*');
        return $file;
    }, timeout => 10),
   'the outcome is written to the worker\'s outcomes file');
$t->log_like(qr/\[error\].*redis "[^"]+"/, 'the error log says Redis is gone');

ok($t->kill9, 'nginx killed with kill -9 (master and workers)');
ok(-s $file, 'the outcomes file outlives it');

$redis->restart;
ok($redis->running, 'Redis started again (appendfsync always: all it had)');

my $mark = $t->log_mark;
$t->start_nginx;

my $tx = $t->wait_status($x->{id}, $DELIVERED, timeout => 20);
like($tx ? $tx->{status} : 'none', $DELIVERED,
     'X: delivered, as Fanbase answered (its outcome replayed)');
my @events = map { $_->{message} // '' } @{ $tx ? $tx->{events} : [] };
ok(!grep({ /outcome unknown/ } @events), 'X: not delivery_outcome_unknown')
    or diag(join ' | ', @events);
is(scalar $t->posts_for($x->{n}), 1, 'X: POSTed once');
$t->log_like(qr/\[notice\].*1 outcomes of deliveries that a stopped worker could not give to redis are sent again/,
             'the error log says the outcome was replayed, at notice');
ok(!-e $file, 'the replayed file is gone');

done_testing;
