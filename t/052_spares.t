#!/usr/bin/perl

# A worker keeps a few reservations of the zone for its next submissions
# (ngx_http_fanbase_item.c): a submission takes one without the zone's
# lock.  They must go back to the zone when the worker exits, or every
# reload would leave some behind.  Fanbase here answers every submission
# with the same id, so that the transactions take no new room: the zone's
# use after many reloads is what it was after the first.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;

use JSON::PP;

my $ID = '5b1c3f7e-8a2d-4e6f-9b0c-1d2e3f4a5b6c';
my $CREATED = encode_json({
    id => $ID, created => '2026-01-01T00:00:00Z', iCode => 0,
    iMsg => 'Objeto criado com sucesso', processDate => undef,
    processStatus => 'pending', processMsg => undef });

my $t = FanbaseTest->new(
    error_log_level => 'debug',
    mock  => { clients => ['demo-client:demo-secret'] },
    files => edge_files(),
    http  => edge_http(zone => '1m'),
    server => <<"CONF",
location = $QUEUE { fanbase_submit; }
location $QUEUE/ { fanbase_status; }
location = /health { fanbase_health; }
CONF
);
$t->start;

my @SUBMIT = (headers => [@CT],
              body => '{"action":"ticket-create","data":{"seat":"A1"}}');

# every submission answered 201 with the same id, 200 ms late, so that
# a round's submissions are in flight at once and each holds a reservation
$t->mock_faults({ queue_post => { status => 201, body => $CREATED,
                                  content_type => 'application/json',
                                  delay_ms => 200 } });

sub used { $t->request(GET => '/health')->{json}{zone}{used_bytes} }

# 24 at once, twice: both workers end up with spares (at most 8 each)
sub round {
    my $label = shift;
    for (1 .. 2) {
        my @res = $t->parallel(24, POST => $QUEUE, @SUBMIT);
        my @bad = grep { $_->{status} != 201 } @res;
        is scalar(@bad), 0, "$label: 24 simultaneous submissions, all 201"
            or diag(join "\n", map { "$_->{status} $_->{body}" } @bad[0 .. 2]);
    }
}

round('first');
my $used = used();
ok $used, "the zone's use after the first round: $used bytes";

my $r = $t->request(GET => "$QUEUE/$ID");
is $r->{status}, 200, 'the transaction is answered from the zone';
like $r->{body}, qr/"processStatus":"pending"/, 'as Fanbase created it';

for my $i (1 .. 6) {
    ok $t->reload, "reload $i";
    round("after reload $i");
}

# The last workers hold their own spares, as the first ones did: as many
# as their submissions had in flight at once, 24 to 48 chunks of 256 bytes
# between the two, up to two pages more or less than the first ones.
# Workers that left without giving theirs back would leave that much
# behind at every reload: six reloads, 9 pages or more.
my $after = used();
cmp_ok $after, '<=', $used + 2 * 4096,
    "after six reloads the zone holds $after bytes, at most two pages more "
    . 'than after the first round: the workers that left gave their spare '
    . 'reservations back';

like $t->error_log, qr/fanbase: \d+ spare reservations? given back to the zone/,
    'the workers that exited logged what they gave back (debug)';

unlike $t->error_log, qr/zone "fb" is full/, 'the zone was never full';

done_testing;
