#!/bin/sh

# Builds a harness against a configured and built nginx tree that has the
# module compiled in:
#
#     t/fuzz/link-nginx.sh TREE OUTPUT CC [FLAG | SOURCE]...
#
# compiles the sources with TREE's include paths and links them with every
# object and library that TREE's objs/nginx is linked with, as its
# objs/Makefile says.  nginx.o is replaced by a copy whose main() is
# renamed ngx_fuzz_nginx_main: it also defines ngx_core_module, which
# ngx_modules.o needs, so it cannot simply be left out.

set -e

if [ $# -lt 4 ]; then
    echo "usage: $0 TREE OUTPUT CC [FLAG | SOURCE]..." >&2
    exit 2
fi

tree=$1
out=$2
cc=$3
shift 3

makefile=$tree/objs/Makefile

if [ ! -f "$tree/objs/src/core/nginx.o" ] || [ ! -f "$makefile" ]; then
    echo "$0: $tree is not a built nginx tree" >&2
    exit 1
fi

mkdir -p "$(dirname "$out")"

nomain=$out.nginx.o
objcopy --redefine-sym main=ngx_fuzz_nginx_main \
    "$tree/objs/src/core/nginx.o" "$nomain"

# the words of the recipe "$(LINK) -o objs/nginx \ ... \ -lfoo ... -Wl,-E"

link=$(sed -n '/^\t$(LINK) -o objs\/nginx/,/^$/p' "$makefile" \
       | tr -d '\\' | tr -s ' \t' '\n\n' | grep -v -e '^$')

objs=
libs=

for w in $link; do
    case $w in
    '$(LINK)' | -o | objs/nginx | objs/src/core/nginx.o)
        ;;
    objs/*.o)
        objs="$objs $tree/$w"
        ;;
    *)
        libs="$libs $w"
        ;;
    esac
done

if [ -z "$objs" ]; then
    echo "$0: no link of objs/nginx found in $makefile" >&2
    exit 1
fi

incs=
for d in src/core src/event src/event/modules src/os/unix objs src/http \
         src/http/modules src/http/v2
do
    incs="$incs -I$tree/$d"
done

# shellcheck disable=SC2086
exec "$cc" -W -Wall -Wextra -Wpointer-arith -Wno-unused-parameter -Werror -Isrc $incs "$@" $objs "$nomain" $libs \
    -o "$out"
