#!/usr/bin/perl

# The $fanbase_* variables in an access log: the transaction id of an
# asynchronous submission and of a transaction read; Fanbase's queue id of
# a synchronous submission and of a status read; the JSON error code
# answered (ours, and nginx's own errors turned JSON); where a status
# answer came from (HIT, MISS); the status and time of each call to Fanbase
# (two after a token rejection); "-" where the module did nothing.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;

use Time::HiRes qw(sleep);

my $t = FanbaseTest->new(
    mock   => { clients => ['demo-client:demo-secret'] },
    files  => edge_files(),
    http   => edge_http(timeout => '5s') . <<'CONF',
log_format fbvars '$request_method $request_uri $status '
                  'txn=$fanbase_transaction_id qid=$fanbase_queue_id '
                  'err=$fanbase_error cache=$fanbase_cache '
                  'ups=[$fanbase_upstream_status] t=[$fanbase_upstream_time]';
CONF
    server => <<"CONF",
access_log %%DIR%%/vars.log fbvars;
location = $QUEUE { fanbase_submit; }
location $QUEUE/ { fanbase_status; }
location = /async$QUEUE {
    fanbase_transaction_path /transactions;
    fanbase_submit async;
}
location = /small$QUEUE { client_max_body_size 10; fanbase_submit; }
location /transactions/ { fanbase_transaction; }
location = /plain { return 204; }
CONF
);
$t->start;

# the log line of the request to $uri (the last one)
# the last line for METHOD URI (holding WITH, when given: the log line of
# a request is written after its answer reached the client)
sub line_for {
    my ($method, $uri, $with) = @_;
    my $line;
    $t->wait_for(sub {
        open my $fh, '<', $t->dir . '/vars.log' or return;
        ($line) = reverse grep { /^\Q$method $uri \E/ } <$fh>;
        return $line && (!defined $with || index($line, $with) >= 0);
    }, timeout => 3);
    chomp $line if defined $line;
    return $line // '';
}

# an asynchronous submission: its transaction id
my $res = $t->submit(path => "/async$QUEUE", status => 202,
                     name => 'async submission: 202');
my $txn = tx_id($res);
like(line_for(POST => "/async$QUEUE"),
     qr/ 202 txn=\Q$txn\E qid=- err=- cache=- ups=\[-\] t=\[-\]$/,
     'async submission: $fanbase_transaction_id, nothing else');

# the transaction read back
$t->request(GET => "/transactions/$txn");
like(line_for(GET => "/transactions/$txn"),
     qr/ 200 txn=\Q$txn\E qid=- err=- /,
     'transaction read: $fanbase_transaction_id');

# a synchronous submission: Fanbase's queue id, its status and time
$res = $t->submit(status => 201, name => 'submission: 201');
my $qid = $res->{json}{id} // 'none';
like(line_for(POST => $QUEUE),
     qr/ 201 txn=- qid=\Q$qid\E err=- cache=- ups=\[201\] t=\[\d+\.\d{3}\]$/,
     'submission: $fanbase_queue_id, upstream status 201 and its time');

# its status, answered from the zone
$t->request(GET => "$QUEUE/$qid");
like(line_for(GET => "$QUEUE/$qid"),
     qr/ 200 txn=- qid=\Q$qid\E err=- cache=HIT ups=\[-\] t=\[-\]$/,
     'status from the zone: cache=HIT, no call');

# an id the zone does not know: read through to Fanbase, which says 404
my $unknown = new_uuid();
$t->request(GET => "$QUEUE/$unknown");
like(line_for(GET => "$QUEUE/$unknown"),
     qr/ 404 txn=- qid=\Q$unknown\E err=not_found cache=- ups=\[404\] t=\[\d+\.\d{3}\]$/,
     'status read through: Fanbase\'s 404, err=not_found');

# a token rejected by Fanbase: two calls
$t->mock_expire_tokens;
$res = $t->submit(status => 201, name => 'submission after a token rejection: 201');
like(line_for(POST => $QUEUE, "qid=" . ($res->{json}{id} // 'none') . " "),
     qr/ 201 txn=- qid=\S+ err=- cache=- ups=\[401, 201\] t=\[\d+\.\d{3}, \d+\.\d{3}\]$/,
     'token rejected, then taken: ups=[401, 201], two times');

# our errors, and nginx's own turned JSON
$t->request(POST => $QUEUE, body => '{"action":',
            headers => ['Content-Type' => 'application/json']);
like(line_for(POST => $QUEUE, " 400 "), qr/ 400 txn=- qid=- err=invalid_json /,
     'malformed JSON: err=invalid_json');

$t->request(PUT => $QUEUE, body => '{}',
            headers => ['Content-Type' => 'application/json']);
like(line_for(PUT => $QUEUE), qr/ 405 txn=- qid=- err=method_not_allowed /,
     'wrong method: err=method_not_allowed');

$t->request(POST => "/small$QUEUE", body => '{"action":"ticket-create","data":{}}',
            headers => ['Content-Type' => 'application/json']);
like(line_for(POST => "/small$QUEUE"), qr/ 413 txn=- qid=- err=body_too_large /,
     'a body over client_max_body_size (nginx\'s own 413): err=body_too_large');

# elsewhere: nothing
$t->request(GET => '/plain');
like(line_for(GET => '/plain'),
     qr/ 204 txn=- qid=- err=- cache=- ups=\[-\] t=\[-\]$/,
     'a location without the module: every variable "-"');

done_testing;
