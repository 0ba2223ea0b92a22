#!/usr/bin/env bash
# Applies the runtime tuning of a co-located box for algo-engine (idempotent: each step first
# reads the current state and only changes what differs). Every step is echoed with why.
# Usage: tuning/apply.sh [--dry-run] [--isolate CPULIST] [--list]
#   --dry-run   print what would be done and change nothing (runs without root)
#   --isolate   the hot-path cores (default: 1-3 on >= 4 CPUs, 1 on 2-3 CPUs, as tuning/check.sh);
#               every other online CPU is a housekeeping core (kernel, IRQs, cold path)
#   --list      print the step names, one per line, and exit
# Kernel command-line parameters (isolcpus, nohz_full, rcu_nocbs) need a reboot: this script
# prints the line to add but never edits the boot loader. Check the result with tuning/check.sh.
# See tuning/DEPLOY.md for the whole flow.
set -uo pipefail

dry=0
isolate=""
list=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run|-n) dry=1 ;;
    --isolate) isolate="${2:-}"; shift ;;
    --isolate=*) isolate="${1#--isolate=}" ;;
    --list) list=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "apply.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# Step names in order; scripts/check-tuning.sh asserts every one is printed.
STEPS=(governor thp swappiness busy_poll irqbalance irq_affinity kernel_cmdline)
if [ "$list" -eq 1 ]; then
  printf '%s\n' "${STEPS[@]}"
  exit 0
fi

if [ "$dry" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
  echo "apply.sh: changes kernel settings and needs root; use --dry-run to see what it would do" >&2
  exit 1
fi

failures=0
step() { printf '\n[%s] %s\n' "$1" "$2"; }
note() { printf '  %s\n' "$*"; }
# Writes $2 into file $1 unless it already holds it (sysfs/procfs: compares the bracketed
# choice for multiple-choice files).
write_value() {
  local path="$1" want="$2" cur
  if [ ! -e "$path" ]; then note "skip: $path does not exist here"; return 0; fi
  cur="$(cat "$path" 2>/dev/null)"
  case "$cur" in *"["*"]"*) cur="$(printf '%s' "$cur" | sed -n 's/.*\[\(.*\)\].*/\1/p')" ;; esac
  if [ "$cur" = "$want" ]; then note "already $want: $path"; return 0; fi
  if [ "$dry" -eq 1 ]; then note "would write '$want' to $path (now '$cur')"; return 0; fi
  note "write '$want' to $path (was '$cur')"
  if ! printf '%s' "$want" > "$path" 2>/dev/null; then
    note "FAILED: $path is not writable here (container or VM?)"; failures=$((failures + 1))
  fi
}
run() { # runs a command, or prints it in dry-run mode
  if [ "$dry" -eq 1 ]; then note "would run: $*"; return 0; fi
  note "run: $*"
  if ! "$@"; then note "FAILED: $*"; failures=$((failures + 1)); fi
}
expand_cpulist() {
  local part a b
  local IFS=','
  for part in $1; do
    case "$part" in
      *-*) a="${part%-*}"; b="${part#*-}"; b="${b%%:*}"; [ -n "$a" ] && [ -n "$b" ] && seq "$a" "$b" ;;
      '') ;;
      *) printf '%s\n' "$part" ;;
    esac
  done
}

ncpu="$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)"
if [ -z "$isolate" ]; then
  if [ "$ncpu" -ge 4 ]; then isolate="1-3"; elif [ "$ncpu" -ge 2 ]; then isolate="1"; fi
fi
online="$(cat /sys/devices/system/cpu/online 2>/dev/null || echo "0-$((ncpu - 1))")"
hot_list="$(expand_cpulist "$isolate")"
house_list="$(expand_cpulist "$online" | grep -vxF -f <(printf '%s\n' "${hot_list:-none}"))"
housekeeping="$(printf '%s\n' "$house_list" | paste -sd, -)"
echo "apply.sh: $([ "$dry" -eq 1 ] && echo "DRY RUN, nothing is changed; " )hot cores [${isolate:-none}], housekeeping cores [${housekeeping:-none}]"

step governor "cpufreq governor 'performance' on every CPU: no frequency ramp-up when a burst arrives after a quiet spell"
govs=(/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor)
if [ -e "${govs[0]}" ]; then
  for g in "${govs[@]}"; do write_value "$g" performance; done
else
  note "skip: no cpufreq here (VM or firmware-controlled frequency; set performance/max in the BIOS)"
fi

step thp "transparent hugepages 'madvise': khugepaged must not stall the hot threads compacting memory (the journal and rings are preallocated and pre-faulted instead)"
write_value /sys/kernel/mm/transparent_hugepage/enabled madvise
write_value /sys/kernel/mm/transparent_hugepage/defrag never

# Runtime values plus a sysctl.d file so they survive a reboot.
SYSCTL_FILE=/etc/sysctl.d/90-algo-engine.conf
SYSCTL_CONTENT="# Written by algo-engine tuning/apply.sh (see tuning/DEPLOY.md)
vm.swappiness = 1
net.core.busy_poll = 50
net.core.busy_read = 50"
step swappiness "vm.swappiness=1: keep the engine's pages (journal maps, books) in memory rather than swapping them under page-cache pressure"
write_value /proc/sys/vm/swappiness 1

step busy_poll "net.core.busy_poll/busy_read=50 us: blocking socket reads and poll/epoll spin on the NIC queue instead of sleeping for the interrupt (the kernel-stack counterpart of Onload's spinning)"
write_value /proc/sys/net/core/busy_poll 50
write_value /proc/sys/net/core/busy_read 50
if [ -f "$SYSCTL_FILE" ] && [ "$(cat "$SYSCTL_FILE")" = "$SYSCTL_CONTENT" ]; then
  note "already persisted in $SYSCTL_FILE"
elif [ "$dry" -eq 1 ]; then
  note "would write $SYSCTL_FILE (persists swappiness and busy polling across reboots)"
else
  note "write $SYSCTL_FILE (persists swappiness and busy polling across reboots)"
  printf '%s\n' "$SYSCTL_CONTENT" > "$SYSCTL_FILE" || { note "FAILED: $SYSCTL_FILE"; failures=$((failures + 1)); }
fi

step irqbalance "stop and disable irqbalance: it would spread interrupts back onto the hot cores every 10 s"
if command -v systemctl >/dev/null 2>&1 && systemctl list-unit-files irqbalance.service >/dev/null 2>&1 \
   && systemctl list-unit-files irqbalance.service | grep -q irqbalance; then
  if systemctl is-active --quiet irqbalance || systemctl is-enabled --quiet irqbalance 2>/dev/null; then
    run systemctl disable --now irqbalance
  else
    note "already stopped and disabled"
  fi
elif pgrep -x irqbalance >/dev/null 2>&1; then
  note "irqbalance runs without a systemd unit: stop it with your init system"
else
  note "already absent"
fi

step irq_affinity "device interrupts on housekeeping cores [${housekeeping:-none}] only, never on hot cores [${isolate:-none}]"
if [ -z "$isolate" ] || [ -z "$housekeeping" ]; then
  note "skip: needs at least one hot and one housekeeping core ($ncpu CPUs online)"
else
  mask=0
  for c in $house_list; do [ "$c" -lt 63 ] && mask=$((mask | (1 << c))); done
  # The kernel prints the mask zero-padded and comma-grouped: compare numerically.
  cur_mask="$(tr -d ',\n' < /proc/irq/default_smp_affinity 2>/dev/null || echo 0)"
  if [ -n "$cur_mask" ] && [ "$((16#${cur_mask:-0}))" -eq "$mask" ] 2>/dev/null; then
    note "already $(printf '%x' "$mask"): /proc/irq/default_smp_affinity"
  else
    write_value /proc/irq/default_smp_affinity "$(printf '%x' "$mask")"
  fi
  moved=0; already=0; managed=0
  for f in /proc/irq/*/smp_affinity_list; do
    [ -e "$f" ] || continue
    cur="$(cat "$f" 2>/dev/null)" || continue
    if ! expand_cpulist "$cur" | grep -qxF -f <(printf '%s\n' "$hot_list"); then
      already=$((already + 1)); continue
    fi
    if [ "$dry" -eq 1 ]; then
      moved=$((moved + 1))
    elif printf '%s' "$housekeeping" > "$f" 2>/dev/null; then
      moved=$((moved + 1))
    else
      managed=$((managed + 1))   # per-CPU or kernel-managed IRQs refuse; isolcpus=managed_irq covers them
    fi
  done
  note "$([ "$dry" -eq 1 ] && echo "would move" || echo "moved") $moved IRQs to [$housekeeping]; $already already off the hot cores; $managed refused (kernel-managed: use isolcpus=managed_irq)"
fi

step kernel_cmdline "boot parameters (printed, not written: a wrong boot line can leave the box unbootable)"
cmdline="$(cat /proc/cmdline 2>/dev/null || true)"
want="isolcpus=managed_irq,domain,${isolate:-1} nohz_full=${isolate:-1} rcu_nocbs=${isolate:-1} transparent_hugepage=madvise"
missing=""
for p in $want; do
  case " $cmdline " in *" $p "*) ;; *) missing="$missing $p" ;; esac
done
if [ -z "$missing" ]; then
  note "already on the running kernel's command line: $want"
else
  note "add to GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub:${missing}"
  note "optionally also: nosmt (or isolate both SMT siblings of each hot core), intel_idle.max_cstate=1 processor.max_cstate=1"
  note "then: update-grub (Debian/Ubuntu) or grub2-mkconfig -o /boot/grub2/grub.cfg, and reboot"
fi

echo
if [ "$failures" -gt 0 ]; then
  echo "apply.sh: $failures step(s) failed; see FAILED above. Re-check with tuning/check.sh"
  exit 1
fi
echo "apply.sh: done$([ "$dry" -eq 1 ] && echo " (dry run)"). Re-check with tuning/check.sh"
