package FanbaseTest;

=head1 NAME

FanbaseTest - test harness for ngx_http_fanbase_module

=head1 SYNOPSIS

    use lib 't/lib';
    use FanbaseTest;    # also exports everything Test::More exports

    my $t = FanbaseTest->new(
        mock   => { clients => ['demo-client:demo-secret'], expires_in => 3600,
                    processing_after => 1, completed_after => 2 },
        files  => { 'secret' => "demo-secret\n" },
        http   => "fanbase_zone zone=fb:1m;\n",
        server => "location = /q { fanbase_submit; }\n",
    );
    $t->start;

    my $res = $t->request(POST => '/q', headers => [X => 1], body => '{}');
    is $res->{status}, 201;

    $t->run_cases({ name => 'no GET', request => [GET => '/q'], status => 405 });

    done_testing;    # stops nginx and the mock first, then checks error.log

Every started nginx adds two tests at the end ("nginx stopped gracefully",
"error log clean"): end test files with C<done_testing>, not a fixed plan.

=head1 CONSTRUCTOR

=over

=item new(%args)

C<mock>: hashref of C<clients> (arrayref of "ID:SECRET"), C<expires_in>,
C<processing_after>, C<completed_after> (seconds, fractions allowed),
C<backlog> (the length of the mock's listen queue, C<--backlog>) and
C<args> (arrayref of extra command line arguments).  Absent: a mock with
the defaults; C<< mock => undef >>: no mock.

C<files>: name => content, written into the test directory before nginx
starts; a content may also be C<< { content => ..., mode => 0600 } >>.

C<main>, C<http>, C<server>: configuration text for the main context, for
C<http {}> (after the harness's own lines, among them C<log_format fb_pid>:
C<$pid $request_method $request_uri $status>, for C<access_log FILE fb_pid>
and C<log_pids>) and for the harness's C<server { listen 127.0.0.1:PORT; }>.

C<error_log_level> (default C<info>), C<workers> (default 2),
C<worker_connections> (default 8192),
C<log_allow>: a regexp of error.log lines that are expected and do not make
the "error log clean" check fail.

C<hook_secret>: the secret C<hook> signs with when it is not told one.

C<name>: the instance's name (one of several nginx hosts in a test): its
tests at the end are then "NAME: nginx stopped gracefully" and "NAME:
error log clean", and C<%%NAME%%> stands for it.  C<mock_of>: another
instance whose mock this one uses (no mock of its own; C<mock> must not be
given): C<%%MOCK%%>, C<mock_url> and the C<mock_*> methods are that mock's;
that instance must be started first, and its C<stop> stops this one before
its mock.

In C<main>, C<http>, C<server> and C<files>: C<%%MOCK%%> becomes
C<http://127.0.0.1:MOCKPORT>, C<%%MOCKPORT%%> the mock's port alone,
C<%%DIR%%> the test directory, C<%%PORT%%> nginx's port, C<%%DEAD%%>
C<http://127.0.0.1:PORT> where nothing listens, C<%%NAME%%> the C<name>.

=item FanbaseTest->cluster($n, %args)

Several nginx hosts in one test: C<$n> instances (not started) named A,
B, C, ... (C<name>), each with its own directory, port, error log, pid
and checks at the end; all take C<%args> (as for C<new>).  The mock
(C<mock>) runs in an instance of its own, without nginx and in a
directory of its own (a host's may be removed), that all of them use
(C<mock_of>): the first host started starts it, and it stops them all
before the mock at the end.  C<per_host>: a code ref called with the
host's name and index (0 for A) that returns arguments of that host
replacing those of C<%args> (a port of its own in C<http>, say).

    my @h = FanbaseTest->cluster(3, mock => {...}, files => ..., http => ...);
    $_->start for @h;
    $h[1]->get_tx($id);    # B, at its own port
    $h[2]->queue_posts;    # the one mock's log

=item FanbaseTest->skip_unless_directive($directive, %args)

Runs C<nginx -t> on C<new(%args)>'s configuration, and skips the whole
test file (C<plan skip_all>, saying why) when nginx says C<unknown
directive "$directive">: the module was built without it.  Any other
outcome, an error included, does not skip.

=item FanbaseTest::new_dir()

A new temporary directory for what is not an nginx's (a redis-server
that outlives a host's directory), removed at exit (kept with
TEST_NGINX_KEEP=1).

=back

=head1 SHARED CONFIGURATION

C<edge_http(zone => '1m', timeout => '10s', state => PATH, extra => '...')>
returns the C<http> text most tests share (zone, API and token URL pointing
at the mock, the mock's default client, its secret file); C<state> adds
C<state=PATH> to C<fanbase_zone> (C<%%DIR%%> allowed).  C<edge_files()>
returns the C<files> that go with it.

=head1 CONSTANTS

Exported variables: C<$QUEUE>, Fanbase's queue path
(C</api/v1/integration/queue>); C<$UUID4>, a qr// of a whole lower-case
version 4 UUID (a transaction id, a queue id of the mock); C<$ISO>, a
qr// of a date and time to the second (C<2025-01-01T00:00:00Z>), not
anchored, to use inside other patterns; C<$ISO_MS>, a qr// of a whole
date and time to the millisecond (the edge's C<created_at>); C<@CT>, the
header pair C<< ('Content-Type' => 'application/json') >>.

=head1 METHODS

=over

=item start

Starts the mock (if any) and nginx, and returns once nginx accepts
connections and all its workers exist; dies with error.log when nginx
fails.

=item start_mock

Starts only the mock (tests of the mock itself).  After C<stop_mock> it
starts the mock again on its old port with the state it saved (tokens,
queue items, request log, counters, faults: the mock's C<--state> file
DIR/mock.state), so that Fanbase is unreachable (connection refused) while
it is stopped and the same Fanbase when it is back.

=item stop_mock

Stops the mock (TERM; it saves its state).  Its port and C<%%MOCK%%> stay
as they were; nothing listens there until C<start_mock>.

=item start_nginx(timeout => 10)

Starts nginx only, and waits up to C<timeout> seconds for it to listen
(a zone loading a million transactions takes longer).  After C<stop_nginx>: nginx again in the same
directory, with the same (rewritten) configuration, its state files and an
error.log that goes on (the "error log clean" test at the end reads all of
it).

=item stop_nginx(signal => 'QUIT')

Stops nginx only, with C<QUIT> (graceful; the test "nginx stopped
gracefully") or C<TERM> (fast, what C<nginx -s stop> sends; the test
"nginx stopped on TERM within 10 s").  The mock keeps running.

=item kill9

C<kill -9> of the master and every worker at once, as a host that dies;
waits (10 s) until all are gone and returns true when they are.  No
"nginx stopped" test follows, and no "exited on signal" line (the master
is gone too); "error log clean" still reads the error log at the end.
C<start_nginx> starts it again in its directory.

=item remove_dir

A host that loses its disk: once nginx has stopped (C<kill9> or
C<stop_nginx>), runs the test "error log clean" on its error log as it
is now, then removes its directory (with TEST_NGINX_KEEP=1, renames it
C<DIR.removed>).  True when the directory is gone.  C<start_nginx>
afterwards starts a new host in a new, empty directory of the same name.

=item stop_with(@objects)

Objects (a C<FanbaseRedis>) whose C<stop> is called at the end once this
instance, every instance that uses the same mock (C<mock_of>) and the
mock have stopped: the hosts never see their Redis go away at the end.

=item kill_workers(signal => 'KILL', pids => [...])

Sends the signal to the given workers (default: all) and waits until the
master has replaced them; returns the new workers' pids, or an empty list
after 10 s.  A worker killed by a signal makes nginx log
"worker process N exited on signal 9" at C<[alert]>: pass
C<< log_allow => qr/exited on signal 9/ >> to C<new>.

=item background($code)

Runs C<$code> in a child process (for example many requests while the
test reloads nginx) and returns a code ref that waits for the child and
returns the list C<$code> returned (passed through JSON: plain data only).
The child runs no tests.

=item stop

Stops nginx gracefully (QUIT; a forced stop fails the test "nginx stopped
gracefully"), the instances that use its mock (C<mock_of>), the mock and
the objects of C<stop_with>, then runs the test "error log clean": no
C<[alert]>, C<[crit]>, C<[emerg]>, C<exited on signal>, no sanitizer report
(DIR/asan.*, DIR/ubsan.*).  Runs by itself at C<done_testing>, at END, or
when the object goes away.

=item reload(%args)

Optionally rewrites the configuration (keys of C<new>: C<main>, C<http>,
C<server>, C<files>, C<error_log_level>, C<workers>), sends HUP and waits
until the old workers are gone (10 s).  True on success.

=item test_config

=item FanbaseTest->nginx_t(%args)

Runs C<nginx -t> on the configuration (instance, or C<new>'s arguments in a
fresh directory).  Returns C<($ok, $output, $exit_code)>; C<$ok> is true
when nginx -t exited 0.

=item request($method, $path, %opts)

One HTTP/1.1 request on a new connection.  C<headers> (arrayref of
name => value, duplicates allowed, sent as given), C<body> (bytes; a
character string is UTF-8 encoded), C<timeout> (default 10 s), C<port>
(default nginx's; the mock's when only the mock runs), C<raw> (exact bytes
to send instead).  C<Host: localhost> and C<Content-Length> are added
unless given.  Interim 1xx answers are skipped.  Returns
C<< { status, reason, headers => {lcname => 'v1, v2'}, header_list =>
[[Name, value], ...], body, json, time, error } >>; C<status> is 0 and
C<error> says why when no complete response came.

=item parallel($n, $method, $path, %opts)

C<$n> such requests at once, each on its own connection; C<headers>,
C<body> and C<port> may be code refs called with the index (0 .. n-1): a
port each, the same request on several hosts at the same moment.  Returns the
list of responses, in index order.

=item submit(%opts)

One submission: a POST with C<Content-Type: application/json>, then
C<Idempotency-Key: KEY> with C<key>, then C<headers>.  The body is C<body>
as it is, or else C<{"action":ACTION,"data":DATA}> (canonical JSON, UTF-8)
of C<action> (default C<ticket-create>) and C<data> (default C<{}>).
C<path> (default the queue, C</api/v1/integration/queue>), C<port> and
C<timeout> as for C<request>.  C<status>: also one test that the answer
has this status, named C<name> (default C<"submission: STATUS">).
C<record>: an arrayref the answer is pushed onto too.  Returns the
answer, as C<request> does.

=item get_tx($id, %opts), tx($id, %opts), tx_status($id, %opts)

Reading a transaction.  C<get_tx>: the answer to C<GET>
C<PREFIX/ID> (C<prefix> default C</transactions>), or to C<path> when
given; C<method> (default C<GET>), C<wait> (C<?wait=N>), C<inm> (an
C<If-None-Match> header), C<port> and C<timeout> as for C<request>;
C<record>: an arrayref the answer is pushed onto too.  C<tx>: the
transaction (the answer's JSON) when it is 200, else undef.
C<tx_status>: its C<status> when it is 200, else C<"HTTP STATUS">
(C<HTTP 404>; C<HTTP 0> when no answer came).  Both take C<get_tx>'s
options.

=item wait_status($id, $want, %opts)

Reads the transaction (GET C<path>, default C</transactions/ID>, at
C<port>) every C<interval> seconds (default 0.05) until it answers 200
with a C<status> that is C<$want> (a string) or matches it (a qr//), for
C<timeout> seconds at most (default 15).  Returns the transaction of the
last answer (its JSON), or undef when that answer was not 200.
C<answer>: a scalar ref that receives the last answer itself;
C<record>: an arrayref every answer is pushed onto.

=item numbered(%opts), posts_by_n, posts_for($n)

Submissions the mock's log tells apart: C<numbered> submits (C<submit>,
whose options it takes) a body whose C<data.n> is the next number of
this process (C<< body_for(%$data, n => N) >>, C<data> a hashref), or
C<body> as it is.  Returns C<< { res, n, body, id } >>, C<id> the
transaction id of a 202 or C<none>.  C<posts_by_n>: the queue POSTs
(C<queue_posts>) by the C<data.n> of their bodies, C<< { n => [posts] }
>>; C<posts_for($n)>: those of one C<n>, a list.

=item hook($path, $body, %opts)

POSTs a webhook to C<$path>: C<$body> (a reference is encoded as
canonical JSON, text) with C<@CT> and the Standard Webhooks headers of
C<sign_webhook>, signed with C<secret> (default C<new>'s C<hook_secret>),
C<id> (default a new one) and C<timestamp> (default now); C<signatures>
as for C<sign_webhook>.  C<headers>: these instead of the signature
headers (C<[]>: none); C<extra>: more headers after them; C<port> as for
C<request>.  Returns the answer.

=item run_cases(@cases)

Tests as data.  A case: C<name>, C<request> (C<[METHOD, PATH, %opts]> as
for C<request>), C<before> (code ref called with C<$t> first), C<status>,
C<headers> (lcname => string | qr// | undef for "absent"), C<json> (deep
subset, see C<json_like>), C<body> (string | qr//), C<log_like> and
C<log_unlike> (qr// or arrayref of them), C<mock> (code ref called with
C<($t, $res)>).  Returns the responses.

=item log_like(qr//, $name), log_unlike(qr//, $name), error_log

=item log_mark, log_since($mark)

C<log_mark>: where error.log ends now (its size); C<log_since($mark)>:
what was written to it after that mark, to check the lines one case
caused.

=item log_lines($file)

How many lines DIR/$file has now (0 when it does not exist).

=item log_pids($file, $re, from => $n)

The processes that wrote the lines of DIR/$file that match C<$re>, whose
first group is the pid, from line C<$n> on (default 0, the first; a
C<log_lines> taken before): a list of pid => how many lines.  For an
C<access_log> in a C<log_format> that starts with C<$pid> (C<fb_pid>),
C<qr/^(\d+) POST \/path />; for error.log at C<debug>,
C<qr/\[debug\] (\d+)#\d+: .../>.

=item wait_for($code, %opts)

Calls C<$code> until it returns true (C<timeout> default 5 s, C<interval>
0.05 s); returns that value or undef.

=item mock_stats, mock_requests(%filter), mock_faults(\%faults), mock_reset,
mock_expire_tokens, mock_url, mock_port, mock_gets($id), queue_posts,
posts_with($body)

The mock's admin endpoints.  C<mock_requests> returns an arrayref,
optionally filtered by C<method> and C<path> (string or qr//); each entry
has C<method>, C<path>, C<query>, C<headers>, C<body>, C<time>, C<status>
(what the mock answered, or C<reset>/C<close>; absent while a delayed
request is held) and, for a POST that created a queue item, C<queue_id>.
C<mock_gets($id)>: how many GETs of queue item C<$id> the mock answered
(C<gets_by_id> of C<mock_stats>, 0 for none).
C<queue_posts>: C<mock_requests> of the POSTs to C<$QUEUE>;
C<posts_with($body)>: how many of them carried exactly C<$body>.
C<mock_stats> also has C<queue_posts_in_flight> and
C<queue_posts_in_flight_max> (queue POSTs received and not yet answered,
now and at most at once), C<queue_requests_in_flight[_max]> (POSTs and
GETs of the queue) and C<connections_open_max> (the most client
connections open at once; the harness's own calls to C</_mock/*> are not
counted).  See the header of t/mock_fanbase.pl for the faults
(C<close> answers nothing and closes with a FIN, C<reset> with a RST).

=item mock_site(\%behaviour), mock_site_requests(%filter), mock_site_stats,
mock_site_reset, site_url

The site that receives the edge's notifications: the mock answers every
request under C</_site/> (C<site_url> is the mock's C</_site/hook>; in
configuration text, C<%%MOCK%%/_site/hook>).  C<mock_site> sets how it
answers: C<status> (default 204), C<count> (the next N requests, then 204
again; without, until changed), C<delay_ms>, C<body>, C<content_type>,
C<headers>, C<reset>, C<close>; C<< mock_site({}) >> is the default again.
C<mock_site_requests> returns every request the site received, oldest
first, optionally filtered by C<method>, C<path> (string or qr//) and
C<id> (the C<webhook-id> header, string or qr//); each has C<method>,
C<path>, C<query>, C<headers> (lower-case name => [values]), C<body> (raw
bytes), C<time> (received), C<answered> and C<status> (absent while
held).  C<mock_site_stats>: C<requests>, C<site_in_flight>,
C<site_in_flight_max>.  C<mock_reset> clears the site too.

=item write_file($name, $content, $mode)

Writes DIR/$name now (C<files> are written when nginx starts or reloads).

=item webhook_secret_file($name)

Generates a C<whsec_> secret (C<webhook_secret>), writes it with a newline
to DIR/$name (mode 0600) and returns it.

=item tls_ca($name)

A throwaway certificate authority made with the C<openssl> command line
(P-256 key, valid two days): DIR/$name.key and DIR/$name.crt, the path of
which it returns (for C<fanbase_ssl_trusted_certificate>).  Dies with
openssl's output (DIR/openssl.log) when openssl fails or is missing.

=item tls_cert($name, ca => $ca, cn => CN, san => SAN)

A server certificate (C<serverAuth>, valid two days) signed by the CA
that C<tls_ca($ca)> made, for the subject C<cn> (default C<localhost>)
with the C<subjectAltName> C<san> (default
C<DNS:localhost,IP:127.0.0.1>): DIR/$name.key and DIR/$name.crt.
Returns the certificate's path.

=item start_tls_front($name, cert => $cert, to => PORT, port => PORT)

Starts a TLS "Fanbase": a second nginx, the same binary (without the
module loaded and without any C<fanbase_*> directive), with one worker,
that listens C<ssl> on 127.0.0.1:C<port> (default a free port) with the
certificate C<tls_cert($cert)> made and proxies every request to
127.0.0.1:C<to> (default the mock's: call C<start_mock> first).  It adds
the header C<X-TLS-Front: NAME PROTOCOL> (C<$ssl_protocol>), so that the
mock's request log tells what came through it.  Its files are
DIR/front-$name.* (C<.conf>, C<.error.log> at C<info>, C<.access.log>
without query strings, C<.out>).  It offers TLS 1.2 and 1.3.  Returns its
port, once it accepts connections.  C<stop> (and so C<done_testing>)
stops it after nginx and before the mock, with two tests of its own:
"TLS front NAME stopped gracefully" and "TLS front NAME: error log clean"
(the same checks as nginx's, on its error log, output and sanitizer
reports, DIR/front-$name.asan.* and .ubsan.*).

=item stop_tls_front($name)

Stops that front now (its two tests).  Nothing listens on its port until
C<start_tls_front> starts it again (the same name: the same port and
certificate unless told others).

=item dir, port, nginx_pid, worker_pids, mock_pid

The test directory, nginx's port, the master's pid, the workers' pids,
the mock's pid (undef while it is stopped).

=back

=head1 FUNCTIONS

C<json_like($got, $want, $name)>: one test; every key of C<$want> must be
in C<$got> and match: scalars by value, qr// by pattern, C<undef> means
JSON null, code refs get the value and must return true, arrays match
element by element (the first C<@$want> elements).

C<new_uuid()>: a random version 4 UUID, the shape of a transaction id.

C<tx_id($res)>: the C<transaction_id> of a 202 answer (a submission
accepted by C<fanbase_submit async>), or C<''>.

C<sleep_until($when)>: sleeps until C<time> (Time::HiRes) is C<$when>;
at once when that has passed.

C<jwt_claims($token)>: the claims of a JWT (the mock's tokens): its
payload, base64url-decoded JSON; C<{}> when the token has none.

C<last_event($tx)>: the last of a transaction's C<events> (C<$tx> as
decoded from its JSON), or undef.

C<statuses(@requests)>: what the mock answered each of these requests
(entries of C<mock_requests>), joined with commas (C<"503,503,201">);
C<held> for a request it has not answered yet.

C<body_for(%data)>: the body of a valid submission,
C<{"action":"ticket-create","data":{...}}> with C<%data> as its data:
canonical JSON (keys sorted, so that the same data gives the same
bytes, which the mock's request log can be searched for), as a character
string.

C<padded($size)>: the body of a valid submission of exactly C<$size>
bytes (its data a C<pad> string of x's).

C<error_case($status, $code, %headers)>: the keys of a C<run_cases> case
that checks one of the edge's own JSON errors: the status, a JSON
Content-Type, C<{"error":{"status":STATUS,"code":CODE,"message":"..."}}>
(C<$code> a string or a qr//) and C<%headers> (as the case's C<headers>).
C<error_ok($res, $status, $code, $name, %headers)>: the same checks of an
answer, as tests (C<"$name: STATUS">, C<"$name: JSON">, C<"$name: error
body">, then C<"$name: HEADER"> for each of C<%headers>, compared as
strings).

=head2 Webhooks

C<webhook_secret(bytes => 32)>: a new Standard Webhooks secret,
C<whsec_> and the base64 of random bytes.

C<sign_webhook(secret => 'whsec_...', id => ID, timestamp => SECONDS,
body => BYTES)>: the Standard Webhooks headers, as a list
C<< ('webhook-id' => ID, 'webhook-timestamp' => TS, 'webhook-signature'
=> 'v1,...') >> for C<request>'s C<headers>.  C<timestamp> defaults to now,
C<id> to C<new_msg_id()> (a new C<msg_PID_TIME_N>, never the same one
twice in a process); C<signatures> (arrayref of C<v1,...> strings)
replaces the signature list (it may hold C<webhook_signature(...)>
entries).

Bodies are bytes: a string with characters above 0xFF is UTF-8 encoded
first, any other is taken byte for byte (the raw bodies of
C<mock_site_requests> can be passed as they are).

C<webhook_signature($secret, $id, $timestamp, $body)>: one C<v1,BASE64>
entry: the base64 of HMAC-SHA256(key, "id.timestamp.body"), the key being
the base64-decoded part after C<whsec_> (a secret without C<whsec_> is used
as it is).

C<hmac_webhook(secret =>, body =>, header => 'X-Signature', encoding =>
'hex' | 'base64', prefix => 'sha256=')>: the header (name => value) of the
C<hmac> scheme: HMAC-SHA256 of the body alone with the secret (used as it
is, unless C<whsec_>).  C<token_webhook(secret =>, header =>)>: the header
of the C<token> scheme (the secret itself).

C<verify_webhook($secret, $headers, $body)>: verifies one signed message
with the C<standardwebhooks> npm package (C<t/lib/verify_webhook.js>, run
with C<node> or C<nodejs>, C<NODE_PATH=build/node/node_modules>; C<make
deps> installs both).  C<$headers>: a hashref (values may be arrayrefs, as
C<mock_site_requests> gives them) or an arrayref of pairs.  Returns
C<< { ok => 1, payload => ... } >> or C<< { ok => 0, error => '...' } >>;
when Node or the package is missing, C<ok> is 0 and C<error> says so (the
tests then fail: they are never skipped).  C<verify_webhooks([[$secret,
$headers, $body], ...])> verifies many with one Node process and returns
the list of results.

=head1 BUILDING BLOCKS

Functions the methods above are made of, for scripts that run nginx and
the mock their own way (C<bench/run.pl>); exported on request only:
C<use FanbaseTest qw(spawn nginx_conf ...)>.

C<free_port()>: a port nothing listens on, below the ephemeral range,
never the same one twice.

C<spawn(cmd => [...], output => FILE, stdout => HANDLE, stderr => FILE,
stdin => FILE, env => {...})>: fork and exec; C<output> takes stdout and
stderr (appended).  Returns the pid.  C<wait_pid($pid, $timeout)>: its
wait status, or undef after C<$timeout> seconds.
C<wait_listen($port, $pid, $timeout)>: waits until something accepts
connections on 127.0.0.1:C<$port> while the child C<$pid> runs:
C<('listening')>, C<('exited', $wait_status)> or C<('timeout')>.
C<child_pids($pid)>: its live child processes (an nginx master's
workers), sorted.

C<nginx_conf(dir => DIR, name => NAME, module => SO, master => 'on',
workers => 2, worker_connections => 8192, error_log_level => 'info',
access_log => PATH | 'off',
main => TEXT, http => TEXT)>: the text of an nginx.conf in the foreground,
its files in DIR (C<NAME.pid>, C<NAME.error.log>, C<NAME.client_body>, ...
with a C<name>; C<nginx.pid>, C<error.log>, C<client_body>, ... without),
C<main> in the main context, C<http> in C<http {}> after the lines every
such nginx has.  C<nginx_test(cmd => [nginx, args...], output => FILE,
env => {...})>: runs it with C<-t>; C<($ok, $output, $exit_code)>.

C<bench_edges(%args)>: for the side-by-side benchmarks under bench/, one
started instance (C<new(%args)>) per module of C<BENCH_MODULES>
(C<LABEL=PATH,LABEL=PATH>; without it, C<this=> the module of
C<TEST_NGINX_MODULE>), as a list of C<< { label => ..., t => ... } >>.
C<cpu_seconds(@pids)>: the CPU time (user and system) the processes have
used so far, in seconds.

C<spawn_mock(listen => '127.0.0.1:PORT', log => FILE, pid_file => FILE,
state => FILE, clients => [...], expires_in => S, processing_after => S,
completed_after => S, backlog => N, args => [...], stderr => FILE)>: t/mock_fanbase.pl
in a process of its own (C<listen> defaults to a port of its choosing);
returns its pid, its port and the read end of its standard output (keep
it open while the mock runs); dies when the mock does not start.

C<http_request($port, $method, $path, %opts)> and C<http_parallel($port,
$n, $method, $path, %opts)>: C<request> and C<parallel> to any port of
127.0.0.1.  C<slurp($file)> (C<''> when it cannot be read),
C<spew($file, $text)>.

=head1 ENVIRONMENT

TEST_NGINX_BINARY (default /usr/sbin/nginx), TEST_NGINX_MODULE (a dynamic
module to load_module), TEST_NGINX_KEEP=1 (keep the test directory),
TEST_NODE (the Node.js binary; default C<node>, else C<nodejs>, in PATH).

TEST_FANBASE_ENGINE=redis: an nginx whose C<http> text has C<fanbase_zone>
(and no C<fanbase_redis> of its own) gets C<fanbase_redis> too, naming a redis-server of its own
(L<FanbaseRedis>, in the test directory, started before nginx and stopped
after it): a test of the embedded engine runs on the Redis engine.

=cut

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(abs_path);
use Digest::SHA qw(hmac_sha256 hmac_sha256_hex);
use MIME::Base64 qw(encode_base64 decode_base64);
use Errno qw(EAGAIN EWOULDBLOCK EINTR);
use File::Basename qw(dirname);
use File::Path qw(make_path);
use File::Spec;
use File::Temp qw(tempdir);
use IO::Poll qw(POLLIN POLLOUT POLLERR POLLHUP);
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(WNOHANG);
use Scalar::Util qw(blessed looks_like_number weaken);
use Socket qw(SOL_SOCKET SO_ERROR);
use Test::More;
use Test2::API qw(test2_add_callback_testing_done);
use Time::HiRes qw(time sleep);

use Exporter qw(import);
our @EXPORT = (@Test::More::EXPORT, qw(json_like new_uuid tx_id edge_http
                 edge_files webhook_secret sign_webhook webhook_signature hmac_webhook
                 token_webhook verify_webhook verify_webhooks
                 $QUEUE $UUID4 $ISO $ISO_MS @CT sleep_until jwt_claims
                 last_event statuses body_for padded error_case error_ok
                 new_msg_id));
our @EXPORT_OK = qw(free_port spawn wait_pid wait_listen child_pids nginx_conf
                    nginx_test spawn_mock http_request http_parallel slurp spew
                    bench_edges cpu_seconds);

my $MOCK_SCRIPT = File::Spec->catfile(dirname(abs_path(__FILE__)), '..',
                                      'mock_fanbase.pl');
my $VERIFY_SCRIPT = File::Spec->catfile(dirname(abs_path(__FILE__)),
                                        'verify_webhook.js');
my $NODE_MODULES = File::Spec->catdir(dirname(abs_path(__FILE__)), '..', '..',
                                      'build', 'node', 'node_modules');
my $JSON = JSON::PP->new->utf8->allow_nonref->canonical;
my $JSON_TEXT = JSON::PP->new->canonical;    # text, not bytes: bodies made here

# Constants the test files share (exported; see CONSTANTS in the POD).
our $QUEUE  = '/api/v1/integration/queue';
our $UUID4  = qr/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
our $ISO    = qr/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/;
our $ISO_MS = qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
our @CT     = ('Content-Type' => 'application/json');

my %NEW_ARGS = map { $_ => 1 }
    qw(mock files main http server error_log_level workers log_allow
       hook_secret worker_connections name mock_of);
my %RELOAD_ARGS = map { $_ => 1 }
    qw(files main http server error_log_level workers worker_connections);

my @LIVE;    # weak references to the instances still running


# Construction and configuration

sub new {
    my ($class, %args) = @_;
    for (keys %args) {
        croak "FanbaseTest->new: unknown argument '$_'" unless $NEW_ARGS{$_};
    }

    my $keep = $ENV{TEST_NGINX_KEEP};
    my $dir = tempdir('fanbase-test-' . 'X' x 6, TMPDIR => 1, CLEANUP => !$keep);
    chmod 0755, $dir;
    diag("test directory: $dir") if $keep;

    my $self = bless {
        args  => { %args },
        dir   => $dir,
        port  => free_port(),
        dead  => free_port(),
        owner => $$,
        name  => $args{name},
    }, $class;

    if (my $of = $args{mock_of}) {
        # another instance's mock: none of its own; that instance stops
        # this one's nginx before it stops the mock
        croak 'FanbaseTest->new: mock and mock_of together' if $args{mock};
        croak 'FanbaseTest->new: mock_of an instance without a mock'
            unless $of->{args}{mock};
        croak 'FanbaseTest->new: mock_of is not a FanbaseTest'
            unless blessed $of && $of->isa(__PACKAGE__);
        $self->{args}{mock} = undef;
        push @{ $of->{sharers} }, $self;
        weaken $of->{sharers}[-1];
    }
    $self->{args}{mock} = {} unless exists $self->{args}{mock};
    push @LIVE, $self;
    weaken $LIVE[-1];
    return $self;
}

# Several edges in front of one mock: $n instances named A, B, C, ... (in
# test names and %%NAME%%), each with its own directory, port, error log
# and pid, none started.  The mock (%args' mock) belongs to an instance of
# its own that runs no nginx, in a directory of its own (a host's can be
# removed), and the hosts use it (mock_of); the first host started starts
# it.  per_host: a code ref called with (NAME, INDEX from 0) that returns
# more arguments for that host, replacing those of %args.
sub cluster {
    my ($class, $n, %args) = @_;
    croak 'cluster: 1 to 26 instances' unless $n && $n >= 1 && $n <= 26;
    croak 'cluster: name and mock_of are given by cluster'
        if exists $args{name} || exists $args{mock_of};
    my $per_host = delete $args{per_host} // sub { () };
    my $no_mock = exists $args{mock} && !defined $args{mock};
    my $mock = delete $args{mock};
    my @of = $no_mock ? ()
           : (mock_of => $class->new(mock => $mock // {}, name => 'mock'));
    return map {
        my $name = chr(ord('A') + $_);
        $class->new(%args, mock => undef, @of, name => $name,
                    $per_host->($name, $_));
    } 0 .. $n - 1;
}

# A directory of the test's own for what is not an nginx's (a redis-server
# that outlives a host's directory): removed at exit, kept with
# TEST_NGINX_KEEP=1.
sub new_dir {
    my $keep = $ENV{TEST_NGINX_KEEP};
    my $dir = tempdir('fanbase-test-' . 'X' x 6, TMPDIR => 1, CLEANUP => !$keep);
    chmod 0755, $dir;
    diag("directory: $dir") if $keep;
    return $dir;
}

# Skips the whole test file (plan skip_all) when nginx -t with %args (as
# for new) says that $directive is unknown: the module was built without
# it.  Any other outcome of nginx -t runs the tests.
sub skip_unless_directive {
    my ($class, $directive, %args) = @_;
    my ($ok, $out) = $class->nginx_t(%args);
    plan(skip_all => "the module was built without $directive "
                   . "(nginx -t: unknown directive \"$directive\")")
        if !$ok && $out =~ /unknown directive "\Q$directive\E"/;
    return 1;
}

# The configuration most tests share: an edge in front of the mock, with
# the mock's default client (demo-client:demo-secret).  edge_files() gives
# the secret file it names.
sub edge_http {
    my (%o) = @_;
    my $zone = $o{zone} // '1m';
    $zone .= " state=$o{state}" if defined $o{state};
    my $timeout = $o{timeout} // '10s';
    return <<"CONF" . ($o{extra} // '');
fanbase_zone zone=fb:$zone;
fanbase_api %%MOCK%%;
fanbase_token_url %%MOCK%%/api/token;
fanbase_client_id demo-client;
fanbase_client_secret_file %%DIR%%/secret;
fanbase_timeout $timeout;
CONF
}

sub edge_files { return { secret => "demo-secret\n" } }

sub dir        { $_[0]{dir} }
sub port       { $_[0]{port} }
sub name       { $_[0]{name} }
sub nginx_pid  { $_[0]{nginx_pid} }
sub mock_pid   { $_[0]->_mock->{mock_pid} }
sub mock_port  { $_[0]->_mock->{mock_port} }
sub mock_url {
    my $port = $_[0]->mock_port;
    return defined $port ? "http://127.0.0.1:$port" : undef;
}

# The instance whose mock this one uses: itself, or its mock_of.
sub _mock { $_[0]{args}{mock_of} // $_[0] }

# A test's name, after the instance's name when it has one ("B: ...").
sub _label { defined $_[0]{name} ? "$_[0]{name}: $_[1]" : $_[1] }

# A port that nothing listens on (at the time of asking), below the
# kernel's ephemeral range: a port from that range (what binding port 0
# gives) can be taken as the source port of an outgoing connection before
# nginx binds it ("Address already in use").  Never the same one twice.
my %GIVEN;

sub free_port {
    my $low = 32768;
    if (open my $fh, '<', '/proc/sys/net/ipv4/ip_local_port_range') {
        ($low) = (<$fh> // '') =~ /^\s*(\d+)/;
        $low = 32768 unless $low && $low > 11000;
    }
    for (1 .. 200) {
        my $port = 10000 + int rand($low - 10000);
        next if $GIVEN{$port};
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                      LocalPort => $port, Proto => 'tcp',
                                      ReuseAddr => 1, Listen => 1)
            or next;
        close $s;
        $GIVEN{$port} = 1;
        return $port;
    }
    die "cannot find a free port below $low";
}

sub _subst {
    my ($self, $text) = @_;
    return '' unless defined $text;
    my $mock = $self->mock_url // "http://127.0.0.1:$self->{dead}";
    $text =~ s/%%MOCK%%/$mock/g;
    $text =~ s/%%DIR%%/$self->{dir}/g;
    $text =~ s/%%PORT%%/$self->{port}/g;
    my $mock_port = $self->mock_port;
    $text =~ s/%%MOCKPORT%%/$mock_port/g if $mock_port;
    $text =~ s/%%NAME%%/$self->{name}/g if defined $self->{name};
    $text =~ s/%%DEAD%%/http:\/\/127.0.0.1:$self->{dead}/g;
    return $text;
}

# TEST_FANBASE_ENGINE=redis: a configuration with a zone and no engine of
# its own gets "fanbase_redis" and a Redis of its own in the test's
# directory, so that a test of the embedded engine runs on the shared one
# (docs/testing.md says which checks cannot hold there)
sub _engine {
    my ($self, $http) = @_;
    return $http unless ($ENV{TEST_FANBASE_ENGINE} // '') eq 'redis'
                        && $http =~ /^\s*fanbase_zone\s/m
                        && $http !~ /fanbase_redis/;
    require FanbaseRedis;
    $self->{engine} //= FanbaseRedis->new(dir => $self->{dir},
                                          name => 'engine')->start;
    return "fanbase_redis " . $self->{engine}->url . ";\n" . $http;
}

sub _nginx_conf {
    my $self = shift;
    my $args = $self->{args};
    my $module = $ENV{TEST_NGINX_MODULE};
    return nginx_conf(
        dir => $self->{dir}, workers => $args->{workers},
        worker_connections => $args->{worker_connections},
        error_log_level => $args->{error_log_level},
        module => $module ? File::Spec->rel2abs($module) : undef,
        main => $self->_subst($args->{main}),
        http => "log_format fb_pid '\$pid \$request_method \$request_uri "
              . "\$status';\n\n"
              . $self->_engine($self->_subst($args->{http}))
              . "\n    server {\n        listen 127.0.0.1:$self->{port};\n\n"
              . $self->_subst($args->{server})
              . "\n    }\n");
}

# The frame of every nginx.conf of the tests and of bench/run.pl.
sub nginx_conf {
    my (%o) = @_;
    my $d = $o{dir};
    my $file = sub { defined $o{name} ? "$d/$o{name}.$_[0]" : "$d/$_[0]" };
    my $conf = $o{module} ? "load_module $o{module};\n" : '';
    $conf .= "daemon off;\nmaster_process " . ($o{master} // 'on') . ";\n"
           . 'worker_processes ' . ($o{workers} // 2) . ";\n"
           . 'pid ' . $file->(defined $o{name} ? 'pid' : 'nginx.pid') . ";\n"
           . 'error_log ' . $file->('error.log') . ' '
           . ($o{error_log_level} // 'info') . ";\n";
    $conf .= "user root root;\n" if $> == 0;
    $conf .= $o{main} // '';
    $conf .= "\nevents {\n    worker_connections "
           . ($o{worker_connections} // 8192) . ";\n}\n\nhttp {\n"
           . '    access_log ' . ($o{access_log} // $file->('access.log')) . ";\n"
           . join('', map { "    ${_}_temp_path " . $file->($_) . ";\n" }
                          qw(client_body proxy fastcgi uwsgi scgi))
           . "\n" . ($o{http} // '') . "}\n";
    return $conf;
}

sub _write_files {
    my $self = shift;
    my $files = $self->{args}{files} || {};
    for my $name (sort keys %$files) {
        my $f = $files->{$name};
        my ($content, $mode) = ref $f eq 'HASH' ? @$f{qw(content mode)} : ($f);
        my $path = "$self->{dir}/$name";
        make_path(dirname($path));
        spew($path, $self->_subst($content));
        chmod $mode, $path if defined $mode;
    }
    spew("$self->{dir}/nginx.conf", $self->_nginx_conf);
}

sub spew {
    my ($path, $content) = @_;
    open my $fh, '>', $path or die "$path: $!";
    print $fh $content;
    close $fh or die "$path: $!";
}

sub slurp {
    my $path = shift;
    open my $fh, '<', $path or return '';
    local $/;
    return scalar <$fh>;
}

# An absolute path, or a bare name that exec looks up in PATH.
sub _nginx_binary {
    my $bin = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
    return $bin =~ m{/} ? File::Spec->rel2abs($bin) : $bin;
}

# Fork and exec (the POD's BUILDING BLOCKS say the options).
sub spawn {
    my %o = @_;
    my $pid = fork // die "fork: $!";
    return $pid if $pid;
    $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP);
    open STDIN, '<', $o{stdin} or POSIX::_exit(127) if defined $o{stdin};
    if (defined $o{output}) {
        open STDOUT, '>>', $o{output} or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(127);
    }
    open STDOUT, '>&', $o{stdout} or POSIX::_exit(127) if $o{stdout};
    open STDERR, '>>', $o{stderr} or POSIX::_exit(127) if $o{stderr};
    @ENV{ keys %{ $o{env} || {} } } = values %{ $o{env} || {} };
    my @cmd = @{ $o{cmd} };
    exec { $cmd[0] } @cmd or POSIX::_exit(127);
}

# Sanitizer reports go to DIR/asan.* and DIR/ubsan.* (DIR/PREFIXasan.*
# and DIR/PREFIXubsan.* with a prefix: a TLS front's); UBSan in this build
# may still write to stderr, which is nginx.out or error.log: both are
# searched too.  Reports from nginx itself are suppressed by the file that
# "make asan" writes (TEST_NGINX_UBSAN_SUPPRESSIONS).
sub _sanitizer_env {
    my ($d, $prefix) = @_;
    $prefix //= '';
    my $supp = $ENV{TEST_NGINX_UBSAN_SUPPRESSIONS};
    return {
        ASAN_OPTIONS  => "detect_leaks=0:abort_on_error=0:"
                         . "log_path=$d/${prefix}asan",
        UBSAN_OPTIONS => "print_stacktrace=1:log_path=$d/${prefix}ubsan"
                         . ($supp ? ":suppressions=$supp" : ''),
    };
}


# nginx -t

sub nginx_t {
    my ($class, %args) = @_;
    my $t = $class->new(%args, mock => undef);
    my @r = $t->test_config;
    $t->{stopped} = 1;    # nothing was started
    return @r;
}

sub test_config {
    my $self = shift;
    my $d = $self->{dir};
    $self->_write_files;
    make_path("$d/t");
    return nginx_test(output => "$d/t/nginx-t.out", env => _sanitizer_env($d),
                      cmd => [_nginx_binary(), '-p', "$d/", '-c', "$d/nginx.conf",
                              '-e', "$d/t/error.log"]);
}

# nginx -t: ($ok, its output, its exit code or -1).
sub nginx_test {
    my (%o) = @_;
    unlink $o{output};
    my $pid = spawn(output => $o{output}, env => $o{env},
                    cmd => [@{ $o{cmd} }, '-t']);
    my $status = wait_pid($pid, 30);
    if (!defined $status) {
        kill KILL => $pid;
        waitpid $pid, 0;
        return (0, slurp($o{output}) . "\nnginx -t did not finish in 30 s\n", -1);
    }
    my $code = $status >> 8;
    return ($status == 0, slurp($o{output}), $status & 127 ? -1 : $code);
}

# waitpid with a timeout; the wait status, or undef on timeout.
sub wait_pid {
    my ($pid, $timeout) = @_;
    my $end = time + $timeout;
    for (;;) {
        my $r = waitpid $pid, WNOHANG;
        return $? if $r == $pid;
        return 0 if $r < 0;
        return undef if time > $end;
        sleep 0.02;
    }
}

# Until something accepts connections on $port, or the child $pid exits.
sub wait_listen {
    my ($port, $pid, $timeout) = @_;
    my $end = time + $timeout;
    while (time < $end) {
        return ('exited', $?) if waitpid($pid, WNOHANG) == $pid;
        return ('listening') if IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                                      PeerPort => $port,
                                                      Proto => 'tcp');
        sleep 0.05;
    }
    return ('timeout');
}


# Starting and stopping

sub start {
    my $self = shift;
    # the first host that starts starts the mock it shares
    $self->_mock->start_mock
        if $self->{args}{mock_of} && !defined $self->mock_port;
    $self->start_mock if $self->{args}{mock};
    $self->start_nginx;
    return $self;
}

sub start_mock {
    my $self = shift;
    my $m = $self->{args}{mock} || {};
    my $d = $self->{dir};

    croak 'start_mock: the mock is running' if $self->{mock_pid};

    # started again after stop_mock: on its old port, with its saved state
    my $port = $self->{mock_port} // 0;
    @$self{qw(mock_pid mock_port mock_out)} = spawn_mock(%$m,
        listen => "127.0.0.1:$port", log => "$d/mock.log",
        pid_file => "$d/mock.pid", state => "$d/mock.state",
        stderr => "$d/mock.err");
    return $self;
}

# t/mock_fanbase.pl in a process of its own: its pid, port and stdout.
sub spawn_mock {
    my (%o) = @_;
    my @cmd = ($^X, $MOCK_SCRIPT, '--listen', $o{listen} // '127.0.0.1:0');
    for ([log => '--log'], [pid_file => '--pid-file'], [state => '--state'],
         [clients => '--client'], [expires_in => '--expires-in'],
         [processing_after => '--processing-after'],
         [completed_after => '--completed-after'],
         [backlog => '--backlog']) {
        my ($key, $flag) = @$_;
        push @cmd, map { ($flag, $_) } grep { defined }
                   ref $o{$key} ? @{ $o{$key} } : $o{$key};
    }
    push @cmd, @{ $o{args} || [] };

    pipe my $r, my $w or die "pipe: $!";
    my $pid = spawn(stdout => $w, stderr => $o{stderr}, cmd => \@cmd);
    close $w;

    # the mock says its port on its first line
    my $poll = IO::Poll->new;
    $poll->mask($r, POLLIN);
    my ($line, $end) = ('', time + 10);
    while ($line !~ /\n/ && time < $end) {
        $poll->poll($end - time) > 0 or next;
        sysread($r, $line, 256, length $line) or last;
    }
    my ($port) = $line =~ /^mock fanbase listening on 127\.0\.0\.1:(\d+)$/m;
    return ($pid, $port, $r) if $port;
    kill TERM => $pid;
    kill KILL => $pid unless defined wait_pid($pid, 5);
    waitpid $pid, 0;
    die "mock did not start: $line\n"
        . (defined $o{stderr} ? slurp($o{stderr}) : '');
}

sub stop_mock {
    my $self = shift;
    my $pid = delete $self->{mock_pid} or return;
    kill TERM => $pid;
    unless (defined wait_pid($pid, 5)) {
        kill KILL => $pid;
        waitpid $pid, 0;
    }
    close(delete $self->{mock_out}) if $self->{mock_out};
    return $self;
}

sub start_nginx {
    my ($self, %o) = @_;
    croak 'start_nginx: nginx is running' if $self->{nginx_pid};
    my $wait = $o{timeout} // 10;
    my $d = $self->{dir};
    $self->{nginx_started} = 1;
    delete $self->{removed};    # a new host where remove_dir left none
    make_path($d);
    $self->_write_files;
    make_path("$d/$_") for qw(client_body proxy fastcgi uwsgi scgi);

    $self->{nginx_pid} = spawn(output => "$d/nginx.out",
        env => _sanitizer_env($d),
        cmd => [_nginx_binary(), '-p', "$d/", '-c', "$d/nginx.conf",
                '-e', "$d/error.log"]);

    my $end = time + $wait;
    my ($state, $status) = wait_listen($self->{port}, $self->{nginx_pid}, $wait);
    if ($state eq 'exited') {
        delete $self->{nginx_pid};
        die "nginx exited at start (status $status):\n"
            . slurp("$d/nginx.out") . $self->error_log;
    }
    if ($state eq 'listening') {
        # the master listens before it forks its workers: wait for them
        # too, so that worker_pids is whole from now on
        my $n = $self->{args}{workers} // 2;
        while (time < $end) {
            my @w = $self->worker_pids;
            return $self if @w >= $n;
            sleep 0.01;
        }
    }
    die "nginx does not accept connections on port $self->{port}, or has "
      . "not started its workers:\n"
        . slurp("$d/nginx.out") . $self->error_log;
}

sub worker_pids {
    my $self = shift;
    my $master = $self->{nginx_pid} or return;
    return child_pids($master);
}

# The live child processes of $parent: an nginx master's workers.
sub child_pids {
    my $parent = shift;
    my @pids;
    opendir my $dh, '/proc' or return;
    for my $pid (grep { /^\d+$/ } readdir $dh) {
        my $stat = slurp("/proc/$pid/stat") or next;
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        my $tail = substr $stat, rindex($stat, ')') + 2;
        my ($state, $ppid) = $tail =~ /^(\S) (\d+)/ or next;
        push @pids, $pid if $ppid == $parent && $state ne 'Z';
    }
    return sort { $a <=> $b } @pids;
}

sub reload {
    my ($self, %args) = @_;
    for (keys %args) {
        croak "reload: unknown argument '$_'" unless $RELOAD_ARGS{$_};
    }
    @{ $self->{args} }{ keys %args } = values %args;
    $self->_write_files;

    my %old = map { $_ => 1 } $self->worker_pids;
    kill HUP => $self->{nginx_pid};

    my $end = time + 10;
    while (time < $end) {
        my @now = $self->worker_pids;
        return 1 if @now && !grep { $old{$_} } @now;
        sleep 0.05;
    }
    diag('reload: old workers still running after 10 s');
    return 0;
}

sub stop {
    my $self = shift;
    return if $self->{stopped} || $$ != $self->{owner};
    $self->{stopped} = 1;

    $self->stop_nginx;
    # the instances that use this one's mock go first, then the mock and
    # what stop_with named
    $_->stop for grep { defined } @{ $self->{sharers} || [] };
    $self->stop_tls_front($_)
        for sort grep { $self->{fronts}{$_}{pid} } keys %{ $self->{fronts} };
    $self->stop_mock;
    $_->stop for @{ $self->{stop_with} || [] };

    $self->_check_error_log if $self->{nginx_started} && !$self->{removed};
    diag("test directory kept: $self->{dir}")
        if $ENV{TEST_NGINX_KEEP} && !$self->{removed};
}

# Objects (a FanbaseRedis) whose stop is called once this instance, the
# instances that use its mock and the mock have stopped; on an instance
# that uses another's mock, once that one and all of them have.
sub stop_with {
    my ($self, @objects) = @_;
    push @{ $self->_mock->{stop_with} }, @objects;
    return $self;
}

# kill -9 of the master and every worker at once, as a host that dies;
# waits until all are gone (10 s).  True when they are.  Neither "nginx
# stopped" nor an "exited on signal" line follows: the master goes too.
sub kill9 {
    my $self = shift;
    my $master = delete $self->{nginx_pid}
        or croak 'kill9: nginx is not running';
    my @pids = ($master, child_pids($master));
    kill KILL => @pids;
    waitpid $master, 0;
    my $end = time + 10;
    sleep 0.02 while time < $end && grep { _alive($_) } @pids;
    return !grep { _alive($_) } @pids;
}

# The process lives (and is not a zombie).
sub _alive {
    my $stat = slurp("/proc/$_[0]/stat") or return 0;
    my ($state) = substr($stat, rindex($stat, ')') + 2) =~ /^(\S)/;
    return defined $state && $state ne 'Z';
}

# A host that loses its disk: runs the test "error log clean" on what its
# error log says now, then removes its directory (with TEST_NGINX_KEEP=1,
# renames it DIR.removed).  nginx must not run (stop_nginx or kill9
# first).  start_nginx afterwards starts a new host in a new, empty DIR.
sub remove_dir {
    my $self = shift;
    croak 'remove_dir: nginx is running' if $self->{nginx_pid};
    my $d = $self->{dir};
    $self->_check_error_log if $self->{nginx_started} && !$self->{removed};
    $self->{removed} = 1;
    if ($ENV{TEST_NGINX_KEEP}) {
        rename $d, "$d.removed" or die "rename $d: $!";
        diag("removed directory kept: $d.removed");
    } else {
        File::Path::remove_tree($d, { error => \my $err });
        die "remove_tree $d: " . join(', ', map { values %$_ } @$err) . "\n"
            if $err && @$err;
    }
    return !-e $d;
}

# Stop nginx only: QUIT (graceful) or TERM (fast, as nginx -s stop), and
# the test that it ended within 10 s.
sub stop_nginx {
    my ($self, %o) = @_;
    return if $$ != $self->{owner};
    my $sig = $o{signal} // 'QUIT';
    my $pid = $self->{nginx_pid} or return;
    my @workers = $self->worker_pids;
    delete $self->{nginx_pid};
    my $stopped = _stop_master('nginx', $pid, $sig, @workers);
    my $name = $self->_label($sig eq 'QUIT' ? 'nginx stopped gracefully'
                             : "nginx stopped on $sig within 10 s");
    ok($stopped, $name) or diag("nginx did not stop on $sig");
    return $stopped;
}

# Signal an nginx master and wait 10 s for it to end; past that, TERM,
# then KILL, and its workers killed.  True when it ended on $sig in time.
sub _stop_master {
    my ($what, $pid, $sig, @workers) = @_;
    my $stopped = 0;
    if (waitpid($pid, WNOHANG) == $pid) {
        diag("$what master exited before stop (wait status $?)");
    } else {
        kill $sig => $pid;
        $stopped = defined wait_pid($pid, 10);
    }
    unless ($stopped) {
        kill TERM => $pid;
        kill KILL => $pid unless defined wait_pid($pid, 5);
        waitpid $pid, 0;
        kill KILL => grep { kill 0 => $_ } @workers;
    }
    return $stopped;
}

# Send a signal (default KILL) to workers (default all) and wait until the
# master has replaced them: the new workers' pids, or () after 10 s.
sub kill_workers {
    my ($self, %o) = @_;
    my $sig = $o{signal} // 'KILL';
    my @old = $o{pids} ? @{ $o{pids} } : $self->worker_pids;
    my %old = map { $_ => 1 } @old;
    my $want = $self->{args}{workers} // 2;
    kill $sig => @old;
    my $end = time + 10;
    while (time < $end) {
        my @now = $self->worker_pids;
        return @now if @now >= $want && !grep { $old{$_} } @now;
        sleep 0.05;
    }
    diag("kill_workers: workers not replaced after 10 s");
    return;
}

# Run $code in a child process; returns a sub that waits for the child and
# returns what $code returned (a list, passed through JSON).
sub background {
    my ($self, $code) = @_;
    my $file = "$self->{dir}/background.$$." . ++$self->{background};
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my @r = eval { $code->() };
        my $out = $@ ? { error => "$@" } : { result => \@r };
        if (open my $fh, '>', $file) {
            print $fh $JSON->encode($out);
            close $fh;
        }
        POSIX::_exit(0);
    }
    return sub {
        waitpid $pid, 0;
        my $r = eval { $JSON->decode(slurp($file)) }
            or die "background process $pid left no result\n";
        die "background process: $r->{error}" if defined $r->{error};
        return @{ $r->{result} };
    };
}

sub _check_error_log {
    my $self = shift;
    my $d = $self->{dir};
    _log_clean($self->_label('error log clean'), "$d/error.log",
               "$d/nginx.out", [glob("$d/asan.* $d/ubsan.*")],
               $self->{args}{log_allow});
}

# The test $name: no [alert], [crit], [emerg] or "exited on signal" in the
# error log $log (but lines matching $allow), no sanitizer report in it,
# in the output $out or in the files @$reports.
sub _log_clean {
    my ($name, $log, $out, $reports, $allow) = @_;
    my $text = slurp($log);
    my @bad = grep { /\[(?:alert|crit|emerg)\]|exited on signal/
                     && !(defined $allow && /$allow/) }
              split /\n/, $text;
    push @bad, grep { /runtime error:|AddressSanitizer|LeakSanitizer/ }
               split /\n/, $text . slurp($out);

    ok(!@bad && !@$reports, $name) and return 1;
    my $file = (File::Spec->splitpath($log))[2];
    diag("$file: $_") for @bad;
    diag("$_:\n" . slurp($_)) for @$reports;
    return 0;
}

sub DESTROY { $_[0]->stop }

# Stop what still runs before the plan is written (done_testing) or at END.
sub _stop_all { $_->stop for grep { defined } @LIVE }

test2_add_callback_testing_done(\&_stop_all);
END { _stop_all() }


# TLS: a throwaway CA, certificates it signs, and TLS fronts for the mock

sub tls_ca {
    my ($self, $name) = @_;
    my $d = $self->{dir};
    spew("$d/$name.cnf", <<"CNF");
[req]
distinguished_name = dn
prompt = no
x509_extensions = ext

[dn]
CN = fanbase test CA $name

[ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
CNF
    $self->_openssl('req', '-x509', '-config', "$d/$name.cnf", _tls_newkey(),
                    '-keyout', "$d/$name.key", '-out', "$d/$name.crt",
                    '-days', 2);
    return "$d/$name.crt";
}

sub tls_cert {
    my ($self, $name, %o) = @_;
    my $d = $self->{dir};
    my $ca = $o{ca} // croak 'tls_cert: no ca';
    croak "tls_cert: no CA $ca (tls_ca)" unless -f "$d/$ca.key";
    my $cn = $o{cn} // 'localhost';
    my $san = $o{san} // 'DNS:localhost,IP:127.0.0.1';
    spew("$d/$name.cnf", <<"CNF");
[req]
distinguished_name = dn
prompt = no

[dn]
CN = $cn

[ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
    $self->_openssl('req', '-new', '-config', "$d/$name.cnf", _tls_newkey(),
                    '-keyout', "$d/$name.key", '-out', "$d/$name.csr");
    $self->_openssl('x509', '-req', '-in', "$d/$name.csr",
                    '-CA', "$d/$ca.crt", '-CAkey', "$d/$ca.key",
                    '-set_serial', sprintf('0x%07x%08x', int rand 2**28,
                                           int rand 2**32),
                    '-days', 2, '-extfile', "$d/$name.cnf",
                    '-extensions', 'ext', '-out', "$d/$name.crt");
    return "$d/$name.crt";
}

# a new P-256 key, not encrypted
sub _tls_newkey { ('-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
                   '-nodes') }

# The openssl command line, its output appended to DIR/openssl.log.
sub _openssl {
    my ($self, @args) = @_;
    my $log = "$self->{dir}/openssl.log";
    my $pid = spawn(output => $log, stdin => '/dev/null',
                    cmd => ['openssl', @args]);
    my $status = wait_pid($pid, 60);
    return if defined $status && $status == 0;
    unless (defined $status) {
        kill KILL => $pid;
        waitpid $pid, 0;
    }
    die "openssl @args failed (wait status " . ($status // 'timeout')
      . '; "make deps" installs openssl):' . "\n" . slurp($log);
}

sub start_tls_front {
    my ($self, $name, %o) = @_;
    croak 'start_tls_front: a name of letters, digits, "-" and "_"'
        unless ($name // '') =~ /^[\w-]+$/;
    my $f = $self->{fronts}{$name} //= {};
    croak "start_tls_front: $name is running" if $f->{pid};
    $f->{$_} = $o{$_} // $f->{$_} for qw(cert to port);
    $f->{to} //= $self->mock_port
        // croak 'start_tls_front: no "to" and no mock (start_mock first)';
    $f->{port} //= free_port();
    my $cert = $f->{cert} // croak 'start_tls_front: no cert';

    my $d = $self->{dir};
    my $base = "front-$name";
    croak "start_tls_front: no certificate $cert (tls_cert)"
        unless -f "$d/$cert.crt" && -f "$d/$cert.key";
    make_path("$d/$base.$_") for qw(client_body proxy fastcgi uwsgi scgi);
    # no query strings in its access log: the token endpoint's has the secret
    spew("$d/$base.conf", nginx_conf(dir => $d, name => $base, workers => 1,
        worker_connections => 1024, error_log_level => 'info',
        access_log => 'off', http => <<"CONF"));
    log_format front '\$remote_addr [\$time_local] "\$request_method \$uri" '
                     '\$status \$ssl_protocol \$request_time';

    server {
        listen 127.0.0.1:$f->{port} ssl;
        access_log $d/$base.access.log front;
        ssl_certificate $d/$cert.crt;
        ssl_certificate_key $d/$cert.key;
        ssl_protocols TLSv1.2 TLSv1.3;

        location / {
            proxy_pass http://127.0.0.1:$f->{to};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-TLS-Front "$name \$ssl_protocol";
            proxy_read_timeout 300s;
        }
    }
CONF

    $f->{pid} = spawn(output => "$d/$base.out",
        env => _sanitizer_env($d, "$base."),
        cmd => [_nginx_binary(), '-p', "$d/", '-c', "$d/$base.conf",
                '-e', "$d/$base.error.log"]);

    my $end = time + 10;
    my ($state, $status) = wait_listen($f->{port}, $f->{pid}, 10);
    if ($state eq 'exited') {
        delete $f->{pid};
        die "TLS front $name exited at start (status $status):\n"
            . slurp("$d/$base.out") . slurp("$d/$base.error.log");
    }
    if ($state eq 'listening') {
        while (time < $end) {
            my @workers = child_pids($f->{pid});
            return $f->{port} if @workers;
            sleep 0.01;
        }
    }
    die "TLS front $name does not accept connections on port $f->{port}, "
      . "or has not started its worker:\n"
      . slurp("$d/$base.out") . slurp("$d/$base.error.log");
}

sub stop_tls_front {
    my ($self, $name) = @_;
    return if $$ != $self->{owner};
    my $f = $self->{fronts}{$name}
        or croak "stop_tls_front: no TLS front $name";
    my $pid = delete $f->{pid} or return;
    my $d = $self->{dir};
    my $base = "front-$name";
    ok(_stop_master("TLS front $name", $pid, 'QUIT', child_pids($pid)),
       "TLS front $name stopped gracefully");
    _log_clean("TLS front $name: error log clean", "$d/$base.error.log",
               "$d/$base.out", [glob("$d/$base.asan.* $d/$base.ubsan.*")]);
}


# The error log

sub error_log { slurp("$_[0]{dir}/error.log") }

sub log_like {
    my ($self, $re, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    like($self->error_log, $re, $name // "error log matches $re");
}

sub log_unlike {
    my ($self, $re, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    unlike($self->error_log, $re, $name // "error log does not match $re");
}

sub log_mark { -s "$_[0]{dir}/error.log" // 0 }

sub log_since {
    my ($self, $mark) = @_;
    my $text = $self->error_log;
    return $mark < length $text ? substr($text, $mark) : '';
}

sub log_lines {
    my ($self, $file) = @_;
    open my $fh, '<', "$self->{dir}/$file" or return 0;
    my @lines = <$fh>;
    return scalar @lines;
}

sub log_pids {
    my ($self, $file, $re, %o) = @_;
    open my $fh, '<', "$self->{dir}/$file" or return ();
    my @lines = <$fh>;
    my %pids;
    for (@lines[($o{from} // 0) .. $#lines]) {
        $pids{$1}++ if $_ =~ $re;
    }
    return %pids;
}

sub wait_for {
    my ($self, $code, %o) = @_;
    my $end = time + ($o{timeout} // 5);
    for (;;) {
        my $v = $code->();
        return $v if $v;
        return undef if time > $end;
        sleep($o{interval} // 0.05);
    }
}


# HTTP client

sub request {
    my ($self, $method, $path, %o) = @_;
    my ($res) = $self->parallel(1, $method, $path, %o);
    return $res;
}

sub parallel {
    my ($self, $n, $method, $path, %o) = @_;
    my $port = $o{port} // ($self->{nginx_started} || !$self->{mock_port}
                            ? $self->{port} : $self->{mock_port});
    return http_parallel($port, $n, $method, $path, %o);
}

sub http_request {
    my ($port, $method, $path, %o) = @_;
    my ($res) = http_parallel($port, 1, $method, $path, %o);
    return $res;
}

# $n requests at once to 127.0.0.1:$port, as parallel() makes them.
sub http_parallel {
    my ($port, $n, $method, $path, %o) = @_;
    my $timeout = $o{timeout} // 10;
    local $SIG{PIPE} = 'IGNORE';

    my $poll = IO::Poll->new;
    my @conns;
    for my $i (0 .. $n - 1) {
        my $c = { i => $i, in => '', start => time };
        push @conns, $c;
        $c->{out} = _build_request($method, $path, $i, %o);
        $c->{sock} = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
            PeerPort => ref $port eq 'CODE' ? $port->($i) : $port,
            Proto => 'tcp', Blocking => 0);
        if (!$c->{sock}) {
            $c->{res} = _failed("connect: $!", $c);
            next;
        }
        $poll->mask($c->{sock}, POLLOUT);
    }

    my $end = time + $timeout;
    my $left = grep { !$_->{res} } @conns;
    my %by_sock = map { ($_->{sock} => $_) } grep { !$_->{res} } @conns;

    while ($left > 0) {
        my $wait = $end - time;
        last if $wait <= 0;
        my $r = $poll->poll($wait);
        next if $r < 0 && $! == EINTR;
        last if $r < 0;
        for my $sock ($poll->handles) {
            my $ev = $poll->events($sock) or next;
            my $c = $by_sock{$sock};
            _client_io($c, $ev, $method);
            unless ($c->{res}) {
                $poll->mask($sock, length $c->{out} ? POLLOUT | POLLIN : POLLIN);
                next;
            }
            $poll->remove($sock);
            close $sock;
            $left--;
        }
    }

    for my $c (grep { !$_->{res} } @conns) {
        $c->{res} = _failed('timeout', $c);
        $poll->remove($c->{sock});
        close $c->{sock};
    }
    return map { $_->{res} } @conns;
}

sub submit {
    my ($self, %o) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $body = $o{body}
        // $JSON->encode({ action => $o{action} // 'ticket-create',
                           data   => $o{data} // {} });
    my $res = $self->request(POST => $o{path} // $QUEUE,
        headers => ['Content-Type' => 'application/json',
                    defined $o{key} ? ('Idempotency-Key' => $o{key}) : (),
                    @{ $o{headers} || [] }],
        body => $body, port => $o{port}, timeout => $o{timeout});
    push @{ $o{record} }, $res if $o{record};
    if (defined $o{status}) {
        is($res->{status}, $o{status}, $o{name} // "submission: $o{status}")
            or diag("body: $res->{body}"
                    . ($res->{error} ? " ($res->{error})" : ''));
    }
    return $res;
}

sub wait_status {
    my ($self, $id, $want, %o) = @_;
    my $res;
    $self->wait_for(sub {
        $res = $self->get_tx($id, path => $o{path}, port => $o{port},
                             record => $o{record});
        return 0 unless $res->{status} == 200 && ref $res->{json} eq 'HASH';
        my $status = $res->{json}{status} // '';
        return ref $want eq 'Regexp' ? $status =~ $want : $status eq $want;
    }, timeout => $o{timeout} // 15, interval => $o{interval} // 0.05);
    ${ $o{answer} } = $res if $o{answer};
    return $res->{status} == 200 ? $res->{json} : undef;
}

sub tx_id {
    my $res = shift;
    return $res->{status} == 202 && ref $res->{json} eq 'HASH'
           ? $res->{json}{transaction_id} // '' : '';
}

sub _build_request {
    my ($method, $path, $i, %o) = @_;
    my $pick = sub { ref $_[0] eq 'CODE' ? $_[0]->($i) : $_[0] };

    my $raw = $pick->($o{raw});
    return $raw if defined $raw;

    my @h = @{ $pick->($o{headers}) || [] };
    my $body = $pick->($o{body});
    utf8::encode($body) if defined $body && utf8::is_utf8($body);

    my %has;
    for (my $k = 0; $k < @h; $k += 2) { $has{ lc $h[$k] } = 1 }

    my $req = "$method $path HTTP/1.1\r\n";
    $req .= "Host: localhost\r\n" unless $has{host};
    for (my $k = 0; $k < @h; $k += 2) { $req .= "$h[$k]: $h[$k + 1]\r\n" }
    $req .= 'Content-Length: ' . length($body) . "\r\n"
        if defined $body
           && !$has{'content-length'} && !$has{'transfer-encoding'};
    $req .= "\r\n";
    $req .= $body if defined $body;
    return $req;
}

# One poll event on a client connection.
sub _client_io {
    my ($c, $ev, $method) = @_;
    my $sock = $c->{sock};

    if (length $c->{out} && $ev & (POLLOUT | POLLERR | POLLHUP)) {
        my $err = getsockopt($sock, SOL_SOCKET, SO_ERROR);
        $err = defined $err ? unpack('i', $err) : 0;
        if ($err && !$c->{connected}) {
            local $! = $err;
            return $c->{res} = _failed("connect: $!", $c);
        }
        $c->{connected} = 1;
        my $n = syswrite $sock, $c->{out};
        if (defined $n) {
            substr $c->{out}, 0, $n, '';
        } elsif ($! != EAGAIN && $! != EWOULDBLOCK && $! != EINTR) {
            $c->{out} = '';    # the server stopped reading: read its answer
        }
    }

    if ($ev & (POLLIN | POLLERR | POLLHUP)) {
        my $n = sysread $sock, $c->{in}, 65536, length $c->{in};
        if (!defined $n) {
            return if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
            my $err = $!{ECONNRESET} ? 'connection reset' : "read: $!";
            return $c->{res} = _parse_response($c, $method, 1)
                // _failed($err, $c);
        }
        my $eof = $n == 0;
        my $res = _parse_response($c, $method, $eof);
        return $c->{res} = $res if $res;
        return $c->{res} = _failed('connection closed', $c) if $eof;
    }
}

sub _failed {
    my ($error, $c) = @_;
    return { status => 0, error => $error, headers => {}, header_list => [],
             body => $c->{in}, json => undef, time => time - $c->{start} };
}

# A complete response from the buffer, or undef.
sub _parse_response {
    my ($c, $method, $eof) = @_;
    my $buf = $c->{in};

    for (;;) {
        my $end = index $buf, "\r\n\r\n";
        return undef if $end < 0;
        my ($line, @lines) = split /\r\n/, substr($buf, 0, $end);
        my ($status, $reason) = $line =~ m{^HTTP/\d\.\d (\d{3})(?: (.*))?$}
            or return _failed("bad status line: $line", $c);
        my $rest = substr $buf, $end + 4;

        # interim answers (100 Continue) come before the real one
        if ($status >= 100 && $status < 200 && $status != 101) {
            $buf = $rest;
            next;
        }

        my (%headers, @list);
        for (@lines) {
            my ($name, $value) = /^([^:]+):[ \t]*(.*?)[ \t]*$/ or next;
            push @list, [$name, $value];
            my $lc = lc $name;
            $headers{$lc} = exists $headers{$lc} ? "$headers{$lc}, $value"
                          :                         $value;
        }

        my $body;
        if ($method eq 'HEAD' || $status == 204 || $status == 304) {
            $body = '';
        } elsif (($headers{'transfer-encoding'} // '') =~ /chunked/i) {
            $body = _dechunk($rest) // return undef;
        } elsif (defined $headers{'content-length'}) {
            my ($len) = $headers{'content-length'} =~ /^(\d+)/;
            return undef if length $rest < $len;
            $body = substr $rest, 0, $len;
        } else {
            return undef unless $eof;
            $body = $rest;
        }

        my $json;
        $json = eval { $JSON->decode($body) } if length $body;
        return {
            status      => $status,
            reason      => $reason // '',
            headers     => \%headers,
            header_list => \@list,
            body        => $body,
            json        => $json,
            time        => time - $c->{start},
        };
    }
}

sub _dechunk {
    my $buf = shift;
    my ($pos, $body) = (0, '');
    for (;;) {
        my $eol = index $buf, "\r\n", $pos;
        return undef if $eol < 0;
        my ($size) = substr($buf, $pos, $eol - $pos) =~ /^([0-9a-fA-F]+)/;
        return undef unless defined $size;
        $size = hex $size;
        $pos = $eol + 2;
        if ($size == 0) {
            return index($buf, "\r\n", $pos) >= 0 ? $body : undef;
        }
        return undef if length $buf < $pos + $size + 2;
        $body .= substr $buf, $pos, $size;
        $pos += $size + 2;
    }
}


# The mock's admin endpoints

sub _mock_call {
    my ($self, $method, $path, $body) = @_;
    croak 'no mock running' unless $self->mock_pid;
    my $res = $self->request($method, $path, port => $self->mock_port,
        defined $body ? (body => $JSON->encode($body),
                         headers => ['Content-Type' => 'application/json'])
                      : ());
    croak "mock $method $path: $res->{status} $res->{body}"
        unless $res->{status} == 200;
    return $res->{json};
}

sub mock_stats         { $_[0]->_mock_call(GET  => '/_mock/stats') }
sub mock_faults        { $_[0]->_mock_call(POST => '/_mock/faults', $_[1]) }
sub mock_reset         { $_[0]->_mock_call(POST => '/_mock/reset') }
sub mock_expire_tokens { $_[0]->_mock_call(POST => '/_mock/expire_tokens') }

sub mock_requests {
    my ($self, %f) = @_;
    my $all = $self->_mock_call(GET => '/_mock/requests');
    my $m = sub {
        my ($want, $got) = @_;
        return 1 unless defined $want;
        return ref $want eq 'Regexp' ? $got =~ $want : $got eq $want;
    };
    return [ grep { $m->($f{method}, $_->{method})
                    && $m->($f{path}, $_->{path}) } @$all ];
}

# The site (notifications): see the mock's header.
sub mock_site        { $_[0]->_mock_call(POST => '/_mock/site', $_[1] // {}) }
sub mock_site_stats  { $_[0]->_mock_call(GET  => '/_mock/site/stats') }
sub mock_site_reset  { $_[0]->_mock_call(POST => '/_mock/site/reset') }

sub site_url {
    my $url = $_[0]->mock_url;
    return defined $url ? "$url/_site/hook" : undef;
}

sub mock_site_requests {
    my ($self, %f) = @_;
    my $all = $self->_mock_call(GET => '/_mock/site/requests');
    my $m = sub {
        my ($want, $got) = @_;
        return 1 unless defined $want;
        return 0 unless defined $got;
        return ref $want eq 'Regexp' ? $got =~ $want : $got eq $want;
    };
    return [ grep { $m->($f{method}, $_->{method})
                    && $m->($f{path}, $_->{path})
                    && $m->($f{id}, ($_->{headers}{'webhook-id'} || [])->[0]) }
             @$all ];
}


# Files written while nginx runs

sub write_file {
    my ($self, $name, $content, $mode) = @_;
    my $path = "$self->{dir}/$name";
    make_path(dirname($path));
    spew($path, $content);
    chmod $mode, $path if defined $mode;
    return $path;
}

# A random UUID (version 4), as the edge makes transaction ids.
sub new_uuid {
    my @b = map { int rand 256 } 1 .. 16;
    $b[6] = ($b[6] & 0x0f) | 0x40;
    $b[8] = ($b[8] & 0x3f) | 0x80;
    return sprintf '%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-'
                 . '%02x%02x%02x%02x%02x%02x', @b;
}

sub webhook_secret_file {
    my ($self, $name) = @_;
    my $secret = webhook_secret();
    $self->write_file($name, "$secret\n", 0600);
    return $secret;
}


# Webhooks: signing as senders do, verifying as sites do

sub _random_bytes {
    my $n = shift;
    open my $fh, '<:raw', '/dev/urandom' or die "/dev/urandom: $!";
    my $buf;
    my $got = sysread $fh, $buf, $n;
    die "/dev/urandom: short read" unless defined $got && $got == $n;
    return $buf;
}

sub webhook_secret {
    my (%o) = @_;
    return 'whsec_' . encode_base64(_random_bytes($o{bytes} // 32), '');
}

# The HMAC key a secret stands for: whsec_BASE64 is decoded, anything else
# is used as it is.
sub _webhook_key {
    my $secret = shift;
    return $secret =~ /^whsec_(.*)$/s ? decode_base64($1) : $secret;
}

# Bytes: a string with characters above 0xFF is UTF-8 encoded; any other
# is taken as bytes, also when Perl flags it as characters (as JSON::PP
# leaves the raw bodies of the mock's logs).
sub _bytes {
    my $s = shift // '';
    if ($s =~ /[^\x00-\xff]/) {
        utf8::encode($s);
    } else {
        utf8::downgrade($s);
    }
    return $s;
}

sub webhook_signature {
    my ($secret, $id, $ts, $body) = @_;
    my $mac = hmac_sha256(_bytes("$id.$ts.") . _bytes($body),
                          _webhook_key($secret));
    return 'v1,' . encode_base64($mac, '');
}

my $MSG_SERIAL = 0;

sub new_msg_id { sprintf 'msg_%d_%d_%d', $$, int time, ++$MSG_SERIAL }

sub sign_webhook {
    my (%o) = @_;
    croak 'sign_webhook: no secret' unless defined $o{secret};
    my $id = $o{id} // new_msg_id();
    my $ts = $o{timestamp} // int time;
    my $body = $o{body} // '';
    my $sig = $o{signatures}
            ? join(' ', @{ $o{signatures} })
            : webhook_signature($o{secret}, $id, $ts, $body);
    return ('webhook-id' => $id, 'webhook-timestamp' => $ts,
            'webhook-signature' => $sig);
}

sub hmac_webhook {
    my (%o) = @_;
    my $mac = hmac_sha256(_bytes($o{body}), _webhook_key($o{secret}));
    my $enc = $o{encoding} // 'hex';
    my $value = $enc eq 'hex'    ? unpack('H*', $mac)
              : $enc eq 'base64' ? encode_base64($mac, '')
              : croak "hmac_webhook: encoding hex or base64, not $enc";
    return (($o{header} // 'X-Signature') => ($o{prefix} // '') . $value);
}

sub token_webhook {
    my (%o) = @_;
    return (($o{header} // 'X-Token') => $o{secret});
}

sub _node_binary {
    return $ENV{TEST_NODE} if $ENV{TEST_NODE};
    for my $name (qw(node nodejs)) {
        for my $dir (split /:/, $ENV{PATH} // '') {
            my $path = File::Spec->catfile($dir, $name);
            return $path if -f $path && -x _;
        }
    }
    return undef;
}

sub verify_webhook {
    my ($secret, $headers, $body) = @_;
    my ($r) = verify_webhooks([[$secret, $headers, $body]]);
    return $r;
}

sub verify_webhooks {
    my ($items) = @_;
    my $fail = sub { my $e = shift; map { +{ ok => 0, error => $e } } @$items };

    my $node = _node_binary()
        // return $fail->('Node.js not found (node or nodejs in PATH, or '
                          . 'TEST_NODE): "make deps" installs it');
    return $fail->("$NODE_MODULES/standardwebhooks is missing: \"make deps\" "
                   . 'installs it')
        unless -d "$NODE_MODULES/standardwebhooks";

    my @input;
    for my $item (@$items) {
        my ($secret, $headers, $body) = @$item;
        my %h;
        if (ref $headers eq 'ARRAY') {
            for (my $k = 0; $k < @$headers; $k += 2) {
                push @{ $h{ lc $headers->[$k] } }, $headers->[$k + 1];
            }
        } else {
            %h = %{ $headers || {} };
        }
        my $raw = _bytes($body);
        my $text = $raw;
        my %in = (secret => $secret, headers => \%h);
        if (utf8::decode($text)) {
            $in{body} = $text;    # characters: sent as UTF-8 text
        } else {
            $in{body_base64} = encode_base64($raw, '');
        }
        push @input, \%in;
    }

    my $in = File::Temp->new(SUFFIX => '.json');
    binmode $in;
    print $in $JSON->encode(\@input);
    close $in;

    my $pid = open(my $out, '-|') // return $fail->("fork: $!");
    if (!$pid) {
        open STDIN, '<', $in->filename or POSIX::_exit(127);
        $ENV{NODE_PATH} = $NODE_MODULES;
        exec { $node } $node, $VERIFY_SCRIPT or POSIX::_exit(127);
    }
    my @lines = <$out>;
    close $out;
    my $status = $?;
    my @results = map { eval { $JSON->decode($_) } // { ok => 0,
                        error => "bad output from the verifier: $_" } } @lines;
    if (@results != @$items) {
        my $why = @results ? $results[0]{error} // '' : '';
        return $fail->("the verifier (exit status " . ($status >> 8)
                       . ") answered " . scalar(@results) . ' lines for '
                       . scalar(@$items) . " items $why");
    }
    for (@results) { $_->{ok} = $_->{ok} ? 1 : 0 }
    return @results;
}


# Helpers the test files share

# Sleep until the time() $when, if it is still to come.
sub sleep_until {
    my $when = shift;
    my $d = $when - time;
    sleep $d if $d > 0;
}

# The claims of a JWT (its payload, base64url JSON); {} when it has none.
sub jwt_claims {
    my (undef, $payload) = split /\./, shift // '';
    return {} unless defined $payload;
    $payload =~ tr{-_}{+/};
    $payload .= '=' x ((4 - length($payload) % 4) % 4);
    return eval { decode_json(decode_base64($payload)) } || {};
}

# The last event of a transaction (its JSON), or undef.
sub last_event {
    my $tx = shift;
    return $tx && $tx->{events} ? $tx->{events}[-1] : undef;
}

# What the mock answered each of these requests (mock_requests entries),
# comma-separated; "held" for one not answered yet.
sub statuses { join ',', map { $_->{status} // 'held' } @_ }

# A ticket-create submission whose data is %data (canonical JSON, text).
sub body_for {
    return $JSON_TEXT->encode({ action => 'ticket-create', data => { @_ } });
}

# A valid submission of exactly $size bytes.
sub padded {
    my $size = shift;
    my ($head, $tail) = ('{"action":"ticket-create","data":{"pad":"', '"}}');
    return $head . ('x' x ($size - length($head) - length($tail))) . $tail;
}

# The checks of one of the edge's own JSON errors, as run_cases keys.
sub error_case {
    my ($status, $code, %headers) = @_;
    return (status  => $status,
            headers => { 'content-type' => qr{^application/json\b}, %headers },
            json    => { error => { status => $status, code => $code,
                                    message => qr/\S/ } });
}

# The same checks of an answer, as tests named "$name: ...".
sub error_ok {
    my ($res, $status, $code, $name, %headers) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($res->{status}, $status, "$name: $status")
        or diag("body: $res->{body}" . ($res->{error} ? " ($res->{error})" : ''));
    like($res->{headers}{'content-type'} // '', qr{^application/json\b},
         "$name: JSON");
    json_like($res->{json},
              { error => { status => $status, code => $code, message => qr/\S/ } },
              "$name: error body");
    is($res->{headers}{ lc $_ }, $headers{$_}, "$name: $_") for sort keys %headers;
}

# The queue POSTs the mock received (mock_requests entries).
sub queue_posts { $_[0]->mock_requests(method => 'POST', path => $QUEUE) }

# How many queue POSTs carried exactly this body.
sub posts_with {
    my ($self, $body) = @_;
    return scalar grep { $_->{body} eq $body } @{ $self->queue_posts };
}

# The test "$name": every one of @$bodies reaches Fanbase, answered 201,
# and (1.5 s later) none was POSTed a second time.
sub delivered_once {
    my ($self, $bodies, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $all = sub {
        my %n;
        $n{ $_->{body} }++ for grep { ($_->{status} // '') eq '201' }
                               @{ $self->queue_posts };
        return !grep { !$n{$_} } @$bodies;
    };
    ok($self->wait_for($all, timeout => 30, interval => 0.2),
       "$name: every one delivered to Fanbase");
    sleep 1.5;
    my %n;
    $n{ $_->{body} }++ for @{ $self->queue_posts };
    my @not_once = grep { ($n{$_} // 0) != 1 } @$bodies;
    is(scalar @not_once, 0, "$name: each POSTed exactly once")
        or diag(join "\n", map { ($n{$_} // 0) . " x $_" }
                          @not_once[0 .. ($#not_once < 9 ? $#not_once : 9)]);
}

# Submissions told apart by data.n: the next number of this process.
my $NUMBERED = 0;

sub numbered {
    my ($self, %o) = @_;
    my $n = ++$NUMBERED;
    my $data = delete $o{data} || {};
    my $body = delete $o{body} // body_for(%$data, n => $n);
    my $res = $self->submit(%o, body => $body);
    return { res => $res, n => $n, body => $body, id => tx_id($res) || 'none' };
}

# The queue POSTs at the mock by the data.n of their bodies.
sub posts_by_n {
    my $self = shift;
    my %by;
    for my $p (@{ $self->queue_posts }) {
        my $doc = eval { decode_json($p->{body}) };
        next unless ref $doc eq 'HASH' && ref $doc->{data} eq 'HASH';
        my $n = $doc->{data}{n};
        push @{ $by{$n} }, $p if defined $n;
    }
    return \%by;
}

sub posts_for { @{ $_[0]->posts_by_n->{ $_[1] } || [] } }

# A transaction's answer: GET (or $o{method}) /transactions/ID.
sub get_tx {
    my ($self, $id, %o) = @_;
    my $path = $o{path} // ($o{prefix} // '/transactions') . "/$id";
    $path .= "?wait=$o{wait}" if defined $o{wait};
    my $res = $self->request($o{method} // 'GET', $path,
        headers => defined $o{inm} ? ['If-None-Match' => $o{inm}] : [],
        port => $o{port}, timeout => $o{timeout});
    push @{ $o{record} }, $res if $o{record};
    return $res;
}

# The transaction (its JSON) when it answers 200, else undef.
sub tx {
    my ($self, $id, %o) = @_;
    my $res = $self->get_tx($id, %o);
    return $res->{status} == 200 ? $res->{json} : undef;
}

# Its status when it answers 200, else "HTTP <status>".
sub tx_status {
    my ($self, $id, %o) = @_;
    my $res = $self->get_tx($id, %o);
    return $res->{status} == 200 ? $res->{json}{status} // ''
                                 : "HTTP $res->{status}";
}

# POST a webhook signed as Standard Webhooks senders do.
sub hook {
    my ($self, $path, $body, %o) = @_;
    $body = $JSON_TEXT->encode($body) if ref $body;
    my @h = $o{headers} ? @{ $o{headers} }
          : sign_webhook(secret => $o{secret} // $self->{args}{hook_secret},
                         id => $o{id}, timestamp => $o{timestamp}, body => $body,
                         $o{signatures} ? (signatures => $o{signatures}) : ());
    return $self->request(POST => $path, body => $body, port => $o{port},
                          headers => [@CT, @h, @{ $o{extra} || [] }]);
}

# How many GETs of queue item $id the mock answered.
sub mock_gets { $_[0]->mock_stats->{gets_by_id}{ $_[1] } // 0 }


# Tests as data

sub run_cases {
    my ($self, @cases) = @_;
    my $level = $Test::Builder::Level;    # for the callbacks' own tests
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @responses;

    for my $case (@cases) {
        my $name = $case->{name} // 'case';
        if ($case->{before}) {
            local $Test::Builder::Level = $level;
            $case->{before}->($self);
        }

        my ($method, $path, @opts) = @{ $case->{request} };
        my $res = $self->request($method, $path, @opts);
        push @responses, $res;

        if (defined $case->{status}) {
            is($res->{status}, $case->{status}, "$name: status")
                or diag("body: $res->{body}"
                        . ($res->{error} ? "\nerror: $res->{error}" : ''));
        }

        my $hdrs = $case->{headers} || {};
        for my $h (sort keys %$hdrs) {
            my ($want, $got) = ($hdrs->{$h}, $res->{headers}{ lc $h });
            if (!defined $want) {
                ok(!defined $got, "$name: no $h header")
                    or diag("$h: $got");
            } elsif (ref $want eq 'Regexp') {
                like($got // '', $want, "$name: $h header");
            } else {
                is($got, $want, "$name: $h header");
            }
        }

        json_like($res->{json}, $case->{json}, "$name: json")
            if exists $case->{json};

        if (defined $case->{body}) {
            if (ref $case->{body} eq 'Regexp') {
                like($res->{body}, $case->{body}, "$name: body");
            } else {
                is($res->{body}, $case->{body}, "$name: body");
            }
        }

        for my $re (_list($case->{log_like})) {
            $self->log_like($re, "$name: error log matches $re");
        }
        for my $re (_list($case->{log_unlike})) {
            $self->log_unlike($re, "$name: error log does not match $re");
        }

        if ($case->{mock}) {
            local $Test::Builder::Level = $level;
            $case->{mock}->($self, $res);
        }
    }
    return @responses;
}

sub _list { my $v = shift; !defined $v ? () : ref $v eq 'ARRAY' ? @$v : ($v) }

sub json_like {
    my ($got, $want, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @errors = _json_diff($got, $want, '$');
    ok(!@errors, $name) and return 1;
    diag($_) for @errors;
    diag('got: ' . (defined $got ? $JSON->encode($got) : 'undef (not JSON)'));
    return 0;
}

# What differs between a decoded JSON value and the expected subset.
sub _json_diff {
    my ($got, $want, $at) = @_;
    my $show = sub {
        my $v = shift;
        return !defined $v ? 'null' : ref $v ? $JSON->encode($v) : "'$v'";
    };

    if (!defined $want) {
        return defined $got ? ("$at: expected null, got " . $show->($got)) : ();
    }
    if (ref $want eq 'Regexp') {
        return defined $got && !ref $got && $got =~ $want
            ? () : ("$at: " . $show->($got) . " does not match $want");
    }
    if (ref $want eq 'CODE') {
        return $want->($got)
            ? () : ("$at: " . $show->($got) . ' refused by check');
    }
    if (ref $want eq 'HASH') {
        return ("$at: expected an object, got " . $show->($got))
            unless ref $got eq 'HASH';
        return map {
            exists $got->{$_}
                ? _json_diff($got->{$_}, $want->{$_}, "$at.$_")
                : ("$at.$_: missing")
        } sort keys %$want;
    }
    if (ref $want eq 'ARRAY') {
        return ("$at: expected an array, got " . $show->($got))
            unless ref $got eq 'ARRAY';
        return map {
            $_ < @$got ? _json_diff($got->[$_], $want->[$_], "$at\[$_]")
                       : ("$at\[$_]: missing")
        } 0 .. $#$want;
    }
    if (blessed $want && $want->isa('JSON::PP::Boolean')
        || blessed $got && $got->isa('JSON::PP::Boolean')) {
        return () if defined $got && !!$got eq !!$want;
        return ("$at: expected " . ($want ? 'true' : 'false')
                . ', got ' . $show->($got));
    }
    return ("$at: expected '$want', got " . $show->($got))
        if !defined $got || ref $got;
    if (looks_like_number($want) && looks_like_number($got)) {
        return $got == $want ? () : ("$at: expected $want, got $got");
    }
    return $got eq $want ? () : ("$at: expected '$want', got '$got'");
}

# Side-by-side benchmarks (bench/*.pl)

sub bench_edges {
    my (%args) = @_;
    my @edges;
    for (split /,/, ($ENV{BENCH_MODULES}
                     // 'this=' . ($ENV{TEST_NGINX_MODULE} // ''))) {
        my ($label, $so) = split /=/, $_, 2;
        local $ENV{TEST_NGINX_MODULE} = $so;
        my $t = FanbaseTest->new(%args);
        $t->start;
        push @edges, { label => $label, t => $t };
    }
    return @edges;
}

sub cpu_seconds {
    my $ticks = 0;
    for my $pid (@_) {
        open my $fh, '<', "/proc/$pid/stat" or die "/proc/$pid/stat: $!";
        my @f = split ' ', (<$fh> =~ s/^.*\) //r);
        $ticks += $f[11] + $f[12];
    }
    return $ticks / (POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100);
}

1;
