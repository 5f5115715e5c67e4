#!/usr/bin/perl

# Webhook signatures (src/ngx_http_fanbase_signature.c) and webhook update
# shapes (src/ngx_http_fanbase_json.c) without nginx: the unit tests in
# t/unit/signature_test.c, built with AddressSanitizer and UBSan.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use UnitC;

run_unit(name => 'signature', test => 't/unit/signature_test.c',
         sources => ['src/ngx_http_fanbase_signature.c',
                     'src/ngx_http_fanbase_json.c'],
         libs => ['-lcrypto', '-lyajl']);

done_testing;
