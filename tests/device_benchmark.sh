#!/bin/bash
# The GPU measurements of issue 18 in one metered call (see tests/benchmark_circuits.py).
#
# Prepare here (internet to the package registry only), once:
#   .venv/bin/pip download --no-deps -d .whl transformer-lens==4.3.0 beartype==0.23.1 fancy-einsum==0.0.3 \
#       typeguard==4.6.1 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 jaxtyping==0.3.11 einops==0.8.2
# then run on the device (its python3 has torch and transformers; `.whl` is ignored by git, so carry it):
#   run(command="bash tests/device_benchmark.sh", carry=[".whl"], timeout_s=540)
# Note: the device tool sends the whole checkout and refuses one over 64 MiB; the shipped checkpoints are
# larger, so run it from a copy without shared/checkpoints (the benchmark uses random weights only).
set -euo pipefail
python3 -m pip install -q --no-deps .whl/*.whl
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
B="python3 tests/benchmark_circuits.py --device cuda --tokens 24"
$B --arch gpt2-small --prompts 64
$B --arch gpt2-small --prompts 256 --no-knockout
$B --arch gpt2-medium --prompts 64 --no-knockout
$B --arch gpt2-xl --prompts 32 --no-knockout
# the 8B shape: bf16, 128 tokens; 8 prompts at once, then 32 prompts in chunks of 8 (memory bound)
python3 tests/benchmark_circuits.py --device cuda --arch llama3-8b --dtype bfloat16 --tokens 128 --prompts 8 --no-knockout
python3 tests/benchmark_circuits.py --device cuda --arch llama3-8b --dtype bfloat16 --tokens 128 --prompts 32 --chunk 8 --no-knockout
