#!/usr/bin/env bash
# `make arm-emulated`: export a small bundle on this host and run it with ONNX Runtime on emulated aarch64
# (qemu-user), torch-free, as on an ARM board. Follows the project's reference recipe (arm-emulation.md):
#   1. qemu-user-static from Debian (installed when missing; needs root and the Debian registry),
#   2. an aarch64 Python unpacked from Debian's arm64 packages, cached in .cache/arm64/root,
#   3. aarch64 wheels of onnxruntime and the runner's few dependencies, unzipped into .cache/arm64/site,
#   4. a private mount namespace that shows the emulated process an ARM /proc/cpuinfo and CPU list (onnxruntime's
#      CPU detection crashes on the host's x86 view).
# Results are tagged arch=aarch64 and emulated=true and land in $RESULTS (default results/).
# Usage: scripts/arm_emulated.sh [RESULTS_DIR]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${ARM_CACHE:-$ROOT/.cache/arm64}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
RESULTS=$(realpath -m "${1:-$ROOT/results}")
CONFIG=$ROOT/configs/arm-emulated.yaml
ARM_PY=$CACHE/root/usr/bin/python3.11

if ! command -v qemu-aarch64-static >/dev/null; then
  echo "installing qemu-user-static" >&2
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static >/dev/null
fi

if [ ! -x "$ARM_PY" ]; then
  echo "unpacking an aarch64 Python into $CACHE/root" >&2
  apt_arm=(-oAPT::Architecture=arm64 -oAPT::Architectures=arm64 "-oDir::State::Lists=$CACHE/lists")
  mkdir -p "$CACHE/lists/partial" "$CACHE/debs" "$CACHE/root"
  apt-get "${apt_arm[@]}" update -qq >/dev/null
  (cd "$CACHE/debs" && apt-get "${apt_arm[@]}" download -qq python3.11-minimal libpython3.11-minimal \
    libpython3.11-stdlib libc6 zlib1g libexpat1 libffi8 libssl3 libbz2-1.0 liblzma5 libgcc-s1 libstdc++6 \
    libsqlite3-0 libuuid1 libtirpc3 libnsl2 libcrypt1 libreadline8 libncursesw6 libtinfo6 libdb5.3 \
    libgssapi-krb5-2 libkrb5-3 libk5crypto3 libcom-err2 libkrb5support0 libkeyutils1 libgdbm6 >/dev/null)
  for deb in "$CACHE"/debs/*.deb; do dpkg -x "$deb" "$CACHE/root"; done
fi

if [ ! -d "$CACHE/site/onnxruntime" ] || [ ! -d "$CACHE/site/scipy" ] || [ ! -d "$CACHE/site/onnx" ]; then
  echo "fetching aarch64 wheels into $CACHE/site" >&2
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 --implementation cp \
    --platform manylinux_2_28_aarch64 --platform manylinux_2_27_aarch64 --platform manylinux_2_17_aarch64 \
    --platform manylinux2014_aarch64 -d "$CACHE/wheels" \
    onnxruntime onnx numpy scipy tqdm flatbuffers protobuf packaging sympy mpmath coloredlogs humanfriendly psutil PyYAML
  for whl in "$CACHE"/wheels/*.whl; do "$PYTHON" -m zipfile -e "$whl" "$CACHE/site/"; done
fi

echo "exporting the bundle on this host" >&2
"$PYTHON" -m shufflebench.cli export "$CONFIG" --out "$CACHE/bundle" >/dev/null

cpuinfo=$CACHE/fakecpuinfo
: > "$cpuinfo"
for core in 0 1; do
  printf '%s\n' "processor	: $core" "BogoMIPS	: 50.00" \
    "Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp" \
    "CPU implementer	: 0x41" "CPU architecture: 8" "CPU variant	: 0x3" "CPU part	: 0xd0c" "CPU revision	: 1" "" \
    >> "$cpuinfo"
done
printf '%s\n' "Hardware	: Neoverse-N1 (emulated by qemu-user)" >> "$cpuinfo"

echo "running the bundle under qemu-aarch64 (slow: every instruction is emulated)" >&2
export CACHE ROOT RESULTS ARM_PY cpuinfo
unshare -m --propagation private sh -c '
  mount --bind "$cpuinfo" /proc/cpuinfo
  mount -t tmpfs none /sys/devices/system/cpu
  for f in possible present online; do echo 0-1 > /sys/devices/system/cpu/$f; done
  mkdir -p /sys/devices/system/cpu/cpu0 /sys/devices/system/cpu/cpu1
  cd "$ROOT"
  PYTHONPATH="$CACHE/site:$ROOT" SHUFFLEBENCH_EMULATED=1 \
  SHUFFLEBENCH_WORKER_PREFIX="qemu-aarch64-static -L $CACHE/root" \
    exec qemu-aarch64-static -L "$CACHE/root" "$ARM_PY" -m shufflebench.cli run "$CACHE/bundle" --results "$RESULTS"'
