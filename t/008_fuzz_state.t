#!/usr/bin/perl

# The state file loader's fuzzing corpus (t/fuzz/corpus/state: real files
# from the tests, hand-made ones, what the fuzzer found, every crash it
# ever found) replayed through its harness (t/fuzz/state_fuzz.c), built
# with gcc against the sanitizer build's nginx objects and a plain main()
# ("make fuzz-state-replay").  Each input is loaded into a zone, saved,
# loaded again and saved again, under AddressSanitizer, UBSan and
# LeakSanitizer; any report, or any check of the harness, fails the test.

use strict;
use warnings;

use Test::More;

my $bin = 'build/fuzz-replay/state_fuzz';
my $corpus = 't/fuzz/corpus/state';

my $out = `make --no-print-directory fuzz-state-replay 2>&1`;
if ($? != 0) {
    fail('the state file harness builds');
    diag($out);
    done_testing;
    exit;
}

my $supp = $ENV{TEST_NGINX_UBSAN_SUPPRESSIONS} // 'build/asan/ubsan.supp';

local $ENV{ASAN_OPTIONS} = 'detect_leaks=1:abort_on_error=1';
local $ENV{UBSAN_OPTIONS} = 'halt_on_error=1:print_stacktrace=1'
                            . (-f $supp ? ":suppressions=$supp" : '');
delete local $ENV{FANBASE_FUZZ_LOG};

my $files = () = glob("$corpus/*");
$out = `$bin $corpus 2>&1`;
my $rc = $?;

ok($rc == 0 && $out =~ /: (\d+) inputs run$/m && $1 == $files
   && $out !~ /Sanitizer|runtime error|^state_fuzz: /m,
   "the state file corpus ($files files) replays cleanly")
    or diag("exit status $rc\n" . (length($out) > 20000
                                   ? substr($out, 0, 20000) . "\n..." : $out));

done_testing;
