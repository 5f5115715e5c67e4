#!/usr/bin/perl

# The Redis engine (issue 15) when Redis dies: Redis with appendfsync
# always is killed with kill -9 under three streams of submissions (one
# to each of A, B, C) and started again on its files.  While it is down,
# every submission to A, B and C is answered 503 engine_unavailable (the
# edge's JSON error) with Retry-After, and the hosts take submissions
# again once it is back; every submission ever answered 202, before the
# kill, and after the restart, is read on B and C and delivered to
# Fanbase exactly once: nothing accepted is lost.  D, with
# "fanbase_redis ... fallback=local", keeps answering 202 while Redis is
# down, and delivers what it took then, once.
# Skipped when the module is built without fanbase_redis.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;
use FanbaseCluster;

use Time::HiRes qw(time sleep);

skip_without_redis();

my $c = FanbaseCluster->new(
    hosts  => 4,
    redis  => { appendfsync => 'always' },
    params => sub { $_[0] eq 'D' ? ('fallback=local') : () },
    mock   => { processing_after => 60, completed_after => 120 });
my ($A, $B, $C, $D) = $c->start;
my @STREAMED = ($A, $B, $C);
my $redis = $c->redis;
my $RUN = FanbaseTest::new_dir();

my $DELIVERED = qr/^(?:processing|completed)$/;


# Helpers

sub body_of { body_for(s => $_[0], i => $_[1]) }

# A stream of submissions to $h until $RUN/stop exists, 20 a second at
# most: one line per answer in $RUN/NAME: "I STATUS ID CODE RETRY-AFTER".
sub stream {
    my $h = shift;
    my $name = $h->name;
    return $h->background(sub {
        open my $fh, '>>', "$RUN/$name" or die "$RUN/$name: $!";
        $fh->autoflush(1);
        for (my $i = 0; !-e "$RUN/stop"; $i++) {
            my $res = $h->submit(body => body_of($name, $i), timeout => 5);
            my $j = ref $res->{json} eq 'HASH' ? $res->{json} : {};
            printf $fh "%d %d %s %s %s\n", $i, $res->{status},
                $j->{transaction_id} // '-',
                ref $j->{error} eq 'HASH' ? $j->{error}{code} // '-' : '-',
                $res->{headers}{'retry-after'} // '-';
            sleep 0.05;
        }
        return 1;
    });
}

sub answers {
    my $name = shift;
    open my $fh, '<', "$RUN/$name" or return ();
    return map { chomp; my @f = split / /; { i => 0 + $f[0], status => $f[1],
                 id => $f[2], code => $f[3], retry => $f[4] } } <$fh>;
}


###########################################################################
# kill -9 of Redis under three streams, and its restart.

my @waits = map { stream($_) } @STREAMED;
sleep 1.5;
ok(scalar(answers('A')) > 5, 'streams: going');

$redis->kill9;
ok(!$redis->running, 'Redis killed with kill -9');
sleep 1;

# while it is down: each host says so
for my $h (@STREAMED) {
    my $res = $h->submit(body => body_for(case => 'down', on => $h->name));
    error_ok($res, 503, 'engine_unavailable', $h->name . ' while Redis is down');
    like($res->{headers}{'retry-after'} // '', qr/^[1-9]\d*$/,
         $h->name . ' while Redis is down: Retry-After in seconds');
    is($A->posts_with(body_for(case => 'down', on => $h->name)), 0,
       $h->name . ' while Redis is down: nothing sent');
}

# D (fallback=local) works alone
my @local;
for my $k (1 .. 3) {
    my $body = body_for(case => 'fallback', k => $k);
    my $res = $D->submit(body => $body);
    is($res->{status}, 202, "D (fallback=local) while Redis is down: 202 ($k)")
        or diag("body: $res->{body}");
    push @local, { body => $body, id => tx_id($res) };
}

sleep 1;
$redis->restart;
ok($redis->running, 'Redis started again on its files');
for my $h (@STREAMED) {
    ok($h->wait_for(sub {
            $h->submit(body => body_for(case => 'back', on => $h->name,
                                        at => time))->{status} == 202
        }, timeout => 15, interval => 0.2),
       $h->name . ': takes submissions again once Redis is back');
}
sleep 1.5;
FanbaseTest::spew("$RUN/stop", '');
$_->() for @waits;


###########################################################################
# What the streams were answered, and what became of every 202.

my (@accepted, %other);
for my $h (@STREAMED) {
    my @a = answers($h->name);
    my @ok = grep { $_->{status} == 202 } @a;
    my @down = grep { $_->{status} == 503 } @a;
    cmp_ok(scalar @ok, '>', 10, $h->name . ': the stream had 202s');
    cmp_ok(scalar @down, '>', 0, $h->name . ': the stream saw the outage (503)');
    my @bad_503 = grep { $_->{code} ne 'engine_unavailable'
                         || $_->{retry} !~ /^[1-9]\d*$/ } @down;
    is(scalar @bad_503, 0,
       $h->name . ': each 503 engine_unavailable with Retry-After')
        or diag(join "\n", map { "$_->{i}: $_->{code} $_->{retry}" } @bad_503);
    $other{ $h->name } = [ grep { $_->{status} != 202 && $_->{status} != 503 }
                           @a ];
    is(scalar @{ $other{ $h->name } }, 0, $h->name . ': no other answer')
        or diag(join ' ', map { "$_->{i}:$_->{status}" } @{ $other{ $h->name } });
    my ($last_503) = reverse grep { $a[$_]{status} == 503 } 0 .. $#a;
    my $after = grep { $_->{status} == 202 } @a[ ($last_503 // $#a) .. $#a ];
    cmp_ok($after, '>', 0, $h->name . ': 202s again after the restart');
    push @accepted, map { { %$_, body => body_of($h->name, $_->{i}) } } @ok;
}
diag(scalar(@accepted) . ' submissions answered 202 by the streams');

# every one is there, on B and on C
for my $h ($B, $C) {
    my @lost = grep { $h->get_tx($_->{id})->{status} != 200 } @accepted;
    is(scalar @lost, 0, $h->name . ': reads every transaction answered 202')
        or diag('e.g. ' . join ' ', map { $_->{id} } @lost[0 .. ($#lost < 4 ? $#lost : 4)]);
}

# every one delivered, once
{
    my $all = sub {
        my %ok;
        $ok{ $_->{body} } = 1 for grep { ($_->{status} // '') eq '201' }
                                  @{ $A->queue_posts };
        return !grep { !$ok{ $_->{body} } } @accepted, @local;
    };
    ok($A->wait_for($all, timeout => 60, interval => 0.5),
       'every 202 (streams, D) delivered to Fanbase');
    sleep 1.5;
    my %n;
    $n{ $_->{body} }++ for @{ $A->queue_posts };
    my @twice = grep { ($n{ $_->{body} } // 0) != 1 } @accepted, @local;
    is(scalar @twice, 0, 'each sent exactly once')
        or diag(join "\n", map { ($n{ $_->{body} } // 0) . " x $_->{body}" }
                           @twice[0 .. ($#twice < 4 ? $#twice : 4)]);
    my @not = grep { $B->tx_status($_->{id}) !~ $DELIVERED } @accepted;
    is(scalar @not, 0, 'each read on B as delivered')
        or diag(join ' ', map { $B->tx_status($_->{id}) } @not[0 .. ($#not < 4 ? $#not : 4)]);
    my @dl = grep { $D->tx_status($_->{id}) !~ $DELIVERED } @local;
    is(scalar @dl, 0, 'D: what it took alone read on D as delivered');
}

done_testing;
