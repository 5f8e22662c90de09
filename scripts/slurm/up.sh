#!/usr/bin/env bash
# Bring up a one-node SLURM cluster on this machine (no systemd needed), to run the pipeline's
# SLURM profile end to end: tests/test_slurm.py and anyone who wants to try the cluster path locally.
#
#   sudo scripts/slurm/up.sh RUN_DIR     # installs packages if missing, starts munged, slurmctld, slurmd
#   sudo scripts/slurm/down.sh RUN_DIR   # stops every daemon this script started
#
# State, logs, pid files and the real slurm.conf live under RUN_DIR. /etc/slurm/slurm.conf becomes a
# symlink to it: the SLURM clients find their config only there once a job runs, because the slurm
# executor's job step strips every SLURM_* variable (SLURM_CONF too) before it calls srun.
# Other changes outside RUN_DIR: the Debian packages, the munge key (if missing) and /run/munge.
# No accounting daemon (slurmdbd) runs, so `sacct` does not work: query job status with squeue
# (MinJobAge keeps finished jobs visible to squeue for 10 minutes).
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge)
PARTITION=debug
WAIT_SECONDS=60

die() {
    echo "up.sh: error: $*" >&2
    exit 1
}

[[ $# -eq 1 ]] || die "usage: $0 RUN_DIR"
[[ $(id -u) -eq 0 ]] || die "must run as root (it installs packages and starts munged as the munge user)"

mkdir -p "$1"
RUN_DIR=$(cd "$1" && pwd)
CONF="$RUN_DIR/slurm.conf"
ETC_CONF=/etc/slurm/slurm.conf
MARKER="# Written by scripts/slurm/up.sh"

# Never replace a real cluster's config: only a symlink that up.sh made (or a dangling one).
if [[ -e $ETC_CONF ]] && { [[ ! -L $ETC_CONF ]] || [[ $(head -c ${#MARKER} "$ETC_CONF") != "$MARKER" ]]; }; then
    die "$ETC_CONF exists and was not written by up.sh; not touching a real cluster's configuration"
fi

# --- packages ---------------------------------------------------------------------------------
missing=()
for pkg in "${PACKAGES[@]}"; do
    [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) == "install ok installed" ]] || missing+=("$pkg")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    command -v apt-get >/dev/null || die "packages ${missing[*]} are missing and apt-get is not available"
    echo "up.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt_install() { apt-get install -y -q --no-install-recommends "${missing[@]}"; }
    # Package lists may be absent (fresh container) or stale (mirror moved on): update and retry once.
    if ! apt_install; then
        apt-get update -q
        apt_install || die "apt-get install ${missing[*]} failed"
    fi
fi

# Two clusters on one machine would share ports 6817/6818, and sinfo would report the other one.
if [[ -e $ETC_CONF ]] && timeout 10 scontrol ping >/dev/null 2>&1; then
    die "a slurmctld from an earlier up.sh still answers ($(readlink "$ETC_CONF")); run down.sh on its RUN_DIR"
fi

# --- munge: SLURM authenticates every message with it ------------------------------------------
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /etc/munge /var/log/munge
install -d -o munge -g munge -m 0711 /var/lib/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
fi
if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    echo "up.sh: munged already running; using it (down.sh will leave it alone)"
else
    runuser -u munge -- /usr/sbin/munged
    cp /run/munge/munged.pid "$RUN_DIR/munged.pid"
    for _ in $(seq 50); do
        munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
    munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 || die "munged does not answer; see /var/log/munge/munged.log"
fi

# --- slurm.conf ---------------------------------------------------------------------------------
# `slurmd -C` prints this node's NodeName (the hostname), CPUs, sockets, cores and RealMemory.
node_line=$(slurmd -C | sed -n 1p)
[[ $node_line == NodeName=* ]] || die "unexpected output of 'slurmd -C': $node_line"
mkdir -p "$RUN_DIR/state/slurmctld" "$RUN_DIR/state/slurmd" "$RUN_DIR/log"
cat >"$CONF" <<EOF
$MARKER: a one-node cluster for testing the pipeline's SLURM profile.
ClusterName=rnngrad
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=600
StateSaveLocation=$RUN_DIR/state/slurmctld
SlurmdSpoolDir=$RUN_DIR/state/slurmd
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$RUN_DIR/log/slurmctld.log
SlurmdLogFile=$RUN_DIR/log/slurmd.log
$node_line NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
mkdir -p /etc/slurm
ln -sfn "$CONF" "$ETC_CONF"

# --- daemons (both fork into the background and write their pid files) ------------------------
slurmctld -c
slurmd -c

for _ in $(seq "$((WAIT_SECONDS * 2))"); do
    state=$(sinfo -h -N -o %t 2>/dev/null | head -n 1 || true)
    if [[ $state == idle ]]; then
        echo "up.sh: cluster up ($node_line, partition $PARTITION); sbatch and squeue now reach it"
        exit 0
    fi
    sleep 0.5
done
echo "up.sh: error: node not idle after ${WAIT_SECONDS}s (state '${state:-none}'); last log lines:" >&2
tail -n 20 "$RUN_DIR/log/slurmctld.log" "$RUN_DIR/log/slurmd.log" >&2 || true
exit 1
