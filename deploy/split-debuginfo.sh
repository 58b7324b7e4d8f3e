#!/bin/sh
# Splits the debug info off a release binary, as the image build does (deploy/Dockerfile):
#   deploy/split-debuginfo.sh BINARY OUTDIR
# writes OUTDIR/NAME, the binary without debug sections (its symbol table stays, so perf and
# backtraces still name functions), and OUTDIR/NAME.debug, the line tables and the rest of the
# DWARF, which the stripped binary names in its .gnu_debuglink section (with a CRC): gdb, perf
# and addr2line load it when it sits beside the binary or under /usr/lib/debug/<binary's dir>.
set -eu
if [ $# -ne 2 ]; then
    echo "usage: $0 BINARY OUTDIR" >&2
    exit 2
fi
bin=$1
out=$2
name=$(basename "$bin")
mkdir -p "$out"
objcopy --only-keep-debug "$bin" "$out/$name.debug"
objcopy --strip-debug "$bin" "$out/$name"
# --add-gnu-debuglink records the debug file's base name and CRC; run from OUTDIR so it finds it.
(cd "$out" && objcopy --add-gnu-debuglink="$name.debug" "$name")
