#!/usr/bin/perl

# The journal (docs/transactions.md, "The journal"): every change of a
# transaction is appended to a file of the worker that made it, and a
# restart replays it on the state file.  With fanbase_state_sync on, a
# kill -9 of the master and every worker in the middle of a stream of
# asynchronous submissions loses no transaction that was answered 202;
# a transaction delivered before the kill comes back delivered (its newest
# version wins) and is not sent again; a journal whose last record was cut
# by the crash loads all the records before it; the files of older
# generations go once a snapshot holds them; a journal that cannot be
# written makes the 202 a 503 not_durable that names the transaction;
# nginx -t refuses fanbase_state_sync without a state file.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;

use Time::HiRes qw(time sleep);

my $STATE = '%%DIR%%/fanbase.state';

# an edge whose transactions are kept in STATE (and its journal); %o: the
# mock's settings, the state path, fanbase_state_sync, log_allow
sub journaled {
    my (%o) = @_;
    my $t = FanbaseTest->new(
        mock   => { clients => ['demo-client:demo-secret'], %{ $o{mock} || {} } },
        files  => edge_files(),
        http   => edge_http(state => $o{state} // $STATE,
                            extra => "fanbase_state_sync " . ($o{sync} // 'on') . ";\n"),
        server => "location = $QUEUE { fanbase_submit async; }\n"
                . "location /transactions/ { fanbase_transaction; }\n",
        log_allow => $o{log_allow} // qr/exited on signal 9/,
    );
    mkdir $t->dir . '/st';
    $t->start;
    return $t;
}

sub journals { my $t = shift; return glob($t->dir . '/fanbase.state.journal.*') }


###########################################################################
# kill -9 under a stream, fanbase_state_sync on: every 202 survives.

{
    my $t = journaled();
    $t->mock_faults({ queue_post => { status => 503 } });    # Fanbase down

    # four clients, each writing the id of every 202 the moment it has it
    my @streams = map {
        my $k = $_;
        $t->background(sub {
            open my $fh, '>>', $t->dir . "/acked.$k" or die;
            $fh->autoflush(1);
            my $n = 0;
            for (1 .. 100000) {
                my $res = $t->request(POST => $QUEUE, headers => [@CT],
                                      body => qq({"action":"ticket-create","data":{"c":$k,"n":$_}}),
                                      timeout => 5);
                last unless $res->{status} == 202;
                print $fh "$res->{json}{transaction_id}\n";
                $n++;
            }
            return $n;
        });
    } 1 .. 4;

    # let the stream run, then kill everything in the middle of it
    # an id and its newline: 37 bytes
    my $acked = sub { my $s = 0; $s += (-s $t->dir . "/acked.$_") // 0 for 1 .. 4; $s / 37 };
    ok($t->wait_for(sub { $acked->() > 300 }, timeout => 20), 'a stream of 202s');
    ok($t->kill9, 'kill -9 of the master and every worker');
    my $sent = 0;
    $sent += $_->() for @streams;

    my @acked = map { my $f = $t->dir . "/acked.$_";
                      open my $fh, '<', $f or die; map { chomp; $_ } <$fh> } 1 .. 4;
    cmp_ok(scalar @acked, '>=', 300, scalar(@acked) . ' submissions answered 202 before the kill');
    ok((journals($t))[0], 'journal files on disk');

    $t->start_nginx;
    $t->log_like(qr/records of the journal replayed/, 'the restart replays the journal');

    my @missing = grep { $t->get_tx($_)->{status} != 200 } @acked;
    is(scalar @missing, 0, 'after the restart every transaction answered 202 is there')
        or diag(scalar(@missing) . ' missing, e.g. ' . join ' ', @missing[0 .. 2]);
    $t->stop;
}


###########################################################################
# Delivered before the kill: back delivered (newest version), not resent.

{
    my $t = journaled(mock => { processing_after => 60, completed_after => 120 });

    my @ids = map { tx_id($t->submit(data => { delivered => $_ }, status => 202,
                                     name => "delivered $_: 202")) } 1 .. 3;
    ok(!grep({ !$t->wait_status($_, 'processing') } @ids), 'all three delivered');
    is(scalar @{ $t->queue_posts }, 3, 'three POSTs at Fanbase');

    ok($t->kill9, 'kill -9 of everything');
    $t->start_nginx;

    for my $id (@ids) {
        my $tx = $t->tx($id);
        is($tx && $tx->{status}, 'processing', "$id: still delivered after the restart");
    }
    sleep 1.5;
    is(scalar @{ $t->queue_posts }, 3, 'and none sent again');
    $t->stop;
}


###########################################################################
# A journal cut in the middle of its last record: the rest loads; the old
# generations are removed once a snapshot holds them.

{
    my $t = journaled(sync => 'off');

    my @ids = map { tx_id($t->submit(path => $QUEUE, data => { torn => $_ },
                                     status => 202, name => "torn $_: 202")) } 1 .. 5;
    sleep 0.5;    # the journal is written within a turn of the event loop
    ok($t->kill9, 'kill -9 of everything');

    # the state file may be older than the last submissions: remove it, so
    # that the journal alone brings them back
    unlink $t->dir . '/fanbase.state';
    my @files = journals($t);
    ok(@files, 'journal files');
    open my $fh, '>>', $files[-1] or die;
    print $fh '{"type":"transaction","id":"5d2c';    # cut by the crash
    close $fh;

    $t->start_nginx;
    is(scalar(grep { $t->get_tx($_)->{status} == 200 } @ids), 5,
       'all five back from the journal alone');
    $t->log_unlike(qr/\[warn\].*journal/, 'a torn last record is no warning');

    # a snapshot moves the generation on and removes the older files
    my @before = journals($t);
    $t->submit(path => $QUEUE, status => 202, name => 'one more: 202');
    my $gone = $t->wait_for(sub { !grep { -e $_ } @before }, timeout => 5);
    ok($gone, 'the journal files of older generations are removed after a snapshot')
        or diag(join ' ', grep { -e $_ } @before);
    $t->stop_nginx;

    # a graceful stop: the master's snapshot holds everything
    my @left = journals($t);
    is(scalar @left, 0, 'after a graceful stop no journal is left');
    $t->start_nginx;
    is(scalar(grep { $t->get_tx($_)->{status} == 200 } @ids), 5, 'restarted: all five');
    $t->stop;
}


###########################################################################
# A journal that cannot be written: 503 not_durable, naming the transaction.

{
    my $t = journaled(state => '%%DIR%%/st/fanbase.state',
                      log_allow => qr/cannot (?:write the journal|save the state)/);
    $t->mock_faults({ queue_post => { status => 503 } });
    $t->submit(path => $QUEUE, status => 202, name => 'on disk: 202');

    system('rm', '-rf', $t->dir . '/st');
    my $res;
    $t->wait_for(sub {
        $res = $t->submit(path => $QUEUE);
        $res->{status} == 503;
    }, timeout => 10, interval => 0.2);
    error_ok($res, 503, 'not_durable', 'the journal cannot be written');
    like($res->{headers}{location} // '', qr{^/transactions/[0-9a-f-]{36}$},
         'not_durable: Location names the transaction');
    my ($id) = ($res->{headers}{location} // '') =~ m{/transactions/(\S+)};
    is($t->get_tx($id // 'none')->{status}, 200, 'not_durable: the transaction is kept');
    $t->log_like(qr/\[error\] .*cannot write the journal/, 'the error log says why');
    mkdir $t->dir . '/st';
    $t->stop;
}


###########################################################################
# nginx -t

{
    my ($ok, $out) = FanbaseTest->nginx_t(
        http   => "fanbase_zone zone=fb:1m;\nfanbase_state_sync on;\n",
        server => "location / { return 200; }\n",
    );
    ok(!$ok, 'fanbase_state_sync on without state=: nginx -t fails');
    like($out, qr/"fanbase_state_sync on" requires "state=" in "fanbase_zone"/,
         '... and says why');
}

done_testing;
