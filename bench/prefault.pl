#!/usr/bin/perl

# bench/prefault.pl: what fanbase_zone's prefault=on costs and what it
# buys, against prefault=off (docs/performance.md, "Prefault";
# docs/decisions.md, "Zone memory").
#
#   make -C bench prefault
#
# or, from the top directory:
#
#   make module && TEST_NGINX_MODULE=$PWD/build/ngx_http_fanbase_module.so \
#       perl bench/prefault.pl [--doc docs/performance.md]
#
# For each zone size of BENCH_ZONES (2564m, the size of make bench's edge,
# and 64m), BENCH_ROUNDS (3) rounds; in each round an edge with
# prefault=on and one with prefault=off, one after the other (the order
# swapped every round), each with 2 workers, no state file, and Fanbase
# and its token endpoint down (connection refused: every accepted
# transaction waits in the zone, as behind a Fanbase that is the
# bottleneck of a rush).  For each edge:
#   - start: from the spawn of nginx until its first answer, a 202 of
#     "fanbase_submit async", by a client that tries to connect every
#     2 ms (the master listens once it has set up the zone; the request
#     then waits for a worker that has finished its start);
#   - first submissions: BENCH_FIRST (2000) more, one after the other on
#     a keep-alive connection, right after: p50, p99 and max of their
#     latency, as this script sees it;
#   - memory: the resident size of each worker (VmRSS, of which RssShmem
#     is the zone) and the PSS of the master and the workers summed (the
#     memory the edge holds, shared pages counted once);
#   - rush: wrk posts (bench/post.lua, 64 connections) until the edge has
#     accepted BENCH_RUSH (200000) more, or as many as fill 60% of the
#     zone when that is fewer (a pending transaction takes about 1 KiB
#     and is never evicted), counted by fanbase_metrics read every 10 ms,
#     then is stopped (SIGINT): the 202s per second, wrk's p50, p99 and
#     max latency, the workers' CPU time (user, system) and minor page
#     faults per accepted submission, and the zone's bytes per accepted
#     submission (fanbase_zone_used_bytes).
# At the end, per zone size, the median of each measurement, and the
# median of the per-round ratios off / on.  Any answer that is not a 202
# stops the run.  With --doc FILE, the table replaces the section between
# "<!-- prefault -->" markers of FILE.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";

use FanbaseTest qw(:DEFAULT slurp);
use IO::Socket::INET;
use Time::HiRes qw(time sleep);

chdir "$FindBin::Bin/..";
$| = 1;

my @ZONES  = split /,/, ($ENV{BENCH_ZONES} // '2564m,64m');
my $ROUNDS = $ENV{BENCH_ROUNDS} // 3;
my $FIRST  = $ENV{BENCH_FIRST} // 2000;
my $RUSH   = $ENV{BENCH_RUSH} // 200_000;
my ($DOC)  = map { /^--doc=?(.*)$/ ? ($1 || $ARGV[1]) : () } @ARGV;

my $DEAD = 'http://127.0.0.1:' . FanbaseTest::free_port();
my ($BODY) = slurp('bench/post.lua') =~ /^wrk\.body\s*=\s*'([^']*)'/m
    or die "no wrk.body in bench/post.lua\n";
my $REQUEST = "POST $QUEUE HTTP/1.1\r\nHost: edge\r\n"
            . "Content-Type: application/json\r\n"
            . 'Content-Length: ' . length($BODY) . "\r\n\r\n$BODY";

sub edge {
    my ($zone, $prefault) = @_;
    return FanbaseTest->new(
        mock    => undef,
        workers => 2,
        files   => edge_files(),
        http    => (edge_http(zone => "$zone prefault=$prefault")
                    =~ s/%%MOCK%%/$DEAD/gr)
                   . "fanbase_deliver_horizon 24h;\n",
        server  => "location = $QUEUE { fanbase_submit async; }\n"
                 . "location = /metrics { fanbase_metrics; }\n",
        error_log_level => 'error',
        log_allow => qr/\[error\]/,
    );
}

# one submission on a connection: its status and whether nginx keeps the
# connection open
sub post {
    my $s = shift;
    syswrite($s, $REQUEST) == length $REQUEST or die "write: $!";
    my $buf = '';
    while ($buf !~ /\r\n\r\n/) {
        sysread($s, $buf, 65536, length $buf) or die "read: $!";
    }
    my ($status) = $buf =~ m{^HTTP/1\.1 (\d+)} or die "not HTTP: $buf";
    my ($len) = $buf =~ /^Content-Length:\s*(\d+)/mi;
    die "no Content-Length: $buf" unless defined $len;
    my $need = index($buf, "\r\n\r\n") + 4 + $len;
    while (length $buf < $need) {
        sysread($s, $buf, 65536, length $buf) or die "read: $!";
    }
    return ($status, $buf !~ /^Connection:\s*close/mi);
}

sub connect_edge {
    my $port = shift;
    return IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                 Proto => 'tcp');
}

# /proc/PID/stat: minor faults, user and system seconds
sub proc_stat {
    my $hz = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;
    my ($flt, $utime, $stime) = (0, 0, 0);
    for my $pid (@_) {
        my @f = split ' ', (slurp("/proc/$pid/stat") =~ s/^.*\) //r);
        $flt += $f[7];
        $utime += $f[11] / $hz;
        $stime += $f[12] / $hz;
    }
    return ($flt, $utime, $stime);
}

sub kb {
    my ($pid, $file, $field) = @_;
    return slurp("/proc/$pid/$file") =~ /^\Q$field\E:\s+(\d+) kB/m ? $1 : 0;
}

sub percentile {
    my ($p, @s) = @_;
    return $s[int($p / 100 * $#s + 0.5)];
}

sub median {
    my @s = sort { $a <=> $b } grep { defined } @_;
    return undef unless @s;
    return @s % 2 ? $s[$#s / 2] : ($s[@s / 2 - 1] + $s[@s / 2]) / 2;
}

sub metric {
    my ($t, $name) = @_;
    my $body = $t->request(GET => '/metrics')->{body} // '';
    return $body =~ /^\Q$name\E (\d+)/m ? $1 : die "no $name: $body";
}

sub accepted {
    metric($_[0], 'fanbase_submissions_total{mode="async",code="accepted"}');
}

sub zone_used { metric($_[0], 'fanbase_zone_used_bytes') }

sub ms {
    my ($v, $unit) = @_;
    return $v * { us => 0.001, ms => 1, s => 1000 }->{$unit};
}

sub measure {
    my ($zone, $prefault) = @_;
    my $t = edge($zone, $prefault);
    my %m;

    # the first answer, seen by a client started before nginx
    my $port = $t->port;
    my $first = $t->background(sub {
        my $end = time + 120;
        while (time < $end) {
            my $s = connect_edge($port) or do { sleep 0.002; next };
            my ($status) = post($s);
            return (time, $status);
        }
        return (0, 'timeout');
    });
    my $t0 = time;
    $t->start_nginx(timeout => 120);
    my ($t1, $status) = $first->();
    die "$zone prefault=$prefault: the first answer: $status\n"
        unless $status eq '202';
    $m{start} = $t1 - $t0;

    # the next ones, one after the other
    my (@lat, $s);
    for (1 .. $FIRST) {
        $s //= connect_edge($port) or die "connect: $!";
        my $a = time;
        my ($st, $keep) = post($s);
        push @lat, (time - $a) * 1000;
        die "$zone prefault=$prefault: a submission answered $st\n"
            unless $st eq '202';
        undef $s unless $keep;
    }
    undef $s;
    @lat = sort { $a <=> $b } @lat;
    @m{qw(p50 p99 max)} = (percentile(50, @lat), percentile(99, @lat),
                           $lat[-1]);

    # memory
    my @workers = $t->worker_pids;
    $m{rss} = median(map { kb($_, 'status', 'VmRSS') } @workers) / 1024;
    $m{shmem} = median(map { kb($_, 'status', 'RssShmem') } @workers) / 1024;
    $m{pss} = 0;
    $m{pss} += kb($_, 'smaps_rollup', 'Pss') / 1024
        for $t->nginx_pid, @workers;

    # the rush: wrk until the edge has accepted $n more (its counter,
    # read every 10 ms), then SIGINT (wrk prints what it measured)
    (my $mb = $zone) =~ s/m$//;
    my $n = int($mb * 1024 * 0.6);
    $n = $RUSH if $n > $RUSH;
    my $c0 = accepted($t);
    my $u0 = zone_used($t);
    my @before = proc_stat(@workers);
    my $w0 = time;
    my $wpid = open(my $wrk, '-|', 'wrk', '-t2', '-c64', '-d120s', '--latency',
                    '-s', 'bench/post.lua', "http://127.0.0.1:$port$QUEUE")
        // die "wrk: $!";
    my ($c, $w1);
    do {
        sleep 0.01;
        ($c, $w1) = (accepted($t), time);
    } until $c - $c0 >= $n || $w1 - $w0 > 110;
    my @after = proc_stat(@workers);
    kill INT => $wpid;
    my $out = do { local $/; <$wrk> };
    close $wrk;
    die "wrk: $out" if $out =~ /Non-2xx|Socket errors/
                       || $out !~ /requests in/;
    $m{n} = $c - $c0;
    $m{bytes} = (zone_used($t) - $u0) / (accepted($t) - $c0);
    $m{rate} = $m{n} / ($w1 - $w0);
    $m{rp50} = ms($out =~ /^\s+50%\s+([\d.]+)(us|ms|s)\b/m);
    $m{rp99} = ms($out =~ /^\s+99%\s+([\d.]+)(us|ms|s)\b/m);
    $m{rmax} = ms($out =~ /^\s+Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)\b/m);
    $m{faults} = ($after[0] - $before[0]) / $m{n};
    $m{user} = ($after[1] - $before[1]) * 1e6 / $m{n};
    $m{sys} = ($after[2] - $before[2]) * 1e6 / $m{n};

    $t->stop;
    printf "%-6s %-3s start %6.3f s | first %d: p50 %.3f p99 %.3f max %.2f ms"
           . " | worker RSS %.0f MB (zone %.0f), PSS %.0f MB | rush %d:"
           . " %.0f/s p50 %.2f p99 %.2f max %.1f ms, %.1f+%.1f us CPU,"
           . " %.2f faults, %.0f zone bytes per 202\n", $zone, $prefault,
           $m{start}, $FIRST, @m{qw(p50 p99 max rss shmem pss n rate rp50 rp99
                                    rmax user sys faults bytes)};
    return \%m;
}

my (%res, @lines);

for my $zone (@ZONES) {
    for my $round (1 .. $ROUNDS) {
        for my $prefault ($round % 2 ? qw(on off) : qw(off on)) {
            push @{ $res{$zone}{$prefault} }, measure($zone, $prefault);
        }
    }
}

# key, heading, format, and whether off / on means anything (on takes
# no fault: a ratio to about zero says nothing)
my @COLS = (
    [start  => 'start to the first answer', '%.3f s', 1],
    [p50    => "first $FIRST, one by one: p50", '%.3f ms', 1],
    [p99    => 'p99', '%.3f ms', 1],
    [max    => 'max', '%.2f ms', 1],
    [rss    => 'RSS of a worker (of it, the zone)', '%.0f MB', 1],
    [pss    => 'PSS of master and workers', '%.0f MB', 1],
    [rate   => 'rush: 202s per second', '%.0f/s', 1],
    [rp50   => 'rush p50', '%.2f ms', 1],
    [rp99   => 'rush p99', '%.2f ms', 1],
    [rmax   => 'rush max', '%.1f ms', 1],
    [user   => 'rush: worker CPU, user', '%.1f us', 1],
    [sys    => 'rush: worker CPU, system', '%.1f us', 1],
    [faults => 'rush: minor faults per 202', '%.2f', 0],
    [bytes  => 'rush: zone bytes per 202', '%.0f', 1],
);

sub cell {
    my ($r, $col) = @_;
    my ($k, undef, $f) = @$col;
    my $v = sprintf $f, median(map { $_->{$k} } @$r);
    return $k ne 'rss' ? $v
         : $v . sprintf(' (%.0f)', median(map { $_->{shmem} } @$r));
}

# the median of the rounds' ratios off / on, and their range
sub ratio {
    my ($on, $off, $col) = @_;
    my ($k, undef, undef, $meaningful) = @$col;
    return '-' unless $meaningful;
    my @r = grep { defined }
            map { $on->[$_]{$k} ? $off->[$_]{$k} / $on->[$_]{$k} : undef }
            0 .. $#$on;
    return '-' unless @r;
    my @s = sort { $a <=> $b } @r;
    return sprintf '%.2f (%.2f-%.2f)', median(@r), $s[0], $s[-1];
}

push @lines, '| zone | ' . join(' | ', map { $_->[1] } @COLS) . ' |',
             '|---' x (@COLS + 1) . '|';
for my $zone (@ZONES) {
    my ($on, $off) = @{ $res{$zone} }{qw(on off)};
    push @lines,
        "| $zone prefault=on | " . join(' | ', map { cell($on, $_) } @COLS)
            . ' |',
        "| $zone prefault=off | " . join(' | ', map { cell($off, $_) } @COLS)
            . ' |',
        "| $zone off / on, median of the rounds' ratios | "
            . join(' | ', map { ratio($on, $off, $_) } @COLS) . ' |';
}

print "\n", join("\n", @lines), "\n";

if ($DOC) {
    my $doc = slurp($DOC) or die "$DOC: $!";
    my $section = "<!-- prefault -->\n"
                . "Produced by `make -C bench prefault` (bench/prefault.pl), "
                . scalar(gmtime) . " UTC, $ROUNDS rounds per zone size"
                . " (medians).\n\n" . join("\n", @lines)
                . "\n<!-- /prefault -->";
    $doc =~ s/<!-- prefault -->.*?<!-- \/prefault -->/$section/s
        or $doc .= "\n## Prefault\n\n$section\n";
    FanbaseTest::spew($DOC, $doc);
}

done_testing;
