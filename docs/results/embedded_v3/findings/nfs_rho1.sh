#!/bin/bash
# NFS ρ = 1 ablation of v3: v3's stage 2 exactly (same data, tower, features, seed, 750 steps), ρ = 1 instead of 0.1;
# then the same θ sweep on val 6-17 as v3's pipeline (wider: 0.1 ... 0.9, ρ = 1 makes the model reluctant).
set -uo pipefail
cd /work/main
export OMP_WAIT_POLICY=PASSIVE
V=runs/embedded_v3
VAL=$(ls -d $V/data/val/val_000[0-5]_*)
t0=$(date +%s)
.venv/bin/python -m torch.distributed.run --standalone --nproc_per_node=2 -m proassist_ros.train.cli \
  --data $V/data/train $V/data/train_long --val $VAL --out runs/v3_nfs1/stage2 --tower $V/tower \
  --features $V/stage2/features --preset default --steps 750 --nfs-rho 1 --quiet $( [ -d runs/v3_nfs1/stage2 ] && ls runs/v3_nfs1/stage2 | grep -q checkpoint- && echo --resume )
echo "TIME stage2 $(( $(date +%s) - t0 )) s"
t0=$(date +%s)
.venv/bin/python -m torch.distributed.run --standalone --nproc_per_node=2 -m proassist_ros.eval.cli \
  $(ls -d $V/data/val/val_00{06..17}_*) --model runs/v3_nfs1/stage2/model --sweep 0.1:0.9:0.2 --device cpu --out runs/v3_nfs1/eval_val
echo "TIME theta $(( $(date +%s) - t0 )) s"
