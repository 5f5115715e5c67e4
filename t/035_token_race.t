#!/usr/bin/perl

# Many submissions rejected at once with the same old token: the token is
# dropped once, one new token is fetched, and a rejection that arrives
# after the new token is stored does not drop the new one.

use strict;
use warnings;

use lib 't/lib';
use FanbaseTest;


my $t = FanbaseTest->new(
    files  => edge_files(),
    http   => edge_http(),
    server => "location = $QUEUE { fanbase_submit; }\n",
);
$t->start;

my @submit = (headers => [@CT],
              body => '{"action":"ticket-create","data":{"seat":"B7"}}');

is $t->request(POST => $QUEUE, @submit)->{status}, 201, 'warm-up';
is $t->mock_stats->{token_requests}, 1, 'one token';

for my $round (1 .. 3) {
    my $before = $t->mock_stats->{token_requests};

    # every token the edge holds dies at once: each worker's submissions
    # meet 401 with the same token
    $t->mock_expire_tokens;

    my @res = $t->parallel(60, POST => $QUEUE, @submit);

    is scalar(grep { $_->{status} == 201 } @res), 60,
        "round $round: all 60 submissions answered 201";
    is $t->mock_stats->{token_requests}, $before + 1,
        "round $round: exactly one new token for 60 rejections";
}

my @posts = @{ $t->queue_posts };
my %tokens = map { ($_->{headers}{accesstoken}[0] // '') => 1 } @posts;
is scalar(keys %tokens), 4, 'four tokens in all carried by the POSTs';

done_testing;
