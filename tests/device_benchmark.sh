#!/bin/bash
# The GPU measurements of issue 18 in one metered call (see tests/benchmark_circuits.py).
#
# Prepare here (internet to the package registry only), once:
#   .venv/bin/pip download --no-deps -d .whl transformer-lens==4.3.0 beartype==0.23.1 fancy-einsum==0.0.3 \
#       typeguard==4.6.1 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 jaxtyping==0.3.11 einops==0.8.2
#   git show <commit before a change>:shared/engine/eap.py > .gpu/eap_before.py   (optional: timed beside)
# (TransformerLens's attribution_patch, --peer N, is compared on the CPU: per prompt and position in Python,
# it would take minutes of device time at GPT-2 small.)
# then run on the device (its python3 has torch and transformers; `.whl` and `.gpu` are ignored by git,
# so carry them):
#   run(command="bash tests/device_benchmark.sh", carry=[".whl", ".gpu"], timeout_s=540)
# The device tool sends the whole checkout and refuses one over 64 MiB; the shipped checkpoints are
# larger, so move shared/checkpoints aside for the call (the benchmark uses random weights only).
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers, transformer_lens; print('torch', torch.__version__, 'transformers', transformers.__version__, 'TL', transformer_lens.__version__ if hasattr(transformer_lens, '__version__') else '4.3.0')"
CMP=""; [ -f .gpu/eap_before.py ] && CMP="--compare-with .gpu/eap_before.py"
B="python3 tests/benchmark_circuits.py --device cuda --tokens 24 --no-knockout"
{
$B --arch gpt2-xl --prompts 32 --profile --tf32 $CMP
$B --arch gpt2-small --prompts 64 $CMP
$B --arch gpt2-small --prompts 256 $CMP
$B --arch gpt2-medium --prompts 64 $CMP
# the 8B shape, made once: bf16, 128 tokens; 8 prompts at once, then 32 prompts in chunks of 8 and of 16
python3 tests/benchmark_circuits.py --device cuda --arch llama3-8b --dtype bfloat16 --tokens 128 --no-knockout \
    --sweep 8,32:8,32:16 $CMP
} 2>&1 | tee "$OUT/device_benchmark.log"
