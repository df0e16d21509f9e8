#!/bin/bash
# v6 (the v5 conv-stem tower + stage 2), shipped into the package: the model card's evaluations
cd /work/main && source .venv/bin/activate
export OMP_WAIT_POLICY=PASSIVE
E="python -m torch.distributed.run --standalone --nproc_per_node 2 -m proassist_ros.cli eval"
L="data/long/test_0000_make_cereal data/long/test_0001_make_salad data/long/test_0002_make_sandwich data/long/test_0003_take_medicine"
set -e
[ -f runs/v6/eval_test/metrics.json ] || $E data/test --model embedded --rule-k 15 --out runs/v6/eval_test
[ -f runs/v6/eval_samples/metrics.json ] || proassist eval samples --model embedded --out runs/v6/eval_samples --no-report
[ -f runs/v6/eval_long_ips/metrics.json ] || $E $L --model embedded --no-report --out runs/v6/eval_long_ips
[ -f runs/v6/eval_test_fp32/metrics.json ] || $E data/test --model embedded --quantize none --rule-k 15 --no-report --out runs/v6/eval_test_fp32
echo done
