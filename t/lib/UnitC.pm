package UnitC;

# Plain C under AddressSanitizer, UBSan and LeakSanitizer, with the
# project's usual compiler ($CC, or cc).
#
# run_unit builds one of the unit tests of t/unit/ (each a C file with
# its main(), that includes t/unit/tap.h for ok() and the plan), runs it,
# and turns its TAP lines into tests:
#
#     use lib 't/lib';
#     use UnitC;
#     run_unit(name => 'json', test => 't/unit/json_test.c',
#              sources => ['src/ngx_http_fanbase_json.c'], libs => ['-lyajl']);
#     done_testing;
#
# fuzz_targets reads t/fuzz/targets; replay_corpus builds a fuzz harness of
# t/fuzz/ with the standalone driver t/fuzz/driver.c instead of libFuzzer,
# feeds it every file of the target's corpus, and is one test (replay: the
# same, without the test):
#
#     replay_corpus($_) for fuzz_targets();

use strict;
use warnings;

use File::Temp qw(tempdir);
use Test::More;

use Exporter qw(import);
our @EXPORT = qw(run_unit fuzz_targets replay_corpus);

our $FUZZ_DIR = 't/fuzz';

# Builds sources into $dir/$name; returns the binary, or undef and the
# compiler's output.
sub build_c {
    my ($dir, $name, @args) = @_;
    my $bin = "$dir/$name";

    my @cc = ($ENV{CC} || 'cc', qw(-std=c99 -D_DEFAULT_SOURCE),
              qw(-Wall -Wextra -Werror -g -O1),
              '-fsanitize=address,undefined', '-fno-sanitize-recover=all',
              '-Isrc', @args, '-o', $bin);

    my $out = `@cc 2>&1`;
    return $? == 0 ? ($bin, $out) : (undef, $out);
}

sub run_unit {
    my (%o) = @_;
    my $dir = tempdir(CLEANUP => 1);

    my ($bin, $out) = build_c($dir, "$o{name}_test", $o{test},
                              @{ $o{sources} }, @{ $o{libs} });
    ok $bin, 'unit tests build' or diag $out;

    local $ENV{ASAN_OPTIONS} = 'detect_leaks=1';
    my @lines = $bin ? `$bin 2>&1` : ();
    my $rc = $bin ? $? : -1;

    for (@lines) {
        if (/^(not )?ok \d+ - (.*)$/) {
            ok !$1, "$o{name}: $2";
        } elsif (!/^1\.\.\d+$/) {
            diag $_;
        }
    }

    is $rc, 0, 'unit tests exit cleanly, no sanitizer report';
}

# The targets of t/fuzz/targets: [name, sources and libraries]
sub fuzz_targets {
    my $list = "$FUZZ_DIR/targets";
    open my $fh, '<', $list or die "$list: $!";

    my @targets;
    while (<$fh>) {
        s/#.*//;
        my ($name, @words) = split;
        next unless defined $name;
        push @targets, { name => $name,
                         deps => [grep { !/\.dict$/ } @words] };
    }

    return @targets;
}

# One test: the harness builds, every input of its corpus runs, the run
# ends cleanly, and no sanitizer said a word.
sub replay_corpus {
    my ($t) = @_;
    my ($clean, $name, $diag) = replay($t);
    ok $clean, $name or diag $diag;
    return $clean;
}

# The same without the test: (clean, what was replayed, what went wrong).
# "harness" and "corpus" replace the target's own.
sub replay {
    my ($t, %o) = @_;
    my $name = $t->{name};
    my $harness = $o{harness} || "$FUZZ_DIR/${name}_fuzz.c";
    my $corpus = $o{corpus} || "$FUZZ_DIR/corpus/$name";
    my $dir = tempdir(CLEANUP => 1);

    opendir my $dh, $corpus or return (0, "$name: corpus", "$corpus: $!");
    my $files = grep { !/^\./ && -f "$corpus/$_" } readdir $dh;
    closedir $dh;

    my $what = "$name: $files inputs of $corpus, no sanitizer report";

    my ($bin, $out) = build_c($dir, "${name}_replay", $harness,
                              "$FUZZ_DIR/driver.c", @{ $t->{deps} });
    return (0, $what, "the harness does not build:\n$out") unless $bin;

    local $ENV{ASAN_OPTIONS} = 'detect_leaks=1';
    local $ENV{UBSAN_OPTIONS} = 'print_stacktrace=1';
    my @lines = `$bin $corpus 2>&1`;
    my $rc = $?;

    my ($ran) = map { /^(\d+) inputs$/ ? $1 : () } @lines;
    my $clean = $rc == 0 && $files > 0 && ($ran // -1) == $files
        && !grep { /Sanitizer|runtime error|fuzz invariant/ } @lines;

    # what the sanitizers said first, then the end of the output
    my $from = @lines > 30 ? @lines - 30 : 0;
    return ($clean, $what,
            'exit ' . ($rc >> 8) . ', signal ' . ($rc & 127)
            . ', ran ' . ($ran // 'none') . "\n"
            . join('', grep { /ERROR:|SUMMARY:|runtime error|fuzz invariant/ }
                            @lines)
            . "...\n" . join '', @lines[$from .. $#lines]);
}

1;
