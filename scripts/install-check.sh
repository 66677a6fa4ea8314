#!/usr/bin/env bash
# Installs the build in $1 into a temporary prefix, then builds and runs a
# small consumer twice: once with pkg-config, once with find_package(cmicro).
set -euo pipefail
build=${1:-build}
prefix=$(mktemp -d /tmp/cmicro-install-XXXXXX)
trap 'rm -rf "$prefix"' EXIT

cmake --install "$build" --prefix "$prefix" >/dev/null
mkdir -p "$prefix/consumer"
cat >"$prefix/consumer/main.c" <<'C'
#include <stdio.h>
#include <cmicro/cmicro.h>
int main(void)
{
	printf("consumer linked against cmicro %s (%s)\n", cmicro_version(),
	       cmicro_err_name(CMICRO_EPEM));
	return 0;
}
C
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/x86_64-linux-gnu/pkgconfig"
cc -o "$prefix/consumer/pc" "$prefix/consumer/main.c" $(pkg-config --cflags --libs cmicro)
LD_LIBRARY_PATH="$prefix/lib:$prefix/lib/x86_64-linux-gnu" "$prefix/consumer/pc"

cat >"$prefix/consumer/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.20)
project(consumer C)
find_package(cmicro REQUIRED)
add_executable(consumer main.c)
target_link_libraries(consumer PRIVATE cmicro::cmicro)
CM
cmake -S "$prefix/consumer" -B "$prefix/consumer/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$prefix/consumer/build" >/dev/null
"$prefix/consumer/build/consumer"
