#!/usr/bin/perl

# bench/backlog_curve.pl: what a backlog costs, as it grows (run by "make
# bench" after bench/run.pl; docs/performance.md, "Cost curves").
#
#   make module && TEST_NGINX_MODULE=$PWD/build/ngx_http_fanbase_module.so \
#       nice perl bench/backlog_curve.pl [--doc docs/performance.md]
#
# Two edges, one after the other, each with 2 workers, a 1g zone and a
# state file (state=), Fanbase and its token endpoint down (connection
# refused): "sync off" (fanbase_state_sync off, the default) and "sync on".
# For each edge, at 0, 10k, 100k and 300k pending transactions (wrk fills
# the zone up to the level first, with 64 connections):
#   - accept rate: wrk posts to "fanbase_submit async" for BENCH_SECONDS
#     (2) with 64 connections; the 202s per second, as a ratio to the
#     rate at 0 of the same edge (the measurement itself adds to the
#     backlog: a level is where it starts);
#   - status p99: wrk reads one transaction (GET /transactions/ID) for
#     BENCH_SECONDS with 64 connections; the 99th percentile of its
#     latency, and its ratio to the one at 0;
#   - idle CPU: the CPU time of the two workers over BENCH_IDLE (5) s
#     with no client traffic, in ms per second (1000 = one core);
# then, per edge, the bytes of journal written per accepted transaction
# (fanbase_metrics' fanbase_journal_written_bytes_total over the 202s)
# and, for "sync off", the accept rate of "sync on" at 0 as a ratio to
# it.  At the end, the "sync off" edge is filled to BENCH_LOAD (1,000,000)
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
        my $secs = ($want - $have) / 25_000;
        $secs = $secs < 1 ? 1 : int($secs + 0.5);
        wrk($t, $secs, $QUEUE, post => 1);
    }
}

sub edge {
    my ($sync) = @_;
    my $t = FanbaseTest->new(
        mock    => undef,
        workers => 2,
        files   => edge_files(),
        http    => (edge_http(zone => '1g', state => '%%DIR%%/fb.state')
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
    my $t = edge($sync);
    my @pids = $t->worker_pids;

    my $first = $t->submit(status => 202, name => "sync $sync: a first transaction");
    my $id = tx_id($first);

    for my $level (@LEVELS) {
        fill($t, $level);
        my $at = pending($t);
        my $accept = wrk($t, $SECONDS, $QUEUE, post => 1);
        my $status = wrk($t, $SECONDS, "/transactions/$id");
        my ($c0, $t0) = (cpu_seconds(@pids), time);
        sleep $IDLE;
        my $idle = (cpu_seconds(@pids) - $c0) * 1000 / (time - $t0);
        $row{$sync}{$level} = { at => $at, accept => $accept->{rate},
                                p99 => $status->{p99}, idle => $idle };
        printf "sync %-3s %7d pending: accept %8.0f/s  status p99 %7.2f ms  "
               . "idle %6.1f ms/s\n", $sync, $at, $accept->{rate},
               $status->{p99}, $idle;
    }

    my $accepted = metric($t, 'fanbase_submissions_total{mode="async",code="accepted"}');
    my $bytes = metric($t, 'fanbase_journal_written_bytes_total');
    $row{$sync}{bytes} = $accepted ? $bytes / $accepted : 0;
    printf "sync %-3s journal: %.0f bytes per accepted transaction\n", $sync,
           $row{$sync}{bytes};

    if ($sync eq 'off') {
        # the load: kill -9 with $LOAD pending, then a graceful restart
        fill($t, $LOAD);
        my $n = pending($t);
        my @all = ($t->nginx_pid, $t->worker_pids);
        kill KILL => @all;
        waitpid $t->nginx_pid, 0;
        delete $t->{nginx_pid};
        sleep 0.1 while grep { kill 0 => $_ } @all;
        my $t0 = time;
        $t->start_nginx;
        $row{load_crash} = { n => $n, s => time - $t0 };
        $t->stop;
        $t0 = time;
        $t->start_nginx;
        $row{load_clean} = { n => pending($t), s => time - $t0 };
        printf "load: %d pending after kill -9 in %.1f s; after a stop in %.1f s\n",
               $n, $row{load_crash}{s}, $row{load_clean}{s};
    }
    $t->stop;
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
    sprintf('Load: %d pending transactions after a kill -9 of every process (state file and journal) in %.1f s; after a graceful stop (the snapshot) in %.1f s.',
            $row{load_crash}{n}, $row{load_crash}{s}, $row{load_clean}{s}),
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
