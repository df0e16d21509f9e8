#!/bin/bash
# Conv stem, facts only (no caption loss), uniform frames (near-frac 0), hand weighted up: the check's conditions in stage 1.
set -euo pipefail
cd /work/main
export OMP_WAIT_POLICY=PASSIVE
t1=$(date +%s)
.venv/bin/proassist train vision pretrain --preset v2 --patch-stem conv --data data/train --val data/val/val_000[0-5]* --out runs/v4/tower_conv_facts --cache-dir runs/v2/cache --init-tower proassist_ros/model/weights/embedded --steps 300 --lr 5e-4 --fact-weights siglip=0,completed=3,hand=10 --near-frac 0 --ckpt-every 100 --no-eval --quiet
t2=$(date +%s); echo "TIME stage1 $((t2 - t1)) s"
.venv/bin/proassist train probe runs/v4/tower_conv_facts --out runs/v4/probe_conv_facts --threads 2 --quiet
echo "TIME probe $(( $(date +%s) - t2 )) s"
