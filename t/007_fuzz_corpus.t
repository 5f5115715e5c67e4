#!/usr/bin/perl

# The fuzz corpus (t/fuzz/corpus/<target>/) replayed through the harnesses
# of t/fuzz/, built with the usual compiler, AddressSanitizer, UBSan and
# LeakSanitizer and a driver of our own (t/fuzz/driver.c), not libFuzzer:
# every input found so far, seeds and crashes alike, stays harmless.  Also:
# the replay does see a sanitizer report, and every parser in the plain-C
# headers has a harness.

use strict;
use warnings;

use File::Temp qw(tempdir);
use lib 't/lib';
use Test::More;
use UnitC;

my @targets = fuzz_targets();
ok @targets >= 7, 'the fuzz targets are listed in t/fuzz/targets';

replay_corpus($_) for @targets;


# The replay fails on a sanitizer report: a harness that reads one byte
# beyond its input when the input starts with "boom".

{
    my $dir = tempdir(CLEANUP => 1);
    mkdir "$dir/corpus";

    open my $fh, '>', "$dir/boom_fuzz.c" or die $!;
    print $fh <<'C';
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    volatile uint8_t  c;

    if (size >= 4 && memcmp(data, "boom", 4) == 0) {
        c = data[size];
        (void) c;
    }

    return 0;
}
C
    close $fh;

    for (['calm', 'calm input'], ['boom', 'boom!']) {
        open my $in, '>', "$dir/corpus/$_->[0]" or die $!;
        print $in $_->[1];
        close $in;
    }

    my ($clean, undef, $diag) = UnitC::replay(
        { name => 'boom', deps => ["-I$UnitC::FUZZ_DIR"] },
        harness => "$dir/boom_fuzz.c", corpus => "$dir/corpus");
    ok !$clean && $diag =~ /AddressSanitizer: heap-buffer-overflow/,
       'the replay fails on an input that a sanitizer reports'
        or diag $diag;
}


# Every function of the plain-C headers that reads outside input is called
# by a harness.  Not parsers: the free functions, the signer, the names.

{
    my %not_parsers = map { $_ => 1 } qw(
        fanbase_json_item_free fanbase_json_token_free fanbase_json_update_free
        fanbase_json_status_name fanbase_sig_standard_sign
        fanbase_sig_sha256_hex);

    my @harnesses = glob "$UnitC::FUZZ_DIR/*_fuzz.c";
    my $called = join '', map { local (@ARGV, $/) = $_; <> } @harnesses;

    for my $h (qw(src/ngx_http_fanbase_json.h src/ngx_http_fanbase_signature.h)) {
        open my $fh, '<', $h or die "$h: $!";
        my @names = map { /^\w[\w\s\*]*?\b(fanbase_\w+)\(/ ? $1 : () } <$fh>;
        close $fh;

        ok @names > 0, "$h declares functions";
        for (grep { !$not_parsers{$_} } @names) {
            ok $called =~ /\b$_\(/, "$_ ($h) has a fuzz harness";
        }
    }
}

done_testing;
