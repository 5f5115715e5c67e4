#!/usr/bin/perl

# Webhook signatures (src/ngx_http_fanbase_signature.c) and webhook update
# shapes (src/ngx_http_fanbase_json.c) without nginx: the unit tests in
# t/unit/signature_test.c, built with AddressSanitizer and UBSan.

use strict;
use warnings;

use Test::More;
use File::Temp qw(tempdir);

my $dir = tempdir(CLEANUP => 1);
my $bin = "$dir/signature_test";

my @cc = ($ENV{CC} || 'cc', qw(-std=c99 -Wall -Wextra -Werror -g -O1),
          '-fsanitize=address,undefined', '-fno-sanitize-recover=all',
          '-Isrc', 't/unit/signature_test.c',
          'src/ngx_http_fanbase_signature.c', 'src/ngx_http_fanbase_json.c',
          '-lcrypto', '-lyajl', '-o', $bin);

my $out = `@cc 2>&1`;
is $?, 0, 'unit tests build' or diag $out;

$ENV{ASAN_OPTIONS} = 'detect_leaks=1';
my @lines = `$bin 2>&1`;
my $rc = $?;

for (@lines) {
    if (/^(not )?ok \d+ - (.*)$/) {
        ok !$1, "signature: $2";
    } elsif (!/^1\.\.\d+$/) {
        diag $_;
    }
}

is $rc, 0, 'unit tests exit cleanly, no sanitizer report';

done_testing;
