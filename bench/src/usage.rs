//! CPU time and peak memory of this process, from procfs, so that each
//! variant (run as its own process) is charged only for its own work.

use std::time::Duration;

use anyhow::Context as _;

/// `/proc/self/stat` counts in USER_HZ, which Linux fixes at 100 for
/// userspace whatever the kernel's own tick.
const USER_HZ: u64 = 100;

/// User plus system CPU time of every thread of this process so far.
pub fn cpu_time() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("cannot read /proc/self/stat")?;
    // The command name may hold spaces; the fields after it are fixed.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("unexpected /proc/self/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; `rest` starts at field 3.
    let ticks = |i: usize| -> anyhow::Result<u64> {
        fields.get(i).context("short /proc/self/stat")?.parse::<u64>().context("bad /proc/self/stat field")
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_millis(total * 1000 / USER_HZ))
}

/// The process's peak resident set (VmHWM), in bytes.
pub fn peak_rss() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("cannot read /proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).context("no VmHWM in /proc/self/status")?;
    let kb: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .context("bad VmHWM in /proc/self/status")?;
    Ok(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows_with_work_and_rss_is_read() {
        let before = cpu_time().unwrap();
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(60) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        assert!(cpu_time().unwrap() > before, "{x}");
        assert!(peak_rss().unwrap() > 1024 * 1024);
    }
}
