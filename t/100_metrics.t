#!/usr/bin/perl

# fanbase_metrics: Prometheus' text format 0.0.4, read with the reference
# parser (python3-prometheus-client's text_string_to_metric_families),
# host-wide (two workers, every request on its own connection), and the
# counts are those of what the test did: submissions by mode and answer
# code, token fetches by credential set and result with the token's
# expiry, the duration histogram by kind of call, deliveries, inbound
# webhooks by result, outbound notifications, transactions by status, the
# zone's size and use, backlogs, breakers, long polls.  No secret in it;
# 405 for other methods; nginx -t refuses it without fanbase_zone.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;

use FanbaseMetrics;
use JSON::PP;

my $SECRET = 'metrics-S3cret-Zq9-do-not-log';
my $HOOK_SECRET = webhook_secret();

my $t = FanbaseTest->new(
    mock   => { clients => ["demo-client:$SECRET"],
                processing_after => 60, completed_after => 120 },
    files  => { secret => "$SECRET\n", 'hook.secret' => "$HOOK_SECRET\n",
                'notify.secret' => webhook_secret() . "\n" },
    http   => edge_http(timeout => '3s',
                        extra => "fanbase_notify %%MOCK%%/_site/hook;\n"
                               . "fanbase_notify_secret_file %%DIR%%/notify.secret;\n"),
    server => <<"CONF",
location = /metrics { fanbase_metrics; }
location = $QUEUE { fanbase_submit; }
location $QUEUE/ { fanbase_status; }
location = /async$QUEUE {
    fanbase_transaction_path /transactions;
    fanbase_submit async;
}
location = /dead$QUEUE {
    fanbase_api %%DEAD%%;
    fanbase_transaction_path /dead/transactions;
    fanbase_submit async;
}
location /transactions/ { fanbase_transaction; }
location = /hooks/status {
    fanbase_webhook;
    fanbase_webhook_secret_file %%DIR%%/hook.secret;
}
CONF
    hook_secret => $HOOK_SECRET,
);
$t->start;

# before anything: the families are there, zero
my ($res, $m, $samples, $errors) = scrape($t);
is($res->{status}, 200, 'GET: 200');
like($res->{headers}{'content-type'} // '',
     qr{^text/plain; version=0\.0\.4(; charset=utf-8)?$}, 'Prometheus 0.0.4 content type');
ok($samples, 'the reference parser reads it') or diag($errors);
is(metric($m, 'fanbase_submissions_total{code=created,mode=sync}'), 0,
   'no submission yet: sync created 0');
is(metric($m, 'fanbase_token_fetches_total{credentials=demo-client,host=127.0.0.1:'
              . $t->mock_port . ',result=ok}'), 0, 'no token fetched yet');
cmp_ok(metric($m, 'fanbase_zone_size_bytes{}'), '>', 0, 'the zone size');
cmp_ok(metric($m, 'fanbase_zone_used_bytes{}'), '>', 0, 'the zone used');
cmp_ok(metric($m, 'fanbase_zone_used_bytes{}'), '<=', metric($m, 'fanbase_zone_size_bytes{}'),
       '... within its size');
my %type = map { $_->{family} => $_->{type} } @{ $samples || [] };
is($type{fanbase_submissions}, 'counter', 'submissions: a counter');
is($type{fanbase_upstream_request_duration_seconds}, 'histogram', 'durations: a histogram');
is($type{fanbase_transactions}, 'gauge', 'transactions: a gauge');
is(scalar(grep { $_->{family} =~ /^fanbase_redis_/ } @{ $samples || [] }), 0,
   'without fanbase_redis: none of the shared engine\'s families')
    unless ($ENV{TEST_FANBASE_ENGINE} // '') eq 'redis';

# what the test does, counted on two workers
my @sync = $t->parallel(5, POST => $QUEUE, headers => [@CT],
                        body => sub { qq({"action":"ticket-create","data":{"n":$_[0]}}) });
is(scalar(grep { $_->{status} == 201 } @sync), 5, 'five sync submissions: 201');
$t->submit(body => '{"action":', status => 400, name => 'malformed JSON: 400');
$t->submit(body => '{"action":"x"}', status => 400, name => 'not a submission: 400');

my @async = map { $t->submit(path => "/async$QUEUE", status => 202,
                             name => "async $_: 202") } 1 .. 3;
my @ids = map { $_->{json}{transaction_id} // 'none' } @async;
$t->submit(path => "/dead$QUEUE", status => 202, name => 'async to a dead Fanbase: 202');

my $qid = $sync[0]{json}{id} // 'none';
is($t->request(GET => "$QUEUE/$qid")->{status}, 200, 'a status read from the zone: 200');
is($t->request(GET => "$QUEUE/not-a-known-id-42")->{status}, 404,
   'a status read through to Fanbase: 404');

ok($t->wait_for(sub { (scrape($t))[1]{'fanbase_deliveries_total{result=delivered}'} == 3 },
                timeout => 10), 'three deliveries counted');

# inbound webhooks: one applied, its duplicate, one forged, one invalid
my $tx = $t->wait_status($ids[0], 'processing');
my $hook_id = 'msg_' . int(rand(1e9));
is($t->hook('/hooks/status', { id => $ids[0], status => 'completed' },
            id => $hook_id)->{status}, 204, 'a webhook applied: 204');
is($t->hook('/hooks/status', { id => $ids[0], status => 'completed' },
            id => $hook_id)->{status}, 204, 'its duplicate: 204');
is($t->hook('/hooks/status', { id => $ids[1], status => 'completed' },
            secret => webhook_secret())->{status}, 401, 'a forged one: 401');
is($t->hook('/hooks/status', { nothing => 1 })->{status}, 400, 'an invalid one: 400');

# a long poll, counted while it waits
my $poll = $t->background(sub { $t->request(GET => "/transactions/$ids[1]?wait=3") });
ok($t->wait_for(sub { (scrape($t))[1]{'fanbase_long_poll_waiters{}'} == 1 }, timeout => 3),
   'a long poll waiting: 1');

($res, $m, $samples, $errors) = scrape($t);
ok($samples, 'read again by the reference parser') or diag($errors);

is(metric($m, 'fanbase_submissions_total{code=created,mode=sync}'), 5, 'sync created: 5');
is(metric($m, 'fanbase_submissions_total{code=invalid_json,mode=sync}'), 1, 'sync invalid_json: 1');
is(metric($m, 'fanbase_submissions_total{code=invalid_submission,mode=sync}'), 1,
   'sync invalid_submission: 1');
is(metric($m, 'fanbase_submissions_total{code=accepted,mode=async}'), 4, 'async accepted: 4');

my $cred = 'credentials=demo-client,host=127.0.0.1:' . $t->mock_port;
is(metric($m, "fanbase_token_fetches_total{$cred,result=ok}"), 1,
   'one token fetch for the host, both workers');
is(metric($m, "fanbase_token_fetches_total{$cred,result=failed}"), 0, 'none failed');
is(metric($m, "fanbase_token_valid{$cred}"), 1, 'the token valid');
my $exp = metric($m, "fanbase_token_expiry_timestamp_seconds{$cred}");
cmp_ok($exp, '>', time + 3000, 'its expiry: in about an hour');
cmp_ok($exp, '<', time + 3700, '... not later');

my $h = 'fanbase_upstream_request_duration_seconds';
is(metric($m, "${h}_count{kind=submit}"), 5, 'submit calls timed: 5');
is(metric($m, "${h}_bucket{kind=submit,le=+Inf}"), 5, '... +Inf bucket: 5');
is(metric($m, "${h}_count{kind=status}"), 1, 'status calls timed: 1');
is(metric($m, "${h}_count{kind=token}"), 1, 'token calls timed: 1');
cmp_ok(metric($m, "${h}_count{kind=deliver}"), '>=', 4, 'deliver calls timed (3, and the dead one)');
cmp_ok(metric($m, "${h}_sum{kind=submit}"), '>', 0, 'their sum');
cmp_ok(metric($m, "${h}_sum{kind=submit}"), '<', 15, '... in seconds');
my @le = map { metric($m, "${h}_bucket{kind=submit,le=$_}") }
         qw(0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 30 +Inf);
is_deeply([sort { $a <=> $b } @le], \@le, 'the buckets are cumulative');

is(metric($m, 'fanbase_deliveries_total{result=delivered}'), 3, 'deliveries: 3 delivered');
cmp_ok(metric($m, 'fanbase_deliveries_total{result=retried}'), '>=', 1,
       'the dead route retried');
is(metric($m, 'fanbase_webhooks_received_total{result=applied}'), 1, 'webhooks: 1 applied');
is(metric($m, 'fanbase_webhooks_received_total{result=duplicate}'), 1, 'webhooks: 1 duplicate');
is(metric($m, 'fanbase_webhooks_received_total{result=forged}'), 1, 'webhooks: 1 forged');
is(metric($m, 'fanbase_webhooks_received_total{result=invalid}'), 1, 'webhooks: 1 invalid');

is(metric($m, 'fanbase_transactions{status=completed}'), 1, 'transactions: 1 completed');
is(metric($m, 'fanbase_transactions{status=processing}'), 2, 'transactions: 2 processing');
is(metric($m, 'fanbase_transactions{status=pending}'), 1, 'transactions: 1 pending (dead route)');
is(metric($m, 'fanbase_delivery_backlog{}'), 1, 'delivery backlog: 1');
is(metric($m, 'fanbase_breakers_open{}'), 1, 'one breaker open');
cmp_ok(metric($m, 'fanbase_queue_items{}'), '>=', 5, 'queue items kept: the sync ones');
is(metric($m, 'fanbase_long_poll_waiters{}'), 1, 'one long poll waiting');
cmp_ok(metric($m, 'fanbase_last_answer_timestamp_seconds{}'), '>', time - 60,
       'Fanbase answered lately');

my ($polled) = $poll->();
is($polled->{status}, 200, 'the long poll ends: 200');
ok($t->wait_for(sub { (scrape($t))[1]{'fanbase_long_poll_waiters{}'} == 0 }, timeout => 3),
   'no long poll waiting: 0');

# outbound webhooks: what the site answered 2xx, counted as delivered
ok($t->wait_for(sub { (scrape($t))[1]{'fanbase_notification_backlog{}'} == 0 }, timeout => 10),
   'the notifications sent');
($res, $m) = scrape($t);
my $site = grep { ($_->{status} // 0) =~ /^2/ } @{ $t->mock_site_requests };
cmp_ok($site, '>=', 4, 'the site received notifications');
is(metric($m, 'fanbase_notifications_total{result=delivered}'), $site,
   'notifications delivered: as many as the site took');
is(metric($m, 'fanbase_notifications_total{result=dropped}'), 0, 'none dropped');

unlike($res->{body}, qr/\Q$SECRET\E/, 'no client secret in the metrics');
unlike($res->{body}, qr/\Q$HOOK_SECRET\E/, 'no webhook secret in the metrics');

# a reload keeps the counters: they live in the zone
$t->reload;
($res, $m) = scrape($t);
is(metric($m, 'fanbase_submissions_total{code=created,mode=sync}'), 5,
   'after a reload: still 5');

$res = $t->request(POST => '/metrics', body => '{}');
is($res->{status}, 405, 'POST: 405');
is($res->{json}{error}{code}, 'method_not_allowed', '... a JSON error');

$t->stop;

# the token endpoint fails: counted apart from Fanbase's failures
my $f = FanbaseTest->new(
    mock   => { clients => ['demo-client:demo-secret'] },
    files  => edge_files(),
    http   => edge_http(timeout => '3s'),
    server => <<"CONF",
location = /metrics { fanbase_metrics; }
location = $QUEUE { fanbase_submit; }
CONF
);
$f->start;
$f->mock_faults({ token => { status => 503 } });
$f->submit(status => 503, name => 'no token to be had: 503');
{
    my $r = $f->request(GET => '/metrics');
    my ($s) = parse_metrics($r->{body});
    my %by = map { my $x = $_;
                   ($x->{name} . '{' . join(',', map { "$_=$x->{labels}{$_}" }
                                             sort keys %{ $x->{labels} }) . '}')
                   => $x->{value} } @{ $s || [] };
    my $c = 'credentials=demo-client,host=127.0.0.1:' . $f->mock_port;
    cmp_ok($by{"fanbase_token_fetches_total{$c,result=failed}"} // 0, '>=', 1,
           'a failed token fetch counted');
    is($by{"fanbase_token_fetches_total{$c,result=ok}"} // 0, 0, 'none succeeded');
    is($by{"fanbase_token_valid{$c}"} // -1, 0, 'no valid token');
    ok(!exists $by{"fanbase_token_expiry_timestamp_seconds{$c}"}, 'no expiry without a token');
    is($by{'fanbase_submissions_total{code=token_unavailable,mode=sync}'} // 0, 1,
       'the submission counted as token_unavailable');
}
$f->stop;

# nginx -t: it reads the zone
my ($ok, $out) = FanbaseTest->nginx_t(
    http   => '',
    server => "location = /metrics { fanbase_metrics; }\n",
);
ok(!$ok, 'without fanbase_zone: nginx -t fails');
like($out, qr/"fanbase_metrics" requires "fanbase_zone"/, '... and says why');

done_testing;
