package FanbaseMetrics;

=head1 NAME

FanbaseMetrics - fanbase_metrics read with the reference parser

=head1 SYNOPSIS

    use FanbaseMetrics;

    my ($samples, $errors) = parse_metrics($text);
    my ($res, $m, $samples, $errors) = scrape($t, '/metrics');
    is(metric($m, 'fanbase_redis_connected{}'), 1);

=head1 FUNCTIONS

C<parse_metrics($text)>: the text read by python3-prometheus-client's
C<text_string_to_metric_families> (Prometheus' own reference parser for
the text format 0.0.4); returns an arrayref of its samples (C<family>,
C<type>, C<name>, C<labels>, C<value>) and C<''>, or undef and the
parser's complaint.

C<scrape($t, $path)>: GET C<$path> (default C</metrics>) of the
FanbaseTest C<$t>; returns the answer, the samples by
C<"name{k=v,...}"> (labels sorted by name, C<"name{}"> without), the
samples and the parser's complaint.

C<metric($by, $key)>: the value of a sample, 0 when absent.

=cut

use strict;
use warnings;

use Exporter 'import';
use IPC::Open3;
use JSON::PP;
use Symbol qw(gensym);

our @EXPORT = qw(parse_metrics scrape metric);

# the reference parser: the text on stdin, every sample as JSON on stdout
my $PARSER = <<'PY';
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    for s in f.samples:
        out.append({"family": f.name, "type": f.type, "name": s.name,
                    "labels": s.labels, "value": s.value})
print(json.dumps(out))
PY

sub parse_metrics {
    my ($text) = @_;
    my $pid = open3(my $in, my $out, my $err = gensym,
                    '/usr/bin/python3', '-c', $PARSER);
    print $in $text;
    close $in;
    my $json = do { local $/; <$out> };
    my $errors = do { local $/; <$err> };
    waitpid $pid, 0;
    return (undef, $errors) if $?;
    return (decode_json($json), '');
}

sub scrape {
    my ($t, $path) = @_;
    my $res = $t->request(GET => $path // '/metrics');
    my ($samples, $errors) = parse_metrics($res->{body} // '');
    my %by;
    for my $s (@{ $samples || [] }) {
        my $l = join ',', map { "$_=$s->{labels}{$_}" }
                          sort keys %{ $s->{labels} };
        $by{"$s->{name}\{$l}"} = $s->{value};
    }
    return ($res, \%by, $samples, $errors);
}

sub metric { my ($m, $k) = @_; return $m->{$k} // 0 }

1;
