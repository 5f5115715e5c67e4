#!/usr/bin/perl

# The Redis engine's Lua scripts (src/lua/*.lua) against a redis-server of
# the test's own, without nginx: the checked-in header is what
# src/lua/embed.pl writes, and SCRIPT LOAD answers its SHA1s; then every
# contract, with real replies: create (Idempotency-Key repeats, another
# body, the key's window), get, cancel (its five answers), claim (due
# order across routes, leases, claim numbers, the breaker: parked in the
# order of acceptance, one probe at a time, a probe whose claim runs out,
# closing makes the parked ones due first; a record with nothing to do
# skipped), sending and finish fenced by the claim number, finish (the
# queue id indexed, statuses only forward, the event cap, terminal
# transactions out of the schedule and expiring, retries), hook and
# hook_release, the notice body byte for byte against a rendering made
# here (the site verifies its signature over those bytes) with ISO times
# of chosen dates, notice_claim and notice_finish, a PUBLISH on
# PREFIX:changes after every change, and token (the shared token, its end
# in Redis' time, the fetch lease: busy for another host, released by its
# holder only, dropped only if it is the token held).

use strict;
use warnings;

use lib 't/lib';
use FanbaseRedis;

use Digest::MD5 qw(md5_hex);
use File::Temp qw(tempdir);
use POSIX qw(floor);
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(sleep);


my @NAMES = qw(create get cancel hook hook_release claim sending finish
               notice_claim notice_finish token);
my %ST = (pending => 1, processing => 2, completed => 3, failed => 4,
          cancelled => 5);
my @ST_NAME = (undef, qw(pending processing completed failed cancelled));
my $PARKED = 1e15;

my $dir = tempdir('fanbase-redis-' . 'X' x 6, TMPDIR => 1,
                  CLEANUP => !$ENV{TEST_NGINX_KEEP});


# --- the header is current, and its SHA1s are Redis' ------------------------

is system($^X, 'src/lua/embed.pl', '--check'), 0,
   'src/ngx_http_fanbase_redis_scripts.h is what src/lua/embed.pl writes';

my $header = do {
    open my $fh, '<', 'src/ngx_http_fanbase_redis_scripts.h' or die $!;
    local $/;
    <$fh>;
};
my @table = $header =~ /\{ ngx_string\(NGX_HTTP_FANBASE_REDIS_(\w+)_TEXT\),\s*"([0-9a-f]{40})",\s*"(\w+)" \}/g;
my %SHA;
my @order;
while (my ($enum, $sha, $name) = splice @table, 0, 3) {
    is lc $enum, $name, "table entry $name: its text";
    $SHA{$name} = $sha;
    push @order, $name;
}
is_deeply \@order, \@NAMES, 'the table in the order of the enum';
like $header, qr/NGX_HTTP_FANBASE_REDIS_CREATE = 0,\s+NGX_HTTP_FANBASE_REDIS_GET,\s+NGX_HTTP_FANBASE_REDIS_CANCEL,\s+NGX_HTTP_FANBASE_REDIS_HOOK,\s+NGX_HTTP_FANBASE_REDIS_HOOK_RELEASE,\s+NGX_HTTP_FANBASE_REDIS_CLAIM,\s+NGX_HTTP_FANBASE_REDIS_SENDING,\s+NGX_HTTP_FANBASE_REDIS_FINISH,\s+NGX_HTTP_FANBASE_REDIS_NOTICE_CLAIM,\s+NGX_HTTP_FANBASE_REDIS_NOTICE_FINISH,\s+NGX_HTTP_FANBASE_REDIS_TOKEN,\s+NGX_HTTP_FANBASE_REDIS_NSCRIPTS/,
     'the enum';

my $r = FanbaseRedis->new(dir => $dir);
$r->start;
my $c = $r->connect;

mkdir "$dir/lua";
is system($^X, 'src/lua/embed.pl', '--dump', "$dir/lua"), 0, 'scripts dumped';
for my $name (@NAMES) {
    my $text = do {
        open my $fh, '<', "$dir/lua/$name.lua" or die $!;
        local $/;
        <$fh>;
    };
    is $c->cmd('SCRIPT', 'LOAD', $text), $SHA{$name},
       "SCRIPT LOAD $name answers the header's SHA1";
}


# --- helpers -----------------------------------------------------------------

my $SCOPE = '0123456789abcdef';
our $T = "{fanbase:$SCOPE}";
my $ROUTE_A = 'a' x 32;
my $ROUTE_B = 'b' x 32;

# pub/sub: every change of a transaction
my $sub = $r->connect;
is_deeply $sub->cmd('SUBSCRIBE', 'fanbase:changes'),
          ['subscribe', 'fanbase:changes', 1], 'subscribed to fanbase:changes';

sub run {
    my ($name, @args) = @_;
    my $reply = $c->cmd('EVALSHA', $SHA{$name}, 1, $T, @args);
    die "$name: $reply\n" if ref $reply eq 'FanbaseRedis::Error';
    return $reply;
}

sub published {
    my @m;
    while (my @x = $sub->read_reply(0.2)) {
        push @m, $x[0][2] if $x[0][0] eq 'message';
    }
    return \@m;
}

sub redis_ms {
    my $t = $c->cmd('TIME');
    return $t->[0] * 1000 + int($t->[1] / 1000);
}

my $n = 0;
sub new_id { sprintf '%08x-0000-4000-8000-%012x', 0xc0ffee00 + $n, ++$n }

sub hash { my %h = @{ $c->cmd('HGETALL', "$T:t:$_[0]") }; \%h }

# create(T; target, route, deliver, track, max_events, window, then for
# each: id, payload, key, digest, request id): one answer each
sub create_batch {
    my ($o, @items) = @_;
    my $route = $o->{route} // $ROUTE_A;
    return run('create', $route . ('0' x 32), $route,
               $o->{deliver} // 60000, $o->{track} // 120000,
               $o->{me} // 16, $o->{window} // 60000,
               map { ($_->{id}, $_->{payload}, $_->{key} // '',
                      md5_hex($_->{payload}), $_->{rid} // '') } @items);
}

sub create {
    my (%o) = @_;
    my $id = $o{id} // new_id();
    my $payload = $o{payload} // qq{{"n":$n}};
    my $reply = create_batch(\%o, { id => $id, payload => $payload,
                                    key => $o{key}, rid => $o{rid} });
    return wantarray ? ($id, $reply->[0]) : $id;
}

# the hash the first change makes of create's string, by a real script: a
# hook that moves nothing (pending to pending) turns it into one
my $touches = 0;
sub touch {
    my ($id) = @_;
    my $x = run('hook', 'touch-' . ++$touches, 60000, $id, 1, '', 16, 0, 0,
                86400000);
    die "touch $id: @$x\n" unless $x->[0] == 2;
}

sub event { qq({"event":"$_[0]","message":"m","data":{},"status":"$_[1]","created_at":"2026-01-01T00:00:00.000Z"}) }

# finish(T; id, claim, status, queue_id, event, retry, wait, flags, notify,
# retain, max_events)
sub finish {
    my ($id, $cl, %o) = @_;
    return run('finish', $id, $cl, $o{status} // 0, $o{qid} // '',
               $o{event} // '', $o{retry} // 0, $o{wait} // 0,
               $o{flags} // 0, $o{notify} // 0, $o{retain} // 86400000, 16);
}

sub hook {
    my (%o) = @_;
    return run('hook', $o{msg}, $o{expires} // 60000, $o{id},
               $ST{ $o{status} }, $o{event} // '', $o{me} // 16,
               $o{create} // 0, $o{notify} // 0, $o{retain} // 86400000);
}

sub claim { run('claim', $_[0] // 60000, $_[1] // 'host-1 100') }

# claims until none is due; the ids in order
sub claim_all {
    my @ids;
    for (1 .. 50) {
        my $x = claim(@_);
        last if $x->[0] != 0;
        push @ids, $x->[1];
    }
    return @ids;
}

# ngx_http_fanbase_time_iso
sub iso {
    my $ms = shift;
    my @t = gmtime(floor($ms / 1000));
    return sprintf '%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', $t[5] + 1900,
                   $t[4] + 1, $t[3], $t[2], $t[1], $t[0], $ms % 1000;
}

# ngx_http_fanbase_txn_json, from what Redis holds
sub render {
    my $id = shift;
    my $h = hash($id);
    my @ev = @{ $c->cmd('LRANGE', "$T:e:$id", 0, -1) };
    unshift @ev, '{"event":"transition","message":"accepted by the edge",'
                 . '"data":{},"status":"pending","created_at":"'
                 . iso($h->{cr}) . '"}' if $h->{acc};
    return '{"created_at":"' . iso($h->{cr}) . '","updated_at":"'
           . iso($h->{up}) . '","id":"' . $id . '","code":"'
           . uc(substr $id, 0, 8) . '","operation":"create",'
           . '"trigger_endpoint":"api/v1/integration/queue","status":"'
           . $ST_NAME[$h->{st}] . '","events":[' . join(',', @ev) . ']}';
}

sub clean {
    my @keys = @{ $c->cmd('KEYS', "$T:*") };
    $c->cmd('DEL', @keys) if @keys;
    published();
}


# --- create, get -----------------------------------------------------------

{
    my $before = redis_ms();
    my ($id, $x) = create(key => 'k1', rid => 'req-1', deliver => 5000,
                          track => 9000, me => 7);
    my $pl = qq({"n":$n});
    my $after = redis_ms();
    is $x->[0], 0, 'create: new';
    ok $x->[1] >= $before && $x->[1] <= $after, 'create: answers Redis TIME';
    is_deeply hash($id), {}, 'create: no hash yet';
    is $c->cmd('GET', "$T:r:$id"),
       join(' ', $x->[1], $x->[1] + 5000, $x->[1] + 9000, 7, $ROUTE_A,
            $ROUTE_A . '0' x 32, 'req-1') . qq(\n{"n":$n}),
       'create: the record, one string';
    is $c->cmd('ZSCORE', "$T:due:$ROUTE_A", $id), $x->[1], 'create: due now';
    is_deeply $c->cmd('SMEMBERS', "$T:routes"), [$ROUTE_A], 'create: route';
    is $c->cmd('GET', "$T:k:k1"), md5_hex(qq({"n":$n})) . " $id",
       'create: the key: digest and id';
    my $pttl = $c->cmd('PTTL', "$T:k:k1");
    ok $pttl > 59000 && $pttl <= 60000, "create: the key's window ($pttl)";
    is_deeply published(), [],
              'create: nothing published (no host can have it yet)';

    is_deeply((create(key => 'k1', payload => qq({"n":$n})))[1],
              [1, $id], 'create: a repeat answers the first id');
    is_deeply((create(key => 'k1', payload => '{"other":1}'))[1], [2],
              'create: the key with another body');
    is $c->cmd('ZCARD', "$T:due:$ROUTE_A"), 1, 'create: repeats made nothing';
    is_deeply published(), [], 'create: repeats published nothing';

    my ($id2, $x2) = create(key => 'k2', window => 150);
    is $x2->[0], 0, 'create: a key with a short window';
    sleep 0.3;
    my ($id3, $x3) = create(key => 'k2', payload => '{"after":1}');
    is $x3->[0], 0, 'create: the key expired: another body is new';
    isnt $id3, $id2, 'create: a new id';

    is_deeply run('get', $id), [0, 1, 1, $x->[1], $x->[1], 1],
              'get: status, version, created, updated, accepted, no events';
    is_deeply run('get', 'no-such-id'), [2], 'get: unknown';
    is_deeply run('get', $id), [0, 1, 1, $x->[1], $x->[1], 1],
              'get: changes nothing';
    ok $c->cmd('EXISTS', "$T:r:$id") && !$c->cmd('EXISTS', "$T:t:$id"),
       'get: reads the string, makes no hash';

    # the first change makes the hash of it, with all of create's fields
    touch($id);
    is_deeply hash($id), { st => 1, v => 1, cr => $x->[1], up => $x->[1],
                    db => $x->[1] + 5000, tb => $x->[1] + 9000,
                    rt => $ROUTE_A, tg => $ROUTE_A . '0' x 32,
                    pl => $pl, rid => 'req-1', cl => 0, sent => 0,
                    att => 0, me => 7, acc => 1 },
              'touched: the hash of the record';
    is $c->cmd('EXISTS', "$T:r:$id"), 0, 'touched: the string is gone';
    is_deeply run('get', $id), [0, 1, 1, $x->[1], $x->[1], 1],
              'get: the hash says the same';

    # without a request id, with a payload of several lines and spaces
    my ($id4, $x4) = create(payload => qq({"a":"b c",\n"d":"\\n"}));
    touch($id4);
    my $h4 = hash($id4);
    is $h4->{pl}, qq({"a":"b c",\n"d":"\\n"}), 'touched: the payload whole';
    ok !exists $h4->{rid}, 'touched: no request id';
    clean();
}


# --- create: the accepts of a turn of the loop, one call ----------------------

{
    my @ids = map { new_id() } 1 .. 4;
    my $x = create_batch({ deliver => 3000 },
        { id => $ids[0], payload => '{"b":0}', key => 'kb', rid => 'r0' },
        { id => $ids[1], payload => '{"b":1}' },
        { id => $ids[2], payload => '{"b":0}', key => 'kb' },
        { id => $ids[3], payload => '{"b":3}', key => 'kb' });
    is scalar @$x, 4, 'batch: one answer each, in order';
    is $x->[0][0], 0, 'batch: the first, new';
    is_deeply $x->[1], [0, $x->[0][1]], 'batch: the second, new, same time';
    is_deeply $x->[2], [1, $ids[0]],
              'batch: its key again, same body: the first one of the batch';
    is_deeply $x->[3], [2], 'batch: its key, another body: declined';
    is_deeply [sort @{ $c->cmd('ZRANGE', "$T:due:$ROUTE_A", 0, -1) }],
              [sort @ids[0, 1]], 'batch: the new ones due, no other';
    is $c->cmd('ZSCORE', "$T:due:$ROUTE_A", $ids[1]), $x->[0][1],
       'batch: due now';
    ok !$c->cmd('EXISTS', "$T:r:$ids[2]") && !$c->cmd('EXISTS', "$T:r:$ids[3]"),
       'batch: the repeats made nothing';
    is_deeply run('get', $ids[1]), [0, 1, 1, $x->[0][1], $x->[0][1], 1],
              'batch: each readable';
    touch($ids[0]);
    is hash($ids[0])->{db}, $x->[0][1] + 3000, 'batch: the horizons';
    is hash($ids[0])->{rid}, 'r0', "batch: each its request's id";
    is_deeply run('create', $ROUTE_A . '0' x 32, $ROUTE_A, 1, 1, 1, 1), [],
              'batch: none, no answer';
    is_deeply published(), [], 'batch: nothing published';
    clean();
}


# --- cancel: its five answers ------------------------------------------------

{
    my $ev = event('transition', 'cancelled');
    is_deeply run('cancel', 'no-such-id', $ev, 1, 5000), [2],
              'cancel: unknown';

    my ($id, $x) = create(rid => 'req-c');
    is_deeply run('cancel', $id, $ev, 1, 5000), [0], 'cancel: pending';
    my $h = hash($id);
    is $h->{st}, 5, 'cancel: cancelled';
    is $h->{v}, 2, 'cancel: a new version';
    ok !exists $h->{pl} && !exists $h->{rid}, 'cancel: payload, rid gone';
    is_deeply $c->cmd('LRANGE', "$T:e:$id", 0, -1), [$ev], 'cancel: event';
    is $c->cmd('ZSCORE', "$T:due:$ROUTE_A", $id), undef,
       'cancel: out of the schedule';
    for my $k ("$T:t:$id", "$T:e:$id") {
        my $pttl = $c->cmd('PTTL', $k);
        ok $pttl > 0 && $pttl <= 5000, "cancel: $k expires ($pttl)";
    }
    my $nid = "msg_${id}_cancelled";
    is $c->cmd('HGET', "$T:n:$nid", 'b'), render($id),
       'cancel: the notice body';
    is $c->cmd('HGET', "$T:n:$nid", 'rid'), 'req-c',
       "cancel: the notice keeps the request's id";
    ok defined $c->cmd('ZSCORE', "$T:n", $nid), 'cancel: the notice is due';
    is_deeply published(), ["$SCOPE $id 2"], 'cancel: published';

    is_deeply run('cancel', $id, $ev, 1, 5000), [0], 'cancel: again: ok';
    is hash($id)->{v}, 2, 'cancel: again: no new version';
    is_deeply published(), [], 'cancel: again: nothing published';

    my $claimed = create();
    is claim()->[1], $claimed, 'claimed';
    is_deeply run('cancel', $claimed, $ev, 0, 5000), [3],
              'cancel: claimed: busy';

    my $sent = create();
    touch($sent);
    $c->cmd('HSET', "$T:t:$sent", 'sent', 1);
    is_deeply run('cancel', $sent, $ev, 0, 5000), [3], 'cancel: sent: busy';

    my $processing = create();
    is hook(msg => 'm-proc', id => $processing, status => 'processing')->[0],
       0, 'hook: processing';
    is_deeply run('cancel', $processing, $ev, 0, 5000), [3],
              'cancel: processing: busy';

    my $delivered = create();
    touch($delivered);
    $c->cmd('HSET', "$T:t:$delivered", 'q', 'queue-1');
    is_deeply run('cancel', $delivered, $ev, 0, 5000), [3],
              'cancel: delivered: busy';

    my $done = create();
    is hook(msg => 'm-done', id => $done, status => 'completed')->[0], 0,
       'hook: completed';
    is_deeply run('cancel', $done, $ev, 0, 5000), [4],
              'cancel: completed: ended';
    is hash($done)->{st}, 3, 'cancel: completed stays completed';
    clean();
}


# --- claim: order, leases, claim numbers ------------------------------------

{
    is_deeply claim(), [2, -1], 'claim: nothing at all';

    my $a1 = create(route => $ROUTE_A, rid => 'req-a1', deliver => 7000);
    sleep 0.01;
    my $b1 = create(route => $ROUTE_B);
    sleep 0.01;
    my $a2 = create(route => $ROUTE_A);
    published();

    my $before = redis_ms();
    my $x = claim(500, 'host-1 100');
    is_deeply [@$x[0 .. 6]],
              [0, $a1, 1, hash($a1)->{pl}, 'req-a1', $ROUTE_A . '0' x 32, $x->[6]],
              'claim: the earliest due, to deliver: payload, rid, target';
    is_deeply [@$x[7 .. 10]], [0, 0, hash($a1)->{db}, ''],
              'claim: attempts, sent, deadline, no previous owner';
    my $score = $c->cmd('ZSCORE', "$T:due:$ROUTE_A", $a1);
    ok $score >= $before + 500 && $score <= redis_ms() + 500,
       'claim: due again at the end of the lease';
    is hash($a1)->{ow}, 'host-1 100', 'claim: owner';
    is hash($a1)->{cl}, $x->[6], 'claim: claim number';

    my $y = claim(500, 'host-2 200');
    is $y->[1], $b1, 'claim: across routes, in due order';
    ok $y->[6] > $x->[6], 'claim: claim numbers increase';
    is claim(500)->[1], $a2, 'claim: then the next';
    my $none = claim(500);
    is $none->[0], 2, 'claim: none due';
    ok $none->[1] > 300 && $none->[1] <= 500,
       "claim: next is the end of the first lease ($none->[1])";

    sleep 0.55;
    my $z = claim(500, 'host-3 300');
    is $z->[1], $a1, 'claim: the same one after its lease ended';
    ok $z->[6] > $y->[6], 'claim: a new claim number';
    is $z->[10], 'host-1 100', 'claim: the owner whose claim ran out';

    # sending, fenced
    is_deeply run('sending', $a1, $x->[6]), [2],
              'sending: the old claim: declined';
    is hash($a1)->{sent}, 0, 'sending: sent stays 0';
    is_deeply run('sending', $a1, $z->[6]), [0], 'sending: the claim: ok';
    is hash($a1)->{sent}, 1, 'sending: sent is 1';

    # finish, fenced
    is_deeply finish($a1, $x->[6], status => 3), [2],
              'finish: the old claim: declined';
    is hash($a1)->{st}, 1, 'finish: the old claim changed nothing';
    is_deeply published(), [], 'finish: the old claim published nothing';

    # retry reschedules; the claim ends
    $before = redis_ms();
    is_deeply finish($a1, $z->[6], retry => 3000, flags => 2 | 4),
              [0, 0, -1, 0], 'finish: retry';
    $score = $c->cmd('ZSCORE', "$T:due:$ROUTE_A", $a1);
    ok $score >= $before + 3000 && $score <= redis_ms() + 3000,
       'finish: due after the retry';
    my $h = hash($a1);
    is $h->{att}, 1, 'finish: an attempt counted';
    is $h->{sent}, 0, 'finish: not sent';
    ok !exists $h->{ow}, 'finish: no owner';
    is $h->{v}, 1, 'finish: nothing changed: same version';
    is_deeply finish($a1, $z->[6], status => 3), [2],
              'finish: the same claim twice: declined';
    is_deeply run('sending', $a1, $z->[6]), [2],
              'sending: after finish: declined';
    is_deeply published(), [], 'finish: no change, nothing published';

    # a record with nothing to deliver nor to follow is skipped
    clean();
    my $empty = create(route => $ROUTE_B);
    my $next = create(route => $ROUTE_B);
    touch($empty);
    $c->cmd('HDEL', "$T:t:$empty", 'pl');
    is claim()->[1], $next, 'claim: a record without payload skipped';
    is $c->cmd('ZSCORE', "$T:due:$ROUTE_B", $empty), undef,
       'claim: and out of the schedule';
    clean();
}


# --- finish: delivery, statuses, events --------------------------------------

{
    my $id = create(me => 3, rid => 'req-f');
    my $x = claim(60000);
    is $x->[1], $id, 'claimed';
    my $e1 = event('transition', 'processing');
    is_deeply finish($id, $x->[6], status => 2, qid => 'queue-9', event => $e1,
                     retry => 0, flags => 1 | 4 | 16, notify => 1),
              [0, 0, -1, 0], 'finish: delivered, processing';
    my $h = hash($id);
    is $h->{q}, 'queue-9', 'finish: the queue id';
    ok !exists $h->{pl}, 'finish: the payload gone';
    is $h->{att}, 0, 'finish: attempts start again';
    is $h->{st}, 2, 'finish: processing';
    is $h->{v}, 2, 'finish: a new version';
    is $c->cmd('GET', "$T:q:queue-9"), $id, 'finish: the queue id indexed';
    is $c->cmd('HGET', "$T:n:msg_${id}_processing", 'b'), render($id),
       'finish: the notice of the move';
    is_deeply published(), ["$SCOPE $id 2"], 'finish: published';

    my $y = claim(60000);
    is_deeply [@$y[1 .. 4]], [$id, 2, 'queue-9', 'req-f'],
              'claim: delivered: tracked by its queue id';
    is $y->[9], $h->{tb}, 'claim: the track horizon';

    my $e2 = event('poll', 'processing');
    is_deeply finish($id, $y->[6], status => 1, event => $e2, notify => 1),
              [0, 0, -1, 0], 'finish: back to pending';
    $h = hash($id);
    is $h->{st}, 2, 'finish: statuses only forward';
    is $h->{v}, 3, 'finish: the event is a change';
    is $c->cmd('EXISTS', "$T:n:msg_${id}_pending"), 0,
       'finish: no notice without a move';
    is_deeply run('get', $id), [0, 2, 3, $h->{cr}, $h->{up}, 1, $e1, $e2],
              'get: accepted and two events (max_events 3)';

    my $e3 = event('poll', 'processing 2');
    $y = claim(60000);
    finish($id, $y->[6], event => $e3);
    is_deeply run('get', $id),
              [0, 2, 4, $h->{cr}, hash($id)->{up}, 0, $e1, $e2, $e3],
              'get: the accepted event dropped first';
    my $e4 = event('transition', 'completed');
    $y = claim(60000);
    is_deeply finish($id, $y->[6], status => 3, event => $e4, notify => 1,
                     retain => 4000, flags => 16),
              [0, 0, -1, 0], 'finish: completed';
    $h = hash($id);
    is_deeply run('get', $id), [0, 3, 5, $h->{cr}, $h->{up}, 0, $e2, $e3, $e4],
              'get: the oldest event dropped';
    is $c->cmd('ZSCORE', "$T:due:$ROUTE_A", $id), undef,
       'finish: terminal: out of the schedule';
    for my $k ("$T:t:$id", "$T:e:$id", "$T:q:queue-9") {
        my $pttl = $c->cmd('PTTL', $k);
        ok $pttl > 0 && $pttl <= 4000, "finish: terminal: $k expires ($pttl)";
    }
    ok !exists $h->{rid} && !exists $h->{ow}, 'finish: terminal: rid gone';
    is $c->cmd('HGET', "$T:n:msg_${id}_completed", 'b'), render($id),
       'finish: the notice of completion';
    is_deeply claim(), [2, -1], 'claim: nothing left';
    published();

    # the accepted event stays until the cap needs its place
    my $id2 = create(me => 0);
    $y = claim(60000);
    finish($id2, $y->[6], event => $e1);
    is_deeply [@{ run('get', $id2) }[5 .. 6]], [0, $e1],
              'max_events 0 keeps one event';
    clean();
}


# --- the breaker --------------------------------------------------------------

{
    my @ids = map { my $id = create(route => $ROUTE_A); sleep 0.005; $id }
              1 .. 4;
    my $other = create(route => $ROUTE_B);
    my %cr = map { $_ => run('get', $_)->[3] } @ids;
    my $bkey = "$T:b:$ROUTE_A";

    my $x = claim(60000);
    is $x->[1], $ids[0], 'breaker: the first one out';
    my $x1 = claim(60000);
    is $x1->[1], $ids[1], 'breaker: the second one out too';

    my $before = redis_ms();
    is_deeply finish($ids[0], $x->[6], retry => 100, wait => 0,
                     flags => 2 | 4 | 8),
              [0, 1000, -1, 0], 'breaker: down: opens, 1 s';
    my $b = { @{ $c->cmd('HGETALL', $bkey) } };
    is $b->{f}, 1, 'breaker: one failure';
    ok $b->{until} >= $before + 1000 && $b->{until} <= redis_ms() + 1000,
       'breaker: until now + 1 s';
    cmp_ok $c->cmd('ZSCORE', "$T:due:$ROUTE_A", $ids[0]), '==',
           $cr{ $ids[0] } - $PARKED, 'breaker: parked by its creation';

    is_deeply finish($ids[1], $x1->[6], flags => 2 | 8, wait => 5000),
              [0, 0, -1, 0],
              'breaker: a job out when it opened does not count';
    is $c->cmd('HGET', $bkey, 'f'), 1, 'breaker: still one failure';

    my $y = claim(60000);
    is $y->[1], $other, 'breaker: another route goes on';
    my $none = claim(60000);
    is $none->[0], 2, 'breaker: nothing of its route while it pauses';
    ok $none->[1] > 0 && $none->[1] <= 1000, "breaker: next: its pause ($none->[1])";
    for my $id (@ids) {
        cmp_ok $c->cmd('ZSCORE', "$T:due:$ROUTE_A", $id), '==',
               $cr{$id} - $PARKED, "breaker: $id parked by its creation";
    }

    # the pause over (set, rather than waited for)
    $c->cmd('HSET', $bkey, 'until', redis_ms() - 1);
    my $p = claim(300, 'host-1 1');
    is $p->[1], $ids[0], 'breaker: the probe: the oldest';
    $b = { @{ $c->cmd('HGETALL', $bkey) } };
    is $b->{probe}, $ids[0], 'breaker: probe';
    ok $b->{probe_until} > redis_ms(), 'breaker: probe_until';
    $none = claim(300);
    is $none->[0], 2, 'breaker: one probe at a time';

    # the probe's claim runs out: the oldest is the probe again
    sleep 0.35;
    my $p2 = claim(60000, 'host-2 2');
    is $p2->[1], $ids[0], 'breaker: a probe whose claim ran out: again';
    ok $p2->[6] > $p->[6], 'breaker: with a new claim number';
    is $p2->[10], 'host-1 1', 'breaker: the owner whose claim ran out';
    is_deeply finish($ids[0], $p->[6], flags => 16), [2],
              "breaker: the first probe's finish: declined";

    # a probe that fails: twice the pause, Retry-After if longer
    is_deeply finish($ids[0], $p2->[6], flags => 8, wait => 3000),
              [0, 3000, -1, 0], 'breaker: the probe fails: 2 s, or 3 s asked';
    is $c->cmd('HGET', $bkey, 'f'), 2, 'breaker: two failures';
    ok !defined $c->cmd('HGET', $bkey, 'probe'), 'breaker: no probe';

    # a probe that learned nothing stays the probe, after max(retry, 100)
    $c->cmd('HSET', $bkey, 'until', redis_ms() - 1);
    my $p3 = claim(60000);
    is $p3->[1], $ids[0], 'breaker: the probe';
    $before = redis_ms();
    is_deeply finish($ids[0], $p3->[6], retry => 20), [0, 0, -1, 0],
              'breaker: the probe learned nothing';
    my $until = $c->cmd('HGET', $bkey, 'until');
    ok $until >= $before + 100 && $until <= redis_ms() + 100,
       'breaker: next probe in 100 ms';
    cmp_ok $c->cmd('ZSCORE', "$T:due:$ROUTE_A", $ids[0]), '==',
           $cr{ $ids[0] } - $PARKED, 'breaker: parked again';
    is $c->cmd('HGET', $bkey, 'f'), 2, 'breaker: failures unchanged';

    # new ones wait behind, the parked ones go first once it closes
    my $late = create(route => $ROUTE_A);
    sleep 0.15;
    my $p4 = claim(60000);
    is $p4->[1], $ids[0], 'breaker: the same probe';
    cmp_ok $c->cmd('ZSCORE', "$T:due:$ROUTE_A", $late), '==',
           hash($late)->{cr} - $PARKED, 'breaker: a new one parked';
    is_deeply finish($ids[0], $p4->[6], status => 2, qid => 'q-probe',
                     retry => 5000, flags => 1 | 16),
              [0, 0, 1, 4], 'breaker: answered: closes after 1 failed probe, '
                            . '4 waiting';
    is $c->cmd('EXISTS', $bkey), 0, 'breaker: gone';
    is_deeply [claim_all(60000)], [@ids[1 .. 3], $late],
              'breaker: the parked ones due, in the order of acceptance';
    clean();
}


# --- hook, hook_release -------------------------------------------------------

{
    my $id = create(rid => 'req-h');
    my $x = claim(60000);
    finish($x->[1], $x->[6], qid => 'queue-h', flags => 1);
    published();

    my $ev = event('webhook', 'processing');
    my $before = redis_ms();
    is_deeply hook(msg => 'msg-1', id => $id, status => 'processing',
                   event => $ev, notify => 1, expires => 5000),
              [0, $id, 2], 'hook: by the edge id';
    my $pttl = $c->cmd('PTTL', "$T:h:msg-1");
    ok $pttl > 0 && $pttl <= 5000, "hook: the message id kept ($pttl)";
    is_deeply published(), ["$SCOPE $id 2"], 'hook: published';
    is $c->cmd('HGET', "$T:n:msg_${id}_processing", 'b'), render($id),
       'hook: the notice';
    is_deeply hook(msg => 'msg-1', id => $id, status => 'completed'), [1],
              'hook: a duplicate message id';
    is_deeply hook(msg => 'msg-2', id => $id, status => 'pending'), [2],
              'hook: stale';
    is_deeply hook(msg => 'msg-2', id => $id, status => 'completed'), [1],
              'hook: a stale one keeps its message id';
    is hash($id)->{st}, 2, 'hook: stale changed nothing';

    is_deeply hook(msg => 'msg-3', id => 'queue-h', status => 'failed',
                   event => event('webhook', 'failed'), retain => 3000),
              [0, $id, 3], 'hook: by the queue id';
    is hash($id)->{st}, 4, 'hook: failed';
    is $c->cmd('ZSCORE', "$T:due:$ROUTE_A", $id), undef,
       'hook: terminal: out of the schedule';
    for my $k ("$T:t:$id", "$T:e:$id", "$T:q:queue-h") {
        my $pttl = $c->cmd('PTTL', $k);
        ok $pttl > 0 && $pttl <= 3000, "hook: terminal: $k expires ($pttl)";
    }
    is $c->cmd('EXISTS', "$T:n:msg_${id}_failed"), 0,
       'hook: no notice without notify';
    is_deeply finish($id, $x->[6], status => 3), [2],
              'finish: after the end: declined';

    is_deeply hook(msg => 'msg-4', id => 'unknown-1', status => 'completed'),
              [4], 'hook: unknown';
    is_deeply hook(msg => 'msg-4', id => 'unknown-1', status => 'completed'),
              [1], 'hook: unknown keeps the message id';
    is_deeply run('hook_release', 'msg-4'), [0], 'hook_release';
    is $c->cmd('EXISTS', "$T:h:msg-4"), 0, 'hook_release: the id is gone';
    is_deeply hook(msg => 'msg-4', id => 'unknown-1', status => 'completed'),
              [4], 'hook: after the release: unknown again';

    published();
    my $made = new_id();
    $before = redis_ms();
    is_deeply hook(msg => 'msg-5', id => $made, status => 'processing',
                   event => $ev, create => 1, me => 5, notify => 1),
              [0, $made, 1], 'hook: create';
    my $h = hash($made);
    ok $h->{cr} >= $before && $h->{cr} <= redis_ms(), 'hook: create: created';
    is_deeply [@$h{qw(st v acc me)}], [2, 1, 0, 5], 'hook: create: record';
    ok !exists $h->{pl} && !exists $h->{rt}, 'hook: create: nothing to do';
    is_deeply run('get', $made), [0, 2, 1, $h->{cr}, $h->{up}, 0, $ev],
              'get: a created record';
    is $c->cmd('HGET', "$T:n:msg_${made}_processing", 'b'), render($made),
       'hook: create: the notice';
    is_deeply published(), ["$SCOPE $made 1"], 'hook: create: published';
    is_deeply claim(), [2, -1], 'claim: a created record is not scheduled';
    clean();
}


# --- notice bodies: ISO times, bytes -------------------------------------------

{
    # created and updated at chosen times, the notice made by a hook
    for my $case ([0, '1970-01-01T00:00:00.000Z'],
                  [951782400123, '2000-02-29T00:00:00.123Z'],
                  [1709251199999, '2024-02-29T23:59:59.999Z'],
                  [4102444799001, '2099-12-31T23:59:59.001Z'],
                  [253402300799999, '9999-12-31T23:59:59.999Z']) {
        my ($ms, $want) = @$case;
        is iso($ms), $want, "iso here: $want";
        my $id = create();
        touch($id);
        $c->cmd('HSET', "$T:t:$id", 'cr', $ms);
        hook(msg => "iso-$ms", id => $id, status => 'processing',
             notify => 1);
        my $body = $c->cmd('HGET', "$T:n:msg_${id}_processing", 'b');
        like $body, qr/^\{"created_at":"\Q$want\E","updated_at":"/,
             "notice: created_at $want";
        like $body, qr/"created_at":"\Q$want\E"\}\]\}$/,
             "notice: the accepted event at $want";
        is $body, render($id), "notice: $want: the same bytes";
    }

    # escapes and UTF-8 inside events, byte for byte
    my $id = create(id => 'abcdefgh-ijkl-4mno-8pqr-stuvwxyz0123');
    my $ev = qq({"event":"webhook","message":"caf\xc3\xa9 \\"q\\" \\\\ \\u0001","data":{"a":[1,2]},"status":"processing","created_at":"2026-01-01T00:00:00.000Z"});
    hook(msg => 'esc', id => $id, status => 'processing', event => $ev,
         notify => 1);
    my $body = $c->cmd('HGET', "$T:n:msg_${id}_processing", 'b');
    is $body, render($id), 'notice: escapes and UTF-8 kept';
    like $body, qr/"code":"ABCDEFGH"/, 'notice: the code, upper case';
    is index($body, $ev), length($body) - length($ev) - 2,
       'notice: the event as it came, last';
    clean();
}


# --- notice_claim, notice_finish ----------------------------------------------

{
    is_deeply run('notice_claim', 1000), [2, -1], 'notice_claim: none';

    my $id = create(rid => 'req-n');
    my $nid = "msg_${id}_processing";
    my $before = redis_ms();
    hook(msg => 'n1', id => $id, status => 'processing', notify => 1);
    my $after = redis_ms();
    my $x = run('notice_claim', 300);
    is_deeply [@$x[0 .. 3]], [0, $nid, render($id), 'req-n'],
              'notice_claim: id, body, request id';
    ok $x->[4] >= $before && $x->[4] <= $after, 'notice_claim: created';
    is_deeply [@$x[5, 6]], [0, 1], 'notice_claim: attempts, claim';
    my $none = run('notice_claim', 300);
    is $none->[0], 2, 'notice_claim: claimed: none due';
    ok $none->[1] > 100 && $none->[1] <= 300,
       "notice_claim: next: the end of the lease ($none->[1])";

    is_deeply run('notice_finish', $nid, 7, 1, 0, 0), [2],
              'notice_finish: another claim: declined';
    is $c->cmd('EXISTS', "$T:n:$nid"), 1, 'notice_finish: kept';

    $before = redis_ms();
    is_deeply run('notice_finish', $nid, 1, 0, 2000, 1), [0],
              'notice_finish: delay, failed';
    my $score = $c->cmd('ZSCORE', "$T:n", $nid);
    ok $score >= $before + 2000 && $score <= redis_ms() + 2000,
       'notice_finish: due after the delay';
    is $c->cmd('HGET', "$T:n:$nid", 'att'), 1, 'notice_finish: one attempt';
    is_deeply run('notice_finish', $nid, 1, 1, 0, 0), [2],
              'notice_finish: the same claim twice: declined';

    $c->cmd('ZADD', "$T:n", redis_ms() - 1, $nid);    # due now
    my $y = run('notice_claim', 200);
    is_deeply [@$y[1, 5, 6]], [$nid, 1, 2],
              'notice_claim: again, one attempt, claim 2';
    sleep 0.25;
    my $z = run('notice_claim', 60000);
    is_deeply [@$z[1, 6]], [$nid, 3], 'notice_claim: the lease ran out: 3';
    is_deeply run('notice_finish', $nid, 2, 1, 0, 0), [2],
              'notice_finish: the claim that ran out: declined';
    is_deeply run('notice_finish', $nid, 3, 1, 0, 0), [0],
              'notice_finish: drop';
    is $c->cmd('EXISTS', "$T:n:$nid"), 0, 'notice_finish: dropped';
    is_deeply run('notice_claim', 300), [2, -1], 'notice_claim: none left';

    # every status its own notice, in order
    my $id2 = create();
    hook(msg => 'n2', id => $id2, status => 'processing', notify => 1);
    sleep 0.002;    # queued in the same ms, notices go in the order of ids
    hook(msg => 'n3', id => $id2, status => 'completed', notify => 1);
    my @got;
    while ((my $w = run('notice_claim', 60000))->[0] == 0) {
        push @got, $w->[1];
        run('notice_finish', $w->[1], $w->[6], 1, 0, 0);
    }
    is_deeply \@got, ["msg_${id2}_processing", "msg_${id2}_completed"],
              'notices: one per status, in order';
    clean();
}


# --- other scopes and prefixes ------------------------------------------------

{
    my $id = create();
    published();
    local $T = '{other:fedcba9876543210}';
    is_deeply run('get', $id), [2], 'get: another scope sees nothing';
    is_deeply claim(), [2, -1], 'claim: another scope: nothing';
    is((create())[1][0], 0, 'create: another prefix and scope');
    is_deeply published(), [], 'another prefix: another channel';
    my $err = $c->cmd('EVALSHA', $SHA{get}, 1, 'fanbase:nope', $id);
    like "$err", qr/not a scope tag/, 'a key that is no tag: an error';
}

# --- token: one fetch for every host ------------------------------------------

{
    my $lease = "$T:tok:lease";
    is_deeply run('token', 'get', '', 0, 3000, 'A 1'), [2],
              'token get: none: the lease is the asker\'s';
    my $pttl = $c->cmd('PTTL', $lease);
    ok $pttl > 2500 && $pttl <= 3000, "token get: the lease for 3 s ($pttl)";
    is_deeply run('token', 'get', '', 0, 3000, 'B 1'), [3],
              'token get: another host holds the lease: busy';
    is_deeply run('token', 'get', '', 0, 3000, 'A 1'), [2],
              'token get: the holder asks again: still its lease';
    is_deeply run('token', 'release', 'B 1'), [0], 'token release: not B\'s';
    is $c->cmd('GET', $lease), 'A 1', 'token release: A\'s lease kept';

    my $before = redis_ms();
    is_deeply run('token', 'put', 'TOK1', 60000, 'A 1'), [0],
              'token put';
    is $c->cmd('EXISTS', $lease), 0, 'token put: the lease released';
    my $exp = $c->cmd('HGET', "$T:tok", 'exp');
    ok $exp >= $before + 60000 && $exp <= redis_ms() + 60000,
       'token put: its end in Redis\' time';
    $pttl = $c->cmd('PTTL', "$T:tok");
    ok $pttl > 59000 && $pttl <= 60000, "token put: kept until its end";

    my $x = run('token', 'get', '', 0, 3000, 'B 1');
    is_deeply [@$x[0, 1, 3]], [0, 'TOK1', 60000],
              'token get: another host gets the token and its lifetime';
    ok $x->[2] > 59000 && $x->[2] <= 60000, "token get: ms left ($x->[2])";
    is_deeply run('token', 'get', 'TOK1', 0, 3000, 'B 1'), [2],
              'token get: the one the host has: the lease, to fetch another';
    is_deeply run('token', 'get', 'TOK0', 58000, 3000, 'C 1'), [3],
              'token get: not usable longer than the host\'s own: busy';
    run('token', 'release', 'B 1');
    is_deeply run('token', 'get', 'TOK0', 40000, 3000, 'C 1')->[1], 'TOK1',
              'token get: usable longer than the host\'s own';
    run('token', 'release', 'C 1');

    is_deeply run('token', 'put', 'TOK2', 1000, 'A 1'), [1],
              'token put: one that ends sooner does not replace it';
    is_deeply run('token', 'drop', 'TOKX'), [2],
              'token drop: another token: kept';
    is_deeply run('token', 'drop', 'TOK1'), [0], 'token drop: that token';
    is $c->cmd('EXISTS', "$T:tok"), 0, 'token drop: gone';

    run('token', 'put', 'TOK3', 1100, 'A 1');
    is_deeply run('token', 'get', '', 0, 3000, 'B 1'), [2],
              'token get: less than a skew and 1 s left: fetch';
    clean();
}


$c->close;
$sub->close;
$r->stop;
ok !$r->running, 'FanbaseRedis: stopped';


# --- FanbaseRedis itself: AOF across a kill -9, unix socket, password --------

{
    my $p = FanbaseRedis->new(dir => $dir, name => 'aof', unix => 1,
                              appendfsync => 'always', password => 'pw x');
    $p->start;
    is $p->url, 'unix:' . $p->socket, 'FanbaseRedis: a unix url';
    is $p->tcp_url, 'redis://127.0.0.1:' . $p->port . '/0',
       'FanbaseRedis: the tcp url';
    is $p->cli('SET', 'kept', 'yes'), 'OK', 'FanbaseRedis: cli, with AUTH';
    my $u = $p->connect(unix => 1);
    is $u->cmd('GET', 'kept'), 'yes', 'FanbaseRedis: over the unix socket';
    $u->close;
    my $pid = $p->pid;
    $p->kill9;
    ok !kill(0, $pid), 'FanbaseRedis: killed';
    $p->restart;
    is $p->cli('GET', 'kept'), 'yes', 'FanbaseRedis: the AOF kept it';
    my $nopw = FanbaseRedis::Conn->new(
        IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $p->port)
            or die $!);
    like $nopw->cmd('GET', 'kept'), qr/^NOAUTH/,
         'FanbaseRedis: no password, no answer';
    $pid = $p->pid;
    $p->stop;
    ok !kill(0, $pid) && !$p->running, 'FanbaseRedis: stopped';
}

done_testing;
