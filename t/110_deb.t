#!/usr/bin/perl

# make deb: the package installs into this machine's stock nginx the way
# Debian's libnginx-mod-* packages do (the module, its load_module snippet,
# the link in /etc/nginx/modules-enabled), nginx -t passes with it loaded,
# and removing the package takes all of it away again.  Needs root and
# Debian's nginx; "make test" builds the package first.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;

my @debs = glob 'build/libnginx-mod-http-fanbase_*.deb';
my $SO   = '/usr/lib/nginx/modules/ngx_http_fanbase_module.so';
my $SNIP = '/usr/share/nginx/modules-available/mod-http-fanbase.conf';
my $LINK = '/etc/nginx/modules-enabled/50-mod-http-fanbase.conf';

plan skip_all => 'the package is about Debian\'s nginx, not the sanitizer build'
    if $ENV{TEST_NGINX_SANITIZER};
plan skip_all => 'installing a package needs root' if $> != 0;
plan skip_all => 'no dpkg or no Debian nginx'
    unless -x '/usr/bin/dpkg' && -x '/usr/sbin/nginx' && -d '/etc/nginx';
plan skip_all => 'no package built ("make deb")' unless @debs;

my $deb = (sort { -M $a <=> -M $b } @debs)[0];

sub run {
    my $out = `@_ 2>&1`;
    return ($? == 0, $out);
}

my ($ok, $out) = run('dpkg', '-i', $deb);
ok($ok, "dpkg -i $deb") or diag($out);
ok(-f $SO, 'the module is in /usr/lib/nginx/modules');
is(`cat $SNIP`, "load_module modules/ngx_http_fanbase_module.so;\n",
   'the snippet in modules-available loads it');
is(readlink($LINK), $SNIP, 'enabled by a link in /etc/nginx/modules-enabled');

($ok, $out) = run('/usr/sbin/nginx', '-t');
ok($ok, 'nginx -t passes with the module loaded') or diag($out);
like(scalar `/usr/sbin/nginx -T 2>&1`, qr{^load_module modules/ngx_http_fanbase_module\.so;}m,
     'nginx -T shows the module loaded');

($ok, $out) = run(q{dpkg-query -W -f='${Depends}' libnginx-mod-http-fanbase});
like($out, qr/\bnginx-abi-[\d.]+-\d+\b/, 'it depends on the nginx ABI it was built for');

($ok, $out) = run('dpkg', '-r', 'libnginx-mod-http-fanbase');
ok($ok, 'dpkg -r') or diag($out);
ok(!-e $SO && !-e $SNIP, 'the module and the snippet are gone');
ok(!-l $LINK && !-e $LINK, 'and the link');

($ok, $out) = run('/usr/sbin/nginx', '-t');
ok($ok, 'nginx -t passes without it') or diag($out);

done_testing;
