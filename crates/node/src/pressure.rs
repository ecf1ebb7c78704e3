//! The node's pressure conditions, measured as the kubelet's eviction
//! manager does against its hard thresholds (`--eviction-hard`, default
//! `memory.available<100Mi,nodefs.available<10%,pid.available<5%`):
//! MemoryPressure from `MemAvailable`, DiskPressure from the free space of
//! the agent's file system, PIDPressure from the free process IDs.

use std::path::Path;

use anyhow::{Result, anyhow, bail};

/// The default hard eviction thresholds (upstream's, with a PID threshold).
pub const DEFAULT_EVICTION_HARD: &str = "memory.available<100Mi,nodefs.available<10%,pid.available<5%";

/// A threshold: an absolute amount or a share of the total.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Amount {
    Bytes(u64),
    Percent(f64),
}

impl Amount {
    fn crossed(self, available: u64, total: u64) -> bool {
        match self {
            Amount::Bytes(b) => available < b,
            Amount::Percent(p) => (available as f64) < total as f64 * p / 100.0,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Thresholds {
    memory: Option<Amount>,
    nodefs: Option<Amount>,
    pid: Option<Amount>,
}

fn bytes(q: &str) -> Result<u64> {
    let split = q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len());
    let (n, unit) = q.split_at(split);
    let n: u64 = n.parse().map_err(|_| anyhow!("bad quantity {q:?}"))?;
    let mult: u64 = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "k" => 1000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        _ => bail!("bad quantity {q:?}"),
    };
    Ok(n.saturating_mul(mult))
}

impl Thresholds {
    /// Parses `signal<amount` pairs separated by commas.
    pub fn parse(s: &str) -> Result<Thresholds> {
        let mut t = Thresholds::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (signal, amount) = part.split_once('<').ok_or_else(|| anyhow!("eviction threshold {part:?}: want signal<amount"))?;
            let amount = match amount.strip_suffix('%') {
                Some(p) => Amount::Percent(p.parse().map_err(|_| anyhow!("bad percentage in {part:?}"))?),
                None => Amount::Bytes(bytes(amount)?),
            };
            match signal {
                "memory.available" => t.memory = Some(amount),
                "nodefs.available" | "imagefs.available" => t.nodefs = Some(amount),
                "pid.available" => t.pid = Some(amount),
                // Inode and container-fs signals are not measured.
                "nodefs.inodesFree" | "imagefs.inodesFree" | "containerfs.available" => {}
                other => bail!("unknown eviction signal {other:?}"),
            }
        }
        Ok(t)
    }

    /// Which pressures hold now: (memory, disk, pid).
    pub fn measure(&self, dir: &Path) -> (bool, bool, bool) {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kib = |key: &str| {
            meminfo.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()).map(|k| k * 1024)
        };
        let memory = match (self.memory, kib("MemAvailable:"), kib("MemTotal:")) {
            (Some(a), Some(avail), Some(total)) => a.crossed(avail, total),
            _ => false,
        };
        let disk = match (self.nodefs, rustix::fs::statvfs(dir)) {
            (Some(a), Ok(st)) => a.crossed(st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize),
            _ => false,
        };
        let pid = match self.pid {
            Some(a) => {
                let max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(32768);
                let used = std::fs::read_dir("/proc")
                    .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit())).count() as u64)
                    .unwrap_or(0);
                a.crossed(max.saturating_sub(used), max)
            }
            None => false,
        };
        (memory, disk, pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        let t = Thresholds::parse(DEFAULT_EVICTION_HARD).unwrap();
        assert_eq!(t.memory, Some(Amount::Bytes(100 << 20)));
        assert_eq!(t.nodefs, Some(Amount::Percent(10.0)));
        assert!(Amount::Percent(10.0).crossed(5, 100) && !Amount::Percent(10.0).crossed(50, 100));
        assert!(Thresholds::parse("memory.available>1Gi").is_err());
        assert!(Thresholds::parse("cpu.available<1").is_err());
        // Impossible thresholds always hold; none never does.
        let always = Thresholds::parse("memory.available<1000Ti,nodefs.available<100.1%").unwrap();
        assert_eq!(always.measure(Path::new("/")), (true, true, false));
        assert_eq!(Thresholds::parse("").unwrap().measure(Path::new("/")), (false, false, false));
    }
}
