#!/usr/bin/env bash
# Issue 7's measurements in ONE run on this machine: the crate against its
# Python peers (numpy, JAX + optax, PyTorch, neural-tangents), interleaved so
# that every ratio comes from the same run, plus a scaling series of the
# crate's step time over n, m and d.
#
# Usage: scripts/bench_all.sh [--quick] [--reps R] [--threads T] [--no-peers]
#                             [--no-scaling] [--no-build] [--keep-openblas-env]
#                             [--out FILE]
#
#   default   n=1000 d=3072 m=4096 (neural-tangents comparison n=200 d=784
#             m=1024), 3 repetitions, 2 threads; about 15 minutes on 2 cores.
#   --quick   n=100 d=64 m=128 everywhere, 1 repetition, a 2x2x2 scaling grid
#             (about a minute plus the build): checks the script end to end;
#             its figures mean nothing.
#
# What runs, per repetition, alternating crate and peer commands:
#   for dtype in f64 f32:
#     crate step_timing --param weight | numpy NAG step | crate --param kernel |
#     JAX NAG step | crate ntk_gram | PyTorch NAG step | numpy ntk_gram |
#     (n=200 d=784 m=1024) crate ntk_gram | neural-tangents | numpy ntk_gram
#   numpy GEMM rate (gemm_rate.py, f64 and f32)
# then once: step_timing over n in {250,500,1000,2000}, m in {1024,2048,4096},
# d in {784,3072}, weight and kernel space ($SCALING_DTYPE, default f64).
# Each figure in the summary is the median over the repetitions of the mean
# time per step / call that the command prints on its last line.
#
# Environment:
#   PEERS_PYTHON     python of the peers' venv (default /work/venv-peers/bin/python)
#   PEERS_NT_PYTHON  python of the neural-tangents venv (default /work/venv-nt/bin/python)
#   SCALING_DTYPE    f64 (default) or f32
#   CASE_TIMEOUT     seconds before one command is killed (default 900)
#   CARGO_TARGET_DIR honoured when locating the example binaries
# Results: every command, its full output and the summary go to
# benches/results/<date>.txt (<date>-quick.txt in quick mode; an existing file
# is never overwritten); the summary is also printed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

QUICK=0
REPS=""
THREADS=2
PEERS=1
SCALING=1
BUILD=1
KEEP_OPENBLAS_ENV=0
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --reps) REPS="$2"; shift ;;
    --threads) THREADS="$2"; shift ;;
    --no-peers) PEERS=0 ;;
    --no-scaling) SCALING=0 ;;
    --no-build) BUILD=0 ;;
    --keep-openblas-env) KEEP_OPENBLAS_ENV=1 ;;
    --out) OUT="$2"; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

PY="${PEERS_PYTHON:-/work/venv-peers/bin/python}"
NTPY="${PEERS_NT_PYTHON:-/work/venv-nt/bin/python}"
SCALING_DTYPE="${SCALING_DTYPE:-f64}"
CASE_TIMEOUT="${CASE_TIMEOUT:-900}"
case "$SCALING_DTYPE" in f32|f64) ;; *) echo "SCALING_DTYPE must be f32 or f64" >&2; exit 2 ;; esac

if [ "$QUICK" = 1 ]; then
  N=100 D=64 M=128
  NS=100 DS=64 MS=128           # the neural-tangents comparison size
  REPS="${REPS:-1}"
  STEP_W=1 STEP_K=3             # crate and peer steps: warm-up, timed
  NTK_W=1 NTK_K=3
  NTS_W=1 NTS_K=2               # neural-tangents calls
  GEMM_REPS=2
  SCALE_N="50 100" SCALE_M="64 128" SCALE_D="32 64"
  SCALE_TARGET_FLOPS=1e7        # aim per timed run (steps = target / flops per step)
  SCALE_MIN_STEPS=2 SCALE_MAX_STEPS=5
else
  N=1000 D=3072 M=4096
  NS=200 DS=784 MS=1024
  REPS="${REPS:-3}"
  STEP_W=2 STEP_K=10
  NTK_W=1 NTK_K=5
  NTS_W=1 NTS_K=3
  GEMM_REPS=5
  SCALE_N="250 500 1000 2000" SCALE_M="1024 2048 4096" SCALE_D="784 3072"
  SCALE_TARGET_FLOPS=1.2e11     # ~1 s of GEMM at ~100 GFLOP/s
  SCALE_MIN_STEPS=3 SCALE_MAX_STEPS=30
fi
case "$REPS" in ''|*[!0-9]*|0) echo "--reps must be a positive integer" >&2; exit 2 ;; esac
case "$THREADS" in ''|*[!0-9]*|0) echo "--threads must be a positive integer" >&2; exit 2 ;; esac

# ---- output files -----------------------------------------------------------
mkdir -p benches/results
if [ -z "$OUT" ]; then
  stamp="$(date +%Y-%m-%d)"
  if [ "$QUICK" = 1 ]; then stamp="$stamp-quick"; fi
  OUT="benches/results/$stamp.txt"
  if [ -e "$OUT" ]; then OUT="benches/results/$stamp-$(date +%H%M%S).txt"; fi
fi
if [ -e "$OUT" ]; then echo "$OUT exists; not overwriting it" >&2; exit 2; fi
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
TSV="$TMP/results.tsv"      # key <TAB> rep <TAB> value
: > "$TSV"
: > "$OUT"
SKIPPED=()
T_START=$(date +%s)

log() { printf '%s\n' "$*" >> "$OUT"; }
say() { printf '%s\n' "$*"; printf '%s\n' "$*" >> "$OUT"; }
skip() { SKIPPED+=("$*"); say "SKIPPED: $*"; }

# ---- machine and versions ---------------------------------------------------
say "# bench_all.sh $( [ "$QUICK" = 1 ] && echo '--quick (smoke test: figures mean nothing)' )"
say "# date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
say "# machine: $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ //'); nproc $(nproc); mem $(free -g 2>/dev/null | awk '/Mem:/{print $2}') GiB"
say "# git: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src examples 2>/dev/null || echo ' (src/examples modified)')"
say "# rustc: $(rustc --version 2>/dev/null || echo '?')"
say "# threads: $THREADS; repetitions: $REPS; sizes: n=$N d=$D m=$M, neural-tangents comparison n=$NS d=$DS m=$MS"
say "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- build the crate's timing examples --------------------------------------
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
STEP_BIN="$TARGET_DIR/release/examples/step_timing"
NTK_BIN="$TARGET_DIR/release/examples/ntk_timing"
if [ "$BUILD" = 1 ]; then
  say "# building: cargo build --release --example step_timing --example ntk_timing"
  if ! cargo build --release --example step_timing --example ntk_timing >> "$OUT" 2>&1; then
    say "error: the build failed (output in $OUT)"; exit 1
  fi
fi
for b in "$STEP_BIN" "$NTK_BIN"; do
  [ -x "$b" ] || { say "error: $b not found (build it, or drop --no-build)"; exit 1; }
done

# ---- peers: which ones can run ----------------------------------------------
HAVE_NUMPY=0 HAVE_JAX=0 HAVE_TORCH=0 HAVE_NT=0
PEER_ENV=()
if [ "$PEERS" = 0 ]; then
  skip "all Python peers (--no-peers)"
elif [ ! -x "$PY" ]; then
  skip "all Python peers: no python at $PY (create the venv as in benches/peers/README.md, or set PEERS_PYTHON)"
else
  if "$PY" -c 'import numpy, threadpoolctl' >/dev/null 2>&1; then HAVE_NUMPY=1; else skip "numpy peers: numpy/threadpoolctl do not import in $PY"; fi
  if "$PY" -c 'import jax, optax' >/dev/null 2>&1; then HAVE_JAX=1; else skip "JAX peer: jax/optax do not import in $PY"; fi
  if "$PY" -c 'import torch' >/dev/null 2>&1; then HAVE_TORCH=1; else skip "PyTorch peer: torch does not import in $PY"; fi
  if [ ! -x "$NTPY" ]; then
    skip "neural-tangents peer: no python at $NTPY (set PEERS_NT_PYTHON)"
  elif "$NTPY" -c 'import neural_tangents' >/dev/null 2>&1; then HAVE_NT=1
  else skip "neural-tangents peer: neural_tangents does not import in $NTPY"; fi
  say "# venv-peers: $("$PY" -m pip freeze 2>/dev/null | grep -i -E '^(numpy|jax|jaxlib|optax|torch|threadpoolctl)==' | tr '\n' ' ' || true)"
  if [ "$HAVE_NT" = 1 ]; then say "# venv-nt: $("$NTPY" -m pip freeze 2>/dev/null | grep -i -E '^(numpy|jax|jaxlib|neural.tangents|tensorflow)==' | tr '\n' ' ' || true)"; fi
  openblas_vars="$(env | grep -E '^OPENBLAS_(CORETYPE|L2_SIZE)=' | tr '\n' ' ' || true)"
  if [ -n "$openblas_vars" ]; then
    if [ "$KEEP_OPENBLAS_ENV" = 1 ]; then
      say "# note: $openblas_vars is set and kept for the peers (--keep-openblas-env)"
    else
      say "# note: $openblas_vars is set; unset for the peer commands only (benches/peers/README.md; --keep-openblas-env keeps it)"
      PEER_ENV=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
    fi
  fi
fi
TIMEOUT=()
if command -v timeout >/dev/null 2>&1; then TIMEOUT=(timeout "$CASE_TIMEOUT"); fi

# ---- running one command ----------------------------------------------------
# run_case KEY REP CMD...: runs CMD, logs its output, and records the value of
# every name=value field of its last line (KEY, or KEY/name when several).
run_case() {
  local key="$1" rep="$2"; shift 2
  local out rc=0 last fields count name value
  log ""
  log "\$ $*"
  log "# key=$key rep=$rep load=$(cut -d' ' -f1-3 /proc/loadavg) start=$(date -u +%H:%M:%S)"
  out="$("${TIMEOUT[@]}" "$@" 2>&1)" || rc=$?
  printf '%s\n' "$out" | grep -v -E '^(I0000|W0000|WARNING: All log messages)' >> "$OUT" || true
  last="$(printf '%s\n' "$out" | tail -n 1)"
  fields="$(printf '%s\n' "$last" | tr ' ' '\n' | grep -E '^[A-Za-z0-9_]+=[-+0-9.eEnaif]+$' || true)"
  count="$(printf '%s' "$fields" | grep -c . || true)"
  if [ "$rc" -ne 0 ] || [ "$count" -eq 0 ]; then
    log "# FAILED (exit $rc)"
    printf '  %-34s rep %s: FAILED (exit %s): %s\n' "$key" "$rep" "$rc" "${last:0:120}"
    printf '%s\t%s\tnan\n' "$key" "$rep" >> "$TSV"
    return 0
  fi
  while IFS='=' read -r name value; do
    if [ "$count" -eq 1 ]; then
      printf '%s\t%s\t%s\n' "$key" "$rep" "$value" >> "$TSV"
    else
      printf '%s\t%s\t%s\n' "$key/$name" "$rep" "$value" >> "$TSV"
    fi
  done <<< "$fields"
  printf '  [%s] %-34s rep %s: %s\n' "$(date +%H:%M:%S)" "$key" "$rep" "$(printf '%s' "$fields" | tr '\n' ' ')"
}

# peer HAVE KEY REP CMD...: run_case if HAVE is 1.
peer() {
  local have="$1"; shift
  if [ "$have" = 1 ]; then run_case "$@"; fi
}

# median KEY: median of the recorded values of KEY (nan and failures left out), or "-".
median() {
  awk -F'\t' -v k="$1" '$1 == k && $3 != "nan" && $3 != "" { print $3 }' "$TSV" | sort -g |
    awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
# ratio A B: A / B with 2 decimals, or "-".
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }
# minimum of the arguments that are numbers, or "-".
minimum() { printf '%s\n' "$@" | awk '$1 != "-" && $1 != "" { if (m == "" || $1 + 0 < m + 0) m = $1 } END { print (m == "" ? "-" : m) }'; }
# name of the smallest of NAME=VALUE pairs.
argmin() { printf '%s\n' "$@" | awk -F= '$2 != "-" && $2 != "" { if (m == "" || $2 + 0 < m + 0) { m = $2; n = $1 } } END { print (n == "" ? "-" : n) }'; }

# ---- the interleaved comparison ---------------------------------------------
S="--n $N --d $D --m $M --threads $THREADS"
SS="--n $NS --d $DS --m $MS --threads $THREADS"
PEERDIR=benches/peers
say ""
say "== comparison: $REPS repetition(s), crate and peer commands alternating =="
for rep in $(seq 1 "$REPS"); do
  for dt in f64 f32; do
    run_case "step/$dt/crate_weight" "$rep" "$STEP_BIN" $S --dtype "$dt" --param weight --optimizer nag --warmup $STEP_W --steps $STEP_K
    peer "$HAVE_NUMPY" "step/$dt/numpy" "$rep" "${PEER_ENV[@]}" "$PY" $PEERDIR/nag_step_numpy.py $S --dtype "$dt" --warmup $STEP_W --steps $STEP_K
    run_case "step/$dt/crate_kernel" "$rep" "$STEP_BIN" $S --dtype "$dt" --param kernel --optimizer nag --warmup $STEP_W --steps $((2 * STEP_K))
    peer "$HAVE_JAX" "step/$dt/jax" "$rep" "${PEER_ENV[@]}" "$PY" $PEERDIR/nag_step_jax.py $S --dtype "$dt" --warmup $STEP_W --steps $STEP_K
    run_case "ntk/$dt/crate" "$rep" "$NTK_BIN" $S --dtype "$dt" --warmup $NTK_W --steps $NTK_K
    peer "$HAVE_TORCH" "step/$dt/torch" "$rep" "${PEER_ENV[@]}" "$PY" $PEERDIR/nag_step_torch.py $S --dtype "$dt" --warmup $STEP_W --steps $STEP_K
    peer "$HAVE_NUMPY" "ntk/$dt/numpy" "$rep" "${PEER_ENV[@]}" "$PY" $PEERDIR/ntk_gram_numpy.py $S --dtype "$dt" --warmup $NTK_W --steps $NTK_K
    run_case "ntk_nt/$dt/crate" "$rep" "$NTK_BIN" $SS --dtype "$dt" --warmup $NTK_W --steps $((4 * NTK_K))
    peer "$HAVE_NT" "ntk_nt/$dt/neural_tangents" "$rep" "${PEER_ENV[@]}" "$NTPY" $PEERDIR/ntk_gram_neural_tangents.py $SS --dtype "$dt" --warmup $NTS_W --steps $NTS_K
    peer "$HAVE_NUMPY" "ntk_nt/$dt/numpy" "$rep" "${PEER_ENV[@]}" "$PY" $PEERDIR/ntk_gram_numpy.py $SS --dtype "$dt" --warmup $NTK_W --steps $((2 * NTK_K))
  done
  peer "$HAVE_NUMPY" "gemm" "$rep" "${PEER_ENV[@]}" "$PY" $PEERDIR/gemm_rate.py --n $N --d $D --m $M --threads $THREADS --reps $GEMM_REPS
done

# ---- scaling series (crate only, once) --------------------------------------
if [ "$SCALING" = 1 ]; then
  say ""
  say "== scaling: step_timing, NAG, $SCALING_DTYPE, $THREADS threads =="
  for n in $SCALE_N; do for m in $SCALE_M; do for d in $SCALE_D; do
    for p in weight kernel; do
      steps="$(awk -v n="$n" -v m="$m" -v d="$d" -v p="$p" -v t="$SCALE_TARGET_FLOPS" -v lo="$SCALE_MIN_STEPS" -v hi="$SCALE_MAX_STEPS" \
        'BEGIN { f = (p == "weight") ? 4 * n * m * d : 2 * n * n * m; k = int(t / f + 0.5); if (k < lo) k = lo; if (k > hi) k = hi; print k }')"
      run_case "scale/$p/$n/$d/$m" 1 "$STEP_BIN" --n "$n" --d "$d" --m "$m" --threads "$THREADS" --dtype "$SCALING_DTYPE" --param "$p" --optimizer nag --warmup 1 --steps "$steps"
    done
  done; done; done
else
  skip "scaling series (--no-scaling)"
fi

# ---- summary ----------------------------------------------------------------
{
echo ""
echo "================================ summary ================================"
echo "Medians over $REPS repetition(s) in this run; $THREADS threads; machine above."
echo "Ratios are peer time / crate time (> 1: the crate is faster)."
echo ""
echo "NAG step, n=$N d=$D m=$M (ms per step; crate: step_timing --param weight|kernel)"
printf '%-5s %10s %10s %10s %10s %10s  %-14s %12s %12s\n' dtype crate_wt crate_kern numpy jax torch fastest_peer "peer/weight" "peer/kernel"
for dt in f64 f32; do
  cw="$(median "step/$dt/crate_weight")"; ck="$(median "step/$dt/crate_kernel")"
  np="$(median "step/$dt/numpy")"; jx="$(median "step/$dt/jax")"; th="$(median "step/$dt/torch")"
  best="$(minimum "$np" "$jx" "$th")"; bestname="$(argmin "numpy=$np" "jax=$jx" "torch=$th")"
  printf '%-5s %10s %10s %10s %10s %10s  %-14s %12s %12s\n' "$dt" "$cw" "$ck" "$np" "$jx" "$th" "$bestname" "$(ratio "$best" "$cw")" "$(ratio "$best" "$ck")"
done
echo "(targets: peer/weight >= 1; peer/kernel >= 6)"
echo ""
echo "ntk_gram (ms per call): crate TwoLayerReLU::ntk_gram vs numpy (X X^T) o (S S^T) / m, and neural-tangents empirical_ntk_fn"
printf '%-5s %-20s %10s %10s %14s   %-18s %10s %10s %10s %10s\n' dtype size crate numpy numpy/crate size2 crate numpy nt nt/crate
for dt in f64 f32; do
  c="$(median "ntk/$dt/crate")"; np="$(median "ntk/$dt/numpy")"
  c2="$(median "ntk_nt/$dt/crate")"; np2="$(median "ntk_nt/$dt/numpy")"; nt="$(median "ntk_nt/$dt/neural_tangents")"
  printf '%-5s %-20s %10s %10s %14s   %-18s %10s %10s %10s %10s\n' "$dt" "n$N,d$D,m$M" "$c" "$np" "$(ratio "$np" "$c")" "n$NS,d$DS,m$MS" "$c2" "$np2" "$nt" "$(ratio "$nt" "$c2")"
done
echo "(targets: crate within 1.2x of numpy, i.e. numpy/crate >= 0.83; nt/crate >= 100 at n=$NS d=$DS m=$MS)"
echo ""
echo "GEMM rate (GFLOP/s): numpy's BLAS best (n x d)(d x m) product (gemm_rate.py) vs the crate's whole weight-space step, 4 n m d / time"
printf '%-5s %12s %16s %14s\n' dtype numpy_gemm crate_step_rate crate/numpy
for dt in f64 f32; do
  g="$(median "gemm/gflops_$dt")"; cw="$(median "step/$dt/crate_weight")"
  rate="$(awk -v n="$N" -v m="$M" -v d="$D" -v t="$cw" 'BEGIN { if (t == "-") print "-"; else printf "%.1f", 4 * n * m * d / (t * 1e-3) / 1e9 }')"
  printf '%-5s %12s %16s %14s\n' "$dt" "$g" "$rate" "$(ratio "$rate" "$g")"
done
echo "(target: crate/numpy >= 0.80; the step rate includes the non-GEMM work of the step, so it is a lower bound on the crate's GEMM rate)"
if [ "$SCALING" = 1 ]; then
  echo ""
  echo "Scaling ($SCALING_DTYPE, NAG, ms per step; GF/s = model flops / time: 4 n m d in weight space, 2 n^2 m in kernel space)"
  printf '%6s %6s %6s %12s %9s %12s %9s %12s %12s\n' n d m weight_ms GF/s kernel_ms GF/s "wt/kern" "model 2d/n"
  for n in $SCALE_N; do for m in $SCALE_M; do for d in $SCALE_D; do
    w="$(median "scale/weight/$n/$d/$m")"; k="$(median "scale/kernel/$n/$d/$m")"
    awk -v n="$n" -v d="$d" -v m="$m" -v w="$w" -v k="$k" 'BEGIN {
      gw = (w == "-") ? "-" : sprintf("%.1f", 4 * n * m * d / (w * 1e-3) / 1e9)
      gk = (k == "-") ? "-" : sprintf("%.1f", 2 * n * n * m / (k * 1e-3) / 1e9)
      r = (w == "-" || k == "-" || k + 0 == 0) ? "-" : sprintf("%.2f", w / k)
      printf "%6d %6d %6d %12s %9s %12s %9s %12s %12.2f\n", n, d, m, w, gw, k, gk, r, 2 * d / n }'
  done; done; done
  echo "(constant GF/s down a column = time proportional to the model's flop count)"
fi
echo ""
if [ "${#SKIPPED[@]}" -gt 0 ]; then
  echo "Skipped:"
  printf '  - %s\n' "${SKIPPED[@]}"
fi
failed="$(awk -F'\t' '$3 == "nan"' "$TSV" | wc -l)"
if [ "$failed" -gt 0 ]; then echo "Failed commands: $failed (see FAILED in the raw file)"; fi
echo "Load average at end: $(cut -d' ' -f1-3 /proc/loadavg); wall time $(( $(date +%s) - T_START )) s"
echo "Raw results: $OUT"
echo ""
echo "# records (key, repetition, value)"
sed 's/^/# /' "$TSV"
} > "$TMP/summary.txt"
cat "$TMP/summary.txt" >> "$OUT"
sed '/^# records/,$d' "$TMP/summary.txt"
