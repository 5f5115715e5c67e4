#!/usr/bin/perl

# Writes the hand-made seeds of the state file fuzzer into
# t/fuzz/corpus/state/ (or the directory given): files of both versions
# with every kind of record, valid and not, on each side of every limit
# the loader checks.  The real files (state-*) come from the tests (see
# docs/testing.md); what the fuzzer finds is merged in by
# "make fuzz-state".
#
#     perl t/fuzz/state_seeds.pl [DIR]

use strict;
use warnings;

use JSON::PP;

my $dir = shift // 't/fuzz/corpus/state';
-d $dir or mkdir $dir or die "$dir: $!\n";

my $json = JSON::PP->new->canonical;
my $TARGET = 'ab' x 32;
my $NOW = 1767225600000;            # the harness's "now": 2026-01-01
my $LATER = 4102444800000;          # 2100-01-01

sub uuid { sprintf '%08x-0000-4000-8000-%012x', 0x1234, $_[0] }

sub txn {
    my ($n, %f) = @_;
    my %r = (type => 'transaction', id => uuid($n), target => $TARGET,
             status => 'pending', created => $NOW, updated => $NOW,
             deliver_by => $LATER, track_by => $LATER, version => 1,
             attempts => 0, sent => JSON::PP::false, max_events => 16,
             payload => qq({"action":"ticket-create","data":{"n":$n}}),
             events => [], %f);
    delete $r{$_} for grep { !defined $r{$_} } keys %r;
    return $json->encode(\%r);
}

sub event {
    my ($status, $msg) = @_;
    return $json->encode({ event => 'transition', message => $msg // 'x',
                           data => {}, status => $status,
                           created_at => '2026-01-01T00:00:00.000Z' });
}

sub idem {
    my ($key, %f) = @_;
    return $json->encode({ type => 'idempotency', key => $key,
                           digest => '0f' x 16, id => uuid(1),
                           expires => $LATER, %f });
}

sub hook {
    my ($key, %f) = @_;
    return $json->encode({ type => 'webhook', key => $key,
                           expires => $LATER, %f });
}

sub notice {
    my ($id, %f) = @_;
    return $json->encode({ type => 'notification', id => $id,
                           created => $NOW, attempts => 0,
                           body => '{"id":"' . uuid(1)
                                   . '","status":"completed"}', %f });
}

sub v2 { join('', map { "$_\n" } '{"version":2}', @_) }

sub seed {
    my ($name, $bytes) = @_;
    open my $fh, '>:raw', "$dir/seed-$name" or die "$dir/seed-$name: $!\n";
    print $fh $bytes;
    close $fh;
}

# every kind of record, valid
my @all = (
    txn(1),
    txn(2, status => 'processing', payload => undef, queue_id => 'q-2',
        sent => JSON::PP::true, attempts => 1,
        events => [event('pending', 'accepted'), event('processing')]),
    txn(3, status => 'completed', payload => undef,
        events => [event('pending'), event('completed')]),
    txn(4, status => 'failed', payload => undef, events => [event('failed')]),
    txn(5, status => 'cancelled', payload => undef),
    txn(6, payload => undef),       # a webhook's record: nothing to deliver
    idem('key-1'),
    idem('key-2', id => uuid(2)),
    hook('msg_1'),
    hook('msg_2'),
    notice('msg_' . uuid(3) . '_completed'),
);
seed('v2-all', v2(@all, '{"end":' . scalar(@all) . '}'));
seed('v2-empty', v2('{"end":0}'));
seed('v2-no-end', v2(@all));
seed('v2-cut', substr(v2(@all), 0, 700));
seed('v2-wrong-end', v2(@all, '{"end":3}', txn(7)));
seed('v2-blank-lines', "{\"version\":2}\n\n\n" . txn(1) . "\n\n{\"end\":1}");

# records the loader must skip, one reason each
my @bad = (
    txn(10, id => 'not-a-uuid'),
    txn(11, id => uuid(11) . 'x'),
    txn(12, target => 'ab' x 31),
    txn(13, target => 'zz' x 32),
    txn(14, status => 'lost'),
    txn(15, created => undef),
    txn(16, version => -1),
    txn(17, attempts => 4294967296),
    txn(18, max_events => 0),
    txn(19, max_events => 1.5),
    txn(20, queue_id => 'bad id'),
    txn(21, queue_id => 'q' x 65),
    txn(22, payload => '[1,2]'),
    txn(23, payload => '{"action":"a"'),
    txn(24, events => ['not json']),
    txn(25, events => ['[1]']),
    txn(26, events => [1]),
    txn(1),
    txn(1),
    idem(''),
    idem('k' x 256),
    idem("k\x{e7}"),
    idem('a b'),
    idem('key-3', digest => '0f' x 15),
    idem('key-4', id => 'x'),
    idem('key-5', expires => 1),
    idem('key-1'),
    idem('key-1'),
    hook('msg_3', expires => $NOW),
    notice('bad id'),
    notice('m' x 57),
    notice('msg_4', body => 'not an object'),
    notice('msg_5', body => '[]'),
    '{"type":"unknown"}',
    '{"type":1}',
    '[]',
    '"x"',
    'not json',
    '{"end":"x"}',
);
seed('v2-bad', v2(@bad, '{"end":' . scalar(@bad) . '}'));

# issue 11, item 5: the record that crashed the master
my $issue11 = '{"id":"' . uuid(30) . '","target":"' . $TARGET
              . '","status":"completed","queue_id":"abc"}';
seed('v2-issue11', v2('{"type":"transaction",' . substr($issue11, 1),
                      '{"end":1}'));
seed('v1-issue11', '{"version":1,"transactions":[' . "\n" . txn(31) . ",\n"
                   . $issue11 . ",\n" . txn(32) . '],"idempotency":[]}' . "\n");

# version 1: one document, records in sections
my $v1 = '{"version":1,"transactions":[' . join(",\n", @all[0 .. 5])
         . '],"idempotency":[' . join(",\n", @all[6, 7])
         . '],"webhooks":[' . join(",\n", @all[8, 9])
         . '],"notifications":[' . $all[10] . ',1]}';
seed('v1-all', $v1);
seed('v1-cut', substr($v1, 0, 500));
seed('v1-not-object', '{"version":1,"transactions":[1,"x",[],null]}');
seed('v1-no-transactions', '{"version":1}');
seed('v1-version-3', '{"version":3,"transactions":[]}');

# invalid UTF-8: a cut character, a lone continuation, an overlong form
(my $cut = txn(40, events => [event('pending', "a\x{e7}")]))
    =~ s/\\u00e7/\xc3/;
(my $lone = txn(41, payload => '{"action":"\u00e7","data":{}}'))
    =~ s/\\\\u00e7/\x80/;
seed('v2-utf8', v2($cut, $lone, txn(42, events => ["{\"m\":\"\xc0\xaf\"}"]),
                   "{\"type\":\"webhook\",\"key\":\"\xff\",\"expires\":1}",
                   '{"end":4}'));
seed('v1-utf8', '{"version":1,"transactions":[' . $cut . ',' . $lone . ']}');

# nesting around the limit of 64 levels, in records and in events
my $deep = sub { my $n = shift; ('[' x $n) . (']' x $n) };
seed('v2-deep', v2('{"type":"transaction","x":' . $deep->(62) . '}',
                   '{"type":"transaction","x":' . $deep->(63) . '}',
                   '{"type":"transaction","x":' . $deep->(64) . '}',
                   '{"type":"transaction","x":' . $deep->(1000) . '}',
                   txn(50, events => ['{"a":' . $deep->(62) . '}']),
                   txn(51, events => ['{"a":' . $deep->(64) . '}']),
                   '{"end":6}'));
seed('v1-deep', '{"version":1,"transactions":[' . $deep->(100) . ']}');

# numbers at their limits
seed('v2-numbers', v2(
    txn(60, version => 4294967295, attempts => 4294967295,
        max_events => 4294967295, created => 9223372036854775807),
    txn(61, version => 4294967296),
    txn(62, created => 9223372036854775808),
    txn(63, created => 1e3),
    txn(64, created => -0),
    txn(65, max_events => 256),
    idem('key-6', expires => 18446744073709551615),
    notice('msg_6', created => -1, attempts => 4294967296),
    '{"end":8}'));

# more events than a transaction keeps
seed('v2-events', v2(
    txn(70, max_events => 2,
        events => [map { event('processing', "e$_") } 1 .. 5]),
    txn(71, status => 'completed', payload => undef, max_events => 1,
        events => [map { event('completed', "e$_") } 1 .. 3]),
    '{"end":2}'));

# request ids (optional): valid ones at both ends of the length, and each
# way of being invalid, on transactions and notifications
seed('v2-request-id', v2(
    txn(80, request_id => 'r'),
    txn(81, request_id => 'k' x 64, status => 'processing', payload => undef,
        queue_id => 'q-81'),
    txn(82, request_id => '0123456789abcdef0123456789abcdef',
        status => 'completed', payload => undef),
    txn(83, request_id => 'k' x 65),
    txn(84, request_id => ''),
    txn(85, request_id => 'a b'),
    txn(86, request_id => 'a"b'),
    txn(87, request_id => "a\\b"),
    txn(88, request_id => "caf\x{e9}"),
    txn(89, request_id => 89),
    txn(90, request_id => undef),
    notice('msg_80', request_id => 'r-80'),
    notice('msg_81', request_id => "a\tb"),
    notice('msg_82', request_id => JSON::PP::true),
    '{"end":14}'));

# a zone that fills up: transactions of 255 tiny events (a 32-byte chunk
# each for 5 bytes of file), then keys and a notification
my @full = map { txn(100 + $_, max_events => 255,
                     events => [('{}') x 255]) } 1 .. 12;
push @full, idem('key-full'), hook('msg_full'),
    notice('msg_full'), txn(200);
seed('v2-full', v2(@full, '{"end":' . scalar(@full) . '}'));

# not a state file at all
seed('empty', '');
seed('header-only', "{\"version\":2}\n");
seed('header-cut', '{"version":2');
seed('binary', join('', map { chr } 0 .. 255));
