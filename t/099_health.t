#!/usr/bin/perl

# fanbase_health: 200 "ok" with a token that can be had and the time of
# Fanbase's last answer; "degraded" (still 200) while a route's breaker is
# open, with what waits behind it; 503 "unavailable" when no token can be
# had (the token endpoint's last error, never a secret or a token) and when
# the zone refused the last new transaction; the engine, the zone (the
# shared engine's health: t/127); 405 for other methods.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;

use JSON::PP;

my $SECRET = 'health-S3cret-7yQ-do-not-log';

my $t = FanbaseTest->new(
    mock   => { clients => ["demo-client:$SECRET"] },
    files  => { secret => "$SECRET\n" },
    http   => edge_http(timeout => '3s'),
    server => <<"CONF",
location = /health { fanbase_health; }
location = $QUEUE { fanbase_submit; }
location = /dead$QUEUE {
    fanbase_api %%DEAD%%;
    fanbase_transaction_path /dead/transactions;
    fanbase_submit async;
}
CONF
);
$t->start;

sub health {
    my $res = $t->request(GET => '/health');
    return ($res, $res->{json} || {});
}

# on the shared engine, 503 until the workers' connections are up
if (($ENV{TEST_FANBASE_ENGINE} // '') eq 'redis') {
    ok($t->wait_for(sub { (health())[1]{engine}{connected} }, timeout => 5),
       'the engine connected (TEST_FANBASE_ENGINE)');
}

my ($res, $h) = health();
is($res->{status}, 200, 'fresh: 200');
is($h->{status}, 'ok', 'fresh: ok');
is($res->{headers}{'cache-control'}, 'no-store', 'never cached on the way');
is(scalar @{ $h->{credentials} || [] }, 1, 'one credential set');
is($h->{credentials}[0]{token}, 'none', 'no token fetched yet');
like($h->{credentials}[0]{name}, qr/demo-client/, 'named by its client id');
is($h->{zone}{name}, 'fb', 'the zone by name');
cmp_ok($h->{zone}{used_bytes}, '>', 0, 'the zone used');
cmp_ok($h->{zone}{used_bytes}, '<=', $h->{zone}{size_bytes}, '... within its size');
is($h->{fanbase_last_answer}, undef, 'Fanbase never answered yet');
if (($ENV{TEST_FANBASE_ENGINE} // '') eq 'redis') {
    is($h->{engine}{name}, 'redis', 'the engine: redis (TEST_FANBASE_ENGINE)');
} else {
    is_deeply($h->{engine}, { name => 'zone', connected => JSON::PP::true,
                             fallback => JSON::PP::false },
              'the engine: the zone, always there');
}

$t->submit(status => 201, name => 'a submission: 201');
($res, $h) = health();
is($h->{credentials}[0]{token}, 'valid', 'after it: the token valid');
cmp_ok($h->{credentials}[0]{expires_in_s}, '>', 3000, '... for about an hour');
like($h->{fanbase_last_answer} // '', $ISO_MS, 'the time of Fanbase\'s last answer');

# Fanbase's queue where nothing listens: the route's breaker opens
my $s = $t->submit(path => "/dead$QUEUE", status => 202, name => 'async to a dead Fanbase: 202');
ok($t->wait_for(sub { (health())[1]{status} eq 'degraded' }, timeout => 5),
   'a breaker open: degraded');
($res, $h) = health();
is($res->{status}, 200, 'degraded is still 200: the edge accepts');
is(scalar @{ $h->{breakers} }, 1, 'one breaker');
cmp_ok($h->{breakers}[0]{failures}, '>=', 1, 'with its failures');
cmp_ok($h->{transactions}, '>=', 1, 'the transactions counted');

# the token endpoint fails: no token can be had
$t->mock_faults({ token => { status => 503 } });
$t->mock_expire_tokens;
$t->submit(status => 503, name => 'the token refused at Fanbase, none to be had: 503');
ok($t->wait_for(sub { (health())[0]{status} == 503 }, timeout => 5),
   'no token can be had: 503');
($res, $h) = health();
is($h->{status}, 'unavailable', 'unavailable');
is($h->{credentials}[0]{token}, 'failing', 'the token failing');
like($h->{credentials}[0]{last_error} // '', qr/answered 503/, 'with the last error');
cmp_ok($h->{credentials}[0]{retry_in_ms}, '>', 0, 'and the backoff left');
unlike($res->{body}, qr/\Q$SECRET\E/, 'no secret in the answer');
$t->mock_faults({ token => undef });

$res = $t->request(POST => '/health', body => '{}');
is($res->{status}, 405, 'POST: 405');
is($res->{json}{error}{code}, 'method_not_allowed', '... a JSON error');

$t->stop;

# a zone full of transactions that wait: 503, "full"
my $f = FanbaseTest->new(
    mock   => { clients => ['demo-client:demo-secret'] },
    files  => edge_files(),
    http   => edge_http(zone => '32k'),
    server => <<"CONF",
location = /health { fanbase_health; }
location = /dead$QUEUE {
    fanbase_api %%DEAD%%;
    fanbase_transaction_path /dead/transactions;
    fanbase_submit async;
}
CONF
    log_allow => qr/is full of transactions/,
);
$f->start;
my $full;
for (1 .. 200) {
    my $r = $f->submit(path => "/dead$QUEUE");
    if ($r->{status} == 503) { $full = 1; last }
}
ok($full, 'a 32k zone fills up: 503 zone_full');
my $fr = $f->request(GET => '/health');
is($fr->{status}, 503, 'health of a full zone: 503');
is($fr->{json}{zone}{full}, JSON::PP::true, '"full": true');

done_testing;
