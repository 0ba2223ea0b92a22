#!/usr/bin/env bash
# Reports and grades what matters for latency on this host, one line per check:
#   name, current value, grade (OK / WARN / BAD / UNKNOWN), recommended value.
# Usage: tuning/check.sh [--json] [--strict] [--isolate CPULIST] [--list]
#   --json      machine-readable output (one JSON object) instead of the table
#   --strict    exit 1 if any check is BAD (default: always exit 0; this is a report)
#   --isolate   the cores the hot path should own (default: 1-3 on >= 4 CPUs, 1 on 2-3 CPUs,
#               the same default as tuning/apply.sh); IRQ affinity is checked against it
#   --list      print the check names, one per line, and exit
# Works unprivileged and inside a VM: what it cannot read is graded UNKNOWN and says why.
# The recommendations match tuning/DEPLOY.md; tuning/apply.sh makes the runtime ones.
set -uo pipefail

json=0
strict=0
isolate=""
list=0
while [ $# -gt 0 ]; do
  case "$1" in
    --json) json=1 ;;
    --strict) strict=1 ;;
    --isolate) isolate="${2:-}"; shift ;;
    --isolate=*) isolate="${1#--isolate=}" ;;
    --list) list=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "check.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# Check names in report order; scripts/check-tuning.sh asserts every one is printed.
CHECKS=(cpu_model virtualization governor smt isolcpus nohz_full rcu_nocbs irq_affinity
        irqbalance thp swappiness clocksource tsc_flags nic_coalescing busy_poll busy_read onload)
if [ "$list" -eq 1 ]; then
  printf '%s\n' "${CHECKS[@]}"
  exit 0
fi

names=(); values=(); grades=(); recs=()
add() { # name value grade recommended
  names+=("$1"); values+=("$2"); grades+=("$3"); recs+=("$4")
}
readf() { # file -> trimmed contents, or nothing (and status 1) when unreadable
  [ -r "$1" ] || return 1
  local v
  v="$(cat "$1" 2>/dev/null)" || return 1
  printf '%s' "$v" | tr -s ' \n' ' ' | sed 's/ $//'
}
# Expands a kernel cpulist ("0-2,5") into one CPU per line.
expand_cpulist() {
  local part a b
  local IFS=','
  for part in $1; do
    case "$part" in
      *-*) a="${part%-*}"; b="${part#*-}"; b="${b%%:*}"
           [ -n "$a" ] && [ -n "$b" ] && seq "$a" "$b" ;;
      '') ;;
      *) printf '%s\n' "$part" ;;
    esac
  done
}
# The CPU numbers of an isolcpus= value, without its flags ("managed_irq,domain,2-3" -> 2-3).
strip_isol_flags() {
  printf '%s' "$1" | tr ',' '\n' | grep -E '^[0-9]' | paste -sd, -
}

ncpu="$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)"
if [ -z "$isolate" ]; then
  if [ "$ncpu" -ge 4 ]; then isolate="1-3"; elif [ "$ncpu" -ge 2 ]; then isolate="1"; fi
fi
cmdline="$(readf /proc/cmdline || true)"
cmdparam() { printf '%s\n' "$cmdline" | tr ' ' '\n' | sed -n "s/^$1=//p" | tail -n1; }
cpuflags="$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2)"
has_flag() { printf ' %s ' "$cpuflags" | grep -q " $1 "; }

# --- CPU -------------------------------------------------------------------------------------
model="$(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ *//')"
add cpu_model "${model:-unknown}, $ncpu CPUs online" OK "(informational) >= 4 cores for split-4core, else fused-2core"

virt=""
if command -v systemd-detect-virt >/dev/null 2>&1; then
  virt="$(systemd-detect-virt 2>/dev/null || true)"
fi
if [ -z "$virt" ] || [ "$virt" = "none" ]; then
  if has_flag hypervisor; then virt="yes (cpuinfo flag hypervisor)"; else virt="${virt:-none}"; fi
fi
if [ "$virt" = "none" ]; then
  add virtualization none OK "bare metal"
else
  add virtualization "$virt" WARN "bare metal: in a VM the host's scheduling and interrupts add to every number"
fi

if readf /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor >/dev/null; then
  others="$(cat /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor 2>/dev/null | sort -u | paste -sd/ -)"
  if [ "$others" = "performance" ]; then
    add governor performance OK performance
  else
    add governor "$others" BAD performance
  fi
else
  add governor "unreadable (no cpufreq: VM or driver without frequency control)" UNKNOWN performance
fi

if smt="$(readf /sys/devices/system/cpu/smt/control)"; then
  case "$smt" in
    off|forceoff|notsupported|notimplemented) add smt "$smt" OK "off (or isolate both siblings of each hot core)" ;;
    *) add smt "$smt" WARN "off (nosmt), or isolate both siblings of each hot core" ;;
  esac
else
  add smt "unreadable (/sys/devices/system/cpu/smt/control)" UNKNOWN "off (nosmt)"
fi

# --- Isolation -------------------------------------------------------------------------------
want_isol="${isolate:-none}"
isol_cmd="$(cmdparam isolcpus)"
isol_cpus="$(strip_isol_flags "$isol_cmd")"
if [ -z "$cmdline" ]; then
  add isolcpus "unreadable (/proc/cmdline)" UNKNOWN "isolcpus=managed_irq,domain,$want_isol"
elif [ -z "$isol_cmd" ]; then
  add isolcpus "(not set)" WARN "isolcpus=managed_irq,domain,$want_isol (kernel cmdline; see tuning/apply.sh)"
else
  add isolcpus "$isol_cmd" OK "isolcpus=managed_irq,domain,$want_isol"
fi
for p in nohz_full rcu_nocbs; do
  v="$(cmdparam "$p")"
  if [ -z "$cmdline" ]; then
    add "$p" "unreadable (/proc/cmdline)" UNKNOWN "$p=$want_isol"
  elif [ -z "$v" ]; then
    add "$p" "(not set)" WARN "$p=${isol_cpus:-$want_isol} (same cores as isolcpus)"
  elif [ -n "$isol_cpus" ] && [ "$(expand_cpulist "$v" | sort -n)" != "$(expand_cpulist "$isol_cpus" | sort -n)" ]; then
    add "$p" "$v" WARN "$p=$isol_cpus (same cores as isolcpus)"
  else
    add "$p" "$v" OK "$p=${isol_cpus:-$want_isol}"
  fi
done

# IRQ affinity: no device interrupt should be allowed onto a hot core.
hot="${isol_cpus:-$isolate}"
if [ -z "$hot" ]; then
  add irq_affinity "no hot cores (1 CPU)" UNKNOWN "IRQs on housekeeping cores only"
elif ! ls /proc/irq/*/smp_affinity_list >/dev/null 2>&1; then
  add irq_affinity "unreadable (/proc/irq)" UNKNOWN "IRQs off cores $hot"
else
  hot_list="$(expand_cpulist "$hot")"
  bad=0; total=0; unreadable=0
  for f in /proc/irq/*/smp_affinity_list; do
    total=$((total + 1))
    if ! aff="$(cat "$f" 2>/dev/null)"; then unreadable=$((unreadable + 1)); continue; fi
    if expand_cpulist "$aff" | grep -qxF -f <(printf '%s\n' "$hot_list"); then bad=$((bad + 1)); fi
  done
  src="isolated set"; [ -z "$isol_cpus" ] && src="planned hot cores (--isolate)"
  if [ "$unreadable" -eq "$total" ]; then
    add irq_affinity "unreadable (/proc/irq/*/smp_affinity_list)" UNKNOWN "IRQs off cores $hot"
  elif [ "$bad" -eq 0 ]; then
    add irq_affinity "0 of $total IRQs may run on $src $hot" OK "IRQs off cores $hot"
  else
    add irq_affinity "$bad of $total IRQs may run on $src $hot" BAD "IRQs off cores $hot (tuning/apply.sh)"
  fi
fi

irqb="unknown"
if command -v pgrep >/dev/null 2>&1; then
  if pgrep -x irqbalance >/dev/null 2>&1; then irqb=running; else irqb="not running"; fi
elif command -v systemctl >/dev/null 2>&1; then
  if systemctl is-active --quiet irqbalance 2>/dev/null; then irqb=running; else irqb="not running"; fi
fi
case "$irqb" in
  running) add irqbalance running WARN "stopped and disabled (it moves IRQs back onto hot cores)" ;;
  "not running") add irqbalance "not running" OK "stopped and disabled" ;;
  *) add irqbalance "unknown (no pgrep or systemctl)" UNKNOWN "stopped and disabled" ;;
esac

# --- Memory ----------------------------------------------------------------------------------
if thp="$(readf /sys/kernel/mm/transparent_hugepage/enabled)"; then
  cur="$(printf '%s' "$thp" | sed -n 's/.*\[\(.*\)\].*/\1/p')"
  case "$cur" in
    never|madvise) add thp "$cur" OK "never or madvise" ;;
    *) add thp "${cur:-$thp}" WARN "never or madvise (khugepaged compaction stalls)" ;;
  esac
else
  add thp "unreadable" UNKNOWN "never or madvise"
fi
if sw="$(readf /proc/sys/vm/swappiness)"; then
  if [ "$sw" -le 10 ] 2>/dev/null; then add swappiness "$sw" OK "<= 10"; else add swappiness "$sw" WARN "<= 10 (1)"; fi
else
  add swappiness unreadable UNKNOWN "<= 10"
fi

# --- Clock -----------------------------------------------------------------------------------
if cs="$(readf /sys/devices/system/clocksource/clocksource0/current_clocksource)"; then
  case "$cs" in
    tsc) add clocksource tsc OK tsc ;;
    kvm-clock|hyperv_clocksource_tsc_page) add clocksource "$cs" WARN "tsc (paravirtual clock: slower reads)" ;;
    *) add clocksource "$cs" BAD "tsc (hpet/acpi_pm reads cost microseconds)" ;;
  esac
else
  add clocksource unreadable UNKNOWN tsc
fi
if [ -z "$cpuflags" ]; then
  add tsc_flags "unreadable (/proc/cpuinfo)" UNKNOWN "constant_tsc nonstop_tsc"
else
  tf=""
  for f in constant_tsc nonstop_tsc; do has_flag "$f" && tf="$tf $f"; done
  tf="${tf# }"
  if [ "$tf" = "constant_tsc nonstop_tsc" ]; then
    add tsc_flags "$tf" OK "constant_tsc nonstop_tsc"
  elif has_flag constant_tsc; then
    add tsc_flags "$tf" WARN "constant_tsc nonstop_tsc (nonstop_tsc is often hidden in VMs)"
  else
    add tsc_flags "${tf:-none}" BAD "constant_tsc nonstop_tsc (raw TSC stamps are not comparable)"
  fi
fi

# --- Network ---------------------------------------------------------------------------------
nics=()
for d in /sys/class/net/*; do
  [ -e "$d/device" ] && nics+=("$(basename "$d")")
done
if [ "${#nics[@]}" -eq 0 ]; then
  add nic_coalescing "no physical NIC visible" UNKNOWN "adaptive-rx off, rx-usecs 0"
elif ! command -v ethtool >/dev/null 2>&1; then
  add nic_coalescing "ethtool not installed (${nics[*]})" UNKNOWN "adaptive-rx off, rx-usecs 0"
else
  parts=(); grade=OK
  for n in "${nics[@]}"; do
    if out="$(ethtool -c "$n" 2>/dev/null)"; then
      rxu="$(printf '%s\n' "$out" | sed -n 's/^rx-usecs:[[:space:]]*//p' | head -n1)"
      ad="$(printf '%s\n' "$out" | sed -n 's/^Adaptive RX:[[:space:]]*\([a-z]*\).*/\1/p' | head -n1)"
      parts+=("$n rx-usecs=${rxu:-?} adaptive-rx=${ad:-?}")
      if [ "${ad:-off}" = "on" ] || { [ -n "$rxu" ] && [ "$rxu" != "n/a" ] && [ "$rxu" -gt 0 ] 2>/dev/null; }; then
        grade=WARN
      fi
    else
      parts+=("$n: driver does not report")
      [ "$grade" = OK ] && grade=UNKNOWN
    fi
  done
  add nic_coalescing "$(IFS=';'; echo "${parts[*]}")" "$grade" "adaptive-rx off, rx-usecs 0 (ethtool -C)"
fi
for k in busy_poll busy_read; do
  if v="$(readf "/proc/sys/net/core/$k")"; then
    if [ "$v" -ge 50 ] 2>/dev/null; then add "$k" "$v" OK "50"; else add "$k" "$v" WARN "50 (us of socket busy polling)"; fi
  else
    add "$k" unreadable UNKNOWN 50
  fi
done

onl=""
if command -v onload >/dev/null 2>&1; then onl="onload launcher on PATH"; fi
if [ -d /sys/module/onload ]; then onl="${onl:+$onl, }onload kernel module loaded"; fi
for lib in /usr/lib64/libonload.so /usr/lib/x86_64-linux-gnu/libonload.so /usr/lib/libonload.so; do
  [ -e "$lib" ] && { onl="${onl:+$onl, }$lib"; break; }
done
if [ -n "$onl" ]; then
  add onload "$onl" OK "present; run via scripts/run-onload.sh"
else
  add onload "not installed (kernel TCP stack)" WARN "OpenOnload on a Solarflare/X2 NIC, via scripts/run-onload.sh"
fi

# --- Output ----------------------------------------------------------------------------------
json_str() { # JSON string literal of $1
  local s="$1"
  s="${s//\\/\\\\}"; s="${s//\"/\\\"}"; s="${s//$'\t'/\\t}"; s="${s//$'\n'/\\n}"; s="${s//$'\r'/}"
  printf '"%s"' "$s"
}
nbad=0; nwarn=0; nok=0; nunk=0
for g in "${grades[@]}"; do
  case "$g" in OK) nok=$((nok+1)) ;; WARN) nwarn=$((nwarn+1)) ;; BAD) nbad=$((nbad+1)) ;; *) nunk=$((nunk+1)) ;; esac
done
if [ "$json" -eq 1 ]; then
  printf '{\n  "host": %s,\n  "kernel": %s,\n  "privileged": %s,\n  "checks": [\n' \
    "$(json_str "$(uname -n)")" "$(json_str "$(uname -r)")" "$([ "$(id -u)" -eq 0 ] && echo true || echo false)"
  for i in "${!names[@]}"; do
    sep=","; [ "$i" -eq $((${#names[@]} - 1)) ] && sep=""
    printf '    {"name": %s, "value": %s, "grade": %s, "recommended": %s}%s\n' \
      "$(json_str "${names[$i]}")" "$(json_str "${values[$i]}")" "$(json_str "${grades[$i]}")" \
      "$(json_str "${recs[$i]}")" "$sep"
  done
  printf '  ],\n  "summary": {"OK": %d, "WARN": %d, "BAD": %d, "UNKNOWN": %d}\n}\n' "$nok" "$nwarn" "$nbad" "$nunk"
else
  printf '%-15s %-7s %-50s %s\n' check grade value recommended
  for i in "${!names[@]}"; do
    printf '%-15s %-7s %-50s %s\n' "${names[$i]}" "${grades[$i]}" "${values[$i]}" "${recs[$i]}"
  done
  printf '\n%d OK, %d WARN, %d BAD, %d UNKNOWN (%s)\n' "$nok" "$nwarn" "$nbad" "$nunk" \
    "$([ "$(id -u)" -eq 0 ] && echo "run as root" || echo "run unprivileged: some values may be unreadable")"
fi
if [ "$strict" -eq 1 ] && [ "$nbad" -gt 0 ]; then
  exit 1
fi
exit 0
