#!/usr/bin/env bash
# Builds the release integration-test binary and `mlxn` and copies them,
# stripped, into gpu-bundle/ (git-ignored) with a runner script, so a GPU
# machine without a Rust toolchain can run them (x86-64 Linux with a CUDA
# driver and NVRTC). Usage: scripts/gpu-bundle.sh; then on the GPU machine:
# gpu-bundle/run-gpu-tests.sh and gpu-bundle/mlxn bench.
set -euo pipefail
cd "$(dirname "$0")/.."
out=gpu-bundle
cargo build --release --bin mlxn
test_bin=$(cargo test --release --test integration --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "integration" and m.get("executable"):
        print(m["executable"])')
rm -rf "$out" && mkdir -p "$out"
cp target/release/mlxn "$out/mlxn"
cp "$test_bin" "$out/integration"
strip "$out/mlxn" "$out/integration"
cat > "$out/run-gpu-tests.sh" <<'RUN'
#!/usr/bin/env bash
# Runs every test, the CUDA ones included; they fail if no GPU is usable.
cd "$(dirname "$0")"
exec ./integration --include-ignored "$@"
RUN
chmod +x "$out/run-gpu-tests.sh"
du -sh "$out"
