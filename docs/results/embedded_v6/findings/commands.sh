#!/bin/bash
# the paper's findings (b) knowledge and (c) IPS vs drop-middle, rerun on the shipped v6
cd /work/main && source .venv/bin/activate
export OMP_WAIT_POLICY=PASSIVE
E="python -m torch.distributed.run --standalone --nproc_per_node 2 -m proassist_ros.cli eval"
L="data/long/test_0000_make_cereal data/long/test_0001_make_salad data/long/test_0002_make_sandwich data/long/test_0003_take_medicine"
T=$(ls -d data/test/test_00[01][0-9]_*)
[ -f runs/v6_findings/long_dm/metrics.json ] || $E $L --model embedded --context-strategy drop_middle --no-report --out runs/v6_findings/long_dm
[ -f runs/v6_findings/know_with/metrics.json ] || $E $T --model embedded --rule-k 15 --no-report --out runs/v6_findings/know_with
[ -f runs/v6_findings/know_without/metrics.json ] || $E $T --model embedded --rule-k 15 --no-knowledge --no-report --out runs/v6_findings/know_without
echo done
