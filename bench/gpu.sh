#!/usr/bin/env bash
# Every GPU check of the project in one device call, so a session that draws an H100/H200 spends its
# device minutes measuring, not setting up (the device machine has no node and no npm).
#   here, after npm ci:   bash bench/gpu.sh pack
#   device tool:          run  command "bash bench/gpu.sh run"  carry [".devkit"]  timeout_s 600
# The parts' limits add up to 1025 s, over the 600 s a call may run, but on a GPU most parts take well
# under theirs (a full H100 run took 357 s before the three unchecked parts, ~110 s more); the least
# needed part (embed-f16) runs last. PARTS matches by substring: 'step-f16' also runs its unchecked twin
# (and in goals its -recompute and -droppath variants).
#   try it here first:    OUT=/tmp/gpu bash bench/gpu.sh run --quick   (lavapipe, CI sizes)
#   some parts only:      PARTS=kernels-matmul,step-fp32 bash bench/gpu.sh run
#   matmul exploration:   bash bench/gpu.sh sweep   (~8 min: tiles and subgroup kernels beyond the named
#                         configs, checked, then timed on 4096³ and the layer shapes; bench/sweep.ts)
#   kernels only:         bash bench/gpu.sh kernels (~7 min on an H200 before its two unchecked parts:
#                         the kernel tests, the kernel goals with tfjs, the 4096³ products without
#                         Dawn's clamps, the driver's statistics of each kernel pipeline, and
#                         shorter sweeps; fits one call of a 15-minute device lease)
#   the missed goals:     bash bench/gpu.sh goals (fp32 4096³ with what bears on it, stream-K among
#                         it; the f16 step, with and without recomputed activations and with
#                         pretraining's drop-path, and encoder, each also with the matmul epilogues as
#                         passes; the fp32 encoder without and with stream-K). Its limits add up to
#                         1050 s, past the 600 s a call may run: choose with PARTS.
#                         - stream-K against the 4096³ goal, checked, timed (asked for, and as
#                           matmul's own choice on every matmul row and in the fp32 encoder), with
#                           its registers: PARTS=info,stream-K,kernels-4096,pipeline-stats (limits
#                           385 s; the registers need gcc and libvulkan-dev at pack)
#                         - the epilogue question, with the cast row:
#                           PARTS='info,kernels-f16-fwd,kernels-rows,step-f16$,step-f16-pass,embed-f16'
#                           (limits 340 s)
#                         - both but the registers and the cast row, in one call (limits 580 s):
#                           PARTS='info,stream-K,kernels-4096,kernels-f16-fwd,step-f16$,step-f16-pass,embed-f16'
#   f16 matmul only:      bash bench/gpu.sh f16 (~2 min on an H200, its limits add up to 290 s: its
#                         tests, its rows with and without Dawn's checks, a 40 s f16 sweep)
#   pipeline statistics:  bash bench/gpu.sh pipeline-stats   (registers per thread of every kernel
#                         pipeline, as the Vulkan driver reports them; bench/pipeline-stats.ts)
# `run` writes under $OUT: log.txt (everything, in order), summary.txt (the goals and ratios) and the
# JSON results the benches save with device, date and command (copied after each part, so a run cut
# short keeps them). Each part has its own time limit, so one that hangs costs only its share and the
# rest still runs.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
kit=.devkit
unchecked=disable_robustness,disable_workgroup_init # Dawn's index clamps and workgroup zeroing off (the '-unchecked' parts)

pack() {
  set -e
  npm run build
  bash ../shared/device/pack.sh .build/suite.ts scripts/test.mjs bench/main.ts train/cli.ts
  mv $kit/suite.mjs $kit/test-node.mjs # scripts/test.mjs loads $ECG_BUILD_DIR/test-node.mjs
  # the Vulkan layer of the pipeline-stats part (gcc and the Vulkan headers: apt install gcc libvulkan-dev)
  rm -rf $kit/vk-layer
  if command -v gcc >/dev/null && [ -f /usr/include/vulkan/vk_layer.h ]; then
    mkdir -p $kit/vk-layer
    gcc -O2 -shared -fPIC -fvisibility=hidden -U_FORTIFY_SOURCE -o $kit/vk-layer/libecg_jepa_pipeline_stats.so bench/pipeline-stats/layer.c
    cp bench/pipeline-stats/layer.json $kit/vk-layer/
  else
    echo "pack: no gcc or no Vulkan headers (apt install gcc libvulkan-dev): the pipeline-stats part will be skipped"
  fi
  rm -f $kit/node_modules/webgpu/dist/linux-x64/dawn.node # its .xz travels; remote.sh unpacks it there
  git rev-parse HEAD > $kit/COMMIT
  git status --porcelain | grep -q . && echo "(uncommitted changes)" >> $kit/COMMIT
  du -sh $kit
}

part() { # part NAME SECONDS ENTRY ARGS... : one node entry of the kit, logged with its time and exit status
  local name=$1 limit=$2; shift 2
  # PARTS=a,b runs only the parts whose names contain one of those words (a rerun of some parts); a
  # word ending in $ names a whole part ('step-f16$': not step-f16-pass)
  if [ -n "${PARTS:-}" ]; then
    local w hit=
    for w in ${PARTS//,/ }; do
      if [[ $w == *'$' ]]; then [[ $name == "${w%'$'}" ]] && hit=1; else [[ $name == *$w* ]] && hit=1; fi
    done
    [ -n "$hit" ] || return 0
  fi
  echo "=== $name (limit ${limit}s, $(date -u +%T)): $*"
  local t0=$SECONDS
  # Dawn prints every uncaptured GPU error in full (a peer out of memory gives thousands): keep the first 40 lines
  timeout "$limit" bash $kit/remote.sh "$@" 2>&1 | awk '
    /^( - While|validation:|out-of-memory:|WebGPU error:|\[Invalid)/ { if (++n > 40) next }
    { print } END { if (n > 40) print "(" n - 40 " more lines of GPU error messages left out)" }'
  echo "=== $name: exit ${PIPESTATUS[0]} after $((SECONDS - t0)) s"
  find bench/results -newer "$out/.start" -name '*.json' -exec cp {} "$out/" \;
}

# The driver's statistics of every kernel pipeline (registers per thread on NVIDIA), printed into the
# log, through the Vulkan layer that pack builds (bench/pipeline-stats/layer.c); and whatever internal
# representations the driver gives of them (its IR or disassembly, if any), gzipped into
# $OUT/pipeline-ir.txt.gz, each after the line `##### <our pipeline key>`.
stats_part() {
  [ -f $kit/vk-layer/layer.json ] || { echo "=== pipeline-stats: skipped, $kit has no Vulkan layer (see pack)"; return 0; }
  local raw=/tmp/ecg-jepa-pipeline-stats.txt ir=/tmp/ecg-jepa-pipeline-ir.txt
  rm -f $raw $ir
  VK_LAYER_PATH=$PWD/$kit/vk-layer VK_INSTANCE_LAYERS=VK_LAYER_ECGJEPA_pipeline_stats ECG_JEPA_PIPELINE_STATS_FILE=$raw ECG_JEPA_PIPELINE_IR_FILE=$ir \
    part pipeline-stats 45 $kit/main.mjs pipeline-stats "$@"
  # only the '#####' lines: no representations
  if grep -qv '^#####' $ir 2>/dev/null; then
    local to=pipeline-ir.txt
    if command -v gzip >/dev/null; then to=$to.gz; gzip -c $ir > "$out/$to"; else cp $ir "$out/$to"; fi
    echo "pipeline-stats: the driver's internal representations, $(wc -c < $ir) bytes, in $to"
  else
    echo "pipeline-stats: the driver gave no internal representations"
  fi
}

# The parts of `run`: correctness first, then every benchmark with its tfjs peer.
all_parts() {
  # tfjs's base step is CPU-bound at ~4 s a step on an H100 (batch 4 and 8 alike; 8 held 40 GB, 16
  # filled the card): its tries start at 8, double while they fit, and take 3 timed steps each
  # (ten steps: a step is recorded before its one submit, so the first timed one waits for its CPU
  # work, ~44 ms in the H200's f16 step, and the later ones overlap it; over 3 steps a third of it showed)
  local scale=full preset=(--preset base --batch 64) steps=(--steps 10 --warmup 2) iters=(--iters 20 --warmup 2) save=--save
  local peer=(--peer tfjs --peer-batch 8 --steps 3 --warmup 2)
  # the dry run leaves bench/results/ alone
  [ "$quick" = --quick ] && { scale=ci; preset=(--preset tiny --batch 4); steps=(--steps 2 --warmup 1); iters=(--iters 2 --warmup 1); save=; peer=(--peer tfjs --peer-batch 2 --steps 2 --warmup 1); }
  # the adapter, and whether subgroup matrices and shader-f16 are there (over 10 s on a fresh H200:
  # the engine compiles and checks the subgroup-matrix kernels first)
  part info 30 $kit/cli.mjs info
  local g limit
  for g in kernels/:170 engine/ops:30 model/jepa:25 bench/:25; do
    limit=${g#*:} g=${g%:*}
    ECG_BUILD_DIR=$kit part "tests $g" $limit $kit/test.mjs --node-only --grep $g
  done
  # the kernels without Dawn's index clamps and workgroup zeroing, as the '-unchecked' parts time them
  ECG_BUILD_DIR=$kit ECG_DAWN_TOGGLES=$unchecked part "tests kernels/ unchecked" 90 $kit/test.mjs --node-only --grep kernels/
  # matmul apart, so a slow autotune cannot starve the bandwidth and attention cases
  part kernels-matmul 100 $kit/main.mjs kernels --scale $scale --group matmul $save
  part kernels-rest 110 $kit/main.mjs kernels --scale $scale --group elementwise,norm,attention,adamw,ema,loss $save
  # what Dawn's index clamps on workgroup memory cost (a UMin per access, in the matmul's inner loop too)
  part kernels-matmul-unchecked 80 $kit/main.mjs kernels --scale $scale --group matmul --only 4096 --no-tfjs --dawn-toggles $unchecked
  # tfjs grows its batch until one runs out of memory: its steps take seconds each
  part step-fp32 160 $kit/cli.mjs bench step "${preset[@]}" "${peer[@]}" --profile $save
  part step-f16 50 $kit/cli.mjs bench step "${preset[@]}" "${steps[@]}" --precision f16 --profile $save
  part step-f16-unchecked 50 $kit/cli.mjs --dawn-toggles $unchecked bench step "${preset[@]}" "${steps[@]}" --precision f16
  part embed 60 $kit/cli.mjs bench embed "${preset[@]}" "${iters[@]}" --peer tfjs --profile $save
  part embed-f16 45 $kit/cli.mjs bench embed "${preset[@]}" "${iters[@]}" --precision f16 --peer tfjs --profile $save
}

# The parts of `sweep`: the matmul tests, then matmul kernels beyond the named configs, each checked
# on the device before it is timed (bench/sweep.ts), on 4096³ and the fastest few on the layer shapes.
sweep_parts() {
  local save=--save sweep=(--layers 4) sweep16=(--layers 3)
  [ "$quick" = --quick ] && { save=; sweep=(--shape 128x128x128 --limit 8 --layers 0); sweep16=(--shape 128x128x128 --limit 8 --layers 0); }
  part info 30 $kit/cli.mjs info
  ECG_BUILD_DIR=$kit part "tests kernels/matmul" 60 $kit/test.mjs --node-only --grep kernels/matmul
  part sweep-f32 220 $kit/main.mjs sweep --precision f32 --budget-s 140 --target-ms 50 "${sweep[@]}" $save
  part sweep-f16 230 $kit/main.mjs sweep --precision f16 --budget-s 160 --target-ms 50 "${sweep16[@]}" $save
}

# The parts of `kernels`: what the kernel goals need (tests, benches with tfjs) and shorter sweeps, for a
# lease that has room for one call only (SWEEP_S, SWEEP16_S: the sweeps' time budgets, s).
kernel_parts() {
  # the f32 sweep ran whole on an H200 (stop 17): 60 s reach its largest tiles; the f16 one never has
  local scale=full save=--save sweep=(--budget-s ${SWEEP_S:-60} --layers 3) sweep16=(--budget-s ${SWEEP16_S:-110} --layers 2)
  [ "$quick" = --quick ] && { scale=ci; save=; sweep=(--shape 128x128x128 --limit 8 --layers 0); sweep16=(--shape 128x128x128 --limit 8 --layers 0); }
  part info 30 $kit/cli.mjs info
  ECG_BUILD_DIR=$kit part "tests kernels/" 170 $kit/test.mjs --node-only --grep kernels/
  part kernels-matmul 100 $kit/main.mjs kernels --scale $scale --group matmul $save
  part kernels-rest 110 $kit/main.mjs kernels --scale $scale --group elementwise,norm,attention,adamw,ema,loss $save
  # what Dawn's clamps cost the 4096³ products, f32 and f16 (the f16 panels' scalar stores to workgroup
  # memory may each carry one), once the matmul tests pass without them
  ECG_BUILD_DIR=$kit ECG_DAWN_TOGGLES=$unchecked part "tests kernels/matmul unchecked" 60 $kit/test.mjs --node-only --grep kernels/matmul
  part kernels-matmul-unchecked 60 $kit/main.mjs kernels --scale $scale --group matmul --only 4096 --no-tfjs --dawn-toggles $unchecked
  stats_part # statistics into log.txt only: $OUT brings back 8 files at most (with pipeline-ir.txt.gz, 8 here)
  part sweep-f32 150 $kit/main.mjs sweep --precision f32 --target-ms 50 "${sweep[@]}" $save
  part sweep-f16 180 $kit/main.mjs sweep --precision f16 --target-ms 50 "${sweep16[@]}" $save
}

# The parts of `goals`: issue 3's two goals still missed (fp32 4096³ ≥ 40 TFLOP/s, LayerNorm fwd+bwd ≥ 70 %
# of copy) and what bears on them, for a lease that wants two short calls (measure, change, measure):
# the kernel tests, the 4096³ products (fp32 and f16) with tfjs, the copy, cast and row-kernel rows (the
# LayerNorm variants among them, and AdamW's), the encoder's attention at 1, 2 and 4 lanes per query
# (without tfjs: its goal is met), the pipelines' registers, a short f32 sweep (SWEEP_S, s), and the
# base preset's f16 step (also recomputing its activations) and encoder (ours only, with their kernel
# profiles).
goal_parts() {
  # the dry run has no 4096³ or encoder case: its matmul and attention rows all run instead
  local scale=full save=--save sweep=(--budget-s ${SWEEP_S:-40} --layers 0) only=(--only '4096|stream-K') att=(--only encoder) model=(--preset base --batch 64)
  [ "$quick" = --quick ] && { scale=ci; save=; sweep=(--shape 128x128x128 --limit 8 --layers 0); only=(); att=(); model=(--preset tiny --batch 4); }
  part info 30 $kit/cli.mjs info
  # 110 s ran out in the matmul tests on an H200 (2026-11-28, 99 passed by then)
  ECG_BUILD_DIR=$kit part "tests kernels/" 170 $kit/test.mjs --node-only --grep kernels/
  # stream-K's tests alone (also in the kernel tests above), for a call that leaves those out
  ECG_BUILD_DIR=$kit part "tests stream-K" 40 $kit/test.mjs --node-only --grep stream-K
  # with stream-K on 132 workgroups (the tuned config; xlarge16, xtall16 and xlarge16-16x8, each beside
  # its unsplit row; proj's and fc2's forward): if it wins 4096³, where its last wave of tiles idles the card
  part kernels-4096 90 $kit/main.mjs kernels --scale $scale --group matmul "${only[@]}" $save
  # every matmul row with matmul's own stream-K (setMatmulStreamK('auto'): 132 on an H200), the goal
  # rows among them: the 4096³ product and each layer shape as the default path would run them so
  part kernels-stream-K-auto 100 $kit/main.mjs kernels --scale $scale --group matmul --stream-k auto $save
  # The model's f16 forward products, each with its epilogue fused (the default) and as a pass of its
  # own (epilogue 'pass'), beside the plain products of those shapes: the forward's products ran at
  # half the plain ones' rate in stop 32's step. Also qkv's f16 C against f32 and the 'cast f32→f16'
  # row of kernels-rows (if f32 and a cast win, the model should take them).
  [ "$quick" = --quick ] || part kernels-f16-fwd 60 $kit/main.mjs kernels --scale full --group matmul --only 'f16 qkv fwd|f16 fc1 fwd|f16 proj fwd|f16 fc2 fwd' --no-tfjs
  # the bandwidth goal reads the LayerNorm, softmax and AdamW rows against the copy's
  part kernels-rows 70 $kit/main.mjs kernels --scale $scale --group elementwise,norm,adamw $save
  part kernels-attention 40 $kit/main.mjs kernels --scale $scale --group attention "${att[@]}" --no-tfjs $save
  stats_part
  part sweep-f32 70 $kit/main.mjs sweep --precision f32 --target-ms 50 "${sweep[@]}" $save
  # what waits for a GPU beyond the kernels (the f16 casts, the residual adds in the epilogue, the peak
  # memory since the teacher's forward is freed before the student's):
  # ours alone, logged, not saved ($OUT brings back 8 files at most)
  part step-f16 50 $kit/cli.mjs bench step "${model[@]}" --steps 10 --warmup 2 --precision f16 --profile
  # the same step recomputing its block activations (pretrain --recompute): its time and peak against the above
  part step-f16-recompute 40 $kit/cli.mjs bench step "${model[@]}" --steps 10 --warmup 2 --precision f16 --recompute
  # the step as pretraining runs it, with drop-path 0.1 (the residual adds in one pass with it since
  # stop 31): its time against step-f16's
  part step-f16-droppath 35 $kit/cli.mjs bench step "${model[@]}" --steps 10 --warmup 2 --precision f16 --drop-path 0.1
  # the step and the encoder with every subgroup-matrix epilogue as a pass of its own: against step-f16's
  # and embed-f16's (if they win, setSubgroupEpilogue's default should be 'pass' where the kernels run)
  part step-f16-pass 50 $kit/cli.mjs bench step "${model[@]}" --steps 10 --warmup 2 --precision f16 --sg-epilogue pass --profile
  part embed-f16 40 $kit/cli.mjs bench embed "${model[@]}" --iters 20 --warmup 2 --precision f16 --profile
  part embed-f16-pass 40 $kit/cli.mjs bench embed "${model[@]}" --iters 20 --warmup 2 --precision f16 --sg-epilogue pass --profile
  # the fp32 encoder without and with matmul's own stream-K (its forward products with N = 768 leave
  # 45 % of an H200 idle in their last wave): if 'auto' should be the default
  part stream-K-embed-fp32-off 40 $kit/cli.mjs bench embed "${model[@]}" --iters 20 --warmup 2 --profile
  part stream-K-embed-fp32-auto 40 $kit/cli.mjs bench embed "${model[@]}" --iters 20 --warmup 2 --stream-k auto --profile
}

# The parts of `f16`: the f16-input matmul alone, for a lease with a few minutes left: its tests, its
# bench rows with Dawn's checks and without, and a short f16 sweep (SWEEP16_S, s).
f16_parts() {
  local scale=full save=--save sweep16=(--budget-s ${SWEEP16_S:-40} --layers 2)
  [ "$quick" = --quick ] && { scale=ci; save=; sweep16=(--shape 128x128x128 --limit 8 --layers 0); }
  ECG_BUILD_DIR=$kit part "tests kernels/matmul" 60 $kit/test.mjs --node-only --grep kernels/matmul
  part kernels-f16 40 $kit/main.mjs kernels --scale $scale --group matmul --only f16 --no-tfjs $save
  part kernels-f16-unchecked 40 $kit/main.mjs kernels --scale $scale --group matmul --only f16 --no-tfjs --dawn-toggles $unchecked
  part sweep-f16 150 $kit/main.mjs sweep --precision f16 --target-ms 50 "${sweep16[@]}" $save
}

session() { # session BODY [--quick]: runs the parts of BODY with the logs and summary under $OUT
  out=${OUT:?set OUT to a folder for the results} # global: part() copies results there
  local body=$1 quick=${2:-}
  [ -f $kit/test-node.mjs ] || { echo "gpu.sh: $kit is not packed; run 'bash bench/gpu.sh pack' first" >&2; exit 2; }
  mkdir -p "$out" bench/results
  touch "$out/.start"
  # the card's memory in use, clocks and power twice a second, to line up with the parts' start times
  # in log.txt (the bandwidth and attention rows moved up to 2x between H100 machines, the copy did not)
  local smi=
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=timestamp,memory.used,memory.total,clocks.sm,clocks.mem,power.draw,temperature.gpu,utilization.gpu --format=csv -lms 500 > "$out/nvidia-smi.csv" 2>&1 &
    smi=$!
  fi
  {
    echo "gpu.sh $body $quick on $(hostname), $(date -u +%FT%TZ), commit $(cat $kit/COMMIT | tr '\n' ' ')"
    $body
  } | tee "$out/log.txt"
  [ -n "$smi" ] && kill "$smi"
  grep -E '^(=== .*exit|met|missed|not run|incomplete|ratio|node: |ours |tfjs |PyTorch |adapter|features|subgroups|GPU time|best: |(variant )?layerNorm |cast f32|  [a-z][a-zA-Z0-9_.-]* +[0-9.]+ ms)|GPU goals|passed, |FAILED' "$out/log.txt" > "$out/summary.txt"
  # the sweeps' layer tables whole
  awk '/^GFLOP\/s per layer shape/ { on = 1 } on && /^$/ { on = 0 } on' "$out/log.txt" >> "$out/summary.txt"
  rm -f "$out/.start"
  # remote.sh unpacks Dawn beside its .xz; after a dry run here that copy would take the kit over the
  # device tool's 64 MiB carry limit
  rm -f $kit/node_modules/webgpu/dist/linux-x64/dawn.node
  cat "$out/summary.txt"
}

case "${1:-}" in
  pack) pack ;;
  run) shift; session all_parts "$@" ;;
  sweep) shift; session sweep_parts "$@" ;;
  kernels) shift; session kernel_parts "$@" ;;
  f16) shift; session f16_parts "$@" ;;
  goals) shift; session goal_parts "$@" ;;
  pipeline-stats) shift; session "stats_part --save" ;;
  *) echo "usage: bash bench/gpu.sh pack | run [--quick] | sweep [--quick] | kernels [--quick] | goals [--quick] | f16 [--quick] | pipeline-stats" >&2; exit 2 ;;
esac
