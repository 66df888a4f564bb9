//! The memory budget (the rule is documented on [`memory_limit`]).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

/// The limit set by [`set_memory_limit`]; `u64::MAX`: none.
static USER_LIMIT: AtomicU64 = AtomicU64::new(u64::MAX);

/// The environment variable that caps the memory budget
/// ([`memory_limit`]).
pub const MEMORY_LIMIT_VAR: &str = "NTK_MOMENTUM_MEMORY_LIMIT";

/// Sets a process-wide cap on the memory budget in bytes (`None` removes
/// it). The budget is the smallest of this cap, the machine's available
/// memory and `NTK_MOMENTUM_MEMORY_LIMIT` (see [`memory_limit`]).
///
/// # Examples
/// ```
/// use ntk_momentum::{set_memory_limit, Error, TwoLayerReLU};
///
/// set_memory_limit(Some(1 << 20)); // 1 MiB
/// let err = TwoLayerReLU::new(1000, 1000, 0).unwrap_err(); // 8 MB of weights
/// assert!(matches!(err, Error::TooLarge { .. }));
/// set_memory_limit(None);
/// assert!(TwoLayerReLU::new(1000, 1000, 0).is_ok());
/// ```
pub fn set_memory_limit(bytes: Option<u64>) {
    USER_LIMIT.store(bytes.unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// The memory budget in bytes now (`u64::MAX` if nothing limits it).
///
/// The rule, once for the whole crate: before it allocates an array whose
/// size follows from its inputs (a model's weights, generated data, a Gram
/// matrix or Jacobian, a trainer's buffers in either space, an
/// eigendecomposition, the bytes of a data file or checkpoint), the crate
/// adds up the bytes the call will hold at once and compares them with
/// this budget, the smallest of
///
/// - the memory the machine has available now (Linux: `MemAvailable` in
///   `/proc/meminfo`, and the cgroup's `memory.max` minus its
///   `memory.current` when the process runs in a limited cgroup; elsewhere
///   no machine limit is known),
/// - the environment variable `NTK_MOMENTUM_MEMORY_LIMIT` (bytes, or with a
///   suffix `K`, `M`, `G` or `T` for powers of 1024), read at each check,
/// - the limit set with [`set_memory_limit`].
///
/// A request above it is [`Error::TooLarge`] naming what was requested, how
/// many bytes, and the limit, and nothing is allocated; sizes whose byte
/// count overflows are refused the same way. Small bookkeeping allocations
/// (a few bytes per tensor or per step) are not counted.
pub fn memory_limit() -> u64 {
    let mut limit = USER_LIMIT.load(Ordering::Relaxed);
    if let Some(env) = std::env::var_os(MEMORY_LIMIT_VAR).and_then(|v| parse_bytes(&v.to_string_lossy())) {
        limit = limit.min(env);
    }
    if let Some(machine) = machine_available() {
        limit = limit.min(machine);
    }
    limit
}

/// Parses "123", "64K", "512M", "8G", "1T" (powers of 1024).
fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, scale) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (&s[..i], 1u64 << 10),
        (i, 'm' | 'M') => (&s[..i], 1 << 20),
        (i, 'g' | 'G') => (&s[..i], 1 << 30),
        (i, 't' | 'T') => (&s[..i], 1 << 40),
        _ => (s, 1),
    };
    digits.trim().parse::<u64>().ok()?.checked_mul(scale)
}

/// Available memory of the machine (and of the process's cgroup), if known.
fn machine_available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let available = meminfo.as_deref().and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|kb| kb.saturating_mul(1024))
    });
    let read = |f: &str| std::fs::read_to_string(format!("/sys/fs/cgroup/{f}")).ok();
    let cgroup = match (read("memory.max"), read("memory.current")) {
        (Some(max), Some(current)) => max
            .trim()
            .parse::<u64>()
            .ok()
            .zip(current.trim().parse::<u64>().ok())
            .map(|(m, c)| m.saturating_sub(c)),
        _ => None,
    };
    match (available, cgroup) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (a, c) => a.or(c),
    }
}

/// The bytes of `entries` values of `bytes_each` bytes; `None` on overflow.
pub(crate) fn bytes_of(entries: &[usize], bytes_each: usize) -> Option<u64> {
    entries
        .iter()
        .try_fold(bytes_each as u64, |acc, &e| acc.checked_mul(e as u64))
}

/// Checks that `bytes` (the sum of `parts`, each a product of sizes times
/// the bytes per value) fit the budget: [`Error::TooLarge`] naming `what`
/// otherwise.
pub(crate) fn reserve(what: impl FnOnce() -> String, parts: &[Option<u64>]) -> Result<()> {
    let total = parts.iter().try_fold(0u64, |acc, p| p.and_then(|p| acc.checked_add(p)));
    let limit = memory_limit();
    match total {
        Some(bytes) if bytes <= limit => Ok(()),
        _ => Err(Error::TooLarge {
            what: what(),
            requested: total.unwrap_or(u64::MAX),
            limit,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_bytes("123"), Some(123));
        assert_eq!(parse_bytes("64K"), Some(64 << 10));
        assert_eq!(parse_bytes(" 2g "), Some(2 << 30));
        assert_eq!(parse_bytes("1T"), Some(1 << 40));
        assert_eq!(parse_bytes("x"), None);
        assert_eq!(parse_bytes("99999999999999999999T"), None);
    }

    #[test]
    fn byte_counts_refuse_overflow() {
        assert_eq!(bytes_of(&[3, 4], 8), Some(96));
        assert_eq!(bytes_of(&[usize::MAX, 2], 8), None);
        let err = reserve(|| "w".into(), &[Some(u64::MAX), Some(1)]).unwrap_err();
        assert!(matches!(
            err,
            Error::TooLarge {
                requested: u64::MAX,
                ..
            }
        ));
    }

    #[test]
    fn the_machine_limit_is_known_on_linux() {
        if cfg!(target_os = "linux") {
            let m = machine_available().unwrap();
            assert!(m > 1 << 20 && m < 1 << 50, "{m}");
        }
    }
}
