#!/bin/bash
# Stage 1 with a conv stem (the hand check's recipe): the shipped transformer under a new ConvStem, v2 facts with hand weighted up.
set -euo pipefail
cd /work/main
export OMP_WAIT_POLICY=PASSIVE
t1=$(date +%s)
nice -n 19 .venv/bin/proassist train vision pretrain --preset v2 --patch-stem conv --data data/train --val data/val/val_000[0-5]* --out runs/v4/tower_conv --cache-dir runs/v2/cache --init-tower proassist_ros/model/weights/embedded --steps 400 --lr 5e-4 --fact-weights completed=3,hand=10 --ckpt-every 50 --quiet
t2=$(date +%s); echo "TIME stage1_conv $((t2 - t1)) s"
nice -n 10 .venv/bin/proassist train probe runs/v4/tower_conv --out runs/v4/probe_conv --threads 2 --quiet
echo "TIME probe $(( $(date +%s) - t2 )) s"
