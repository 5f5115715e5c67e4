#!/usr/bin/perl

# The Redis engine (issue 15): Redis took "sending" and the answer never
# came.  sending.lua marks a claimed transaction sent in Redis before its
# POST may leave; here a relay (t/redis_cut.pl) between the edge and Redis
# lets that script run and closes the connection instead of passing its
# answer on.  The edge cannot know whether Redis took the mark, so it must
# not POST: it says so at warn, tells Redis "not sent" once Redis answers
# again, and the transaction is due again and delivered, once.  The wrong
# outcomes are a POST without Redis' go-ahead (a second host could send it
# too) or, with the mark left as it is, delivery_outcome_unknown for a sale
# that never reached Fanbase.
# Skipped when the module is built without fanbase_redis.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;
use FanbaseCluster;
use FanbaseRedis;

use File::Basename qw(dirname);
use File::Spec;

skip_without_redis();

my $TOP = File::Spec->rel2abs(dirname(__FILE__) . '/..');

# the SHA1 EVALSHA names sending.lua by (the prelude and the script)
my ($SENDING) = FanbaseTest::slurp("$TOP/src/ngx_http_fanbase_redis_scripts.h")
                =~ m{/\* sending\.lua, SHA1 ([0-9a-f]{40}) \*/};
ok($SENDING, "sending.lua's SHA1 from the scripts' header") or BAIL_OUT('no SHA1');

my $redis = FanbaseRedis->new(dir => FanbaseTest::new_dir(),
                              appendfsync => 'always');
$redis->start;

my $cut_port = FanbaseTest::free_port();
my $cut_log = $redis->dir . '/cuts.log';
my $cut = FanbaseTest::spawn(
    output => $redis->dir . '/cut.out',
    cmd    => [$^X, "$TOP/t/redis_cut.pl", '--listen', $cut_port,
               '--to', $redis->port, '--evalsha', $SENDING, '--log', $cut_log]);
is((FanbaseTest::wait_listen($cut_port, $cut, 10))[0], 'listening',
   'the relay listens in front of Redis');

my $t = FanbaseTest->new(
    mock      => { clients => ['demo-client:demo-secret'],
                   processing_after => 600, completed_after => 1200 },
    files     => edge_files(),
    workers   => 1,
    http      => edge_http(timeout => '5s',
                           extra => redis_line("redis://127.0.0.1:$cut_port/"
                                               . $redis->db)),
    server    => "location = $QUEUE { fanbase_submit async; }\n"
               . "location /transactions/ { fanbase_transaction; }\n",
);
$t->start;
$t->stop_with($redis);

my $DELIVERED = qr/^(?:processing|completed)$/;

my $x = $t->numbered(data => { case => 'sending answer lost' });
is($x->{res}{status}, 202, 'accepted (created through the relay)');

ok($t->wait_for(sub { -s $cut_log }, timeout => 10),
   'the relay ran sending.lua in Redis and cut the answer')
    or diag('relay: ' . (FanbaseTest::slurp($redis->dir . '/cut.out') // ''));

my $tx = $t->wait_status($x->{id}, $DELIVERED, timeout => 20);
like($tx ? $tx->{status} : 'none', $DELIVERED,
     'delivered once Redis answers again');
my @events = map { $_->{message} // '' } @{ $tx ? $tx->{events} : [] };
ok(!grep({ /outcome unknown/ } @events), 'not delivery_outcome_unknown')
    or diag(join ' | ', @events);
is(scalar $t->posts_for($x->{n}), 1, 'POSTed to Fanbase exactly once');
$t->log_like(qr/\[warn\].*Redis did not answer before the POST, not sent; due again/,
             'the error log says it was not sent, at warn');

like(FanbaseTest::slurp($cut_log), qr/\Acut EVALSHA $SENDING after \d+ answers\n\z/,
     'one cut, of sending.lua');

kill TERM => $cut;
waitpid $cut, 0;

done_testing;
