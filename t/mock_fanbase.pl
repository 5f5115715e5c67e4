#!/usr/bin/perl

# mock_fanbase.pl: a mock of Fanbase's Security (token) and Connect (queue)
# APIs, for the tests of ngx_http_fanbase_module.
#
#     perl t/mock_fanbase.pl --listen 127.0.0.1:PORT [--client ID:SECRET]...
#         [--expires-in SECONDS] [--processing-after SECONDS]
#         [--completed-after SECONDS] [--pid-file FILE] [--log FILE]
#         [--keep-requests N] [--state FILE] [--backlog N]
#
# One process, one IO::Poll event loop: HTTP/1.1 keep-alive, pipelining,
# Content-Length and chunked request bodies, "Expect: 100-continue".  Delays
# are timers in the loop, so a delayed answer never holds up other
# connections.  PORT 0 picks a free port; the line printed on stdout when
# ready ("mock fanbase listening on 127.0.0.1:PORT") tells which.
#
# --backlog N: the length of the listening socket's accept queue (listen()'s
# backlog, 4096 by default; the kernel caps it at net.core.somaxconn).  A
# small one makes a burst of connections wait in SYN retransmits, as a busy
# Fanbase would.  The mock accepts every queued connection each time the
# socket is readable, until accept() says there is none left.
#
# --state FILE: the mock's state (issued tokens, submissions, request log,
# counters, faults) is loaded from FILE at start when it exists and saved to
# it on SIGTERM/SIGINT, so a mock stopped and started again on the same port
# is one Fanbase that was unreachable for a while (connection refused), not
# a new one that forgot its tokens and queue items.
#
# Fanbase endpoints:
#     POST /api/token?grant_type=client_credentials&client_id=..&client_secret=..
#     POST /api/v1/integration/queue          (header AccessToken)
#     GET  /api/v1/integration/queue/{id}     (header AccessToken)
#
# Admin endpoints (no token, not recorded in /_mock/requests):
#     GET  /_mock/stats           counters: requests per endpoint (with the
#                                 endpoint's method, failed ones too), GETs
#                                 per id, connections accepted, connections
#                                 open (besides the one asking), queue POSTs
#                                 in flight now and at most at once
#                                 (queue_posts_in_flight[_max]: received in
#                                 full, not yet answered, e.g. held by
#                                 delay_ms), the same for POSTs and GETs of
#                                 the queue together
#                                 (queue_requests_in_flight[_max]),
#                                 connections_open_max: the most client
#                                 connections open at once (a connection
#                                 counts from its first request line until
#                                 either side closes it: a client that
#                                 went away no longer counts while the
#                                 mock still holds its request; one whose
#                                 first request is /_mock/* never counts)
#     GET  /_mock/requests        every Fanbase request received, oldest
#                                 first (the last --keep-requests, 100000),
#                                 with the status it was answered (or
#                                 "reset", "close"; absent while held) and,
#                                 for a POST that created a queue item, its
#                                 queue_id
#     GET  /_mock/faults          the faults in force
#     POST /_mock/faults          {"token":F,"queue_post":F,"queue_get":F}
#     POST /_mock/expire_tokens   every issued token stops being accepted
#     POST /_mock/reset           clears counters, request log, faults and
#                                 submissions (issued tokens stay valid), and
#                                 the site's requests and behaviour;
#                                 connections_open_max starts again from the
#                                 client connections open now
#     GET  /_mock/site            the site's behaviour in force
#     POST /_mock/site            {"status":503,"count":N,"delay_ms":..}:
#                                 how the site answers (below); {} or null:
#                                 back to the default (204, at once)
#     GET  /_mock/site/requests   every request the site received, oldest
#                                 first (the last --keep-requests): method,
#                                 path, query, headers, body (raw bytes),
#                                 time (received), answered (time),
#                                 status (what it answered, or "reset",
#                                 "close"; absent while held)
#     GET  /_mock/site/stats      requests, site_in_flight (received, not
#                                 yet answered) and site_in_flight_max
#     POST /_mock/site/reset      clears the site's requests, counters and
#                                 behaviour
#
# The site: the web site that receives the edge's notifications
# (fanbase_notify).  Any request to a path under /_site/ (e.g. POST
# /_site/hook) is recorded in its own log (not in /_mock/requests, not in
# the Fanbase counters) and answered 204 with no body, unless a behaviour
# was set with POST /_mock/site: an object with the fields of a fault
# (status, body, content_type, headers, delay_ms, reset, close) and count.
# With count, it applies to the next N requests and the site then answers
# 204 again; without, until it is changed.  A "site down" is
# {"status":503}, or stop_mock (connection refused); {} brings it back.
#
# A fault F is an object: count, delay_ms, status, body, content_type,
# headers, reset, close, malformed; for "token" also expires_in, ttl_ms,
# no_token.
# "malformed" answers the endpoint's success status (200, or 201 for the
# POST) with the first half of the body it would have sent.
# "reset" closes the connection with a RST, "close" with a FIN (an empty
# reply), each after reading the whole request and without answering.
# A delayed request is still handled when its client has gone away (a POST
# then creates its submission, as a real server would); a "reset", "close"
# or "status" fault answers without handling the request at all.

use strict;
use warnings;
use utf8;

use Errno qw(EAGAIN EWOULDBLOCK EINTR EINPROGRESS ECONNABORTED EMFILE ENFILE
             ENOBUFS ENOMEM);
use Getopt::Long;
use IO::Poll qw(POLLIN POLLOUT POLLERR POLLHUP POLLNVAL);
use IO::Socket::INET;
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use POSIX qw(strftime floor);
use Scalar::Util qw(looks_like_number);
use Socket qw(SOL_SOCKET SO_LINGER IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(time);


# Command line

my %opt = (
    listen           => '127.0.0.1:0',
    client           => [],
    expires_in       => 3600,
    processing_after => 1,
    completed_after  => 2,
    keep_requests    => 100_000,
    backlog          => 4096,
);

GetOptions(
    'listen=s'           => \$opt{listen},
    'client=s@'          => $opt{client},
    'expires-in=i'       => \$opt{expires_in},
    'processing-after=f' => \$opt{processing_after},
    'completed-after=f'  => \$opt{completed_after},
    'pid-file=s'         => \$opt{pid_file},
    'log=s'              => \$opt{log},
    'keep-requests=i'    => \$opt{keep_requests},
    'state=s'            => \$opt{state},
    'backlog=i'          => \$opt{backlog},
) or die "usage: $0 --listen 127.0.0.1:PORT [--client ID:SECRET]...\n";

@{ $opt{client} } = ('demo-client:demo-secret') unless @{ $opt{client} };

# numbers, so that JSON::PP writes them as numbers
$opt{$_} += 0 for qw(expires_in processing_after completed_after keep_requests);

my %clients;    # client id => secret
for my $c (@{ $opt{client} }) {
    my ($id, $secret) = split /:/, $c, 2;
    die "--client wants ID:SECRET, got '$c'\n"
        unless defined $secret && length $id;
    $clients{$id} = $secret;
}

my ($listen_host, $listen_port) = $opt{listen} =~ /^(.+):(\d+)$/
    or die "--listen wants HOST:PORT\n";
die "--backlog wants a number of connections, 1 or more\n" if $opt{backlog} < 1;


# State

my $JSON = JSON::PP->new->utf8->canonical->allow_nonref;

my %tokens;         # access token => { client, expires }
my %submissions;    # queue id => { created, msg }
my %faults;         # endpoint name => fault object
my @requests;       # request log for /_mock/requests
my %stats;          # counters
my @site_requests;  # requests the site received (/_site/*)
my %site;           # the site's behaviour: a fault object, {} by default
my %site_stats;     # the site's counters

my %ROUTE_METHOD = (token => 'POST', queue_post => 'POST', queue_get => 'GET');

my %FAULT_FIELDS = map { $_ => 1 }
    qw(count delay_ms status body content_type headers reset close malformed);
my %TOKEN_FAULT_FIELDS = map { $_ => 1 } qw(expires_in ttl_ms no_token);

my %in_flight;      # serial => route, for queue requests not yet answered
my $in_flight_serial = 0;

my $clients_open = 0;   # client connections open now (connections_open_max)

sub reset_state {
    %stats = (token_requests => 0, queue_posts => 0, queue_gets => 0,
              gets_by_id => {}, connections_accepted => 0,
              queue_posts_in_flight_max => 0,
              queue_requests_in_flight_max => 0,
              connections_open_max => $clients_open);
    %faults      = ();
    @requests    = ();
    %submissions = ();
    %in_flight   = ();
    reset_site();
}

sub reset_site {
    @site_requests = ();
    %site          = ();
    %site_stats    = (requests => 0, site_in_flight => 0,
                      site_in_flight_max => 0);
}

reset_state();

sub in_flight_counts {
    my $posts = grep { $_ eq 'queue_post' } values %in_flight;
    return ($posts, scalar keys %in_flight);
}

# A queue request received in full: in flight until answered.
sub in_flight_start {
    my $route = shift;
    my $serial = ++$in_flight_serial;
    $in_flight{$serial} = $route;
    my ($posts, $all) = in_flight_counts();
    $stats{queue_posts_in_flight_max} = $posts
        if $posts > $stats{queue_posts_in_flight_max};
    $stats{queue_requests_in_flight_max} = $all
        if $all > $stats{queue_requests_in_flight_max};
    return $serial;
}

# The state --state saves and loads.
sub save_state {
    my $file = shift;
    my $tmp = "$file.$$.tmp";
    open my $fh, '>', $tmp or die "$tmp: $!\n";
    print $fh $JSON->encode({ tokens => \%tokens, submissions => \%submissions,
                              faults => \%faults, requests => \@requests,
                              stats => \%stats,
                              site_requests => \@site_requests,
                              site => \%site, site_stats => \%site_stats });
    close $fh or die "$tmp: $!\n";
    rename $tmp, $file or die "$file: $!\n";
}

sub load_state {
    my $file = shift;
    open my $fh, '<', $file or return;
    local $/;
    my $s = $JSON->decode(scalar <$fh>);
    %tokens      = %{ $s->{tokens} };
    %submissions = %{ $s->{submissions} };
    %faults      = %{ $s->{faults} };
    @requests    = @{ $s->{requests} };
    %stats       = %{ $s->{stats} };
    @site_requests = @{ $s->{site_requests} || [] };
    %site          = %{ $s->{site} || {} };
    %site_stats    = (%site_stats, %{ $s->{site_stats} || {} });
    # a request held when the mock stopped was never answered
    $site_stats{site_in_flight} = 0;
}

load_state($opt{state}) if defined $opt{state};


# Small helpers

open my $urandom, '<:raw', '/dev/urandom' or die "/dev/urandom: $!\n";

sub random_bytes {
    my $n = shift;
    my $buf;
    my $got = sysread $urandom, $buf, $n;
    die "/dev/urandom: short read\n" unless defined $got && $got == $n;
    return $buf;
}

sub base64url {
    my $s = encode_base64(shift, '');
    $s =~ tr{+/}{-_};
    $s =~ s/=+$//;
    return $s;
}

sub uuid_v4 {
    my @b = unpack 'C16', random_bytes(16);
    $b[6] = ($b[6] & 0x0f) | 0x40;
    $b[8] = ($b[8] & 0x3f) | 0x80;
    return sprintf '%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-'
                 . '%02x%02x%02x%02x%02x%02x', @b;
}

sub iso_utc { strftime '%Y-%m-%dT%H:%M:%SZ', gmtime floor(shift) }

# JSON object with its keys in the order given (the seed's order).
sub json_object {
    my @pairs = @_;
    my @out;
    while (my ($k, $v) = splice @pairs, 0, 2) {
        push @out, $JSON->encode($k) . ':' . $JSON->encode($v);
    }
    return '{' . join(',', @out) . '}';
}

sub uri_unescape {
    my $s = shift;
    $s =~ tr/+/ /;
    $s =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
    return $s;
}

sub parse_query {
    my %q;
    for my $pair (split /&/, shift // '') {
        my ($k, $v) = split /=/, $pair, 2;
        $q{ uri_unescape($k) } = uri_unescape($v // '');
    }
    return \%q;
}

my $log_fh;
if (defined $opt{log}) {
    open $log_fh, '>>', $opt{log} or die "$opt{log}: $!\n";
    $log_fh->autoflush(1);
}

# One line per request: never the query string (it holds the secret).
sub log_request {
    my ($req, $status) = @_;
    $req->{entry}{status} = $status if $req->{entry};
    return unless $log_fh;
    my $t = time;
    printf $log_fh "%s.%03dZ %s %s %s\n",
        strftime('%Y-%m-%dT%H:%M:%S', gmtime $t), ($t - int $t) * 1000,
        $req->{method}, $req->{path}, $status;
}


# Timers: a sorted list of [when, callback]; the loop sleeps until the first.

my @timers;

sub add_timer {
    my ($seconds, $cb) = @_;
    my $timer = [time + $seconds, $cb];
    my ($lo, $hi) = (0, scalar @timers);
    while ($lo < $hi) {
        my $mid = int(($lo + $hi) / 2);
        if ($timers[$mid][0] <= $timer->[0]) {
            $lo = $mid + 1;
        } else {
            $hi = $mid;
        }
    }
    splice @timers, $lo, 0, $timer;
}

sub run_timers {
    my $now = time;
    while (@timers && $timers[0][0] <= $now) {
        my $timer = shift @timers;
        $timer->[1]->();
    }
}


# Connections

my $poll = IO::Poll->new;
my %conns;          # "$sock" => connection
my $accepted = 0;   # connections accepted since start: their serials
my $listener;

use constant MAX_HEADER => 64 * 1024;
use constant MAX_BODY   => 64 * 1024 * 1024;

sub update_mask {
    my $c = shift;
    return if $c->{closed};
    my $mask = 0;
    $mask |= POLLIN  unless $c->{eof};
    $mask |= POLLOUT if length $c->{out};
    $poll->mask($c->{sock}, $mask);
}

sub close_conn {
    my ($c, $abort) = @_;
    return if $c->{closed};
    $c->{closed} = 1;
    $poll->remove($c->{sock});
    delete $conns{ $c->{sock} };
    uncount($c);
    # SO_LINGER 0: close() sends a RST instead of a FIN
    setsockopt $c->{sock}, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0) if $abort;
    close $c->{sock};
}

# Every connection the listen queue holds, until accept() says EAGAIN.  Out
# of descriptors, the listener rests for a while rather than wake the loop
# at once again.
sub accept_all {
    for (;;) {
        my $sock = $listener->accept;
        if (!$sock) {
            my $err = $! + 0;
            next if $err == EINTR || $err == ECONNABORTED;
            last if $err == EAGAIN || $err == EWOULDBLOCK;
            warn "mock fanbase: accept: $!\n";
            if (grep { $err == $_ } EMFILE, ENFILE, ENOBUFS, ENOMEM) {
                $poll->mask($listener, 0);
                add_timer(0.1, sub { $poll->mask($listener, POLLIN) });
            }
            last;
        }
        $sock->blocking(0);
        setsockopt $sock, IPPROTO_TCP, TCP_NODELAY, 1;
        my $c = { sock => $sock, in => '', out => '', serial => ++$accepted };
        $conns{$sock} = $c;
        $stats{connections_accepted}++;
        update_mask($c);
    }
}

# A connection's first request line: a client's (counted in
# connections_open_max while it is open) or the admin's.
sub classify {
    my ($c, $path) = @_;
    return if defined $c->{client};
    $c->{client} = $path !~ m{^/_mock/};
    return unless $c->{client};
    $c->{counted} = 1;
    $clients_open++;
    $stats{connections_open_max} = $clients_open
        if $clients_open > ($stats{connections_open_max} // 0);
}

# A client connection that closed, or whose client closed its side: no
# longer open for connections_open_max.
sub uncount {
    my $c = shift;
    return unless $c->{counted};
    $c->{counted} = 0;
    $clients_open--;
}

sub on_readable {
    my $c = shift;
    my $n = sysread $c->{sock}, $c->{in}, 65536, length $c->{in};
    if (!defined $n) {
        return if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
        return close_conn($c);
    }
    if ($n == 0) {
        $c->{eof} = 1;
        uncount($c);
    }
    process($c);
}

sub on_writable {
    my $c = shift;
    my $n = syswrite $c->{sock}, $c->{out};
    if (!defined $n) {
        return if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
        return close_conn($c);
    }
    substr $c->{out}, 0, $n, '';
    finish_or_continue($c);
}

# After output drained or a delayed answer was queued: close, or go on with
# pipelined requests.
sub finish_or_continue {
    my $c = shift;
    return if $c->{closed};
    my $done = $c->{close_after} || ($c->{eof} && !$c->{busy});
    return close_conn($c) if $done && length $c->{out} == 0;
    process($c) unless $c->{busy} || $c->{close_after};
    update_mask($c);
}

# Handle every complete request in the input buffer, in order.
sub process {
    my $c = shift;
    while (!$c->{busy} && !$c->{close_after} && !$c->{closed}) {
        my $req = parse_request($c) or last;
        dispatch($c, $req);
    }
    return if $c->{closed};
    if ($c->{eof} && !$c->{busy} && length $c->{out} == 0) {
        return close_conn($c);
    }
    update_mask($c);
}

# Parse one request; undef while incomplete (or after an error was answered).
sub parse_request {
    my $c = shift;
    my $head = $c->{head};

    unless ($head) {
        $c->{in} =~ s/^(?:\r?\n)+//;
        my $end = index $c->{in}, "\r\n\r\n";
        if ($end < 0) {
            bad_request($c, 431, 'headers too large')
                if length $c->{in} > MAX_HEADER;
            return;
        }
        my ($line, @lines) = split /\r\n/, substr($c->{in}, 0, $end);
        substr $c->{in}, 0, $end + 4, '';

        my ($method, $target, $major, $minor)
            = $line =~ m{^([!#\$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP/(\d)\.(\d)$}
            or return bad_request($c, 400, 'bad request line');

        my (%headers, @order);
        for my $l (@lines) {
            my ($name, $value) = $l =~ /^([^:\s]+):[ \t]*(.*?)[ \t]*$/
                or return bad_request($c, 400, 'bad header line');
            push @{ $headers{ lc $name } }, $value;
            push @order, [$name, $value];
        }

        my ($path, $query) = split /\?/, $target, 2;
        classify($c, $path);
        my $conn_hdr = lc join ',', @{ $headers{connection} || [] };
        my $http11 = $major == 1 && $minor >= 1;

        $head = $c->{head} = {
            method    => $method,
            target    => $target,
            path      => $path,
            query     => $query // '',
            headers   => \%headers,
            version   => "$major.$minor",
            keepalive => $http11 ? $conn_hdr !~ /\bclose\b/
                                 : $conn_hdr =~ /\bkeep-alive\b/,
        };

        my $te = lc join ',', @{ $headers{'transfer-encoding'} || [] };
        if ($te =~ /\bchunked\b/) {
            $head->{chunked} = 1;
        } else {
            my %cl = map { $_ => 1 } @{ $headers{'content-length'} || [] };
            my @cl = keys %cl;
            return bad_request($c, 400, 'bad content-length')
                if @cl > 1 || (@cl && $cl[0] !~ /^\d+$/);
            $head->{length} = @cl ? $cl[0] : 0;
            return bad_request($c, 413, 'body too large')
                if $head->{length} > MAX_BODY;
        }

        my $expect = lc join ',', @{ $headers{expect} || [] };
        $head->{expect_continue} = $http11 && $expect =~ /100-continue/;
    }

    my $body;
    if ($head->{chunked}) {
        $body = decode_chunked($c) // return;
    } else {
        if (length $c->{in} < $head->{length}) {
            expect_continue($c);
            return;
        }
        $body = substr $c->{in}, 0, $head->{length}, '';
    }

    delete $c->{head};
    $head->{body} = $body;
    return $head;
}

sub expect_continue {
    my $c = shift;
    return unless $c->{head}{expect_continue};
    $c->{head}{expect_continue} = 0;
    $c->{out} .= "HTTP/1.1 100 Continue\r\n\r\n";
}

# A chunked body, or undef while incomplete (trailers are skipped).
sub decode_chunked {
    my $c = shift;
    my ($pos, $body) = (0, '');
    for (;;) {
        my $eol = index $c->{in}, "\r\n", $pos;
        if ($eol < 0) { expect_continue($c); return }
        my $size_line = substr $c->{in}, $pos, $eol - $pos;
        my ($hex) = $size_line =~ /^([0-9A-Fa-f]+)/;
        unless (defined $hex) { bad_request($c, 400, 'bad chunk'); return }
        my $size = hex $hex;
        $pos = $eol + 2;
        if ($size == 0) {
            # trailers end with an empty line
            for (;;) {
                my $e = index $c->{in}, "\r\n", $pos;
                if ($e < 0) { expect_continue($c); return }
                my $empty = $e == $pos;
                $pos = $e + 2;
                last if $empty;
            }
            substr $c->{in}, 0, $pos, '';
            return $body;
        }
        if (length $c->{in} < $pos + $size + 2) { expect_continue($c); return }
        if (length($body) + $size > MAX_BODY) {
            bad_request($c, 413, 'body too large');
            return;
        }
        $body .= substr $c->{in}, $pos, $size;
        $pos += $size + 2;
    }
}

# A protocol error: answer and close the connection.
sub bad_request {
    my ($c, $status, $message) = @_;
    $c->{close_after} = 1;
    delete $c->{head};
    $c->{in} = '';
    my $req = { method => '-', path => '-', version => '1.1', keepalive => 0 };
    respond($c, $req, $status, json_object(message => $message));
    return;
}


# Responses

my %REASON = (
    100 => 'Continue', 200 => 'OK', 201 => 'Created', 202 => 'Accepted',
    204 => 'No Content', 400 => 'Bad Request', 401 => 'Unauthorized',
    403 => 'Forbidden', 404 => 'Not Found', 405 => 'Method Not Allowed',
    408 => 'Request Timeout', 409 => 'Conflict', 413 => 'Payload Too Large',
    422 => 'Unprocessable Entity', 429 => 'Too Many Requests',
    431 => 'Request Header Fields Too Large', 500 => 'Internal Server Error',
    502 => 'Bad Gateway', 503 => 'Service Unavailable',
    504 => 'Gateway Timeout',
);

# Queue an answer.  %o: content_type, headers (arrayref of name => value).
sub respond {
    my ($c, $req, $status, $body, %o) = @_;
    log_request($req, $status);
    return if $c->{closed};

    my $ct = $o{content_type} // 'application/json; charset=utf-8';
    my $reason = $REASON{$status} // 'Unknown';
    my $out = "HTTP/1.1 $status $reason\r\nServer: mock-fanbase\r\n";
    $out .= "Content-Type: $ct\r\n" if length $ct;
    # a 204 (only the site answers one) has neither a body nor a length
    $out .= "Content-Length: " . length($body) . "\r\n"
        unless $status == 204 || $status == 304;
    my @h = @{ $o{headers} || [] };
    while (my ($n, $v) = splice @h, 0, 2) {
        $out .= "$n: $v\r\n";
    }
    if (!$req->{keepalive}) {
        $c->{close_after} = 1;
        $out .= "Connection: close\r\n";
    } elsif ($req->{version} eq '1.0') {
        $out .= "Connection: keep-alive\r\n";
    }
    $c->{out} .= "$out\r\n$body";
}


# Routing

sub dispatch {
    my ($c, $req) = @_;

    return admin($c, $req) if $req->{path} =~ m{^/_mock/};
    return site($c, $req) if $req->{path} =~ m{^/_site/};

    push @requests, $req->{entry} = {
        method  => $req->{method},
        path    => $req->{path},
        query   => $req->{query},
        headers => $req->{headers},
        body    => $req->{body},
        time    => time,
    };
    shift @requests while @requests > $opt{keep_requests};

    my ($route, $id);
    if ($req->{path} eq '/api/token') {
        $route = 'token';
    } elsif ($req->{path} eq '/api/v1/integration/queue') {
        $route = 'queue_post';
    } elsif ($req->{path} =~ m{^/api/v1/integration/queue/([^/]+)$}) {
        ($route, $id) = ('queue_get', $1);
    } else {
        return respond($c, $req, 404, json_object(message => 'no route'));
    }

    if ($req->{method} ne $ROUTE_METHOD{$route}) {
        return respond($c, $req, 405,
                       json_object(message => 'Method Not Allowed'),
                       headers => [Allow => $ROUTE_METHOD{$route}]);
    }

    # count first: faulty requests count too
    if ($route eq 'token') {
        $stats{token_requests}++;
    } elsif ($route eq 'queue_post') {
        $stats{queue_posts}++;
    } else {
        $stats{queue_gets}++;
        $stats{gets_by_id}{$id}++;
    }

    $req->{in_flight} = in_flight_start($route) if $route ne 'token';

    my $fault = take_fault($route);

    if ($fault->{delay_ms}) {
        # hold this connection's later requests until the answer is queued
        $c->{busy} = 1;
        add_timer($fault->{delay_ms} / 1000, sub {
            $c->{busy} = 0;
            answer($c, $req, $route, $id, $fault);
            finish_or_continue($c);
        });
        return;
    }

    answer($c, $req, $route, $id, $fault);
}

# The fault for one request of this route, used up when it has a count.
sub take_fault {
    my $route = shift;
    my $f = $faults{$route} or return {};
    if (defined $f->{count}) {
        delete $faults{$route} if --$f->{count} <= 0;
        return {} if $f->{count} < 0;
    }
    return $f;
}

sub answer {
    my ($c, $req, $route, $id, $fault) = @_;

    delete $in_flight{ $req->{in_flight} } if $req->{in_flight};

    if ($fault->{reset}) {
        log_request($req, 'reset');
        return close_conn($c, 1);
    }
    if ($fault->{close}) {
        log_request($req, 'close');
        return close_conn($c);
    }

    if (defined $fault->{status}) {
        my @h = %{ $fault->{headers} || {} };
        my $body = $fault->{body} // json_object(message => 'injected fault');
        return respond($c, $req, $fault->{status}, $body,
                       content_type => $fault->{content_type}, headers => \@h);
    }

    my ($status, $body) =
          $route eq 'token'      ? token($req, $fault)
        : $route eq 'queue_post' ? queue_post($req)
        :                          queue_get($req, $id);

    if ($fault->{malformed}) {
        # the normal success status with a cut JSON body
        $status = $route eq 'queue_post' ? 201 : 200;
        $body = substr $body, 0, int(length($body) / 2);
        $body = '{"id": "' if length $body < 2;
    }

    my @h = %{ $fault->{headers} || {} };
    respond($c, $req, $status, $body, content_type => $fault->{content_type},
            headers => \@h);
}


# Security: tokens

sub token {
    my ($req, $fault) = @_;
    my $q = parse_query($req->{query});

    return (400, json_object(error => 'unsupported_grant_type'))
        unless ($q->{grant_type} // '') eq 'client_credentials';

    my $id = $q->{client_id} // '';
    return (400, json_object(error => 'invalid_client',
            error_description => 'The informed Client ID is invalid.'))
        unless exists $clients{$id};

    return (400, json_object(error => 'invalid_client',
            error_description =>
                'The informed Client Secret does not match the correct secret.'))
        unless ($q->{client_secret} // '') eq $clients{$id};

    return (200, json_object(token_type => 'Bearer')) if $fault->{no_token};

    my $expires_in = $fault->{expires_in} // $opt{expires_in};
    my $now = time;
    my $lifetime = defined $fault->{ttl_ms} ? $fault->{ttl_ms} / 1000
                 : looks_like_number($expires_in) ? $expires_in
                 : 0;

    my $payload = json_object(
        iss => 'mock-fanbase', sub => $id, scope => 'integration',
        iat => int $now, exp => int($now + $lifetime),
        jti => unpack('H*', random_bytes(16)));
    my $access = join '.', base64url('{"alg":"HS256","typ":"JWT"}'),
        base64url($payload), base64url(random_bytes(32));

    $tokens{$access} = { client => $id, expires => $now + $lifetime };

    return (200, json_object(
        access_token  => $access,
        token_type    => 'Bearer',
        expires_in    => $expires_in,
        refresh_token => base64url(random_bytes(32)),
        scope         => 'integration',
    ));
}

sub token_ok {
    my $req = shift;
    my $values = $req->{headers}{accesstoken} || [];
    return 0 unless @$values == 1;
    my $t = $tokens{ $values->[0] } or return 0;
    return $t->{expires} > time;
}

use constant UNAUTHORIZED => (401, '{"message":"Unauthorized"}');


# Connect: the queue

sub queue_post {
    my $req = shift;
    return UNAUTHORIZED unless token_ok($req);

    my $doc = eval { $JSON->decode($req->{body}) };
    return (400, json_object(iCode => 400, iMsg => 'Invalid JSON'))
        unless ref $doc eq 'HASH' || ref $doc eq 'ARRAY';

    my $id = uuid_v4();
    my $now = time;
    $req->{entry}{queue_id} = $id if $req->{entry};
    $submissions{$id} = {
        created => $now,
        msg     => ref $doc eq 'HASH'
                   ? { action => $doc->{action}, data => $doc->{data} }
                   : { action => undef, data => undef },
    };

    return (201, json_object(
        id            => $id,
        created       => iso_utc($now),
        iCode         => 0,
        iMsg          => 'Objeto criado com sucesso',
        processDate   => undef,
        processStatus => 'pending',
        processMsg    => undef,
    ));
}

sub queue_get {
    my ($req, $id) = @_;
    return UNAUTHORIZED unless token_ok($req);

    my $s = $submissions{$id}
        or return (404, json_object(iCode => 404, iMsg => 'Not found'));

    my $age = time - $s->{created};
    my $data = $s->{msg}{data};
    my $fail = ref $data eq 'HASH' && $data->{fail};

    my ($status, $imsg) = ('pending', 'Objeto criado com sucesso');
    my ($pmsg, $pdate);
    if ($age >= $opt{completed_after}) {
        $pdate = iso_utc($s->{created} + $opt{completed_after});
        ($status, $imsg, $pmsg) = $fail
            ? ('failed', 'Falha no processamento', 'Erro simulado')
            : ('completed', 'Processado com sucesso',
               'Processamento concluído');
    } elsif ($age >= $opt{processing_after}) {
        $status = 'processing';
    }

    return (200, json_object(
        id            => $id,
        created       => iso_utc($s->{created}),
        iCode         => 0,
        iMsg          => $imsg,
        processDate   => $pdate,
        processStatus => $status,
        processMsg    => $pmsg,
        msg           => $s->{msg},
    ));
}


# The site: receives the edge's notifications

sub site {
    my ($c, $req) = @_;
    my $entry = $req->{entry} = {
        method  => $req->{method},
        path    => $req->{path},
        query   => $req->{query},
        headers => $req->{headers},
        body    => $req->{body},
        time    => time,
    };
    push @site_requests, $entry;
    shift @site_requests while @site_requests > $opt{keep_requests};
    $site_stats{requests}++;
    $site_stats{site_in_flight}++;
    $site_stats{site_in_flight_max} = $site_stats{site_in_flight}
        if $site_stats{site_in_flight} > $site_stats{site_in_flight_max};

    # the behaviour for this request, used up when it has a count
    my $b = { %site };
    if (defined $site{count}) {
        %site = () if --$site{count} <= 0;
    }

    my $answer = sub {
        $site_stats{site_in_flight}--;
        $entry->{answered} = time;
        if ($b->{reset}) {
            log_request($req, 'reset');
            return close_conn($c, 1);
        }
        if ($b->{close}) {
            log_request($req, 'close');
            return close_conn($c);
        }
        my $status = $b->{status} // 204;
        my @h = %{ $b->{headers} || {} };
        my $body = $b->{body} // '';
        $body = '' if $status == 204 || $status == 304;
        respond($c, $req, $status, $body,
                content_type => $b->{content_type}
                                // (length $body ? 'application/json' : ''),
                headers => \@h);
    };

    if ($b->{delay_ms}) {
        $c->{busy} = 1;
        add_timer($b->{delay_ms} / 1000, sub {
            $c->{busy} = 0;
            $answer->();
            finish_or_continue($c);
        });
        return;
    }
    $answer->();
}

# Replace the site's behaviour with a JSON body; an error text or undef.
sub set_site {
    my $text = shift;
    $text = '{}' unless length $text;
    my $new = eval { $JSON->decode($text) };
    return 'body must be a JSON object or null'
        if $@ || (defined $new && ref $new ne 'HASH');
    $new ||= {};
    for my $field (keys %$new) {
        return "unknown site field '$field'" unless $FAULT_FIELDS{$field};
    }
    return "'headers' must be an object"
        if defined $new->{headers} && ref $new->{headers} ne 'HASH';
    return "'status' must be a number"
        if defined $new->{status} && $new->{status} !~ /^\d{3}$/;
    %site = %$new;
    return;
}


# Admin endpoints

sub admin {
    my ($c, $req) = @_;
    my $m = $req->{method};
    my $p = $req->{path};
    my $ok = sub { respond($c, $req, 200, $JSON->encode(shift)) };

    if ($p eq '/_mock/stats' && $m eq 'GET') {
        # open connections other than the one asking
        my ($posts, $all) = in_flight_counts();
        return $ok->({ %stats, open_connections => keys(%conns) - 1,
                       queue_posts_in_flight => $posts,
                       queue_requests_in_flight => $all });
    }
    if ($p eq '/_mock/requests' && $m eq 'GET') {
        return $ok->(\@requests);
    }
    if ($p eq '/_mock/faults' && $m eq 'GET') {
        return $ok->(\%faults);
    }
    if ($p eq '/_mock/faults' && $m eq 'POST') {
        my $err = set_faults($req->{body});
        return respond($c, $req, 400, json_object(error => $err)) if $err;
        return $ok->(\%faults);
    }
    if ($p eq '/_mock/expire_tokens' && $m eq 'POST') {
        $_->{expires} = 0 for values %tokens;
        return $ok->({});
    }
    if ($p eq '/_mock/reset' && $m eq 'POST') {
        reset_state();
        return $ok->({});
    }
    if ($p eq '/_mock/site' && $m eq 'GET') {
        return $ok->(\%site);
    }
    if ($p eq '/_mock/site' && $m eq 'POST') {
        my $err = set_site($req->{body});
        return respond($c, $req, 400, json_object(error => $err)) if $err;
        return $ok->(\%site);
    }
    if ($p eq '/_mock/site/requests' && $m eq 'GET') {
        return $ok->(\@site_requests);
    }
    if ($p eq '/_mock/site/stats' && $m eq 'GET') {
        return $ok->(\%site_stats);
    }
    if ($p eq '/_mock/site/reset' && $m eq 'POST') {
        reset_site();
        return $ok->({});
    }
    return respond($c, $req, 404, json_object(message => 'no route'));
}

# Replace the faults named in a JSON body; an error text or undef.
sub set_faults {
    my $new = eval { $JSON->decode(shift) };
    return 'body must be a JSON object' unless ref $new eq 'HASH';

    for my $route (keys %$new) {
        return "unknown endpoint '$route'" unless $ROUTE_METHOD{$route};
        my $f = $new->{$route};
        next unless defined $f;
        return "fault for '$route' must be an object or null"
            unless ref $f eq 'HASH';
        for my $field (keys %$f) {
            next if $FAULT_FIELDS{$field};
            next if $route eq 'token' && $TOKEN_FAULT_FIELDS{$field};
            return "unknown fault field '$field' for '$route'";
        }
        return "'headers' must be an object"
            if defined $f->{headers} && ref $f->{headers} ne 'HASH';
    }

    for my $route (keys %$new) {
        if (defined $new->{$route}) {
            $faults{$route} = $new->{$route};
        } else {
            delete $faults{$route};
        }
    }
    return;
}


# Main loop

$listener = IO::Socket::INET->new(
    LocalAddr => $listen_host,
    LocalPort => $listen_port,
    Proto     => 'tcp',
    Listen    => $opt{backlog},
    ReuseAddr => 1,
    Blocking  => 0,
) or die "cannot listen on $opt{listen}: $@\n";

$poll->mask($listener, POLLIN);

my $stop = 0;
$SIG{TERM} = $SIG{INT} = sub { $stop = 1 };
$SIG{PIPE} = 'IGNORE';

if (defined $opt{pid_file}) {
    open my $fh, '>', $opt{pid_file} or die "$opt{pid_file}: $!\n";
    print $fh "$$\n";
    close $fh;
}

$| = 1;
print "mock fanbase listening on $listen_host:", $listener->sockport, "\n";

while (!$stop) {
    # sleep until the next timer; wake up at least twice a second for signals
    my $timeout = 0.5;
    if (@timers) {
        my $wait = $timers[0][0] - time;
        $timeout = $wait < 0 ? 0 : $wait < $timeout ? $wait : $timeout;
        $timeout = int($timeout * 1000 + 1) / 1000 if $timeout > 0;
    }

    my $n = $poll->poll($timeout);
    if ($n < 0) {
        next if $! == EINTR;
        die "poll: $!\n";
    }

    if ($n > 0) {
        # the oldest connections first: a client that closes one connection
        # and opens another has its FIN seen before the new one's request
        my @ready = sort {
            ($conns{$a} ? $conns{$a}{serial} : 0)
                <=> ($conns{$b} ? $conns{$b}{serial} : 0)
        } grep { $poll->events($_) } $poll->handles;
        for my $h (@ready) {
            my $ev = $poll->events($h) or next;
            if ($h == $listener) {
                accept_all();
                next;
            }
            my $c = $conns{$h} or next;
            on_writable($c) if $ev & POLLOUT && !$c->{closed};
            on_readable($c) if $ev & (POLLIN | POLLERR | POLLHUP | POLLNVAL)
                               && !$c->{closed};
        }
    }

    run_timers();
}

close_conn($_) for values %conns;
save_state($opt{state}) if defined $opt{state};
unlink $opt{pid_file} if defined $opt{pid_file};
exit 0;
