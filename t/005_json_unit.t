#!/usr/bin/perl

# The JSON shapes (src/ngx_http_fanbase_json.c) without nginx: the unit
# tests in t/unit/json_test.c, built with AddressSanitizer and UBSan.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use UnitC;

run_unit(name => 'json', test => 't/unit/json_test.c',
         sources => ['src/ngx_http_fanbase_json.c'], libs => ['-lyajl']);

done_testing;
