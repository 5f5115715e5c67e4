#!/usr/bin/perl

# The transaction store: a zone full of pending transactions refuses new
# submissions before sending them; terminal transactions are evicted first
# and read through again when asked; what one transaction costs, queue
# item or asynchronous transaction.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;

use JSON::PP;
use Time::HiRes qw(time sleep);

my @SUBMIT = (headers => [@CT],
              body => '{"action":"ticket-create","data":{"seat":"A1"}}');

# a started edge of fanbase_submit and fanbase_status, with a zone of
# $o{zone} and fanbase_status_refresh $o{refresh}
sub status_edge {
    my (%o) = @_;
    my $t = FanbaseTest->new(
        mock  => { clients => ['demo-client:demo-secret'],
                   processing_after => $o{processing_after},
                   completed_after  => $o{completed_after} },
        files => edge_files(),
        http  => edge_http(zone => $o{zone},
                           extra => "fanbase_status_refresh $o{refresh};\n"),
        server => <<"CONF",
location = $QUEUE { fanbase_submit; }
location $QUEUE/ { fanbase_status; }
CONF
    );
    $t->start;
    return $t;
}

# Submissions 200 at a time until the first 503 zone_full: how many were
# accepted ($ok answers), refused, and answered anything else.
sub fill_zone {
    my ($t, $ok) = @_;
    my ($n, $full, $other) = (0, 0, 0);
    while (!$full && $n + $other < 20000) {
        for my $res ($t->parallel(200, POST => $QUEUE, @SUBMIT)) {
            if ($res->{status} == $ok) {
                $n++;
            } elsif ($res->{status} == 503
                     && ($res->{json}{error}{code} // '') eq 'zone_full') {
                $full++;
            } else {
                $other++;
                diag("unexpected: $res->{status} $res->{body}"
                     . ($res->{error} ? " ($res->{error})" : ''))
                    if $other <= 5;
            }
        }
        last if $other > 100;
    }
    return ($n, $full, $other);
}

sub zone_full_ok {
    my ($res, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($res->{status}, 503, "$name: 503");
    like($res->{headers}{'content-type'} // '', qr{^application/json\b},
         "$name: JSON");
    like($res->{headers}{'retry-after'} // '', qr/^[1-9]\d*$/,
         "$name: Retry-After");
    json_like($res->{json},
              { error => { status => 503, code => 'zone_full', message => qr/./ } },
              "$name: error body");
}


# (1) a 64k zone full of pending transactions

my $fit64;
{
    my $t = status_edge(zone => '64k', refresh => '1h',
                        processing_after => 3600, completed_after => 3600);

    my (@ids, $refused);
    for (1 .. 2000) {
        my $res = $t->request(POST => $QUEUE, @SUBMIT);
        if ($res->{status} == 201) {
            push @ids, $res->{json}{id};
            next;
        }
        $refused = $res;
        last;
    }
    $fit64 = @ids;
    diag("zone 64k holds $fit64 pending transactions");

    ok($refused, 'a 64k zone of pending transactions fills up within 2000 submissions')
        or BAIL_OUT('the zone never filled up');
    zone_full_ok($refused, 'full zone');
    cmp_ok($fit64, '>', 0, 'some transactions fit');

    my $stats = $t->mock_stats;
    is($stats->{queue_posts}, $fit64,
       'the refused submission was never sent to Fanbase');

    zone_full_ok($t->request(POST => $QUEUE, @SUBMIT), 'still full');
    is($t->mock_stats->{queue_posts}, $fit64, 'still nothing sent');

    # every earlier transaction is still there: a sample, from the zone
    my %seen;
    my @sample = grep { !$seen{$_}++ }
                 @ids[0, 1, int($#ids / 2), $#ids - 1, $#ids],
                 map { $ids[rand @ids] } 1 .. 10;
    for my $id (@sample) {
        my $res = $t->request(GET => "$QUEUE/$id");
        is($res->{status}, 200, "pending $id: 200");
        is($res->{headers}{'x-fanbase-cache'}, 'HIT', "pending $id: from the zone");
        json_like($res->{json}, { id => $id, processStatus => 'pending' },
                  "pending $id: the transaction");
    }
    is($t->mock_stats->{queue_gets}, 0, 'no GET at the mock for any of them');

    $t->stop;
}


# (2) terminal transactions are evicted first

{
    my $t = status_edge(zone => '64k', refresh => '100ms',
                        processing_after => 0.1, completed_after => 0.2);

    my $batch = $fit64 > 1 ? int($fit64 / 2) : 1;
    my $total = 3 * $fit64;
    my (@ids, @refused, $unread);

    while (@ids < $total && !@refused) {
        my @new;
        for (1 .. $batch) {
            my $res = $t->request(POST => $QUEUE, @SUBMIT);
            if ($res->{status} == 201) {
                push @new, $res->{json}{id};
            } else {
                push @refused, $res;
                last;
            }
        }
        push @ids, @new;

        # completed at Fanbase; read once so that the zone knows it
        sleep 0.3;
        for my $id (@new) {
            my $res = $t->request(GET => "$QUEUE/$id");
            next if $res->{status} == 200
                    && ($res->{json}{processStatus} // '') eq 'completed';
            $unread++;
            diag("reading $id: $res->{status} $res->{body}");
        }
    }

    ok(!@refused, "$total submissions into a zone that holds $fit64 pending "
                  . 'ones: none refused')
        or diag("refused after " . scalar(@ids) . ": $refused[0]{status} "
                . "$refused[0]{body}");
    cmp_ok(scalar @ids, '>=', $total, 'all submitted');
    ok(!$unread, 'each one was read as completed');

    # the oldest were evicted: read through again, and answered correctly
    for my $id (@ids[0 .. 4]) {
        my $before = $t->mock_gets($id);
        my $res = $t->request(GET => "$QUEUE/$id");
        is($res->{status}, 200, "evicted $id: 200");
        is($res->{headers}{'x-fanbase-cache'}, 'MISS', "evicted $id: read through");
        json_like($res->{json}, { id => $id, processStatus => 'completed',
                                  iCode => 0, iMsg => 'Processado com sucesso' },
                  "evicted $id: the transaction");
        is($t->mock_gets($id), $before + 1, "evicted $id: one GET at the mock");
    }

    # the newest are still in the zone
    for my $id (@ids[-3 .. -1]) {
        my $res = $t->request(GET => "$QUEUE/$id");
        is($res->{headers}{'x-fanbase-cache'}, 'HIT', "recent $id: from the zone");
    }

    $t->stop;
}


# (3) how many pending transactions a megabyte holds

{
    my $t = status_edge(zone => '1m', refresh => '1h',
                        processing_after => 3600, completed_after => 3600);

    my $start = time;
    my ($n, $full, $other) = fill_zone($t, 201);

    ok($full, 'the 1m zone filled up');
    is($other, 0, 'every answer was 201 or 503 zone_full');
    is($t->mock_stats->{queue_posts}, $n, 'every 201 and only those reached Fanbase');

    my $each = $n ? sprintf('%.0f', 1048576 / $n) : 'n/a';
    diag("MEASURE: zone 1m holds $n pending transactions: $each bytes each");
    diag(sprintf 'filled in %.1f s', time - $start);
    cmp_ok($n, '>=', 3000, 'a 1m zone holds at least 3000 pending transactions');

    $t->stop;
}


# (4) how many asynchronous transactions a megabyte holds while Fanbase is
# down (pending, never evicted): record, payload, the id of the request
# that accepted it (nginx's $request_id: 32 bytes) and first event

{
    my $t = FanbaseTest->new(
        mock   => undef,
        files  => { secret => "demo-secret\n" },
        http   => <<"CONF",
fanbase_zone zone=fb:1m;
fanbase_api %%DEAD%%;
fanbase_token_url %%DEAD%%/api/token;
fanbase_client_id demo-client;
fanbase_client_secret_file %%DIR%%/secret;
CONF
        server => "location = $QUEUE { fanbase_submit async; }\n",
    );
    $t->start;

    my ($n, $full, $other) = fill_zone($t, 202);

    ok($full, 'async: the 1m zone filled up');
    is($other, 0, 'async: every answer was 202 or 503 zone_full');

    my $each = $n ? sprintf('%.0f', 1048576 / $n) : 'n/a';
    diag("MEASURE: zone 1m holds $n pending asynchronous transactions "
         . "(a " . length($SUBMIT[3]) . "-byte body): $each bytes each");
    cmp_ok($n, '>=', 2700,
           'a 1m zone holds at least 2700 pending asynchronous transactions');

    $t->stop;
}

# Prefault: by default the master allocates the zone's pages and each
# worker maps them before it serves, then reads them, so no request takes
# a page fault under the zone's lock (its resident size in
# /proc/PID/smaps is the whole zone); prefault=off leaves every page to
# its first use.
sub zone_rss_kb {
    my ($pid, $kb) = @_;
    open my $fh, '<', "/proc/$pid/smaps" or return;
    my ($name, $size, $found);
    while (my $line = <$fh>) {
        if ($line =~ /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/) {
            ($name, $size) = ($1, 0);
        } elsif ($line =~ /^Size:\s+(\d+) kB/) {
            $size = $1;
        } elsif ($line =~ /^Rss:\s+(\d+) kB/) {
            my $rss = $1;
            $found = $rss if $size == $kb && $name =~ /zero|SYSV/;
        }
    }
    return $found;
}

for my $case (['64m', 'default (on)', 1], ['64m prefault=off', 'off', 0]) {
    my ($zone, $name, $on) = @$case;
    my $t = status_edge(zone => $zone, refresh => '1s');
    my $res = $t->request(POST => $QUEUE, @SUBMIT);
    is($res->{status}, 201, "prefault $name: a submission is served");

    # a kernel older than 5.14 has no MADV_POPULATE_WRITE: said at notice
    if ($on && $t->error_log =~ /\[notice\].*zone "fb" is not prefaulted/) {
        unlike($t->error_log, qr/\[(?:warn|error|crit|alert|emerg)\].*prefault/,
               "prefault $name: unsupported by this kernel, said at notice");
        $t->stop;
        next;
    }

    # the workers may still be starting: their count of resident pages
    # settles once both have run their start-up
    my @rss;
    $t->wait_for(sub {
        @rss = map { zone_rss_kb($_, 65536) } $t->worker_pids;
        return @rss == 2 && !grep { !defined || $_ < 65536 * 0.98 } @rss;
    }, timeout => 3);
    is(scalar(grep { defined } @rss), 2,
       "prefault $name: both workers map the 64m zone")
        or diag("rss: @rss");
    for my $i (0 .. $#rss) {
        my $rss = $rss[$i] // 0;
        if ($on) {
            cmp_ok($rss, '>=', 65536 * 0.98,
                   "prefault $name: worker $i has the whole zone resident");
        } else {
            cmp_ok($rss, '<', 65536 / 4,
                   "prefault $name: worker $i has only what it touched "
                   . "resident");
        }
    }
    $t->log_unlike(qr/not prefaulted|no memory for/,
                   "prefault $name: nothing logged about it");

    # then each worker reads every page once, in the background (a
    # hypervisor with shadow page tables charges each process's first
    # touch of a page: docs/decisions.md), and says so at info
    my $read = qr/\[info\].*fanbase: zone "fb": its 16384 pages read by this worker in \d+ ms/;
    if ($on) {
        my $n = 0;
        $t->wait_for(sub { $n = () = $t->error_log =~ /$read/g; $n >= 2 },
                     timeout => 20);
        is($n, 2, "prefault $name: each worker reads every page of the zone");
    } else {
        $t->log_unlike(qr/pages read by this worker/,
                       "prefault $name: no page is read ahead");
    }
    $t->stop;
}

done_testing;
