package UnitC;

# Builds one of the plain-C unit tests of t/unit/ with AddressSanitizer,
# UBSan and LeakSanitizer, runs it, and turns its TAP lines into tests:
#
#     use lib 't/lib';
#     use UnitC;
#     run_unit(name => 'json', test => 't/unit/json_test.c',
#              sources => ['src/ngx_http_fanbase_json.c'], libs => ['-lyajl']);
#     done_testing;

use strict;
use warnings;

use File::Temp qw(tempdir);
use Test::More;

use Exporter qw(import);
our @EXPORT = qw(run_unit);

sub run_unit {
    my (%o) = @_;
    my $dir = tempdir(CLEANUP => 1);
    my $bin = "$dir/$o{name}_test";

    my @cc = ($ENV{CC} || 'cc', qw(-std=c99 -Wall -Wextra -Werror -g -O1),
              '-fsanitize=address,undefined', '-fno-sanitize-recover=all',
              '-Isrc', $o{test}, @{ $o{sources} }, @{ $o{libs} }, '-o', $bin);

    my $out = `@cc 2>&1`;
    is $?, 0, 'unit tests build' or diag $out;

    local $ENV{ASAN_OPTIONS} = 'detect_leaks=1';
    my @lines = `$bin 2>&1`;
    my $rc = $?;

    for (@lines) {
        if (/^(not )?ok \d+ - (.*)$/) {
            ok !$1, "$o{name}: $2";
        } elsif (!/^1\.\.\d+$/) {
            diag $_;
        }
    }

    is $rc, 0, 'unit tests exit cleanly, no sanitizer report';
}

1;
