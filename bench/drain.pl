#!/usr/bin/perl

# bench/drain.pl: how fast a backlog drains once Fanbase is back
# (docs/performance.md, "Draining a backlog").
#
#   make module && TEST_NGINX_MODULE=$PWD/build/ngx_http_fanbase_module.so \
#       nice perl bench/drain.pl
#
# The edge: 2 workers, a 512m zone without a state file (BENCH_STATE=1:
# with one, and its journal), the default
# fanbase_deliver_concurrency, its token endpoint up (a "return 200"
# nginx) and its queue where nothing listens yet.  wrk posts to
# "fanbase_submit async" for BENCH_FILL seconds (2); every 202 is a
# pending transaction.  Then Fanbase comes back: an nginx
# answering every POST "return 201" with a queue item of its own id
# ($request_id) and every GET "completed", logging each.  Measured: the
# time from its start to its first POST (the breaker's next probe), the
# time from the first POST to the last of them, the POSTs per second, and
# the same nginx's own rate for wrk's POSTs alone (what this Fanbase can
# take); then that the POSTs are as many as the transactions accepted
# (wrk sends one body, so the count is the check: a lost delivery makes
# it smaller, a duplicate larger).  Lines of
# TAP from the harness end the output.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";

use FanbaseTest qw(:DEFAULT nginx_conf spawn wait_listen free_port slurp);
use Time::HiRes qw(time sleep);

chdir "$FindBin::Bin/..";

my $FILL    = $ENV{BENCH_FILL} // 2;
my $DONE_ID = '7c9e6679-7425-40de-944b-e07fc1f90ae7';

my $fb_port = free_port();

# the edge, its token endpoint at the first nginx below, its queue not yet
my $tok_port = free_port();
my $t = FanbaseTest->new(
    mock    => undef,
    workers => 2,
    files   => edge_files(),
    http    => (edge_http(zone => '512m', timeout => '10s',
                          $ENV{BENCH_STATE} ? (state => '%%DIR%%/fb.state') : ())
                =~ s{fanbase_api %%MOCK%%;}{fanbase_api http://127.0.0.1:$fb_port;}r
                =~ s{fanbase_token_url %%MOCK%%/api/token;}
                    {fanbase_token_url http://127.0.0.1:$tok_port/api/token;}r),
    server  => "location = $QUEUE { fanbase_submit async; }\n"
             . "location = /health { fanbase_health; }\n",
    error_log_level => 'error',
    log_allow => qr/\[error\]/,
);
my $dir = $t->dir;

# one nginx for the token endpoint (up all along), one for Fanbase's queue
sub start_nginx {
    my ($name, $port, $server, $http) = @_;
    my $conf = nginx_conf(dir => $dir, name => $name, workers => 1,
                          error_log_level => 'warn', access_log => 'off',
                          http => "    default_type application/json;\n"
                                . ($http // '')
                                . "    server {\n"
                                . "        listen 127.0.0.1:$port backlog=4096;\n"
                                . $server . "    }\n");
    open my $fh, '>', "$dir/$name.conf" or die "$dir/$name.conf: $!";
    print $fh $conf;
    close $fh;
    my $pid = spawn(cmd => ['/usr/sbin/nginx', '-p', "$dir/", '-c',
                            "$dir/$name.conf"],
                    output => "$dir/$name.out");
    my ($state) = wait_listen($port, $pid, 10);
    die "$name: $state\n" . slurp("$dir/$name.out") unless $state eq 'listening';
    return $pid;
}

my $token_pid = start_nginx(token => $tok_port, <<'CONF');
        location = /api/token {
            return 200 '{"access_token":"bench-token","token_type":"Bearer","expires_in":3600}';
        }
CONF

$t->start;

# the backlog, with Fanbase's queue down
my $url = 'http://127.0.0.1:' . $t->port . $QUEUE;
my $out = `wrk -t2 -c64 -d${FILL}s -s bench/post.lua $url 2>&1`;
die "wrk: $out" unless $out =~ /\d+ requests in/ && $out !~ /Non-2xx/;

# what the edge accepted (wrk does not count the requests it left in
# flight at the end): fanbase_health's count, once it holds still
my $n = -1;
for (1 .. 20) {
    sleep 0.5;
    my $h = $t->request(GET => '/health')->{json} or next;
    last if $h->{transactions} == $n;
    $n = $h->{transactions};
}
printf "backlog: %d transactions accepted with Fanbase down\n", $n;

# Fanbase is back
my $back = time;
my $fb_pid = start_nginx(fanbase => $fb_port, <<"CONF", <<'HTTP');
        location = $QUEUE {
            access_log $dir/posts.log posts buffer=64k flush=100ms;
            return 201 '{"id":"\$request_id","created":"2026-01-01T00:00:00Z","iCode":0,"processStatus":0}';
        }
        location $QUEUE/ {
            return 200 '{"id":"$DONE_ID","processStatus":2,"processDate":"2026-01-01T00:00:01Z"}';
        }
CONF
    log_format posts '$msec $request_method';
HTTP

# every POST logged, or a minute without progress
my ($count, $last_change, $last) = (0, time, 0);
while (time - $last_change < 60) {
    sleep 0.5;
    my $c = () = slurp("$dir/posts.log") =~ /POST/g;
    if ($c != $last) { ($last, $last_change) = ($c, time) }
    last if $c >= $n && time - $last_change > 2;
}

my @posts = map { [split / /] } grep { /POST/ } split /\n/, slurp("$dir/posts.log");
die "no POST reached Fanbase\n" unless @posts;
my $first = $posts[0][0];
my $end   = $posts[-1][0];

printf "Fanbase back: first POST after %.1f s (the breaker's next probe)\n",
       $first - $back;
printf "drain: %d POSTs in %.1f s, %.0f per second\n", scalar @posts,
       $end - $first, @posts / (($end - $first) || 1);

# what this Fanbase takes from wrk alone
my $fb_url = "http://127.0.0.1:$fb_port$QUEUE";
$out = `wrk -t2 -c64 -d5s -s bench/post.lua $fb_url 2>&1`;
my ($rate) = $out =~ /Requests\/sec:\s*([\d.]+)/;
printf "the same Fanbase, wrk's POSTs alone: %.0f per second\n", $rate // 0;
printf "drain rate / Fanbase's rate: %.2f\n",
       @posts / (($end - $first) || 1) / ($rate || 1);

kill 'QUIT', $fb_pid, $token_pid;

is(scalar @posts, $n, "as many POSTs as transactions accepted ($n)");

$t->stop;
done_testing;
