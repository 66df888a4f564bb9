#!/usr/bin/env bash
# Run every peer once and print a record (date, machine, versions, outputs).
# Usage: bash benches/peers/run_all.sh [small] > benches/peers/results/NAME.txt
#   VENV (default /work/venv-peers) and VENV_NT (default /work/venv-nt) select the venvs;
#   DTYPES (default "f64 f32") and PARTS (default "step gram nt gemm") select what runs;
#   NT_IMPLS (default "1 2 3": neural-tangents implementations to time) and THREADS (default 2).
# After each command it prints the CPU time that OTHER processes used meanwhile
# (from /proc/stat): near 0 means the run had the machine to itself.
# "small" runs n=100 d=64 m=128 (smoke test); the default is the reference size of BENCHMARKS.md,
# n=1000 d=3072 m=4096 (NTK peer: n=200 d=784 m=1024), 2 threads.
set -u
cd "$(dirname "$0")"
P="${VENV:-/work/venv-peers}/bin/python"
NT="${VENV_NT:-/work/venv-nt}/bin/python"
T="${THREADS:-2}"
if [ "${1:-}" = small ]; then
  S="--n 100 --d 64 --m 128 --threads $T"; SNT="--n 20 --d 16 --m 32"; SG="--n 100 --d 64 --m 128"; K=3
else
  S="--n 1000 --d 3072 --m 4096 --threads $T"; SNT="--n 200 --d 784 --m 1024"; SG="--n 1000 --d 3072 --m 4096"; K=10
fi
echo "# date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "# nproc: $(nproc); cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); mem: $(free -g | awk '/Mem:/{print $2}') GiB"
echo "# env: $(env | grep -E '^OPENBLAS_(CORETYPE|L2_SIZE)=' | tr '\n' ' ' || true)(OPENBLAS_CORETYPE/L2_SIZE shown here if set)"
echo "# git: $(git rev-parse --short HEAD 2>/dev/null)"
echo "# venv-peers: $("$P" -m pip freeze 2>/dev/null | grep -i -E '^(numpy|jax|jaxlib|optax|torch|threadpoolctl|scipy)==' | tr '\n' ' ')"
echo "# venv-nt: $("$NT" -m pip freeze 2>/dev/null | grep -i -E '^(numpy|jax|jaxlib|neural.tangents|tensorflow|tf2jax)==' | tr '\n' ' ')"
HZ=$(getconf CLK_TCK)
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }
TIMEFORMAT='%R %U %S'
tf=$(mktemp)
run() {
  echo
  echo "\$ $*"
  local b0 b1
  b0=$(busy)
  { time "$@" 2>&1 | grep -v -E '^(I0000|W0000|WARNING: All log messages)'; } 2> "$tf"
  b1=$(busy)
  read -r t_real t_user t_sys < "$tf"
  awk -v b=$((b1 - b0)) -v hz="$HZ" -v r="$t_real" -v u="$t_user" -v s="$t_sys" 'BEGIN{
    printf "# wall %.1f s, this command %.1f s CPU, other processes %.1f s CPU meanwhile (2 cores: %.1f s available)\n",
      r, u + s, b / hz - u - s, 2 * r }'
}
DTYPES="${DTYPES:-f64 f32}"
PARTS="${PARTS:-step gram nt gemm}"
has() { case " $PARTS " in *" $1 "*) return 0;; esac; return 1; }
for dt in $DTYPES; do
  if has step; then
    run "$P" nag_step_numpy.py $S --dtype $dt --warmup 2 --steps $K
    run "$P" nag_step_jax.py   $S --dtype $dt --warmup 2 --steps $K
    run "$P" nag_step_torch.py $S --dtype $dt --warmup 2 --steps $K
  fi
  if has gram; then
    run "$P" ntk_gram_numpy.py $S --dtype $dt --warmup 1 --steps 5
    run "$P" ntk_gram_numpy.py $SNT --threads $T --dtype $dt --warmup 1 --steps 5
  fi
  if has nt; then
    for impl in ${NT_IMPLS:-1 2 3}; do
      run "$NT" ntk_gram_neural_tangents.py $SNT --threads $T --dtype $dt --warmup 1 --steps 3 --implementation $impl
    done
  fi
done
has gemm && run "$P" gemm_rate.py $SG --threads $T
rm -f "$tf"
echo
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
