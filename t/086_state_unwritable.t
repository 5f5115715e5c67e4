#!/usr/bin/perl

# A state file that cannot be written (its directory went away after the
# start; nginx -t refuses a directory that is not there): each worker says
# its first failing save at once, and counts the ones that follow, said
# once a minute with how many (ngx_http_fanbase_logsum.c), instead of once
# a second for ever; once the directory exists, the next save writes the
# file, and the log says how many failed until then and that the state is
# saved again.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;

use Time::HiRes qw(sleep time);

my $t = FanbaseTest->new(
    mock    => { clients => ['demo-client:demo-secret'] },
    files   => edge_files(),
    http    => edge_http(state => '%%DIR%%/nope/fb.state'),
    server  => <<"CONF",
location = /dead$QUEUE {
    fanbase_api %%DEAD%%;
    fanbase_transaction_path /dead/transactions;
    fanbase_submit async;
}
CONF
);
mkdir $t->dir . '/nope' or die "mkdir: $!";
$t->start;
rmdir $t->dir . '/nope' or die "rmdir: $!";

# 4.5 s of changes: a save is due every second; and 3 s more after the
# last worker said its first failing save (a loaded machine, or the
# sanitizer build, takes its first snapshot later), so that whichever
# worker saves first once the directory is back has failures to count
my $start = time;
my ($said, $last_said) = (0, 0);
my $n = 0;
while (time < $start + 20) {
    $t->submit(path => "/dead$QUEUE", status => 202,
               name => 'a submission while the state cannot be saved: 202')
        if $n++ < 3;
    $t->submit(path => "/dead$QUEUE") if $n > 3;
    sleep 0.3;
    my $now = () = $t->error_log =~ /cannot save the state/g;
    ($said, $last_said) = ($now, time) if $now > $said;
    last if time > $start + 4.5 && $said && time > $last_said + 3;
}

my @said = grep { /cannot save the state/ } split /\n/, $t->error_log;
cmp_ok(scalar @said, '>=', 1, 'the failing save is said');
cmp_ok(scalar @said, '<=', 2, 'at most once by each worker, not every second')
    or diag(join "\n", @said);
like($said[0] // '', qr/\[error\] .*cannot save the state to "\S+nope\/fb\.state": \S+ "\S+nope\/[^"]+" failed \(\d+: [^)]+\) \(the failed saves that follow are counted, and said once a minute\)$/,
     'it says where, what failed, why, and how the next ones are said');

# the directory comes: the next save writes it, and the log says so
mkdir $t->dir . '/nope' or die "mkdir: $!";
$t->submit(path => "/dead$QUEUE", status => 202, name => 'one more change: 202');
ok($t->wait_for(sub { -s $t->dir . '/nope/fb.state' }, timeout => 5),
   'the state file is written once its directory exists');
ok($t->wait_for(sub { $t->error_log =~ /\[notice\] .*the state is saved to "\S+fb\.state" again/ },
                timeout => 5),
   'the log says the state is saved again');

# the worker that saved said first how many failed since its first line
my ($again) = $t->error_log =~ /\[notice\] (\d+)#\d+: .*the state is saved to "\S+fb\.state" again/;
my @counted = grep { /\[error\] \Q$again\E#\d+: .*fanbase: \d+ more failed saves? of the state in the last \d+ s \(/ }
              split /\n/, $t->error_log;
my @first = grep { /\[error\] \Q$again\E#/ } @said;
ok(@first == 1, 'the worker that saved again said its first failure once');
like($counted[0] // '', qr/fanbase: \d+ more failed saves? of the state in the last \d+ s \((?:first )?"\S+nope\/fb\.state": \S+ "\S+nope\/[^"]+" failed \(\d+: [^)]+\)/,
     'and the ones that followed, counted, before the state was saved again')
    or diag(join "\n", grep { /\Q$again\E#/ } split /\n/, $t->error_log);

done_testing;
