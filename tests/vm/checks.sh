#!/bin/sh
# Stage 2 of the cgroup v2 VM test, run by busybox init on a tmpfs root: mounts
# the API filesystems and a cgroup2-only /sys/fs/cgroup with the controllers
# enabled, runs each check with kiln, and prints one machine-readable line per
# check to the console (ttyS0), then "KILN-VM done":
#   KILN-VM <check> key=value key=value ...
# tests/it/limits.rs (vm_cgroup2_limits_are_enforced) judges the values; this
# script only measures. The bundles come from that test (/bundles/<check>).

K="kiln --root /run/kiln"
CG=/sys/fs/cgroup

say() { echo "KILN-VM $*"; }

# Copies a command's output to the console, when the check went wrong.
show() { sed 's/^/    | /' "$1"; }

# The value of KEY in a "key value" file (memory.events, cpu.stat, ...).
keyed() { awk -v k="$2" '$1 == k { print $2 }' "$1" 2>/dev/null; }

# The number after "KEY": in one line of JSON (kiln events --stats).
json_num() { echo "$2" | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }

status() { $K state "$1" 2>/dev/null | sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p'; }

# 1 when the directory is still there, else 0.
left() { if [ -e "$1" ]; then echo 1; else echo 0; fi; }

# The errno name in a message from busybox.
errname() {
  case "$1" in
    *"not permitted"*) echo EPERM ;;
    *"No such device or address"*) echo ENXIO ;;
    *) echo "other:$(echo "$1" | tr -c 'A-Za-z0-9:\n' _)" ;;
  esac
}

# Waits up to 20 s for the shell condition "$*" to hold.
wait_for() {
  i=0
  while ! eval "$*"; do
    i=$((i + 1))
    [ $i -ge 200 ] && return 1
    sleep 0.1
  done
}

# Runs "$@" alone in the new cgroup $CG/$1, as a service manager starts a
# service: kiln then makes its containers' cgroups beside itself.
incg() {
  d=$CG/$1
  shift
  mkdir -p "$d"
  sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$d" "$@"
}

setup() {
  mount -t proc proc /proc
  mount -t sysfs sysfs /sys
  mkdir -p /dev/pts /dev/shm
  mount -t devpts devpts /dev/pts
  mount -t tmpfs tmpfs /dev/shm
  mount -t tmpfs tmpfs /run
  mount -t tmpfs tmpfs /tmp
  dmesg -n 1 # keep kernel messages (OOM reports) off the result lines
  mount -t cgroup2 -o nsdelegate cgroup2 $CG
  # The leaf dance: cgroup v2 allows controllers in a cgroup's subtree_control
  # only while it holds no processes, so everyone moves into a leaf first.
  mkdir $CG/init
  echo 1 > $CG/init/cgroup.procs
  echo $$ > $CG/init/cgroup.procs
  echo "+memory +pids +cpu +cpuset +io" > $CG/cgroup.subtree_control
  say setup kernel="$(uname -r)" mounts="$(grep -c cgroup /proc/self/mountinfo)" \
    controllers="$(tr ' ' , < $CG/cgroup.subtree_control)"
}

# memory.max: a process touching more is OOM-killed and the container exits 137.
check_oom() {
  incg r-oom $K run --keep --bundle /bundles/oom oom > /tmp/oom.out 2>&1
  code=$?
  d=$CG/r-oom/kiln-oom
  ev=$($K events --stats oom 2>&1)
  say oom exit=$code stats_oom_kill="$(json_num oomKill "$ev")" \
    oom_kill="$(keyed $d/memory.events oom_kill)" memory_max="$(cat $d/memory.max)" \
    leaf="$(left $CG/r-oom/kiln-init)"
  [ $code = 137 ] || show /tmp/oom.out
  $K delete oom
  say oom_cleanup delete_exit=$? cgroup_left="$(left $d)"
}

# pids.max: a fork bomb's forks fail once the cgroup holds pids.max tasks.
check_pids() {
  incg r-pids $K run --keep --bundle /bundles/pids pids > /tmp/pids.out 2>&1
  code=$?
  d=$CG/r-pids/kiln-pids
  ev=$($K events --stats pids 2>&1)
  say pids exit=$code started="$(sed -n 's/^started=//p' /tmp/pids.out | tail -n 1)" \
    fork_failed="$(grep -c "can't fork" /tmp/pids.out)" \
    bomb_exit="$(sed -n 's/^bomb-exit=//p' /tmp/pids.out)" \
    events_max="$(keyed $d/pids.events max)" pids_max="$(cat $d/pids.max)" \
    stats_limit="$(echo "$ev" | sed -n 's/.*"pids":{[^}]*"limit":\([0-9]*\).*/\1/p')"
  [ $code = 0 ] || show /tmp/pids.out
  $K delete pids
  say pids_cleanup delete_exit=$? cgroup_left="$(left $d)"
}

# cpu.max: a busy loop of 2 s gets throttled to the quota.
check_cpu() {
  incg r-cpu $K run --keep --bundle /bundles/cpu cpu > /tmp/cpu.out 2>&1
  code=$?
  d=$CG/r-cpu/kiln-cpu
  ev=$($K events --stats cpu 2>&1)
  say cpu exit=$code wall_usec=2000000 usage_usec="$(keyed $d/cpu.stat usage_usec)" \
    nr_throttled="$(keyed $d/cpu.stat nr_throttled)" \
    throttled_usec="$(keyed $d/cpu.stat throttled_usec)" \
    stats_throttled_periods="$(json_num throttledPeriods "$ev")" \
    cpu_max="$(tr ' ' / < $d/cpu.max)"
  [ $code = 0 ] || show /tmp/cpu.out
  $K delete cpu
  say cpu_cleanup delete_exit=$? cgroup_left="$(left $d)"
}

# cgroup.freeze: pause stops the ticking, resume restarts it; then
# kill --all (cgroup.kill) ends every process.
check_freeze_kill() {
  incg r-frz $K run -d --bundle /bundles/frz frz > /tmp/frz.out 2>&1 || show /tmp/frz.out
  d=$CG/r-frz/kiln-frz
  wait_for '[ -s /rootfs/var/frz ]'
  $K pause frz
  p=$?
  st_paused=$(status frz)
  frozen=$(keyed $d/cgroup.events frozen)
  a=$(cat /rootfs/var/frz)
  sleep 1
  b=$(cat /rootfs/var/frz)
  $K resume frz
  r=$?
  st_resumed=$(status frz)
  sleep 1
  c=$(cat /rootfs/var/frz)
  say freeze pause_exit=$p state_paused="$st_paused" frozen="$frozen" \
    ticks_paused=$((b - a)) resume_exit=$r state_resumed="$st_resumed" \
    thawed="$(keyed $d/cgroup.events frozen)" ticks_resumed=$((c - b))
  procs=$(wc -l < $d/cgroup.procs)
  $K kill --all frz KILL
  k=$?
  wait_for '[ "$(status frz)" = stopped ]'
  say killall exit=$k procs_before="$procs" state="$(status frz)" \
    procs_after="$(cat $d/cgroup.procs 2>/dev/null | wc -l)"
  $K delete frz
  say killall_cleanup delete_exit=$? cgroup_left="$(left $d)"
}

# delete --force on a running container with children: all gone, cgroup too.
check_delete_force() {
  incg r-del $K run -d --bundle /bundles/del del > /tmp/del.out 2>&1 || show /tmp/del.out
  d=$CG/r-del/kiln-del
  wait_for '[ "$(cat $d/cgroup.procs 2>/dev/null | wc -l)" -ge 3 ]'
  procs=$(wc -l < $d/cgroup.procs)
  $K delete --force del
  x=$?
  $K state del > /dev/null 2>&1
  say delete_force exit=$x procs_before="$procs" state_exit=$? \
    sleeps_left="$(ps -o args | grep -c '^sleep 10[0-9][0-9]$')" cgroup_left="$(left $d)"
}

# update: a new memory.max and pids.max, read back inside the container.
check_update() {
  incg r-upd $K run -d --bundle /bundles/upd upd > /tmp/upd.out 2>&1 || show /tmp/upd.out
  wait_for '[ "$(status upd)" = running ]'
  before=$($K exec upd cat /sys/fs/cgroup/memory.max 2>&1)
  $K update --memory 48m --pids-limit 7 upd
  u=$?
  after=$($K exec upd cat /sys/fs/cgroup/memory.max 2>&1)
  pids=$($K exec upd cat /sys/fs/cgroup/pids.max 2>&1)
  say update exit=$u memory_before="$before" memory_after="$after" pids_after="$pids"
  $K delete --force upd
  say update_cleanup delete_exit=$? cgroup_left="$(left $CG/r-upd/kiln-upd)"
}

# An absolute linux.cgroupsPath, run from a cgroup that holds other processes.
check_absolute() {
  out=$($K run --bundle /bundles/abs abs 2>&1)
  code=$?
  say absolute exit=$code inside="$(echo "$out" | tr ' \n' '_,')" cgroup_left="$(left $CG/kiln/abs)"
}

# The eBPF device filter: a node without an allow rule cannot be opened.
check_devices() {
  denied=$($K run --bundle /bundles/devdeny devdeny 2>&1)
  allowed=$($K run --bundle /bundles/devallow devallow 2>&1)
  say devices denied="$(errname "$denied")" allowed="$(errname "$allowed")"
}

check_cleanup() {
  rmdir $CG/r-*/kiln-init $CG/r-* 2> /dev/null
  say cleanup containers="$($K list -q | wc -l)" \
    cgroups="$(find $CG -type d -name 'kiln-*' ! -name kiln-init | wc -l)"
}

setup
for check in oom pids cpu freeze_kill delete_force update absolute devices cleanup; do
  start=$(cut -d. -f1 /proc/uptime)
  "check_$check"
  say "time_$check" seconds=$(($(cut -d. -f1 /proc/uptime) - start))
done
say done
