#!/usr/bin/perl

# Connections to Fanbase, in one worker with 40 connections:
#
# - A Fanbase that does not accept (its listen queue full, SYNs dropped):
#   60 synchronous submissions (nginx's upstream, at most 32 connections
#   at once, the others waiting for one) time out in connect and each is
#   answered 504; the worker's connections are all given back ("open
#   socket left" at exit, "worker_connections are not enough" otherwise)
#   and its next submission goes through.
# - A Fanbase and a token endpoint named by a host name: the token fetch
#   goes through libcurl, whose threaded resolver shows the socket
#   callback a socket it did not open through the module; refusing it
#   marked libcurl's multi handle dead, and every transfer of the worker
#   failed from then on.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;

use IO::Socket::INET;

# A listener that never accepts, its queue filled: connects to it hang.
my $hole = IO::Socket::INET->new(Listen => 0, LocalAddr => '127.0.0.1',
                                 LocalPort => 0, ReuseAddr => 1)
    or die "listen: $!";
my $hole_port = $hole->sockport;
my @queued;
for (1 .. 8) {
    my $c = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$hole_port",
                                  Blocking => 0);
    push @queued, $c if $c;
}

# A name other than "localhost" (which libcurl resolves itself) that the
# system resolves to 127.0.0.1, from /etc/hosts.
my $name;
if (open my $fh, '<', '/etc/hosts') {
    while (<$fh>) {
        s/#.*//;
        my ($addr, @names) = split;
        next unless defined $addr && $addr eq '127.0.0.1';
        ($name) = grep { $_ ne 'localhost' && !/localhost/ } @names;
        last if defined $name;
    }
}

my $t = FanbaseTest->new(
    mock   => { clients => ['demo-client:demo-secret'] },
    files  => edge_files(),
    http   => edge_http(timeout => '5s'),
    workers => 1,
    worker_connections => 40,
    server => <<"CONF"
location = $QUEUE { fanbase_submit; }
location = /hole$QUEUE {
    fanbase_api http://127.0.0.1:$hole_port;
    fanbase_connect_timeout 1s;
    fanbase_submit;
}
CONF
    . (defined $name ? <<"NAMED" : ''),
location = /named$QUEUE {
    fanbase_api http://$name:%%MOCKPORT%%;
    fanbase_token_url http://$name:%%MOCKPORT%%/api/token;
    fanbase_submit;
}
NAMED
);
$t->start;

my %status;
for (1 .. 6) {
    my @res = $t->parallel(10, POST => "/hole$QUEUE",
        headers => ['Content-Type' => 'application/json'],
        body    => '{"action":"ticket-create","data":{}}');
    $status{ $_->{status} }++ for @res;
}
is(join(',', map { "$_:$status{$_}" } sort keys %status), '504:60',
   '60 connects that time out: 60 x 504');
$t->log_like(qr/upstream timed out .* while connecting to upstream, .*upstream: "http:\/\/127\.0\.0\.1:$hole_port\/api\/v1\/integration\/queue"/,
             'the error log says which connect timed out');

$t->submit(status => 201, name => 'after them, a submission goes through');

SKIP: {
    skip 'no name but localhost for 127.0.0.1 in /etc/hosts', 2
        unless defined $name;

    $t->submit(path => "/named$QUEUE", status => 201,
               name => "Fanbase as http://$name:PORT: 201");
    $t->submit(status => 201, name => 'and the worker\'s next one too');
}

close $_ for @queued;
close $hole;

# the harness's checks at the end: no "open socket left", no [alert]
$t->stop;

done_testing;
