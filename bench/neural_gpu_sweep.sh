#!/usr/bin/env bash
# Encoder sweep for the MANN on one GPU, in one go (docs/neural.md, "The GPU sweep, prepared").
#
#     bash bench/neural_gpu_sweep.sh OUTDIR [PRETRAIN_STEPS | auto]
#
# 1. Pretrain four encoders at once (`mindstore train --steps 0`: the prototypical phase only).
# 2. Put the sparse LSTM MANN on each (`--encoder-from`, 500 steps, as for the packaged one).
# 3. Score every MANN and the packaged checkpoint on 1000 validation episodes; the best on
#    validation gets the comparison models (dense, GRU, RNN, LSTM baseline, random init).
# 4. Score everything on the held-out alphabets: 5-way (1000 episodes) and 20-way (200, 256 slots).
#
# Checkpoints, logs and scores go to OUTDIR as tar parts of at most 15 MiB (the device tool
# returns at most 8 files of 16 MiB): `cat OUTDIR/NAME.tar.part-* | tar x` unpacks them.
# Every choice is made on validation characters; the held-out scores are only reported.
#
# Where the GPU machine lacks packages (sqlalchemy, faiss-cpu, PyStemmer, platformdirs) and the
# data: download their cp312 manylinux wheels into .whl/ (git-ignored) and copy the Omniglot zips
# into a git-excluded .data/omniglot, carry both, then run
#     pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl &&
#     PYTHONPATH=/tmp/site:$PWD MINDSTORE_DATA=$PWD/.data/omniglot bash bench/neural_gpu_sweep.sh $OUT
set -u
OUT=${1:?usage: neural_gpu_sweep.sh OUTDIR [PRETRAIN_STEPS]}
P=${2:-auto}  # auto: as many as fit ~BUDGET (180) seconds, from a timed trial
# smaller values only for a quick rehearsal on a CPU:
S2=${MANN_STEPS:-500} S4=${COMPARE_STEPS:-250} NV=${VAL_EPISODES:-1000}
N5=${EPISODES:-1000} N20=${EPISODES_20:-200} NT=${TRAIN_VAL_EPISODES:-160}
W=${WORK:-/tmp/sweep}
mkdir -p "$OUT" "$W"
T0=$(date +%s)
say() { echo "[$(($(date +%s) - T0)) s] $*" | tee -a "$OUT/sweep.log"; }
mindstore() { python3 -m mindstore.cli "$@"; }  # the `mindstore` console script's entry point
pack() {  # pack NAME 'GLOB'...: the files of $W they match, as tar parts of <= 15 MiB in $OUT
    local name=$1; shift
    (cd "$W" && tar cf - $*) | split -b 15M - "$OUT/$name.tar.part-"
}
COMMON="--image-size 28 --threads 3 --seed 0 --no-progress --eval-episodes $NT"
INIT="--init prototype --score euclidean --shift-average"  # the packaged recipe (docs/neural.md); the random-init ablation sets its own
declare -A V=(
    [a]="--channels 64 --blocks 3 --embed 64"  # the packaged encoder's shape, trained longer
    [b]="--channels 64 --blocks 4 --embed 64"  # Snell et al.'s conv-4 (28 -> 14 -> 7 -> 3 -> 1)
    [c]="--channels 64 --blocks 4 --embed 96"
    [d]="--channels 80 --blocks 4 --embed 64"
)
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))" | tee -a "$OUT/sweep.log"
# load (and cache) the data once: the runs below read the cached tensor
python3 -c "from mindstore.neural.data import load_omniglot; load_omniglot(size=28)" || exit 1

if [ "$P" = auto ]; then  # time 300 steps of one encoder alone; fit phase 1 into ~$BUDGET s
    mindstore train --steps 0 --pretrain-steps 300 --eval-every 300 $COMMON ${V[b]} \
        --out "$W/trial.pt" --log "$W/trial.log" > "$W/trial.out" 2>&1 || exit 1
    P=$(python3 -c "import json,sys; s=json.loads(open(sys.argv[1]).readline())['seconds']
print(max(3000, min(20000, int(${BUDGET:-180} / (2 * max(s, 1) / 300)) // 1000 * 1000)))" "$W/trial.log")
    say "300 trial steps: $(head -n 1 "$W/trial.log"); pretraining steps: $P"
fi
say "phase 1: pretrain ${!V[*]} for $P steps"
pids=()
for v in "${!V[@]}"; do
    mindstore train --steps 0 --pretrain-steps "$P" --eval-every 2000 $COMMON ${V[$v]} \
        --out "$W/enc_$v.pt" --log "$W/enc_$v.log" > "$W/enc_$v.out" 2>&1 &
    pids+=($!)
done
(while sleep 30; do say "$(tail -q -n 1 "$W"/enc_*.log 2>/dev/null | tr '\n' ' ')"; done) &
monitor=$!
wait "${pids[@]}"
kill $monitor
for v in "${!V[@]}"; do say "encoder $v: $(tail -n 1 "$W/enc_$v.out")"; done

say "phase 2: sparse LSTM MANN on each encoder, $S2 steps"
for v in "${!V[@]}"; do
    mindstore train --encoder-from "$W/enc_$v.pt" --steps "$S2" --eval-every $(((S2 + 1) / 2)) $COMMON ${V[$v]} $INIT \
        --out "$W/mann_$v.pt" --log "$W/mann_$v.log" > "$W/mann_$v.out" 2>&1 &
done
wait
for v in "${!V[@]}"; do say "mann $v: $(tail -n 1 "$W/mann_$v.out")"; done
pack phase12 'enc_*.log' 'enc_*.out' 'mann_*.pt' 'mann_*.log' 'mann_*.out'

say "phase 3: validation, $NV episodes"
cp mindstore/neural/checkpoints/mann_sparse.pt "$W/packaged.pt"
for m in packaged "${!V[@]}"; do
    f=$W/mann_$m.pt; [ "$m" = packaged ] && f=$W/packaged.pt
    mindstore evaluate "$f" --split val --episodes "$NV" --json > "$W/val_$m.json" 2>&1 &
done
wait
best=$(python3 - "$W" "${!V[@]}" 2>>"$OUT/sweep.log" <<'EOF'
import json, sys
w, names = sys.argv[1], sys.argv[2:]
def mean(name):
    acc = json.loads(open(f"{w}/val_{name}.json").read().splitlines()[-1])["accuracy"]
    return sum(acc[str(i)] for i in range(2, 11)) / 9
scores = {n: mean(n) for n in ["packaged", *names]}
print(json.dumps(scores), file=sys.stderr)
print(max(names, key=scores.get))
EOF
)
say "best on validation: $best"

say "phase 4: comparison models on encoder $best, $S4 steps"
C="--encoder-from $W/mann_$best.pt --steps $S4 --eval-every $S4 $COMMON ${V[$best]}"
mindstore train --model lstm --lr 1e-3 --lr-min 1e-4 $C --out "$W/lstm.pt" > "$W/lstm.out" 2>&1 &
mindstore train --memory dense $INIT $C --out "$W/mann_dense.pt" > "$W/mann_dense.out" 2>&1 &
mindstore train --controller gru $INIT $C --out "$W/mann_gru.pt" > "$W/mann_gru.out" 2>&1 &
mindstore train --controller rnn $INIT $C --out "$W/mann_rnn.pt" > "$W/mann_rnn.out" 2>&1 &
mindstore train --init random --score euclidean --shift-average --lr 1e-3 --lr-min 1e-4 $C --out "$W/mann_random_init.pt" \
    > "$W/mann_random_init.out" 2>&1 &
wait
for m in lstm mann_dense mann_gru mann_rnn mann_random_init; do say "$m: $(tail -n 1 "$W/$m.out")"; done
pack phase4 lstm.pt lstm.out 'mann_dense.*' 'mann_gru.*' 'mann_rnn.*' 'mann_random_init.*'

say "phase 5: held-out alphabets"
names=(packaged)
for v in "${!V[@]}"; do names+=("mann_$v"); done
for m in "${names[@]}" lstm mann_dense mann_gru mann_rnn mann_random_init; do
    (
        mindstore evaluate "$W/$m.pt" --ways 5 --episodes "$N5" --json > "$W/eval5_$m.json" 2>&1
        mindstore evaluate "$W/$m.pt" --ways 20 --episodes "$N20" --json > "$W/eval20_$m.json" 2>&1
        mindstore evaluate "$W/$m.pt" --ways 20 --episodes "$N20" --slots 256 --json \
            > "$W/eval20s_$m.json" 2>&1
    ) &
done
wait
pack scores 'val_*.json' 'eval5_*.json' 'eval20_*.json' 'eval20s_*.json'
say "done"
