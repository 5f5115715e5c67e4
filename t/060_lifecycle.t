#!/usr/bin/perl

# Transfers and waiting requests across client aborts, reloads and
# shutdown: nothing stuck, nothing lost, nothing crashes.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;

use POSIX qw(_exit);
use Time::HiRes qw(time sleep);

my %conf = (
    error_log_level => 'debug',
    mock  => { clients => ['demo-client:demo-secret'],
               processing_after => 30, completed_after => 60 },
    files => edge_files(),
    http  => edge_http(timeout => '5s', extra => "fanbase_status_refresh 0;\n"),
    server => <<"CONF",
location = $QUEUE { fanbase_submit; }
location $QUEUE/ { fanbase_status; }
CONF
);

my @json = (headers => [@CT],
            body => '{"action":"ticket-create","data":{"seat":"A1"}}');

my $t = FanbaseTest->new(%conf);
$t->start;

# warm the token so that only the submission itself is in flight below
is $t->request(POST => $QUEUE, @json)->{status}, 201,
    'warm-up submission';


# a client that goes away cancels its call: nginx's upstream drops the
# connection to Fanbase long before Fanbase would have answered

$t->mock_faults({ queue_post => { delay_ms => 3000, count => 1 } });

my $res = $t->request(POST => $QUEUE, @json,
                      timeout => 0.5);
is $res->{status}, 0, 'client gave up after 0.5 s';

ok $t->wait_for(sub { $t->error_log =~ /client prematurely closed connection, so upstream connection is closed too/ },
                timeout => 2),
    'the transfer to Fanbase was cancelled when the client went away';
ok $t->wait_for(sub {
        open my $fh, '<', $t->dir . '/access.log' or return 0;
        local $/;
        return <$fh> =~ /" 499 /;
    }, timeout => 2),
    'the request was logged as closed by the client (499)';

is $t->request(POST => $QUEUE, @json)->{status}, 201,
    'the edge serves the next submission';


# a reload while a submission is in flight: the old worker finishes it and
# answers the client before it leaves

sub in_background {
    my ($code) = @_;
    my $file = $t->dir . "/bg.$$." . int(rand(1e9));
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my $r = $code->();
        open my $fh, '>', $file or _exit(1);
        print $fh "$r->{status}\n$r->{body}";
        close $fh;
        _exit(0);
    }
    return sub {
        waitpid $pid, 0;
        open my $fh, '<', $file or return (0, '');
        local $/;
        my ($status, $body) = split /\n/, <$fh>, 2;
        return ($status, $body);
    };
}

$t->mock_faults({ queue_post => { delay_ms => 1500, count => 1 } });

my $wait = in_background(sub {
    $t->request(POST => $QUEUE, @json, timeout => 10)
});

sleep 0.4;
my $start = time;
ok $t->reload, 'reload while a submission is in flight';

my ($status, $body) = $wait->();
is $status, 201, 'the in-flight submission was answered 201 across the reload';
like $body, qr/"processStatus":"pending"/, 'with Fanbase\'s body';
cmp_ok time - $start, '>=', 0.8,
    'the old worker stayed until its transfer ended';

# warm-up, the cancelled one (it had reached Fanbase), the next one, the
# one across the reload
is $t->mock_stats->{queue_posts}, 4, 'each submission reached Fanbase once';


# a reload while status requests wait for a read-through

my $id = $t->request(POST => $QUEUE, @json)->{json}{id};
ok $id, 'submission for the status test';

$t->mock_faults({ queue_get => { delay_ms => 1500, count => 1 } });

my @waits = map {
    in_background(sub {
        $t->request(GET => "$QUEUE/$id", timeout => 10)
    })
} 1 .. 3;

sleep 0.4;
ok $t->reload, 'reload while status requests wait';

for my $w (@waits) {
    my ($s, $b) = $w->();
    is $s, 200, 'waiting status request answered across the reload';
    like $b, qr/"id":"\Q$id\E"/, 'with the transaction';
}


# tokens and transactions survive a reload (same zone name and size)

my $tokens = $t->mock_stats->{token_requests};
is $t->request(POST => $QUEUE, @json)->{status}, 201,
    'submission after the reloads';
is $t->mock_stats->{token_requests}, $tokens,
    'the token survived the reloads in the zone';

my $r = $t->request(GET => "$QUEUE/$id");
is $r->{status}, 200, 'the transaction survived the reloads';


# graceful stop with a submission in flight: the client still gets its
# answer (the harness checks that nginx stopped gracefully)

$t->mock_faults({ queue_post => { delay_ms => 1000, count => 1 } });

$wait = in_background(sub {
    $t->request(POST => $QUEUE, @json, timeout => 10)
});

sleep 0.3;
$t->stop;

($status) = $wait->();
is $status, 201, 'a submission in flight at shutdown was answered';

done_testing;
