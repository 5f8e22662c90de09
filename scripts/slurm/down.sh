#!/usr/bin/env bash
# Tear down the one-node cluster that scripts/slurm/up.sh RUN_DIR brought up: cancel its jobs, then
# stop slurmd, slurmctld and munged, each only if up.sh started it (it has a pid file in RUN_DIR and
# the process still has the daemon's name), and remove the /etc/slurm/slurm.conf symlink into RUN_DIR.
# Safe to call twice, or after a failed up.sh.
#
#   scripts/slurm/down.sh RUN_DIR
set -uo pipefail

[[ $# -eq 1 ]] || {
    echo "usage: $0 RUN_DIR" >&2
    exit 2
}
RUN_DIR=$(cd "$1" 2>/dev/null && pwd) || exit 0
export SLURM_CONF="$RUN_DIR/slurm.conf"

# daemon_pid NAME: the pid in RUN_DIR/NAME.pid if that process is still the daemon NAME (pids get reused).
daemon_pid() {
    local pidfile="$RUN_DIR/$1.pid" pid
    [[ -f $pidfile ]] || return 1
    pid=$(cat "$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$1"* ]] && echo "$pid"
}

# Jobs still running (a killed workflow leaves them) would outlive slurmd under proctrack/linuxproc.
if [[ -f $SLURM_CONF && -f "$RUN_DIR/slurmctld.pid" ]]; then
    jobs=$(timeout 10 squeue -h -o %i 2>/dev/null)
    if [[ -n $jobs ]]; then
        # shellcheck disable=SC2086  # one argument per job id
        timeout 10 scancel $jobs 2>/dev/null
        sleep 1
    fi
fi

# TERM all three at once (each takes about 2 s to exit), then KILL whatever is left after 10 s.
declare -A stopping=()
for name in slurmd slurmctld munged; do
    if pid=$(daemon_pid "$name"); then
        kill -TERM "$pid" 2>/dev/null
        stopping[$name]=$pid
    fi
    rm -f "$RUN_DIR/$name.pid"
done
for name in "${!stopping[@]}"; do
    pid=${stopping[$name]}
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "down.sh: $name ($pid) ignored SIGTERM for 10 s; sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null
    fi
done
if [[ $(readlink /etc/slurm/slurm.conf) == "$RUN_DIR/slurm.conf" ]]; then
    rm -f /etc/slurm/slurm.conf
fi
exit 0
