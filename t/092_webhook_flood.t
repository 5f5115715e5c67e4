#!/usr/bin/perl

# fanbase_webhook against a sender that floods: signed updates that create
# transactions the edge never accepted (fanbase_webhook_create on), in a
# state that is not terminal, fill a small zone; the site's own
# submissions are still accepted afterwards (202, never 503 zone_full),
# because such records and their message ids give way to them, oldest
# first.  With fanbase_webhook_create off, the message ids alone no longer
# fill it either.  Webhooks that their headers already refuse cost no body
# read and no HMAC.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;

use JSON::PP;
use Time::HiRes qw(time sleep);

my $HOOK_SECRET = webhook_secret();

# one signed webhook that names a transaction the edge does not know
sub create_hook {
    my ($t, $uuid, $status) = @_;
    return $t->hook('/hooks/status', { id => $uuid, status => $status });
}

# A submission, tried up to 3 times as a client honouring 503 would (at
# once here): the zone's slab allocator keeps pages per size class, and the
# records that give way free chunks of other sizes than a submission needs
# until whole pages come free; each try evicts more.  On 1de4586 every try
# was 503, for good.
sub submit_tries {
    my ($t, $n) = @_;
    my $res;
    for my $try (1 .. 3) {
        $res = $t->submit(data => { flood => "$n.$try" });
        return ($res, $try) if $res->{status} == 202;
    }
    return ($res, 3);
}


###########################################################################
# A 32k zone: 600 webhooks that create "processing" transactions (more
# than the zone can hold, message ids included), then submissions.

{
    my $t = FanbaseTest->new(
        mock   => undef,
        files  => { %{ edge_files() }, 'hook.secret' => "$HOOK_SECRET\n" },
        hook_secret => $HOOK_SECRET,
        http   => edge_http(zone => '32k', timeout => '2s'),
        server => <<"CONF",
location = $QUEUE { fanbase_api %%DEAD%%; fanbase_submit async; }
location /transactions/ { fanbase_transaction; }
location = /hooks/status {
    fanbase_webhook;
    fanbase_webhook_secret_file %%DIR%%/hook.secret;
}
CONF
    );
    $t->start;

    # more records than the zone holds: they give way to each other
    my (@created, %codes);
    for (1 .. 100) {
        my $uuid = new_uuid();
        my $res = create_hook($t, $uuid, 'processing');
        $codes{ $res->{status} }++;
        push @created, $uuid if $res->{status} == 204;
    }
    is(join(' ', map { "$_ x$codes{$_}" } sort keys %codes), '204 x100',
       'flood: every webhook applied (204)');

    my ($early, $tries) = submit_tries($t, 0);
    is($early->{status}, 202, 'flood: the records give way to a submission')
        or diag("$early->{status} $early->{body}");
    diag("accepted at try $tries") if $early->{status} == 202 && $tries > 1;

    # more message ids than the zone holds: the oldest give way too
    for (1 .. 500) {
        my $uuid = new_uuid();
        my $res = create_hook($t, $uuid, 'processing');
        $codes{ $res->{status} }++;
        push @created, $uuid if $res->{status} == 204;
    }
    is(join(' ', map { "$_ x$codes{$_}" } sort keys %codes), '204 x600',
       'flood: every webhook applied (204), message ids included');

    # a long poll on a record that gives way: answered 404 when it goes,
    # not at the end of its wait
    my $polled = $created[-1];
    my $poll = $t->background(sub {
        my $res = $t->request(GET => "/transactions/$polled?wait=20",
                              timeout => 30);
        return ($res->{status}, $res->{time});
    });
    sleep 0.3;
    for (1 .. 40) {
        my $uuid = new_uuid();
        my $res = create_hook($t, $uuid, 'processing');
        $codes{ $res->{status} }++;
        push @created, $uuid if $res->{status} == 204;
    }
    my ($poll_status, $poll_time) = $poll->();
    is($poll_status, 404, 'flood: a long poll on a record that gave way: 404');
    cmp_ok($poll_time, '<', 10, 'flood: answered when it went, not at the end');

    my $newest = $t->request(GET => "/transactions/$created[-1]");
    is($newest->{status}, 200, 'flood: the newest created transaction is kept');
    is($newest->{json} && $newest->{json}{status}, 'processing',
       'flood: it is processing');
    is($t->request(GET => "/transactions/$created[0]")->{status}, 404,
       'flood: the oldest gave way');

    # the site's own submissions: accepted, now and a while later
    my ($first, $ftries) = submit_tries($t, 1);
    is($first->{status}, 202, 'after the flood: a submission is accepted')
        or diag("$first->{status} $first->{body}");
    diag("accepted at try $ftries") if $first->{status} == 202 && $ftries > 1;
    sleep 1.1;
    my @more = map { $t->submit(data => { flood => "$_" })->{status} } 2 .. 11;
    is(join(' ', @more), join(' ', ('202') x 10),
       'after the flood: ten more are accepted a second later');

    # and they are kept: what the zone gives up is the webhooks' records
    my $id = $first->{json} && $first->{json}{transaction_id} // 'none';
    my $tx = $t->request(GET => "/transactions/$id");
    is($tx->{status}, 200, 'after the flood: the accepted one is readable');
    is($tx->{json} && $tx->{json}{status}, 'pending',
       'after the flood: and pending');

    $t->stop;
}


###########################################################################
# fanbase_webhook_create off: updates for unknown ids create nothing, but
# each message id is remembered for fanbase_webhook_dedup (3 days); a
# thousand of them no longer fill a 32k zone.

{
    my $t = FanbaseTest->new(
        mock   => undef,
        files  => { %{ edge_files() }, 'hook.secret' => "$HOOK_SECRET\n" },
        hook_secret => $HOOK_SECRET,
        http   => edge_http(zone => '32k', timeout => '2s'),
        server => <<"CONF",
location = $QUEUE { fanbase_api %%DEAD%%; fanbase_submit async; }
location = /hooks/status {
    fanbase_webhook;
    fanbase_webhook_create off;
    fanbase_webhook_secret_file %%DIR%%/hook.secret;
}
CONF
    );
    $t->start;

    my %codes;
    $codes{ create_hook($t, "unknown-$_", 'processing')->{status} }++
        for 1 .. 1000;
    is(join(' ', map { "$_ x$codes{$_}" } sort keys %codes), '204 x1000',
       'message ids: a thousand unknown updates answered 204');
    is($t->submit(data => { flood => 'ids' })->{status}, 202,
       'message ids: a submission is accepted afterwards');

    $t->stop;
}


###########################################################################
# Refused on the headers alone: no signature, a timestamp out of the
# tolerance, a signature that is not "v1,<base64>" (or, for the hmac
# scheme, not hex) are answered 401 without the body being read, let alone
# an HMAC computed over it.  A body of 1 MB would be buffered to a
# temporary file: nginx says so at [warn], and says it here only for the
# well-formed (but wrong) signature, whose body must be read to be checked.

{
    my $t = FanbaseTest->new(
        mock   => undef,
        files  => { %{ edge_files() }, 'hook.secret' => "$HOOK_SECRET\n",
                    'hmac.secret' => "hmac-secret\n" },
        http   => edge_http(),
        server => <<"CONF",
client_max_body_size 2m;
client_body_buffer_size 16k;
location = /hooks/status {
    fanbase_webhook;
    fanbase_webhook_secret_file %%DIR%%/hook.secret;
}
location = /hooks/hmac {
    fanbase_webhook;
    fanbase_webhook_auth hmac X-Signature hex;
    fanbase_webhook_secret_file %%DIR%%/hmac.secret;
}
CONF
    );
    $t->start;

    my $big = '{"id":"x","status":"processing","pad":"' . ('x' x (1024 * 1024))
            . '"}';
    my $wrong = 'v1,' . ('A' x 43) . '=';
    my $buffered = qr/client request body is buffered to a temporary file/;

    my @early = (
        ['no signature headers', '/hooks/status', []],
        ['a timestamp an hour old', '/hooks/status',
         ['webhook-id' => 'msg_early_1', 'webhook-timestamp' => int(time) - 3600,
          'webhook-signature' => $wrong]],
        ['a signature that is not v1,<base64>', '/hooks/status',
         ['webhook-id' => 'msg_early_2', 'webhook-timestamp' => int time,
          'webhook-signature' => 'v1,not*base64 v2,' . ('A' x 43) . '=']],
        ['hmac: a signature that is not hex', '/hooks/hmac',
         ['X-Signature' => 'sha256=' . ('z' x 64)]],
    );

    for my $case (@early) {
        my ($name, $path, $headers) = @$case;
        my $mark = length $t->error_log;
        my $res = $t->request(POST => $path, headers => [@CT, @$headers],
                              body => $big);
        is($res->{status}, 401, "early refusal, $name: 401");
        is($res->{json} && $res->{json}{error}{code}, 'unauthorized',
           "early refusal, $name: unauthorized");
        my $log = substr $t->error_log, $mark;
        unlike($log, $buffered, "early refusal, $name: the body was not read");
        like($log, qr/\[warn\].*webhook refused/,
             "early refusal, $name: one [warn] line says why");
    }

    my $mark = length $t->error_log;
    my $res = $t->request(POST => '/hooks/status', body => $big,
        headers => [@CT, 'webhook-id' => 'msg_late', 'webhook-timestamp' => int time,
                    'webhook-signature' => $wrong]);
    is($res->{status}, 401, 'a well-formed wrong signature: 401');
    like(substr($t->error_log, $mark), $buffered,
         'a well-formed wrong signature: its body is read (to be checked)');

    $t->stop;
}


###########################################################################
# Queue items (Fanbase's shape, ids that are not the edge's) that webhooks
# make, in a state that is not terminal: a cache of what Fanbase holds, so
# they give way in a full zone; the site's synchronous submissions are
# still answered 201, and the flood's own later webhooks are applied.

{
    my $t = FanbaseTest->new(
        mock   => { clients => ['demo-client:demo-secret'] },
        files  => { %{ edge_files() }, 'hook.secret' => "$HOOK_SECRET\n" },
        hook_secret => $HOOK_SECRET,
        http   => edge_http(zone => '32k', timeout => '2s'),
        server => "location = $QUEUE { fanbase_submit; }\n"
                . "location $QUEUE/ { fanbase_status; }\n"
                . "location = /hooks/status { fanbase_webhook; "
                . "fanbase_webhook_secret_file %%DIR%%/hook.secret; }\n",
    );
    $t->start;

    my %codes;
    for my $i (1 .. 200) {
        my $res = $t->hook('/hooks/status',
                           { id => "flood-item-$i", processStatus => 'processing' },
                           id => "msg_items_$$\_$i");
        $codes{ $res->{status} }++;
    }
    is($codes{204} // 0, 200, 'queue items by webhook: all 200 applied in a 32k zone')
        or diag(join ' ', map { "$_ x$codes{$_}" } sort keys %codes);

    my @sync = map { $t->submit(data => { sync => "$_" })->{status} } 1 .. 3;
    is_deeply(\@sync, [201, 201, 201], 'then synchronous submissions: 201 each');

    # the site's own queue item is kept, answered from the zone
    my $own = $t->submit(data => { sync => 'own' });
    my $qid = $own->{json} && $own->{json}{id};
    for my $i (201 .. 300) {
        $t->hook('/hooks/status',
                 { id => "flood-item-$i", processStatus => 'processing' },
                 id => "msg_items_$$\_$i");
    }
    my $gets = scalar grep { $_->{method} eq 'GET' } @{ $t->mock_requests };
    my $st = $t->request(GET => "$QUEUE/$qid");
    is($st->{status}, 200, 'the site\'s own item after the flood: 200');
    is(scalar(grep { $_->{method} eq 'GET' } @{ $t->mock_requests }), $gets,
       'answered from the zone: it was kept');
    $t->stop;
}

done_testing;
