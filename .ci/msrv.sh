#!/usr/bin/env bash
# The minimum supported Rust version is the workspace's `rust-version` (Cargo.toml). This checks
# that it holds: no dependency in Cargo.lock needs a newer compiler, and the workspace builds with
# exactly that version — the toolchain running CI when it is that version, else `cargo +VERSION`
# through rustup (a failure in CI when that toolchain is not installed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
[[ -n $msrv ]] || { echo "Cargo.toml declares no rust-version" >&2; exit 1; }
echo "declared rust-version: $msrv"

# 1. Dependencies: their own declared rust-version must not exceed ours.
cargo metadata --format-version 1 --locked | python3 -c '
import json, sys
msrv = tuple(int(x) for x in sys.argv[1].split("."))
packages = json.load(sys.stdin)["packages"]
def version(v): return tuple(int(x) for x in v.split("."))
newer = [(p["name"], p["version"], p["rust_version"]) for p in packages
         if p.get("rust_version") and version(p["rust_version"]) > msrv + (0,) * (3 - len(msrv))]
highest = max((p["rust_version"] for p in packages if p.get("rust_version") and p["source"]), key=version)
print(f"{len(packages)} packages; the highest rust-version a dependency declares is {highest}")
for name, v, rv in newer:
    print(f"  {name} {v} needs Rust {rv}", file=sys.stderr)
sys.exit(1 if newer else 0)
' "$msrv"

# 2. The workspace builds with that compiler.
active=$(rustc --version | awk '{print $2}')
if [[ $active == "$msrv" || $active == "$msrv".* ]]; then
    echo "the active toolchain is $active: every build of this CI run is the MSRV build"
elif rustup toolchain list 2>/dev/null | grep -q "^$msrv"; then
    cargo "+$msrv" check --workspace --all-targets --locked
else
    msg="rustc $active is not the declared rust-version $msrv, and rustup has no $msrv toolchain to check it with"
    if [[ ${CI:-} == true ]]; then echo "ERROR: $msg" >&2; exit 1; fi
    echo "WARNING: $msg" >&2
fi
