#!/usr/bin/env bash
# One full-batch NAG step at n = 1000, d = 3072, m = 4096, 2 threads: the crate
# (weight and kernel space; GEMM by the gemm crate and, built with
# --features system-blas, by the system's OpenBLAS) against numpy and PyTorch,
# in alternating rounds.
# Usage: bash benches/peers/step_rounds.sh > benches/results/NAME.txt
#   ROUNDS (default 3), DTYPES (default "f32 f64"), VENV (default /work/venv-peers).
# Build first: cargo build --release --features system-blas --example step_timing
set -u
cd "$(dirname "$0")/../.."
P="${VENV:-/work/venv-peers}/bin/python"
S="--n 1000 --d 3072 --m 4096 --threads 2"
CRATE=target/release/examples/step_timing
[ -x "$CRATE" ] || { echo "build first: cargo build --release --features system-blas --example step_timing" >&2; exit 2; }
echo "# date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "# nproc: $(nproc); cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); flags: $(grep -m1 -o -w -E 'avx2|avx512f|fma' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "# git: $(git rev-parse --short HEAD 2>/dev/null); venv: $("$P" -m pip freeze 2>/dev/null | grep -i -E '^(numpy|torch)==' | tr '\n' ' '); system OpenBLAS: $(dpkg-query -W -f '${Version}' libopenblas0-pthread 2>/dev/null)"
run() {
  echo "\$ $*"
  "$@" 2>&1 | grep -E '^(ms_per_step|# timed)'
}
for round in $(seq "${ROUNDS:-3}"); do
  for dt in ${DTYPES:-f32 f64}; do
    echo
    echo "## round $round, $dt"
    for b in rust system-blas; do
      run "$CRATE" $S --dtype "$dt" --param weight --steps 10 --gemm-backend "$b"
      run "$CRATE" $S --dtype "$dt" --param kernel --steps 10 --gemm-backend "$b"
    done
    run "$P" benches/peers/nag_step_numpy.py $S --dtype "$dt" --warmup 2 --steps 10
    run "$P" benches/peers/nag_step_torch.py $S --dtype "$dt" --warmup 2 --steps 10
  done
done
