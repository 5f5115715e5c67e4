package FanbaseRedis;

=head1 NAME

FanbaseRedis - a redis-server of the test's own, for the Redis engine's tests

=head1 SYNOPSIS

    use lib 't/lib';
    use FanbaseRedis;

    my $r = FanbaseRedis->new(dir => $t->dir, appendfsync => 'always');
    $r->start;                       # dies with its log if it does not answer
    my $url = $r->url;               # redis://127.0.0.1:PORT/0
    is $r->cli('DBSIZE'), '0';

    my $c = $r->connect;             # a RESP connection (FanbaseRedis::Conn)
    my $reply = $c->cmd('EVAL', $lua, 1, $tag, @args);

    $r->kill9;                       # SIGKILL, as a crash
    $r->restart;                     # same directory, same files, same port

=head1 CONSTRUCTOR

C<< FanbaseRedis->new(%args) >>:

C<dir> (required): the test directory.  The configuration, log, pid file,
RDB and AOF files go there, named after C<name> (default C<redis>):
C<NAME.conf>, C<NAME.log>, C<NAME.out> (its stdout and stderr), C<NAME.rdb>,
the AOF directory C<NAME-aof>; so two servers can share a directory.

C<port>: its TCP port on 127.0.0.1 (default: a free one, below the
ephemeral range, as FanbaseTest's free_port).

C<appendfsync>: C<always>, C<everysec> or C<no> turn the append only file
on with that policy; undef (the default) is no AOF.  RDB snapshots are
always off (C<save "">): without AOF, a restart starts empty.

C<unix>: true to listen on a unix socket too (C<DIR/NAME.sock>, mode 777:
nginx's workers may run as another user).  C<url> then names the socket.

C<password>: C<requirepass>.  C<db>: the database number in C<url>
(default 0).  C<server>: the binary (default C<$ENV{TEST_REDIS_SERVER}> or
C</usr/bin/redis-server>), C<cli> likewise (C<TEST_REDIS_CLI>,
C</usr/bin/redis-cli>).  C<extra>: configuration lines appended as they are.

=head1 METHODS

C<start>: writes the configuration, forks and execs redis-server (never a
daemon, never a system service) and waits until it answers C<PING>
(C<AUTH> first with a password); dies with its log otherwise.

C<port>, C<socket> (undef without C<unix>), C<pid>, C<dir>, C<password>,
C<url>: C<redis://127.0.0.1:PORT/DB>, or C<unix:PATH> (C<unix:PATH:DB>
when DB is not 0) with C<unix>; C<tcp_url> is always the TCP one.

C<cli(@args)>: runs redis-cli against it (the password through
C<REDISCLI_AUTH>, never on the command line) and returns its stdout,
chomped (raw output: one line per element of an array).

C<connect(timeout => 5)>: a new connection, C<FanbaseRedis::Conn> (below),
authenticated and on C<db>.

C<kill9>: SIGKILL and waits for its exit.  C<stop>: C<SHUTDOWN NOSAVE>,
then TERM and KILL if it does not exit within 5 s.  C<restart>: starts it
again (after C<kill9> or C<stop>, or stops it first) with the same
configuration, port and files.  C<running>: true while its process lives.
The object stops the server when it goes away, or at END (in the
process that started it only).

=head1 FanbaseRedis::Conn

A blocking RESP2 client over IO::Socket: arguments are sent as bulk
strings, byte for byte (JSON, binary).

C<< $c->cmd(@args) >>: one command, its reply: a simple string or bulk
string as a Perl string, an integer as a number, nil as undef, an array as
an array ref; an error reply as C<FanbaseRedis::Error> object (a blessed
hash with C<msg>; C<"$err"> is the message), not a die.  C<< $c->send(@args) >>
and C<< $c->read_reply >> pipeline; C<< $c->read_reply($timeout) >> returns
undef-as-list (empty list) on timeout, for pub/sub (a C<SUBSCRIBE>d
connection's messages are arrays C<[message, CHANNEL, TEXT]>).
C<< $c->close >>.

=cut

use strict;
use warnings;

use Carp qw(croak);
use File::Spec;
use IO::Socket::INET;
use IO::Socket::UNIX;
use POSIX qw(WNOHANG);
use Scalar::Util qw(weaken);
use Time::HiRes qw(time sleep);

my %NEW_ARGS = map { $_ => 1 }
    qw(dir port appendfsync unix password db name server cli extra);

my %GIVEN;
my @LIVE;    # weak references to every instance, stopped at END

# A port nothing listens on: FanbaseTest's, so that no test gives the same
# one to two servers
sub free_port {
    require FanbaseTest;
    return FanbaseTest::free_port();
}

sub new {
    my ($class, %args) = @_;
    for (keys %args) {
        croak "FanbaseRedis->new: unknown argument '$_'" unless $NEW_ARGS{$_};
    }
    croak 'FanbaseRedis->new: dir is required' unless defined $args{dir};
    croak "FanbaseRedis->new: appendfsync '$args{appendfsync}'"
        if defined $args{appendfsync}
           && $args{appendfsync} !~ /^(always|everysec|no)$/;

    my $dir = File::Spec->rel2abs($args{dir});
    -d $dir or croak "FanbaseRedis->new: $dir is not a directory";
    my $name = $args{name} // 'redis';
    my $self = bless {
        %args,
        dir    => $dir,
        name   => $name,
        port   => $args{port} // free_port(),
        db     => $args{db} // 0,
        socket => $args{unix} ? "$dir/$name.sock" : undef,
        server => $args{server} // $ENV{TEST_REDIS_SERVER}
                  // '/usr/bin/redis-server',
        clibin => $args{cli} // $ENV{TEST_REDIS_CLI} // '/usr/bin/redis-cli',
        owner  => $$,
    }, $class;
    push @LIVE, $self;
    weaken $LIVE[-1];
    return $self;
}

sub port     { $_[0]{port} }
sub socket   { $_[0]{socket} }
sub pid      { $_[0]{pid} }
sub dir      { $_[0]{dir} }
sub password { $_[0]{password} }
sub db       { $_[0]{db} }
sub log_file { "$_[0]{dir}/$_[0]{name}.log" }

sub tcp_url { "redis://127.0.0.1:$_[0]{port}/$_[0]{db}" }

sub url {
    my $self = shift;
    return $self->tcp_url unless defined $self->{socket};
    return "unix:$self->{socket}" . ($self->{db} ? ":$self->{db}" : '');
}

sub _path { "$_[0]{dir}/$_[0]{name}.$_[1]" }

sub _config {
    my $self = shift;
    my @c = (
        'bind 127.0.0.1',
        "port $self->{port}",
        'protected-mode no',
        'daemonize no',
        qq{dir "$self->{dir}"},
        qq{logfile "} . $self->_path('log') . '"',
        qq{pidfile "} . $self->_path('pid') . '"',
        qq{dbfilename "$self->{name}.rdb"},
        'save ""',
        'loglevel notice',
        'databases 16',
    );
    if (defined $self->{socket}) {
        push @c, qq{unixsocket "$self->{socket}"}, 'unixsocketperm 777';
    }
    if (defined $self->{appendfsync}) {
        push @c, 'appendonly yes', "appendfsync $self->{appendfsync}",
                 qq{appenddirname "$self->{name}-aof"},
                 qq{appendfilename "$self->{name}.aof"};
    } else {
        push @c, 'appendonly no';
    }
    push @c, qq{requirepass "$self->{password}"} if defined $self->{password};
    push @c, $self->{extra} if defined $self->{extra};
    return join("\n", @c) . "\n";
}

sub _slurp {
    my $path = shift;
    open my $fh, '<', $path or return '';
    local $/;
    return scalar <$fh>;
}

sub start {
    my $self = shift;
    croak 'FanbaseRedis: already running' if $self->running;

    my $conf = $self->_path('conf');
    open my $fh, '>', $conf or die "$conf: $!";
    print $fh $self->_config;
    close $fh or die "$conf: $!";

    my $out = $self->_path('out');
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP);
        open STDIN, '<', '/dev/null' or POSIX::_exit(127);
        open STDOUT, '>>', $out or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(127);
        exec { $self->{server} } $self->{server}, $conf
            or POSIX::_exit(127);
    }
    $self->{pid} = $pid;

    my ($end, $err) = (time + 15, '');
    while (time < $end) {
        if (waitpid($pid, WNOHANG) == $pid) {
            delete $self->{pid};
            die "redis-server exited (status $?) before answering:\n"
                . _slurp($out) . _slurp($self->log_file);
        }
        my $c = eval { $self->connect(timeout => 1) };
        if ($c) {
            my $pong = $c->cmd('PING');
            $c->close;
            return $self if defined $pong && !ref $pong && $pong eq 'PONG';
            $err = ref $pong ? "$pong" : 'no PONG';
            # LOADING: still reading the AOF; go on waiting
        } else {
            $err = $@;
        }
        sleep 0.05;
    }
    my $log = _slurp($out) . _slurp($self->log_file);
    $self->_kill('KILL');
    die "redis-server did not answer PING in 15 s ($err):\n$log";
}

sub running {
    my $self = shift;
    my $pid = $self->{pid} or return 0;
    if (waitpid($pid, WNOHANG) == $pid) {
        delete $self->{pid};
        return 0;
    }
    return 1;
}

# Waits for the exit of the process; true if it exited within $timeout.
sub _wait {
    my ($self, $timeout) = @_;
    my $pid = $self->{pid} or return 1;
    my $end = time + $timeout;
    for (;;) {
        my $r = waitpid $pid, WNOHANG;
        if ($r == $pid || $r < 0) {
            delete $self->{pid};
            return 1;
        }
        return 0 if time > $end;
        sleep 0.02;
    }
}

sub _kill {
    my ($self, $sig) = @_;
    my $pid = $self->{pid} or return;
    kill $sig => $pid;
    $self->_wait(10) or die "redis-server $pid did not exit on $sig";
}

sub kill9 {
    my $self = shift;
    $self->_kill('KILL');
    return $self;
}

sub stop {
    my $self = shift;
    return $self unless $self->running;
    eval {
        my $c = $self->connect(timeout => 2);
        $c->send('SHUTDOWN', 'NOSAVE');    # no reply: the server exits
        $c->close;
    };
    return $self if $self->_wait(5);
    kill TERM => $self->{pid};
    return $self if $self->_wait(5);
    $self->_kill('KILL');
    return $self;
}

sub restart {
    my $self = shift;
    $self->stop if $self->running;
    return $self->start;
}

sub connect {
    my ($self, %o) = @_;
    my $timeout = $o{timeout} // 5;
    my $sock;
    if ($o{unix} && defined $self->{socket}) {
        $sock = IO::Socket::UNIX->new(Peer => $self->{socket},
                                      Type => SOCK_STREAM(),
                                      Timeout => $timeout);
    } else {
        $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $self->{port},
                                      Proto => 'tcp', Timeout => $timeout);
    }
    $sock or die "connect to redis on port $self->{port}: $!\n";
    my $c = FanbaseRedis::Conn->new($sock, $timeout);
    if (defined $self->{password}) {
        my $r = $c->cmd('AUTH', $self->{password});
        die "redis AUTH: $r\n" if ref $r;
    }
    if ($self->{db}) {
        my $r = $c->cmd('SELECT', $self->{db});
        die "redis SELECT: $r\n" if ref $r;
    }
    return $c;
}

sub cli {
    my ($self, @args) = @_;
    my @cmd = ($self->{clibin}, '-h', '127.0.0.1', '-p', $self->{port},
               '-n', $self->{db});
    local $ENV{REDISCLI_AUTH} = $self->{password}
        if defined $self->{password};
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        exec { $cmd[0] } @cmd, @args or POSIX::_exit(127);
    }
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    chomp $out;
    return $out;
}

sub DESTROY {
    my $self = shift;
    return unless $self->{owner} == $$;
    local ($@, $!, $?);
    eval { $self->stop };
}

# also those that a reference cycle or a die keeps alive to the end
END {
    for my $self (grep { defined } @LIVE) {
        next unless $self->{owner} == $$;
        local ($@, $!, $?);
        eval { $self->stop };
    }
}


package FanbaseRedis::Error;

use overload '""' => sub { $_[0]{msg} }, fallback => 1;

sub new { bless { msg => $_[1] }, $_[0] }
sub msg { $_[0]{msg} }


package FanbaseRedis::Conn;

use IO::Poll qw(POLLIN);
use Time::HiRes qw(time);

sub new {
    my ($class, $sock, $timeout) = @_;
    binmode $sock;
    return bless { sock => $sock, buf => '', timeout => $timeout // 5 },
                 $class;
}

sub send {
    my ($self, @args) = @_;
    my $out = '*' . scalar(@args) . "\r\n";
    for (@args) {
        my $a = defined $_ ? "$_" : '';
        utf8::encode($a) if utf8::is_utf8($a);
        $out .= '$' . length($a) . "\r\n$a\r\n";
    }
    my $sock = $self->{sock} or die "redis connection closed\n";
    while (length $out) {
        my $n = syswrite $sock, $out;
        die "redis write: $!\n" unless defined $n;
        substr($out, 0, $n, '');
    }
    return $self;
}

sub cmd {
    my ($self, @args) = @_;
    $self->send(@args);
    my @r = $self->read_reply;
    die "redis: no reply to $args[0] in $self->{timeout} s\n" unless @r;
    return $r[0];
}

# More bytes into the buffer; false on timeout.
sub _fill {
    my ($self, $end) = @_;
    my $poll = IO::Poll->new;
    $poll->mask($self->{sock}, POLLIN);
    my $left = $end - time;
    return 0 if $left <= 0;
    $poll->poll($left) > 0 or return 0;
    my $n = sysread $self->{sock}, $self->{buf}, 65536, length $self->{buf};
    die "redis read: $!\n" unless defined $n;
    die "redis closed the connection\n" unless $n;
    return 1;
}

# One reply parsed from $self->{buf} at $$pos; undef-list when incomplete.
sub _parse {
    my ($self, $pos) = @_;
    my $buf = \$self->{buf};
    my $eol = index $$buf, "\r\n", $$pos;
    return if $eol < 0;
    my $type = substr $$buf, $$pos, 1;
    my $line = substr $$buf, $$pos + 1, $eol - $$pos - 1;
    my $next = $eol + 2;
    if ($type eq '+') {
        $$pos = $next;
        return ($line);
    }
    if ($type eq '-') {
        $$pos = $next;
        return (FanbaseRedis::Error->new($line));
    }
    if ($type eq ':') {
        $$pos = $next;
        return (0 + $line);
    }
    if ($type eq '$') {
        if ($line < 0) {
            $$pos = $next;
            return (undef);
        }
        return if length($$buf) < $next + $line + 2;
        $$pos = $next + $line + 2;
        return (substr $$buf, $next, $line);
    }
    if ($type eq '*') {
        if ($line < 0) {
            $$pos = $next;
            return (undef);
        }
        my $p = $next;
        my @a;
        for (1 .. $line) {
            my @e = $self->_parse(\$p);
            return unless @e;
            push @a, $e[0];
        }
        $$pos = $p;
        return (\@a);
    }
    die "redis: bad reply type '$type'\n";
}

# The next reply (a one-element list), or an empty list on timeout.
sub read_reply {
    my ($self, $timeout) = @_;
    my $end = time + ($timeout // $self->{timeout});
    for (;;) {
        my $pos = 0;
        my @r = $self->_parse(\$pos);
        if (@r) {
            substr($self->{buf}, 0, $pos, '');
            return @r;
        }
        $self->_fill($end) or return;
    }
}

sub close {
    my $self = shift;
    CORE::close(delete $self->{sock}) if $self->{sock};
}

sub DESTROY { $_[0]->close }

1;
