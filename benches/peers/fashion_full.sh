#!/usr/bin/env bash
# Time per full-batch NAG step on all 60,000 Fashion-MNIST training images
# (n = 60000, d = 784, m = 4096, weight space, 2 threads): the crate
# (examples/fashion_full.rs --timing-only), numpy and PyTorch on the same
# images with the same preprocessing, in alternating rounds.
# Usage: bash benches/peers/fashion_full.sh > benches/results/NAME.txt
#   DATA (default /usr/share/datasets/fashion-mnist: Debian's dataset-fashion-mnist),
#   ROUNDS (default 3), DTYPES (default "f32 f64"), STEPS (timed steps, default 5),
#   VENV (default /work/venv-peers: numpy, torch), BACKENDS (default "rust"; "rust system-blas"
#   needs the build with --features system-blas), PEERS (default "numpy torch").
# Build first: cargo build --release --example fashion_full
set -u
cd "$(dirname "$0")/../.."
P="${VENV:-/work/venv-peers}/bin/python"
DATA="${DATA:-/usr/share/datasets/fashion-mnist}"
K="${STEPS:-5}"
CRATE=target/release/examples/fashion_full
[ -x "$CRATE" ] || { echo "build first: cargo build --release --example fashion_full" >&2; exit 2; }
echo "# date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "# nproc: $(nproc); cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); flags: $(grep -m1 -o -w -E 'avx2|avx512f|fma' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "# git: $(git rev-parse --short HEAD 2>/dev/null); venv: $("$P" -m pip freeze 2>/dev/null | grep -i -E '^(numpy|torch)==' | tr '\n' ' ')"
run() {
  echo
  echo "\$ $*"
  /usr/bin/time -f "# wall %e s, peak resident %M KiB" "$@" 2>&1 | grep -E '^(#|ms_per_step|NAG|Memory|Fashion)'
}
for round in $(seq "${ROUNDS:-3}"); do
  for dt in ${DTYPES:-f32 f64}; do
    echo
    echo "## round $round, $dt"
    for b in ${BACKENDS:-rust}; do
      run "$CRATE" --data-dir "$DATA" --dtype "$dt" --timing-only --lr 1e-4 --momentum 0.9 --steps $((K + 1)) --gemm-backend "$b"
    done
    for peer in ${PEERS:-numpy torch}; do
      run "$P" "benches/peers/nag_step_$peer.py" --idx-dir "$DATA" --m 4096 --dtype "$dt" --warmup 1 --steps "$K" --lr 1e-4
    done
  done
done
