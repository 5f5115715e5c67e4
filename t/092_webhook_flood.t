#!/usr/bin/perl

# fanbase_webhook against a sender that floods: signed updates that create
# transactions the edge never accepted (fanbase_webhook_create on), in a
# state that is not terminal, fill a small zone; the site's own
# submissions are still accepted afterwards (202, never 503 zone_full),
# because such records and their message ids give way to them, oldest
# first.  With fanbase_webhook_create off, the message ids alone no longer
# fill it either.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;

use JSON::PP;
use Time::HiRes qw(time sleep);

my $QUEUE = '/api/v1/integration/queue';
my @CT = ('Content-Type' => 'application/json');
my $HOOK_SECRET = webhook_secret();

my $SEQ = 0;

sub new_uuid {
    my @b = map { int rand 256 } 1 .. 16;
    $b[6] = ($b[6] & 0x0f) | 0x40;
    $b[8] = ($b[8] & 0x3f) | 0x80;
    return sprintf '%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-'
                 . '%02x%02x%02x%02x%02x%02x', @b;
}

# one signed webhook that names a transaction the edge does not know
sub create_hook {
    my ($t, $uuid, $status) = @_;
    my $body = encode_json({ id => $uuid, status => $status });
    return $t->request(POST => '/hooks/status',
        headers => [@CT, sign_webhook(secret => $HOOK_SECRET,
                                      id => sprintf('msg_flood_%d_%d', $$, ++$SEQ),
                                      body => $body)],
        body => $body);
}

sub submit {
    my ($t, $n) = @_;
    return $t->request(POST => $QUEUE, headers => [@CT],
        body => qq({"action":"ticket-create","data":{"flood":"$n"}}));
}


###########################################################################
# A 32k zone: 600 webhooks that create "processing" transactions (more
# than the zone can hold, message ids included), then submissions.

{
    my $t = FanbaseTest->new(
        mock   => undef,
        files  => { %{ edge_files() }, 'hook.secret' => "$HOOK_SECRET\n" },
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

    my $early = submit($t, 0);
    is($early->{status}, 202, 'flood: the records give way to a submission')
        or diag("$early->{status} $early->{body}");

    # more message ids than the zone holds: the oldest give way too
    for (1 .. 500) {
        my $uuid = new_uuid();
        my $res = create_hook($t, $uuid, 'processing');
        $codes{ $res->{status} }++;
        push @created, $uuid if $res->{status} == 204;
    }
    is(join(' ', map { "$_ x$codes{$_}" } sort keys %codes), '204 x600',
       'flood: every webhook applied (204), message ids included');

    my $newest = $t->request(GET => "/transactions/$created[-1]");
    is($newest->{status}, 200, 'flood: the newest created transaction is kept');
    is($newest->{json} && $newest->{json}{status}, 'processing',
       'flood: it is processing');
    is($t->request(GET => "/transactions/$created[0]")->{status}, 404,
       'flood: the oldest gave way');

    # the site's own submissions: accepted, now and a while later
    my $first = submit($t, 1);
    is($first->{status}, 202, 'after the flood: a submission is accepted')
        or diag("$first->{status} $first->{body}");
    sleep 1.1;
    my @more = map { submit($t, $_)->{status} } 2 .. 11;
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
    is(submit($t, 'ids')->{status}, 202,
       'message ids: a submission is accepted afterwards');

    $t->stop;
}

done_testing;
