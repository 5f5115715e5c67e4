#!/usr/bin/perl

# t/redis_cut.pl: a relay between the edge and Redis that loses one answer.
#
#     perl t/redis_cut.pl --listen PORT --to PORT --evalsha SHA [--cuts N]
#                         [--log FILE]
#
# Relays every connection to 127.0.0.1:PORT (the test's Redis) byte for
# byte, and reads both directions as RESP: the commands a client sends and
# the answers Redis gives, in order.  The first N times (default 1) a
# client sends EVALSHA SHA, the command goes on to Redis, which runs it,
# and when its answer comes back the relay closes both sides instead of
# passing it on: to the client, Redis went away after it took the command
# and before it answered (a Redis killed, a network cut).  What was
# answered before goes through; what the client had pipelined after the
# command is lost with the connection, as it would be.  Later connections
# are relayed untouched once the N cuts are made.
#
# Prints "listening PORT" on stdout once it listens; one line per cut in
# FILE (--log): "cut EVALSHA SHA after N answers".  Ends on SIGTERM.
# Perl core modules only.

use strict;
use warnings;

use Getopt::Long qw(GetOptions);
use IO::Select;
use IO::Socket::INET;
use Socket qw(IPPROTO_TCP TCP_NODELAY);

my %opt = (cuts => 1);
GetOptions(\%opt, 'listen=i', 'to=i', 'evalsha=s', 'cuts=i', 'log=s')
    or die "usage: $0 --listen PORT --to PORT --evalsha SHA [--cuts N]\n";
defined $opt{$_} or die "$0: --$_ is required\n" for qw(listen to evalsha);

$SIG{TERM} = $SIG{INT} = sub { exit 0 };
$SIG{PIPE} = 'IGNORE';

my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                   LocalPort => $opt{listen}, Listen => 128,
                                   ReuseAddr => 1, Blocking => 0)
    or die "$0: listen on $opt{listen}: $!\n";

$| = 1;
print "listening $opt{listen}\n";

my $cuts_left = $opt{cuts};
my $sel = IO::Select->new($listen);
my %peer;    # socket => its pair
my %pair;    # socket => pair state (shared by both sides)

# The length of the first complete RESP value in $$buf from $pos, or undef
# when it is not all there yet.
sub resp_len {
    my ($buf, $pos) = @_;
    my $end = index($$buf, "\r\n", $pos);
    return undef if $end < 0;
    my $type = substr($$buf, $pos, 1);
    my $line = substr($$buf, $pos + 1, $end - $pos - 1);
    my $next = $end + 2;
    if ($type eq '$') {
        return $next - $pos if $line < 0;
        return undef if length($$buf) < $next + $line + 2;
        return $next + $line + 2 - $pos;
    }
    if ($type eq '*') {
        for (1 .. ($line < 0 ? 0 : $line)) {
            my $n = resp_len($buf, $next);
            return undef unless defined $n;
            $next += $n;
        }
        return $next - $pos;
    }
    return $next - $pos;    # + - : and the inline commands
}

# The bulk strings of a command (a RESP array), or () for anything else.
sub resp_args {
    my $v = shift;
    return () unless $v =~ /^\*(\d+)\r\n/;
    my ($n, $p, @a) = ($1, length "*$1\r\n");
    for (1 .. $n) {
        substr($v, $p) =~ /^\$(\d+)\r\n/ or return ();
        $p += length "\$$1\r\n";
        push @a, substr($v, $p, $1);
        $p += $1 + 2;
    }
    return @a;
}

# all of $data to $to (a blocking socket); false when it is gone
sub put {
    my ($to, $data) = @_;
    while (length $data) {
        my $n = syswrite($to, $data);
        return 0 unless $n;
        substr($data, 0, $n, '');
    }
    return 1;
}

sub drop {
    my $p = shift;
    for my $s ($p->{client}, $p->{redis}) {
        next unless $s;
        $sel->remove($s);
        delete $pair{$s};
        close $s;
    }
}

sub cut_log {
    return unless $opt{log};
    open my $fh, '>>', $opt{log} or return;
    print $fh @_, "\n";
    close $fh;
}

while (1) {
    for my $s ($sel->can_read(1)) {
        if ($s == $listen) {
            my $c = $listen->accept or next;
            my $r = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                          PeerPort => $opt{to});
            if (!$r) { close $c; next; }
            setsockopt($_, IPPROTO_TCP, TCP_NODELAY, 1) for $c, $r;
            my $p = { client => $c, redis => $r, cmds => '', answers => '',
                      sent => 0, answered => 0, cut_at => undef };
            $pair{$c} = $pair{$r} = $p;
            $sel->add($c, $r);
            next;
        }
        my $p = $pair{$s} or next;
        my $n = sysread($s, my $data, 65536);    # select said readable
        if (!$n) { drop($p); next; }

        if ($s == $p->{client}) {
            # commands: relayed at once, counted; the chosen one marked
            $p->{cmds} .= $data;
            while (defined(my $len = resp_len(\$p->{cmds}, 0))) {
                my $cmd = substr($p->{cmds}, 0, $len, '');
                my @a = resp_args($cmd);
                if ($cuts_left > 0 && !defined $p->{cut_at} && @a >= 2
                    && uc $a[0] eq 'EVALSHA' && lc $a[1] eq lc $opt{evalsha})
                {
                    $p->{cut_at} = $p->{sent};
                    $cuts_left--;
                }
                $p->{sent}++;
            }
            put($p->{redis}, $data) or drop($p);
            next;
        }

        # answers: passed on up to the chosen command's, then the cut
        $p->{answers} .= $data;
        my $out = '';
        while (defined(my $len = resp_len(\$p->{answers}, 0))) {
            if (defined $p->{cut_at} && $p->{answered} == $p->{cut_at}) {
                put($p->{client}, $out);
                cut_log("cut EVALSHA $opt{evalsha} after $p->{answered} answers");
                drop($p);
                $out = undef;
                last;
            }
            $out .= substr($p->{answers}, 0, $len, '');
            $p->{answered}++;
        }
        next unless defined $out;
        put($p->{client}, $out) or drop($p);
    }
}
