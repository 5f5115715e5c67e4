#!/usr/bin/perl

# A burst on the synchronous path (fanbase_submit, not async):
#
# - 1000 submissions at once, all in flight together, to two workers in
#   front of a Fanbase whose listen queue is short (the mock's --backlog
#   16): every one answered 201 with its own queue item, and Fanbase
#   received each body exactly once (none lost, none sent twice).
# - Each worker holds to fanbase_max_connections (default 32): Fanbase
#   never sees more than 2 x 32 connections open at once.
# - fanbase_max_connections 1 on one worker, in front of a Fanbase that
#   holds every POST longer than fanbase_timeout: the submissions that wait
#   for the connection longer than fanbase_timeout are answered 503
#   upstream_busy with Retry-After and are never sent; none hangs, and the
#   worker's connection is free again afterwards.
# - fanbase_keepalive's default keeps every connection the cap allows: a
#   second wave as large as the first opens no connection.
#
# The edge uses a fixed token the mock issued (fanbase_access_token_file),
# so that every connection the mock counts is a submission's, none a token
# request's.
#
# Before the cap, the edge opened a connection per submission: some 500 at
# once (512 open at the mock at most) overflow the mock's queue of 16, the
# kernel answers with SYN cookies, and the connections it then cannot queue
# are completed by the edge's retransmits, in waves of about 17 at doubling
# intervals.  In 4 of 18 runs on 2026-12-04 (2 of 12 with fanbase_timeout
# 30s, 2 of 6 with 60s), a few submissions (10 to 16 in the runs looked
# at) were still waiting when it ran out: 504, never sent.  With the cap,
# 64 connections carry the 1000 submissions, in about 1.5 s.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;

use Time::HiRes qw(time);

my $N        = 1000;    # submissions of the burst
my $WORKERS  = 2;
my $MAX_CONN = 32;      # fanbase_max_connections's default, per worker

my $TOKEN_PATH = '/api/token?grant_type=client_credentials'
               . '&client_id=demo-client&client_secret=demo-secret';

# The test holds every client socket of the burst open at once.
my ($open_files) = FanbaseTest::slurp('/proc/self/limits')
                   =~ /^Max open files\s+(\d+|unlimited)/m;
$open_files //= 0;
$open_files = 1e9 if $open_files eq 'unlimited';
if (!cmp_ok($open_files, '>=', $N + 100,
            "open files limit (ulimit -n) for $N client sockets")) {
    diag('"make test" raises it (up to 65536); by hand: ulimit -n 65536');
    done_testing;
    exit;
}

# The body of submission $i: a distinct valid one each.
sub body_n { sprintf '{"action":"create","data":{"n":%d}}', $_[0] }

# An edge in front of the mock (listen queue 16) with a token the mock
# issued: workers, timeout (fanbase_timeout), http (more http{} lines).
# Started, the mock's counters at zero.
sub edge {
    my (%o) = @_;
    my $t = FanbaseTest->new(
        mock    => { backlog => 16, processing_after => 60,
                     completed_after => 120 },
        workers => $o{workers},
        http    => <<"CONF" . ($o{http} // ''),
fanbase_zone zone=fb:4m;
fanbase_api %%MOCK%%;
fanbase_access_token_file %%DIR%%/token;
fanbase_timeout $o{timeout};
CONF
        server  => "location = $QUEUE { fanbase_submit; }\n",
    );
    $t->start_mock;
    my $token = $t->request(POST => $TOKEN_PATH)->{json}{access_token}
        // die "the mock issued no token\n";
    $t->write_file('token', "$token\n");
    $t->start_nginx;
    $t->mock_reset;
    return $t;
}

# "STATUS:COUNT" of a list of answers, by status.
sub by_status {
    my %n;
    $n{ $_->{status} }++ for @_;
    return join ',', map { "$_:$n{$_}" } sort keys %n;
}


# 1000 at once, two workers, the default cap

my $t = edge(workers => $WORKERS, timeout => '30s');

my $start = time;
my @res = $t->parallel($N, POST => $QUEUE, headers => [@CT],
                       body => \&body_n, timeout => 60);
my $took = time - $start;

is(by_status(@res), "201:$N", "burst: $N submissions at once, each answered 201")
    or diag(join "\n", map { "#$_: $res[$_]{status} "
                             . ($res[$_]{error} // $res[$_]{body}) }
                       grep { $res[$_]{status} != 201 } 0 .. $#res);

my @bad = grep { !(ref $res[$_]{json} eq 'HASH'
                   && ($res[$_]{json}{id} // '') =~ $UUID4
                   && ($res[$_]{json}{processStatus} // '') eq 'pending') }
          0 .. $#res;
ok(!@bad, 'burst: each answer a pending queue item with its id')
    or diag("#$bad[0]: $res[$bad[0]]{body}");
my %ids = map { ($_->{json}{id} // '') => 1 } grep { ref $_->{json} } @res;
is(scalar keys %ids, $N, "burst: $N distinct queue items");

{
    my $posts = $t->queue_posts;
    my %got;    # body => [queue ids Fanbase gave it]
    push @{ $got{ $_->{body} } }, $_->{queue_id} // 'none' for @$posts;
    is(scalar @$posts, $N, "burst: $N queue POSTs at the mock");
    my @missing = grep { !$got{ body_n($_) } } 0 .. $N - 1;
    my @twice   = grep { @{ $got{ body_n($_) } || [] } > 1 } 0 .. $N - 1;
    ok(!@missing, 'burst: every body reached the mock')
        or diag(scalar(@missing) . " missing, the first: #$missing[0]");
    ok(!@twice, 'burst: no body reached it twice')
        or diag(scalar(@twice) . " sent twice, the first: #$twice[0]");
    my @other = grep { $res[$_]{status} == 201
                       && ($got{ body_n($_) } || [''])->[0]
                          ne ($res[$_]{json}{id} // '') } 0 .. $N - 1;
    ok(!@other, 'burst: each answered the queue item Fanbase made of its body')
        or diag("#$other[0]: answered " . ($res[$other[0]]{json}{id} // '')
                . ', Fanbase made ' . join(',', @{ $got{ body_n($other[0]) } || [] }));
}

{
    my $s = $t->mock_stats;
    diag(sprintf 'burst: %d submissions in %.1f s; at the mock: '
         . 'connections_open_max %d, connections_accepted %d, '
         . 'queue_posts_in_flight_max %d', $N, $took,
         $s->{connections_open_max}, $s->{connections_accepted},
         $s->{queue_posts_in_flight_max});
    cmp_ok($s->{connections_open_max}, '<=', $WORKERS * $MAX_CONN,
           "burst: at most $WORKERS x fanbase_max_connections $MAX_CONN "
           . 'connections open at once at Fanbase');
}

$t->stop;


# fanbase_max_connections 1, Fanbase slower than fanbase_timeout: those
# that wait past it are answered 503 upstream_busy, and never sent

my $CAP_HTTP = "fanbase_max_connections 1;\n";
my $WAITING  = 20;

my ($known, $out) = FanbaseTest->nginx_t(
    files => { token => "t\n" },
    http  => "fanbase_zone zone=fb:1m;\nfanbase_api http://127.0.0.1:1;\n"
           . "fanbase_access_token_file %%DIR%%/token;\n$CAP_HTTP",
    server => "location = $QUEUE { fanbase_submit; }\n");
ok($known, 'nginx -t takes fanbase_max_connections 1') or diag($out);

SKIP: {
    skip 'fanbase_max_connections is not known to this module', 10 unless $known;

    my $c = edge(workers => 1, timeout => '1s', http => $CAP_HTTP);
    $c->mock_faults({ queue_post => { delay_ms => 2500 } });

    my @r = $c->parallel($WAITING, POST => $QUEUE, headers => [@CT],
                         body => sub { body_n(10_000 + $_[0]) }, timeout => 15);
    diag('cap 1: ' . by_status(@r) . sprintf(', the slowest in %.1f s',
                                             (sort { $b <=> $a } map { $_->{time} } @r)[0]));

    ok(!grep({ $_->{status} == 0 } @r), 'cap 1: every submission answered')
        or diag(by_status(@r));
    ok(!grep({ $_->{time} > 5 } @r), 'cap 1: each within 5 s (fanbase_timeout 1s)');

    my @busy = grep { $r[$_]{status} == 503 } 0 .. $#r;
    my @sent = grep { $r[$_]{status} != 503 } 0 .. $#r;
    cmp_ok(scalar @busy, '>=', $WAITING / 2,
           'cap 1: most waited past fanbase_timeout: 503')
        or diag(by_status(@r));
    ok(!grep({ $r[$_]{status} != 504 } @sent),
       'cap 1: the others were sent and timed out at Fanbase: 504')
        or diag(by_status(@r));
    json_like($r[ $busy[0] // 0 ]{json},
              { error => { status => 503, code => 'upstream_busy',
                           message => qr/\S/ } },
              'cap 1: a 503 is upstream_busy');
    my @odd = grep { my $x = $r[$_];
                     ($x->{headers}{'content-type'} // '') !~ m{^application/json\b}
                     || !ref $x->{json}
                     || ($x->{json}{error}{code} // '') ne 'upstream_busy'
                     || ($x->{headers}{'retry-after'} // '') !~ /^\d+$/ } @busy;
    ok(!@odd, 'cap 1: every 503 a JSON upstream_busy with Retry-After')
        or diag("#$odd[0]: " . join(' ', map { "$_->[0]: $_->[1];" }
                                        @{ $r[$odd[0]]{header_list} })
                . " $r[$odd[0]]{body}");

    # what was held at the mock is answered there after 2.5 s
    $c->wait_for(sub { $c->mock_stats->{queue_posts_in_flight} == 0 },
                 timeout => 10);
    my %at_mock;
    $at_mock{ $_->{body} }++ for @{ $c->queue_posts };
    my @leaked = grep { $at_mock{ body_n(10_000 + $_) } } @busy;
    ok(!@leaked, 'cap 1: no submission answered upstream_busy reached Fanbase')
        or diag(scalar(@leaked) . ' of them did');
    my @once = grep { ($at_mock{ body_n(10_000 + $_) } // 0) == 1 } @sent;
    ok(@once == @sent && keys %at_mock == @sent,
       'cap 1: Fanbase received each submission that was sent once, no other')
        or diag(scalar(@sent) . ' sent, ' . scalar(@once) . ' of them once, '
                . scalar(keys %at_mock) . ' bodies at the mock');

    my $s = $c->mock_stats;
    # (a POST the edge gave up on is still held at the mock when the next
    # one comes: two in its hands, one connection open)
    diag("cap 1: at the mock: connections_open_max $s->{connections_open_max}, "
         . "queue_posts_in_flight_max $s->{queue_posts_in_flight_max}");
    cmp_ok($s->{connections_open_max}, '<=', 1,
           'cap 1: one connection at a time at Fanbase');

    $c->mock_faults({ queue_post => undef });
    $c->submit(body => body_n(20_000), status => 201,
               name => 'cap 1: the connection is free again: 201');
}


# fanbase_keepalive's default is fanbase_max_connections: every connection
# a burst opened stays for the next one.  One worker with a cap of 48, two
# waves of 48 submissions held 300 ms each at Fanbase: the second wave
# opens no connection.  (With 32 kept, as before 2026-12-05, it opened 16
# and closed 16 more after each wave: make bench's submission row, with
# its cap of 128, opened and closed connections all the time.)

my $KEEP_CAP = 48;
{
    my $k = edge(workers => 1, timeout => '10s',
                 http => "fanbase_max_connections $KEEP_CAP;\n");
    $k->mock_faults({ queue_post => { delay_ms => 300 } });

    my @accepted;
    for my $wave (1, 2) {
        my @r = $k->parallel($KEEP_CAP, POST => $QUEUE, headers => [@CT],
                             body => sub { body_n(30_000 + 100 * $wave + $_[0]) },
                             timeout => 15);
        is(by_status(@r), "201:$KEEP_CAP",
           "keepalive: wave $wave, $KEEP_CAP submissions at once, each 201");
        push @accepted, $k->mock_stats->{connections_accepted};
    }
    my $s = $k->mock_stats;
    diag('keepalive: connections accepted by the mock after each wave: '
         . join(', ', @accepted) . '; open at once at most: '
         . $s->{connections_open_max});
    cmp_ok($s->{connections_open_max}, '<=', $KEEP_CAP,
           "keepalive: at most fanbase_max_connections $KEEP_CAP open at once");
    # (less 1: the test's own connection of the second mock_stats call)
    is($accepted[1] - $accepted[0] - 1, 0,
       "keepalive: the second wave reused the first wave's connections, "
       . 'opened none');
    $k->stop;
}

done_testing;
