#!/usr/bin/perl

# Failed attempts in numbers do not flood the error log.  A worker says the
# first failed delivery (and the first failed notification) of an interval
# at once, with its id and reason, as ever; the failures that follow within
# 10 s are counted, and one line at the end of the interval says how many,
# with the first and the last of them:
#
#     fanbase: 199 more transactions not delivered in the last 10 s
#     (first "ID": Fanbase answered 503; last "ID": Fanbase answered 503)
#
# The line comes from a timer, with nothing else happening; a worker that
# stops says what it counted before it goes, and is not held up by the
# timer.  A lone failure still gets its own line at once.  Every failed
# attempt the mock answered is in the log: said alone or counted in a
# summary, none lost.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;

use Time::HiRes qw(time sleep);

my $N = 200;
my $ID = qr/[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}/;

my $t = FanbaseTest->new(
    mock    => { clients => ['demo-client:demo-secret'],
                 processing_after => 600, completed_after => 1200 },
    files   => edge_files(),
    workers => 1,
    http    => edge_http(timeout => '10s', extra => <<"CONF"),
fanbase_max_connections 320;
fanbase_deliver_concurrency 256;
fanbase_notify %%MOCK%%/_site/hook;
fanbase_notify_secret_file %%DIR%%/notify.secret;
fanbase_notify_concurrency 64;
CONF
    server  => <<"CONF",
location = $QUEUE { fanbase_submit async; }
location /transactions/ { fanbase_transaction; }
CONF
);
$t->write_file('notify.secret', webhook_secret() . "\n");
$t->start;

# the lines said one at a time, of 'transaction' or 'notification'
sub said {
    my ($kind) = @_;
    return grep { /\[warn\] .*fanbase: $kind "[^"]+" not delivered: / }
           split /\n/, $t->error_log;
}

# the summaries: { n, s, first, last, line }
sub summaries {
    my ($kind) = @_;
    my @s;
    for (split /\n/, $t->error_log) {
        next unless /\[warn\] .*fanbase: (\d+) more ${kind}s? not delivered in the last (\d+) s \((.*)\)$/;
        my ($n, $s, $rest) = ($1, $2, $3);
        my ($first, $last) = $n == 1 ? ($rest =~ /^"([^"]+)": /)
                           : ($rest =~ /^first "([^"]+)": .+; last "([^"]+)": .+$/);
        push @s, { n => $n, s => $s, first => $first, last => $last // $first,
                   line => $_ };
    }
    return @s;
}

# every failure the log accounts for: said, or counted in a summary
sub logged {
    my ($kind) = @_;
    my $n = () = said($kind);
    $n += $_->{n} for summaries($kind);
    return $n;
}

# the queue POSTs the mock answered with this status
sub queue_answered {
    my ($status) = @_;
    return scalar grep { ($_->{status} // '') eq $status } @{ $t->queue_posts };
}
sub queue_503 { queue_answered('503') }
sub site_503 { scalar grep { ($_->{status} // '') eq '503' } @{ $t->mock_site_requests } }
sub site_2xx {
    my %ok;
    $ok{ ($_->{headers}{'webhook-id'} || [])->[0] } = 1
        for grep { ($_->{status} // '') =~ /^2/ } @{ $t->mock_site_requests };
    return scalar keys %ok;
}


###########################################################################
# One failure: said at once, with its id and reason, as before; the same
# for its notification.

$t->mock_faults({ queue_post => { status => 503, count => 1 } });
$t->mock_site({ status => 503, count => 1 });

my $one = $t->numbered(status => 202, name => 'one submission: 202');

ok($t->wait_for(sub { $t->error_log =~ /\[warn\] .*fanbase: transaction "\Q$one->{id}\E" not delivered: Fanbase answered 503; it waits for Fanbase with the others/ },
                timeout => 5),
   'a lone failed delivery is said at once, with its id and reason');
ok($t->wait_for(sub { $t->error_log =~ /\[warn\] .*fanbase: notification "msg_\Q$one->{id}\E_processing" not delivered: the site answered 503; next attempt in \d+ ms/ },
                timeout => 10),
   'so is a lone failed notification');


###########################################################################
# Fanbase answers 503, after 3 s: every delivery out at that moment fails
# (at most fanbase_deliver_concurrency), then the probes.

$t->mock_faults({ queue_post => { status => 503, delay_ms => 3000 } });

my @subs = map { $t->numbered() } 1 .. $N;
is(scalar(grep { $_->{res}{status} == 202 } @subs), $N, "$N submissions: 202");
my %ours = map { $_->{id} => 1 } @subs;

ok($t->wait_for(sub { queue_503() >= 20 && !$t->mock_stats->{queue_posts_in_flight} },
                timeout => 20),
   'the deliveries out when Fanbase failed are answered 503 (' . queue_503() . ')');

# Fanbase back (the site is down now): every transaction is delivered, and
# every delivery is a notification that fails again and again
$t->mock_site({ status => 503 });
$t->mock_faults({ queue_post => undef });

ok($t->wait_for(sub { queue_answered('201') == $N + 1 }, timeout => 60,
                interval => 0.2),
   "Fanbase back: all $N delivered");

sleep 4;
$t->mock_site({});
ok($t->wait_for(sub { site_2xx() == $N + 1 }, timeout => 60, interval => 0.2),
   'the site back: every notification delivered');

# nothing else happens: the timer writes the summaries
my $q503 = queue_503();
my $s503 = site_503();
ok($t->wait_for(sub { logged('transaction') == $q503 }, timeout => 15),
   "every failed delivery ($q503) is in the log, said or counted, with "
   . "nothing else happening")
    or diag('logged: ' . logged('transaction'));
ok($t->wait_for(sub { logged('notification') == $s503 }, timeout => 15,
                interval => 0.2),
   "every failed notification ($s503) too") or diag('logged: ' . logged('notification'));

cmp_ok($q503, '>=', 20, "many deliveries failed ($q503)");
cmp_ok(scalar(() = said('transaction')), '<=', 3,
       'at most a handful said one by one')
    or diag(join "\n", said('transaction'));
cmp_ok(scalar(() = said('notification')), '<=', 3,
       'the same for notifications') or diag(join "\n", said('notification'));

my @tx = summaries('transaction');
ok(@tx >= 1, 'a summary of the failed deliveries')
    or diag($t->error_log);
my $big = (sort { $b->{n} <=> $a->{n} } @tx)[0] || {};
like($big->{line} // '', qr/\[warn\] .*fanbase: \d+ more transactions not delivered in the last 1[0-2] s \(first "$ID": Fanbase answered 503; last "$ID": Fanbase answered 503\)$/,
     'it says how many, over what time, the first and the last with why');
ok($ours{ $big->{first} // '' } && $ours{ $big->{last} // '' }
   && $big->{first} ne $big->{last},
   'the first and last it names are two of the failed transactions');
my %alone = map { /"([^"]+)" not delivered/ ? ($1 => 1) : () } said('transaction');
ok(defined $big->{first} && !$alone{ $big->{first} },
   'the first it names is not one already said on its own line');

my @nt = summaries('notification');
ok(@nt >= 1, 'a summary of the failed notifications');
like($nt[0]{line} // '', qr/\[warn\] .*fanbase: \d+ more notifications? not delivered in the last 1[0-2] s \((?:first )?"msg_${ID}_processing": the site answered 503/,
     'naming a notification and why');


###########################################################################
# What a worker counted when it stops is said before it goes, and the
# timer does not hold it up.  After 10 quiet seconds a failure starts a
# new interval: said at once, the next ones counted, and nginx stops long
# before the interval ends.

sleep 11;
$t->mock_site({ status => 503 });
my @last = map { $t->numbered() } 1 .. 3;
ok($t->wait_for(sub { site_503() >= $s503 + 3 }, timeout => 10,
                interval => 0.2),
   'three more notifications fail');
$t->mock_site({});
ok($t->wait_for(sub { site_2xx() == $N + 4 }, timeout => 30, interval => 0.2),
   'and are delivered');
$s503 = site_503();

my $t0 = time;
$t->stop_nginx;
my $took = time - $t0;
cmp_ok($took, '<', 5, sprintf 'the worker stops at once (%.1f s)', $took);

my ($quit) = $t->error_log =~ /\A(.*gracefully shutting down)/s;
my $after = substr $t->error_log, length($quit // '');
like($after, qr/\[warn\] .*fanbase: \d+ more notifications? not delivered in the last \d+ s/,
     'what it counted is said after it was told to stop');
is(logged('notification'), $s503, "every failed notification ($s503) is in the log");
is(logged('transaction'), queue_503(), 'and every failed delivery');
unlike($t->error_log, qr/fanbase: 0 more /, 'no summary of nothing');

done_testing;
