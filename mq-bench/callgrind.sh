#!/usr/bin/env bash
# Instructions per message of the send path and of the whole loop, counted
# by callgrind: noise-free figures later changes compare against (wall-clock
# rates on this shared machine move by tens of percent between runs).
#
#   bash mq-bench/callgrind.sh            # N1=20000 N2=40000 by default
#
# Each path runs twice in-process (broker, sender, receiver: 128 B payload,
# window 1000), with N1 and N2 messages; (Ir(N2) - Ir(N1)) / (N2 - N1) is
# the cost of one more message with set-up and tear-down cancelled out.
#   send: hand-over -> frame -> broker stores -> Stored -> confirm resolves
#   e2e:  the same plus deliver -> handler -> ack -> broker removes
#   delivery = e2e - send
# Both client and broker run in one process, so each figure is the sum of
# both sides. Thread interleaving (how many frames one wake-up or one
# syscall carries) still moves the counts by a few percent between runs.
set -euo pipefail
N1="${N1:-20000}"
N2="${N2:-40000}"
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
cargo build --quiet --release -p mq-bench
BIN="${CARGO_TARGET_DIR:-target}/release/mq-bench"
out="$(mktemp -d)"
ir() { # path count
  valgrind --tool=callgrind --callgrind-out-file="$out/$1.$2" "$BIN" --scenario "instr:$1:$2" \
    >/dev/null 2>"$out/$1.$2.log"
  awk '/^(summary|totals):/ {print $2; exit}' "$out/$1.$2"
}
declare -A per
for path in send e2e; do
  a="$(ir "$path" "$N1")"
  b="$(ir "$path" "$N2")"
  per[$path]=$(( (b - a) / (N2 - N1) ))
  echo "$path: Ir($N1)=$a Ir($N2)=$b -> ${per[$path]} instructions per message"
done
echo "delivery (e2e - send): $(( per[e2e] - per[send] )) instructions per message"
rm -rf "$out"
