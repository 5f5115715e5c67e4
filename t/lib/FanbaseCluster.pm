package FanbaseCluster;

=head1 NAME

FanbaseCluster - several edges sharing one Redis, in front of the mock:
the setting of the Redis engine's tests (issue 15)

=head1 SYNOPSIS

    use lib 't/lib';
    use FanbaseTest;
    use FanbaseCluster;

    skip_without_redis();    # plan skip_all unless nginx knows fanbase_redis

    my $c = FanbaseCluster->new(mock => { processing_after => 60 });
    my ($A, $B, $C) = $c->start;
    my $id = tx_id($A->submit(data => { n => 1 }));
    is($B->tx_status($id), 'pending');

=head1 WHAT EACH HOST IS

Each host is a C<FanbaseTest> instance of C<< FanbaseTest->cluster >>
(named A, B, C, ...; its own directory, port, error log, and its checks
at the end), configured with C<edge_http> (the mock's client, its secret
file, C<fanbase_timeout> of C<timeout>, default 5s) and, at the http level:

    fanbase_redis URL PARAMS;                      # URL: the Redis's url
    fanbase_redis_password_file DIR/redis.password; # with a password

and in its server:

    location = /api/v1/integration/queue { fanbase_submit async; }
    location /transactions/ { fanbase_transaction; }
    location = /hooks/status {
        fanbase_webhook;
        fanbase_webhook_secret_file DIR/hook.secret;
    }

plus a second server on a port of its own (C<lp_port>) with C<reuseport>,
so that connections there land on both workers, with the same three
locations and C<access_log DIR/reuseport.log fb_pid>.  Every host has the
same webhook secret (C<hook_secret>; C<< $host->hook >> signs with it).

=head1 CONSTRUCTOR

C<< FanbaseCluster->new(%o) >>: C<hosts> (default 3); C<redis>: the
arguments of C<< FanbaseRedis->new >> (C<dir> is a directory of its own,
not a host's); C<params>: an arrayref of what follows the URL on the
C<fanbase_redis> line (C<fallback=local>), or a code ref that returns it
for a host's name; C<url>: another URL than the
Redis's; C<mock> (C<clients> default C<demo-client:demo-secret>),
C<files>, C<http> (more http lines), C<server> (more server lines),
C<timeout>, C<error_log_level>, C<log_allow>, C<workers>: as for
C<FanbaseTest>.  The Redis is made, not started.

=head1 METHODS

C<start>: starts the Redis, then the hosts (the first one the mock);
returns the hosts.  C<hosts>, C<host($name)>, C<redis>,
C<lp_port($host)> (its reuseport port), C<hook_secret>.

=head1 FUNCTIONS

C<skip_without_redis()>: C<plan skip_all> when C<nginx -t> on a host's
configuration says C<unknown directive "fanbase_redis"> (the module was
built without the Redis engine); any other outcome runs the tests.

C<redis_line($url, @params)>: the C<fanbase_redis> line.

=cut

use strict;
use warnings;

use Carp qw(croak);
use FanbaseTest;
use FanbaseRedis;

use Exporter qw(import);
our @EXPORT = qw(skip_without_redis redis_line);

sub redis_line {
    my ($url, @params) = @_;
    return join(' ', 'fanbase_redis', $url, @params) . ";\n";
}

sub skip_without_redis {
    return FanbaseTest->skip_unless_directive('fanbase_redis',
        files => edge_files(),
        http  => edge_http(extra => redis_line('redis://127.0.0.1:6379/0')));
}

sub _locations {
    return "location = $QUEUE { fanbase_submit async; }\n"
         . "location /transactions/ { fanbase_transaction; }\n"
         . "location = /hooks/status {\n"
         . "    fanbase_webhook;\n"
         . "    fanbase_webhook_secret_file %%DIR%%/hook.secret;\n"
         . "}\n";
}

sub new {
    my ($class, %o) = @_;
    my $redis = FanbaseRedis->new(%{ $o{redis} || {} },
                                  dir => FanbaseTest::new_dir());
    my $secret = webhook_secret();
    my $self = bless { redis => $redis, hook_secret => $secret, lp => {} },
                     $class;

    my $params = $o{params} // [];
    my $line = sub {
        my $name = shift;
        return redis_line($o{url} // $redis->url,
                          ref $params eq 'CODE' ? $params->($name) : @$params);
    };
    my $http = '';
    my %files = (%{ edge_files() }, 'hook.secret' => "$secret\n");
    if (defined $redis->password) {
        $http .= "fanbase_redis_password_file %%DIR%%/redis.password;\n";
        $files{'redis.password'} = { content => $redis->password . "\n",
                                     mode => 0600 };
    }
    %files = (%files, %{ $o{files} || {} });
    $http .= $o{http} // '';

    my $locations = _locations();
    my @hosts = FanbaseTest->cluster($o{hosts} // 3,
        mock => { clients => ['demo-client:demo-secret'],
                  %{ $o{mock} || {} } },
        files => \%files,
        hook_secret => $secret,
        server => $locations . ($o{server} // ''),
        map({ defined $o{$_} ? ($_ => $o{$_}) : () }
            qw(error_log_level log_allow workers)),
        per_host => sub {
            my ($name) = @_;
            my $lp = FanbaseTest::free_port();
            $self->{lp}{$name} = $lp;
            return (http => edge_http(timeout => $o{timeout} // '5s',
                                      extra => $line->($name) . $http
                                             . <<"CONF"));
server {
    listen 127.0.0.1:$lp reuseport;
    access_log %%DIR%%/reuseport.log fb_pid;
$locations}
CONF
        });
    $hosts[0]->stop_with($redis);    # after every host and the mock
    $self->{hosts} = \@hosts;
    return $self;
}

sub start {
    my $self = shift;
    $self->{redis}->start;
    $_->start for @{ $self->{hosts} };
    return @{ $self->{hosts} };
}

sub hosts       { @{ $_[0]{hosts} } }
sub redis       { $_[0]{redis} }
sub hook_secret { $_[0]{hook_secret} }

sub host {
    my ($self, $name) = @_;
    my ($h) = grep { $_->name eq $name } @{ $self->{hosts} };
    return $h // croak "no host $name";
}

sub lp_port { $_[0]{lp}{ $_[1]->name } }

1;
