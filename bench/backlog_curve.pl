#!/usr/bin/perl

# bench/backlog_curve.pl: what a backlog costs, as it grows (run by "make
# bench" after bench/run.pl; docs/performance.md, "Cost curves").
#
#   make module && TEST_NGINX_MODULE=$PWD/build/ngx_http_fanbase_module.so \
#       nice perl bench/backlog_curve.pl [--doc docs/performance.md]
#
# Edges one after the other, each with 2 workers, a 1024m zone and a
# state file (state=), Fanbase and its token endpoint down (connection
# refused), "sync off" (fanbase_state_sync off, the default) and "sync on":
# a new edge for each of 0, 10k, 100k and 300k pending transactions (wrk
# fills the zone up to the level first, with 64 connections and
# bench/post_n.lua), then:
#   - accept rate: wrk posts to "fanbase_submit async" for BENCH_SECONDS
#     (2) with 64 connections; the 202s per second, as a ratio to the
#     rate at 0 (the measurement itself adds to the backlog: a level is
#     where it starts);
#   - status p99: wrk reads one transaction (GET /transactions/ID) for
#     BENCH_SECONDS with 64 connections; the 99th percentile of its
#     latency, and its ratio to the one at 0;
#   - idle CPU: the CPU time of the two workers over BENCH_IDLE (5) s
#     with no client traffic, BENCH_SETTLE (10) s after the last
#     request, in ms per second (1000 = one core);
# at 300k, the bytes of journal written per accepted transaction
# (fanbase_metrics' fanbase_journal_written_bytes_total over the 202s);
# and the accept rate of "sync on" as a ratio to "sync off" at each level.
# At the end, a "sync off" edge is filled to BENCH_LOAD (1,000,000)
# pending transactions and killed (kill -9 of the master and its
# workers), and the time its restart takes to load them (the state file
# and the journal) until it answers is measured; then it is stopped
# gracefully (the master's snapshot) and the start timed again.
#
# Targets (issue 16): accept rate at 300k pending >= 0.80 of the rate at
# 0 (sync off, the default), idle CPU at 300k < 50 ms/s (5% of a core).
# The exit status is 0 only when both hold.  With --doc FILE, the table
# replaces the section between "<!-- backlog-curve -->" markers of FILE.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";

use FanbaseTest qw(:DEFAULT cpu_seconds);
use Time::HiRes qw(time sleep);

chdir "$FindBin::Bin/..";

my $SECONDS = $ENV{BENCH_SECONDS} // 2;
my $SETTLE  = $ENV{BENCH_SETTLE} // 10;
my $IDLE    = $ENV{BENCH_IDLE} // 5;
my $LOAD    = $ENV{BENCH_LOAD} // 1_000_000;
my @LEVELS  = (0, 10_000, 100_000, 300_000);
my ($DOC)   = map { /^--doc=?(.*)$/ ? ($1 || $ARGV[1]) : () } @ARGV;

my $DEAD = 'http://127.0.0.1:' . FanbaseTest::free_port();

sub wrk {
    my ($t, $secs, $path, %o) = @_;
    my $url = 'http://127.0.0.1:' . $t->port . $path;
    my $out = `wrk -t2 -c64 -d${secs}s --latency @{[ $o{post} ? '-s bench/post.lua' : '' ]} $url 2>&1`;
    die "wrk: $out" if $out =~ /Non-2xx|Socket errors/ || $out !~ /requests in/;
    my ($n) = $out =~ /(\d+) requests in/;
    my ($rate) = $out =~ /Requests\/sec:\s+([\d.]+)/;
    my ($p99, $unit) = $out =~ /^\s+99%\s+([\d.]+)(us|ms|s)\b/m;
    $p99 = $p99 * { us => 0.001, ms => 1, s => 1000 }->{$unit // 'ms'} if defined $p99;
    return { n => $n, rate => $rate, p99 => $p99 };
}

sub metric {
    my ($t, $name) = @_;
    my $body = $t->request(GET => '/metrics')->{body} // '';
    return $body =~ /^\Q$name\E (\d+)/m ? $1 : 0;
}

sub pending { metric($_[0], 'fanbase_transactions{status="pending"}') }

sub fill {
    my ($t, $want) = @_;
    while ((my $have = pending($t)) < $want) {
        local $ENV{BENCH_N} = $want - $have;
        local $ENV{BENCH_THREADS_N} = 2;
        my $url = 'http://127.0.0.1:' . $t->port . $QUEUE;
        # the threads stop at their share; wrk itself at the end of -d
        my $secs = int(($want - $have) / 20_000) + 1;
        my $out = `wrk -t2 -c64 -d${secs}s -s bench/post_n.lua $url 2>&1`;

        # a thread stopped at its share leaves its connections' last
        # requests unanswered: wrk counts them as timeouts, nothing else
        die "wrk: $out" if $out =~ /Non-2xx|connect [1-9]|read [1-9]|write [1-9]/
                           || $out !~ /requests in/;
    }
}

# a signal to the master and its workers; back when all are gone
sub kill_all {
    my ($t, $sig) = @_;
    my @all = ($t->nginx_pid, $t->worker_pids);
    kill $sig => ($sig eq 'KILL' ? @all : $all[0]);
    waitpid $all[0], 0;
    delete $t->{nginx_pid};
    sleep 0.05 while grep { kill 0 => $_ } @all;
}

sub edge {
    my ($sync) = @_;
    my $t = FanbaseTest->new(
        mock    => undef,
        workers => 2,
        files   => edge_files(),
        http    => (edge_http(zone => '1024m', state => '%%DIR%%/fb.state')
                    =~ s/%%MOCK%%/$DEAD/gr)
                   . "fanbase_deliver_horizon 24h;\n"
                   . "fanbase_state_sync $sync;\n",
        server  => "location = $QUEUE { fanbase_submit async; }\n"
                 . "location /transactions/ { fanbase_transaction; }\n"
                 . "location = /metrics { fanbase_metrics; }\n",
        error_log_level => 'error',
        log_allow => qr/\[error\]/,
    );
    $t->start;
    return $t;
}

my (%row, @lines);

for my $sync (qw(off on)) {
    for my $level (@LEVELS) {

        # a new edge for each level: the measurement adds to the backlog
        my $t = edge($sync);
        my @pids = $t->worker_pids;
        my $id = tx_id($t->submit(status => 202,
                                  name => "sync $sync, $level: a first one"));
        fill($t, $level);
        my $at = pending($t);
        my $accept = wrk($t, $SECONDS, $QUEUE, post => 1);
        my $status = wrk($t, $SECONDS, "/transactions/$id");

        # idle: once the last accepts' journal and snapshot are written
        sleep $SETTLE;
        my ($c0, $t0) = (cpu_seconds(@pids), time);
        sleep $IDLE;
        my $idle = (cpu_seconds(@pids) - $c0) * 1000 / (time - $t0);
        $row{$sync}{$level} = { at => $at, accept => $accept->{rate},
                                p99 => $status->{p99}, idle => $idle };
        printf "sync %-3s %7d pending: accept %8.0f/s  status p99 %7.2f ms  "
               . "idle %6.1f ms/s\n", $sync, $at, $accept->{rate},
               $status->{p99}, $idle;

        if ($level == $LEVELS[-1]) {
            my $accepted = metric($t, 'fanbase_submissions_total{mode="async",code="accepted"}');
            my $bytes = metric($t, 'fanbase_journal_written_bytes_total');
            $row{$sync}{bytes} = $accepted ? $bytes / $accepted : 0;
            printf "sync %-3s journal: %.0f bytes per accepted transaction\n",
                   $sync, $row{$sync}{bytes};
        }

        $t->stop;
    }
}

# the load: kill -9 with $LOAD pending, then a graceful restart
{
    my $t = edge('off');
    fill($t, $LOAD);
    my $n = pending($t);
    kill_all($t, 'KILL');
    my $t0 = time;
    $t->start_nginx(timeout => 300);
    $row{load_crash} = { n => pending($t), s => time - $t0 };

    # the master's last snapshot of a million takes longer than the
    # harness waits for a stop
    $t0 = time;
    kill_all($t, 'QUIT');
    $row{stop} = time - $t0;
    $t0 = time;
    $t->start_nginx(timeout => 300);
    $row{load_clean} = { n => pending($t), s => time - $t0 };
    printf "load: %d pending back after kill -9 in %.1f s; stopped in %.1f s; "
           . "%d after the stop in %.1f s\n", $row{load_crash}{n},
           $row{load_crash}{s}, $row{stop}, $row{load_clean}{n},
           $row{load_clean}{s};
    kill_all($t, 'QUIT');
}

my $off = $row{off};
my $ratio300 = $off->{300_000}{accept} / $off->{0}{accept};
my $idle300 = $off->{300_000}{idle};
my $ok = $ratio300 >= 0.80 && $idle300 < 50;

push @lines, '| pending (state on) | accept rate, sync off | ratio to 0 | status p99 | ratio to 0 | idle CPU | accept rate, sync on | ratio to sync off |',
             '|---|---|---|---|---|---|---|---|';
for my $level (@LEVELS) {
    my ($a, $b) = ($row{off}{$level}, $row{on}{$level});
    push @lines, sprintf '| %d | %.0f/s | %.2f | %.2f ms | %.2f | %.1f ms/s (%.1f%% of a core) | %.0f/s | %.2f |',
        $a->{at}, $a->{accept}, $a->{accept} / $off->{0}{accept}, $a->{p99},
        $a->{p99} / ($off->{0}{p99} || 1), $a->{idle}, $a->{idle} / 10,
        $b->{accept}, $b->{accept} / $a->{accept};
}
push @lines, '',
    sprintf('Journal written per accepted transaction: %.0f bytes (sync off), %.0f bytes (sync on).',
            $row{off}{bytes}, $row{on}{bytes}),
    sprintf('Load: %d pending transactions back after a kill -9 of every process (the state file and the journal), nginx answering %.1f s after its start; a graceful stop (the master writes the last snapshot) in %.1f s; %d back after it in %.1f s. The starts include the prefault of the 1024m zone.',
            $row{load_crash}{n}, $row{load_crash}{s}, $row{stop}, $row{load_clean}{n}, $row{load_clean}{s}),
    sprintf('Targets (issue 16): accept rate at 300k >= 0.80 of the rate at 0: %.2f, %s; idle CPU at 300k < 50 ms/s: %.1f, %s.',
            $ratio300, $ratio300 >= 0.80 ? 'met' : 'MISSED', $idle300,
            $idle300 < 50 ? 'met' : 'MISSED');

print "\n", join("\n", @lines), "\n";

if ($DOC) {
    local $/;
    open my $in, '<', $DOC or die "$DOC: $!";
    my $doc = <$in>;
    close $in;
    my $section = "<!-- backlog-curve -->\n"
                . "Produced by `perl bench/backlog_curve.pl` (run by `make bench`), "
                . scalar(gmtime) . " UTC.\n\n" . join("\n", @lines)
                . "\n<!-- /backlog-curve -->";
    $doc =~ s/<!-- backlog-curve -->.*?<!-- \/backlog-curve -->/$section/s
        or $doc .= "\n## Cost curves (issue 16)\n\n$section\n";
    open my $out, '>', $DOC or die "$DOC: $!";
    print $out $doc;
    close $out;
}

done_testing;
exit($ok ? 0 : 1);
