#!/usr/bin/env bash
# Two Ray nodes on this machine (a head and a second node joined to it, 1 CPU each), then
# benchmarks/ray_two_nodes.py on them: the ray executor's calls land on both nodes. Stops only its own nodes
# (their processes are found by this run's temp dir and port), so other Ray sessions on the machine are left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${PORT:-6391}
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled}  # a local demo: no token between the nodes
tmp=$(mktemp -d /tmp/lgfn-ray-XXXX)
ours() {  # this run's Ray processes (its temp dir or its port in their command line) and their children
  pids=$(pgrep -f -- "$tmp|:$port( |$)" || true)
  for pid in $pids; do echo "$pid"; pgrep -P "$pid" || true; done
}
stop() {
  pids=$(ours); [ -n "$pids" ] && kill $pids 2>/dev/null; sleep 3
  [ -n "$pids" ] && kill -9 $pids 2>/dev/null; true
}
trap stop EXIT
ray start --head --port="$port" --num-cpus=1 --include-dashboard=false --temp-dir="$tmp" --disable-usage-stats >/dev/null
ray start --address="127.0.0.1:$port" --num-cpus=1 --disable-usage-stats >/dev/null
mkdir "$tmp/notes"
python benchmarks/ray_two_nodes.py --address "127.0.0.1:$port" --folder "$tmp/notes" "$@"
