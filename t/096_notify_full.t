#!/usr/bin/perl

# fanbase_notify with a full zone: a status change's notice needs room,
# which is made by evicting terminal transactions; the transaction that
# just changed is not one of them yet.  Before, a DELETE of a pending
# transaction in a full zone could evict that very transaction to make
# room for its own "cancelled" notice, render the notice from the freed
# record, and answer 404.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;

use JSON::PP;


my $t = FanbaseTest->new(
    mock   => { clients => ['demo-client:demo-secret'] },
    files  => { %{ edge_files() }, 'notify.secret' => webhook_secret() . "\n" },
    http   => edge_http(zone => '32k', timeout => '2s', extra => <<'CONF'),
fanbase_notify %%MOCK%%/_site/hook;
fanbase_notify_secret_file %%DIR%%/notify.secret;
CONF
    server => "location = $QUEUE { fanbase_token_url %%DEAD%%/api/token; fanbase_submit async; }\n"
            . "location /transactions/ { fanbase_transaction; }\n",
);
$t->start;

# the site refuses every notice: they stay in the zone
$t->mock_site({ status => 500 });

# fill the zone with pending transactions (Fanbase unreachable)
my @ids;
for my $i (1 .. 500) {
    my $body = '{"action":"ticket-create","data":{"n":' . $i . ',"pad":"'
             . ('x' x 200) . '"}}';
    my $res = $t->request(POST => $QUEUE, headers => [@CT], body => $body);
    last if $res->{status} != 202;
    push @ids, $res->{json}{transaction_id};
}
cmp_ok(scalar @ids, '>', 4, 'the zone took some transactions before it was full');

# cancel them all: each one answered 200 and readable as cancelled
my (@deleted, @bad);
for my $id (@ids) {
    my $del = $t->request(DELETE => "/transactions/$id");
    my $get = $t->request(GET => "/transactions/$id");
    my $status = $get->{json} ? $get->{json}{status} // '' : '';
    if ($del->{status} == 200 && $get->{status} == 200 && $status eq 'cancelled') {
        push @deleted, $id;
    } else {
        push @bad, "$id: DELETE $del->{status}, GET $get->{status} $status";
    }
}
is(scalar @bad, 0, 'full zone: every DELETE 200, every transaction then cancelled')
    or diag(join "\n", @bad);

# what the site was told is about those transactions, as they are
my %deleted = map { $_ => 1 } @deleted;
ok($t->wait_for(sub { @{ $t->mock_site_requests } > 0 }, timeout => 5),
   'full zone: notices reach the site');
my @odd = grep { !($_->{id} && $deleted{ $_->{id} } && ($_->{status} // '') eq 'cancelled') }
          map { eval { decode_json($_->{body}) } || { id => undef } }
          @{ $t->mock_site_requests };
is(scalar @odd, 0, 'full zone: every notice names a cancelled transaction')
    or diag(explain(\@odd));

$t->stop;

done_testing;
