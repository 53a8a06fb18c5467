//! Reading `/proc`: a process's CPU time and start time from
//! `/proc/<pid>/stat`, the clock tick they are counted in, and the whole
//! machine's CPU time by state from `/proc/stat`.

use anyhow::{Context, Result, bail};

/// `AT_CLKTCK` in the auxiliary vector: the unit of `/proc/<pid>/stat` times.
const AT_CLKTCK: u64 = 17;
/// `USER_HZ` on every Linux port that matters, when the auxiliary vector
/// cannot be read.
const DEFAULT_CLOCK_TICKS: u64 = 100;

/// What `/proc/<pid>/stat` says of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub comm: String,
    /// utime + stime (fields 14 and 15), in clock ticks.
    pub cpu_ticks: u64,
    /// When the process started (field 22), in clock ticks since boot: with
    /// the pid, it names one process even when pids are reused.
    pub start_ticks: u64,
}

/// Parses one `/proc/<pid>/stat` line. The name (field 2) is in parentheses
/// and may itself hold spaces and parentheses, so the fields after it are
/// found from the last `)`.
///
/// # Errors
/// When the line is not in that shape.
pub fn parse_stat(line: &str) -> Result<Stat> {
    let open = line.find('(').context("no '(' before the process name")?;
    let close = line.rfind(')').context("no ')' after the process name")?;
    if close < open {
        bail!("')' before '('");
    }
    let comm = line[open + 1..close].to_owned();
    // The rest starts at field 3 (the state): field n is at index n - 3.
    let rest: Vec<&str> = line[close + 1..].split_whitespace().collect();
    let field = |n: usize| -> Result<u64> {
        rest.get(n - 3)
            .with_context(|| format!("no field {n}"))?
            .parse()
            .with_context(|| format!("field {n} is not a number"))
    };
    Ok(Stat {
        comm,
        cpu_ticks: field(14)? + field(15)?,
        start_ticks: field(22)?,
    })
}

/// The machine's CPU time since boot by state, all CPUs together, in clock
/// ticks (the `cpu` line of `/proc/stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    pub idle: u64,
    pub iowait: u64,
    /// Time a virtual machine's CPUs were ready to run but the hypervisor
    /// ran something else.
    pub steal: u64,
    /// Every state above and the rest (user, nice, system, irq, softirq);
    /// guest time is already in user.
    pub total: u64,
}

/// Parses the `cpu` line of `/proc/stat` (the first).
///
/// # Errors
/// When there is no such line, or it has fewer than the 8 fields (up to
/// steal) every kernel since 2.6.11 writes.
pub fn parse_cpu_times(proc_stat: &str) -> Result<CpuTimes> {
    let line = proc_stat
        .lines()
        .find(|line| line.starts_with("cpu "))
        .context("no 'cpu' line")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .context("a field of the 'cpu' line is not a number")?;
    let [user, nice, system, idle, iowait, irq, softirq, steal] = fields[..] else {
        bail!("the 'cpu' line has {} fields, not 8", fields.len());
    };
    Ok(CpuTimes {
        idle,
        iowait,
        steal,
        total: user + nice + system + idle + iowait + irq + softirq + steal,
    })
}

/// The value of `key` in an auxiliary vector (`/proc/self/auxv`: pairs of
/// native words, ended by a zero key).
pub fn auxv_value(bytes: &[u8], key: u64) -> Option<u64> {
    const WORD: usize = std::mem::size_of::<usize>();
    let word = |chunk: &[u8]| -> Option<u64> {
        let array: [u8; WORD] = chunk.try_into().ok()?;
        u64::try_from(usize::from_ne_bytes(array)).ok()
    };
    for pair in bytes.chunks_exact(2 * WORD) {
        let k = word(&pair[..WORD])?;
        if k == 0 {
            return None;
        }
        if k == key {
            return word(&pair[WORD..]);
        }
    }
    None
}

/// Clock ticks per second of `/proc/<pid>/stat` times (`sysconf(_SC_CLK_TCK)`,
/// which the C library reads from the auxiliary vector; read here the same
/// way, without it); 100 when that cannot be read.
pub fn clock_ticks_per_s() -> u64 {
    std::fs::read("/proc/self/auxv")
        .ok()
        .and_then(|bytes| auxv_value(&bytes, AT_CLKTCK))
        .filter(|&hz| hz > 0)
        .unwrap_or(DEFAULT_CLOCK_TICKS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_line_gives_idle_iowait_steal_and_their_total() {
        let stat = "cpu  100 5 50 800 20 3 2 40 0 0\ncpu0 50 2 25 400 10 1 1 20 0 0\nintr 1\n";
        assert_eq!(
            parse_cpu_times(stat).expect("parses"),
            CpuTimes {
                idle: 800,
                iowait: 20,
                steal: 40,
                total: 1_020
            }
        );
        assert!(parse_cpu_times("cpu  1 2 3 4\n").is_err(), "no steal field");
        assert!(parse_cpu_times("intr 1\n").is_err());
    }

    /// A stat line as the kernel writes it, with `comm` and the times given.
    fn stat_line(pid: u32, comm: &str, utime: u64, stime: u64, start: u64) -> String {
        // Fields 3 to 13, then 14 and 15, 16 to 21, then 22 and a few more.
        format!(
            "{pid} ({comm}) S 1 {pid} {pid} 0 -1 4194560 1234 0 0 0 {utime} {stime} 0 0 20 0 4 0 {start} 123456789 456 18446744073709551615 1 1 0 0 0 0 0 0 0"
        )
    }

    #[test]
    fn the_stat_line_gives_the_cpu_ticks_and_start_even_with_an_awkward_name() {
        let cases = [
            ("postgres", "plain"),
            ("tokio-runtime-w", "a dash"),
            ("a b) c (d", "spaces and parentheses"),
            (") S 9 9", "a name that looks like fields"),
            ("", "an empty name"),
        ];
        for (comm, why) in cases {
            let stat = parse_stat(&stat_line(42, comm, 150, 50, 9_000)).expect(why);
            assert_eq!(stat.comm, comm, "{why}");
            assert_eq!(stat.cpu_ticks, 200, "{why}");
            assert_eq!(stat.start_ticks, 9_000, "{why}");
        }
    }

    #[test]
    fn a_stat_line_cut_short_or_garbled_is_an_error() {
        for (line, why) in [
            ("42 postgres S 1", "no parentheses"),
            ("42 (postgres) S 1 2 3", "too few fields"),
            (")( x", "parentheses the wrong way round"),
        ] {
            assert!(parse_stat(line).is_err(), "{why}");
        }
        let garbled = stat_line(42, "x", 1, 2, 3).replace(" 1 2 0 0 20", " 1 two 0 0 20");
        assert!(parse_stat(&garbled).is_err(), "a time that is not a number");
    }

    #[test]
    fn this_processs_own_stat_parses() {
        let line = std::fs::read_to_string("/proc/self/stat").expect("Linux");
        let stat = parse_stat(&line).expect("parses");
        assert!(!stat.comm.is_empty());
        assert!(stat.start_ticks > 0);
    }

    #[test]
    fn the_clock_tick_rate_is_read_from_the_auxiliary_vector() {
        let words = |pairs: &[(usize, usize)]| -> Vec<u8> {
            pairs
                .iter()
                .flat_map(|(k, v)| [k.to_ne_bytes(), v.to_ne_bytes()].concat())
                .collect()
        };
        let auxv = words(&[(6, 4096), (17, 250), (0, 0)]);
        assert_eq!(auxv_value(&auxv, AT_CLKTCK), Some(250));
        assert_eq!(auxv_value(&words(&[(6, 4096), (0, 0), (17, 1)]), 17), None);
        assert_eq!(auxv_value(&[1, 2, 3], 17), None, "too short");
        let hz = clock_ticks_per_s();
        assert!((1..=10_000).contains(&hz), "{hz}");
    }
}
