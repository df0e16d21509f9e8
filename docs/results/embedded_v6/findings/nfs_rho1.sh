#!/bin/bash
# NFS ρ = 1 ablation of v6: v6's stage 2 exactly (same data, v5 tower, cached features, seed, 750 steps),
# ρ = 1 instead of 0.1; then v6's θ sweep on val 6-17, widened to 0.1 ... 0.9 as on v3 (ρ = 1 is reluctant).
# Run on an otherwise idle machine, so its stage-2 wall time is also the pipeline's idle stage-2 time.
set -uo pipefail
cd /work/main
export OMP_WAIT_POLICY=PASSIVE
V=runs/v6
OUT=runs/v6_nfs1
t0=$(date +%s)
.venv/bin/python -m torch.distributed.run --standalone --nproc_per_node=2 -m proassist_ros.train.cli \
  --data $V/data/train $V/data/train_long --val $(ls -d $V/data/val/val_000[0-5]_*) --out $OUT/stage2 \
  --tower $V/tower --features $V/stage2/features --preset default --steps 750 --nfs-rho 1 --quiet \
  $( [ -d $OUT/stage2 ] && ls $OUT/stage2 | grep -q checkpoint- && echo --resume )
echo "TIME stage2 $(( $(date +%s) - t0 )) s"
t0=$(date +%s)
.venv/bin/python -m torch.distributed.run --standalone --nproc_per_node=2 -m proassist_ros.eval.cli \
  $(ls -d $V/data/val/val_00{06..17}_*) --model $OUT/stage2/model --sweep 0.1:0.9:0.2 --device cpu --out $OUT/eval_val
echo "TIME theta $(( $(date +%s) - t0 )) s"
