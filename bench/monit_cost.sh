#!/bin/bash
# What watching costs (docs/monitoring.md): the supervisor's CPU per minute and RSS with nobody
# watching, then with `pypm monit` attached in tmux (and the viewer's own). Needs tmux and a
# release build (cargo build --release). Takes about 2 minutes.
set -e
d=$(mktemp -d) && cd "$d"
cat > pypm.toml <<'T'
[apps.api]
command = ["sleep", "100000"]
instances = 4
[apps.worker]
command = ["sleep", "100000"]
T
B="${PYPM_BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/pypm}"
$B up -d >/dev/null
sp=$(cat .pypm/pypm.pid)
ticks() { awk '{print $14+$15}' /proc/$1/stat; }
rss() { awk '/VmRSS/{print $2}' /proc/$1/status; }
sleep 2
a=$(ticks $sp); sleep 60; b=$(ticks $sp)
echo "no viewer: supervisor $((b-a)) ticks/min, rss $(rss $sp) KiB"
tmux -S "$d/t.sock" new-session -d -x 80 -y 24 -s m "$B monit"
sleep 3
mp=$(pgrep -f "$B monit" | head -1)
a=$(ticks $sp); ma=$(ticks $mp); sleep 60; b=$(ticks $sp); mb=$(ticks $mp)
echo "monit attached: supervisor $((b-a)) ticks/min, rss $(rss $sp) KiB; monit itself $((mb-ma)) ticks/min, rss $(rss $mp) KiB (1 tick = 10 ms)"
tmux -S "$d/t.sock" kill-server
$B down >/dev/null
