#!/usr/bin/env bash
# Create .venv (when missing) and install mcrl into it without ever replacing an installed torch.
# On a machine without CUDA the CPU build of torch is installed (set PIP_EXTRA_INDEX_URL to the
# PyTorch CPU wheel index where no local wheel is available); with CUDA, the default build.
set -euo pipefail
VENV=${VENV:-.venv}
TORCH_CPU_VERSION=${TORCH_CPU_VERSION:-2.13.0}
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PY" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
if "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "[setup] keeping installed torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "[setup] CUDA found: installing torch"
  $PIP install -q "torch>=2.4"
else
  echo "[setup] no CUDA: installing the CPU build torch==$TORCH_CPU_VERSION"
  $PIP install -q "torch==$TORCH_CPU_VERSION"
fi
# Real data for the pretraining examples and tests: Fashion-MNIST from Debian (best effort, never fatal).
FMNIST=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
if [ ! -f "$FMNIST" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "[setup] installing Debian package dataset-fashion-mnist"
  (apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
   (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1)) || \
    echo "[setup] could not install dataset-fashion-mnist; Fashion-MNIST tests will be skipped"
fi
STAMP="$VENV/.mcrl-installed"
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
  echo "[setup] installing mcrl[dev,sweep]"
  $PIP install -q -e ".[dev,sweep]"
  touch "$STAMP"
fi
