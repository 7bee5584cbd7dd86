#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for the Slurm tests and CI (run as root):
#
#   bash scripts/slurm/local-cluster.sh install   Debian's slurm-wlm and munge (only when missing)
#   bash scripts/slurm/local-cluster.sh start     install, then munged, slurmctld and slurmd; waits for the node
#   bash scripts/slurm/local-cluster.sh stop      stops the daemons this script started
#   bash scripts/slurm/local-cluster.sh status    sinfo
#   bash scripts/slurm/local-cluster.sh conf      prints the slurm.conf path (export it as SLURM_CONF)
#
# The configuration and all state live in one folder ($PEFT_LAB_SLURM_DIR, default
# /var/tmp/peft-lab-slurm) so a machine's own /etc/slurm is never touched: clients find the cluster
# through SLURM_CONF=<that folder>/slurm.conf. The node is `hostname` with the machine's memory and
# at most PEFT_LAB_SLURM_CPUS CPUs (default: all, capped at 2: the tests are small and the machine
# is shared). One partition, `debug`; no accounting (sacct has nothing), as on many small clusters.
set -euo pipefail

DIR="${PEFT_LAB_SLURM_DIR:-/var/tmp/peft-lab-slurm}"
CONF="$DIR/slurm.conf"
DEB_PACKAGES=(slurm-wlm munge)
PARTITION=debug

log() { printf '[slurm cluster] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

need_root() { [[ $(id -u) -eq 0 ]] || die "$1 needs root (the Slurm daemons run as root and munged as user munge)"; }

install() {
  local missing=()
  for pkg in "${DEB_PACKAGES[@]}"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  ((${#missing[@]})) || return 0
  need_root "apt-get install ${missing[*]}"
  command -v apt-get >/dev/null || die "no apt-get: install ${missing[*]} yourself"
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # another apt-get (a parallel install) holds the lock for a while: wait for it
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi
  if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating /etc/munge/munge.key"
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
  fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  runuser -u munge -- /usr/sbin/munged
  touch "$DIR/munged.started-here"
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "munged did not start (see /var/log/munge/munged.log)"
}

write_conf() {
  local host cpus mem
  host="$(hostname)"
  cpus="$(nproc)"
  cpus=$(( cpus < ${PEFT_LAB_SLURM_CPUS:-2} ? cpus : ${PEFT_LAB_SLURM_CPUS:-2} ))
  # MiB, a little under the machine's so slurmd never reports less than configured
  mem=$(( $(awk '/^MemTotal:/ { print $2 }' /proc/meminfo) / 1024 * 9 / 10 ))
  mkdir -p "$DIR/state" "$DIR/spool"
  cat >"$CONF.tmp" <<CONF
# written by scripts/slurm/local-cluster.sh
ClusterName=peftlab
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=600
KillWait=30
MaxArraySize=1001
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  mv "$CONF.tmp" "$CONF"
}

running() { [[ -s "$DIR/$1.pid" ]] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null; }

start() {
  need_root "starting Slurm"
  install
  mkdir -p "$DIR"
  start_munge
  export SLURM_CONF="$CONF"
  if running slurmctld && running slurmd; then log "already running ($CONF)"; return 0; fi
  stop_daemons
  rm -rf "$DIR/state" "$DIR/spool"
  write_conf
  /usr/sbin/slurmctld -f "$CONF"
  /usr/sbin/slurmd -f "$CONF"
  local host state
  host="$(hostname)"
  for _ in $(seq 150); do
    state="$(sinfo -h -n "$host" -o %T 2>/dev/null || true)"
    case "$state" in
      idle*|mixed*|allocated*) log "node $host is $state ($CONF)"; return 0 ;;
      down*|drain*) scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 0.2
  done
  die "node $host did not become idle (state '${state:-none}'); see $DIR/slurmctld.log and $DIR/slurmd.log"
}

stop_daemons() {
  for daemon in slurmd slurmctld; do
    if running "$daemon"; then
      local pid
      pid="$(cat "$DIR/$daemon.pid")"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$DIR/$daemon.pid"
  done
}

stop() {
  # jobs of this cluster only (its own SLURM_CONF): their processes would outlive slurmd
  if running slurmctld; then
    SLURM_CONF="$CONF" scancel -u "$(id -un)" 2>/dev/null || true
    sleep 1
  fi
  stop_daemons
  if [[ -e "$DIR/munged.started-here" ]]; then
    [[ -s /run/munge/munged.pid ]] && kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true
    rm -f "$DIR/munged.started-here"
  fi
  log "stopped"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) SLURM_CONF="$CONF" sinfo ;;
  conf) echo "$CONF" ;;
  *) echo "usage: $0 install|start|stop|status|conf" >&2; exit 2 ;;
esac
