#!/usr/bin/env bash
# Builds the small images the node-agent tests run, from Debian's
# busybox-static, and stores them as a docker-registry storage directory.
# A test then serves that directory with its own registry on 127.0.0.1.
#
#   scripts/images.sh OUT   → OUT/registry (registry storage), OUT/stamp
#
# Images: busybox:1 (busybox applets, CMD sh) and pause:1 (the pod sandbox:
# sleeps forever). Idempotent: does nothing when OUT/stamp matches this
# script and the busybox binary; safe to run from parallel tests (flock).
set -euo pipefail
out=${1:?usage: images.sh OUT}
mkdir -p "$out"
exec 9>"$out/lock"
flock 9
want="$(sha256sum "$0" /bin/busybox | sha256sum | cut -c1-16)"
if [ "$(cat "$out/stamp" 2>/dev/null)" = "$want" ]; then exit 0; fi
for tool in umoci skopeo docker-registry busybox; do
  command -v $tool >/dev/null || { echo "images.sh needs $tool (scripts/test.sh installs it)" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'kill $reg 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
umoci init --layout oci
umoci new --image oci:base
umoci unpack --image oci:base bundle
mkdir -p bundle/rootfs/bin bundle/rootfs/tmp bundle/rootfs/etc bundle/rootfs/var/www
cp /bin/busybox bundle/rootfs/bin/busybox
for applet in $(busybox --list); do
  [ "$applet" = busybox ] || ln -sf busybox "bundle/rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' >bundle/rootfs/etc/passwd
echo 'nobody:x:65534:65534:nobody:/:/bin/sh' >>bundle/rootfs/etc/passwd
printf 'root:x:0:\nnobody:x:65534:\n' >bundle/rootfs/etc/group
echo 'hello from rkube' >bundle/rootfs/var/www/index.html
umoci repack --image oci:busybox bundle
umoci config --image oci:busybox --config.cmd sh --config.env PATH=/bin
umoci config --image oci:busybox --tag pause --config.cmd sleep --config.cmd infinity --config.env PATH=/bin

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
rm -rf "$out/registry"
cat >registry.yml <<EOF
version: 0.1
storage:
  filesystem:
    rootdirectory: $out/registry
http:
  addr: 127.0.0.1:$port
EOF
docker-registry serve registry.yml >registry.log 2>&1 &
reg=$!
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break
  sleep 0.1
done
skopeo copy --quiet --dest-tls-verify=false oci:oci:busybox "docker://127.0.0.1:$port/busybox:1"
skopeo copy --quiet --dest-tls-verify=false oci:oci:pause "docker://127.0.0.1:$port/pause:1"
kill $reg
echo "$want" >"$out/stamp"
