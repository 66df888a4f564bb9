//! The memory budget (the rule is documented on [`memory_limit`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

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
/// - the memory the machine has available now. On Linux that is
///   `MemAvailable` in `/proc/meminfo` and, for every cgroup the process is
///   in that has a memory limit, the limit minus the usage:
///   - the cgroups are those `/proc/self/cgroup` names: for cgroup v2 the
///     line `0::/path`, whose files are `/sys/fs/cgroup/path/memory.max` and
///     `memory.current`; for cgroup v1 the line whose controllers
///     (comma-separated) include `memory`, whose files are
///     `/sys/fs/cgroup/memory/path/memory.limit_in_bytes` and
///     `memory.usage_in_bytes` (a hybrid system has both lines; both count);
///   - the process's own cgroup and each of its ancestors up to the root
///     count (a parent's limit binds its children), the smallest
///     limit − usage among them is taken; a limit of `max`, or above
///     `MemTotal` in `/proc/meminfo` (cgroup v1 writes "no limit" as
///     9223372036854771712), is no limit; a directory that does not exist is
///     skipped (a container that mounts its own cgroup as the root of
///     `/sys/fs/cgroup` is limited by that root's files);
///   - the cgroup paths and their limits are read once per process (a limit
///     changed later is not seen); `MemAvailable` and the usages are read
///     again at most once a second, the reading being reused in between, so
///     a burst of checks costs no file reads (the budget guards against
///     requests that cannot fit, for which a reading up to a second old
///     serves as well as a fresh one).
///
///   Elsewhere no machine limit is known.
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

/// How long a reading of the available memory is reused (see
/// [`memory_limit`]).
const REFRESH: Duration = Duration::from_secs(1);

/// Where cgroup v1 and v2 are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Available memory of the machine (and of the process's cgroups), if
/// known: a reading at most [`REFRESH`] old.
fn machine_available() -> Option<u64> {
    static LAST: Mutex<Option<(Instant, Option<u64>)>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((at, value)) = *last {
        if at.elapsed() < REFRESH {
            return value;
        }
    }
    let value = read_machine_available();
    *last = Some((Instant::now(), value));
    value
}

/// Readings of the available memory so far (tests count them).
#[cfg(test)]
static READINGS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Reads `MemAvailable` and the usages of the limited cgroups (found and
/// their limits read at the first call).
fn read_machine_available() -> Option<u64> {
    #[cfg(test)]
    READINGS.fetch_add(1, Ordering::Relaxed);
    static LIMITED: OnceLock<Vec<Limited>> = OnceLock::new();
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let available = meminfo.as_deref().and_then(|m| meminfo_bytes(m, "MemAvailable"));
    let limited = LIMITED.get_or_init(|| {
        let total = meminfo.as_deref().and_then(|m| meminfo_bytes(m, "MemTotal"));
        let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        limited_cgroups(&cgroup_memory_files(&cgroup, Path::new(CGROUP_ROOT)), total)
    });
    match (available, cgroup_headroom(limited)) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (a, c) => a.or(c),
    }
}

/// The value of `key` (e.g. `MemAvailable`) in the text of `/proc/meminfo`,
/// in bytes.
fn meminfo_bytes(meminfo: &str, key: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|kb| kb.saturating_mul(1024))
}

/// The memory files of one cgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
struct CgroupFiles {
    /// `memory.max` (v2) or `memory.limit_in_bytes` (v1).
    limit: PathBuf,
    /// `memory.current` (v2) or `memory.usage_in_bytes` (v1).
    usage: PathBuf,
}

/// The memory files of the cgroups listed in `proc_self_cgroup` (the text
/// of `/proc/self/cgroup`) under `root` (`/sys/fs/cgroup`): for each v2
/// line (`0::/path`) and each v1 line with the `memory` controller
/// (`N:memory:/path`, `N:cpu,memory:/path`), the group's own directory
/// first, then each ancestor up to the hierarchy's root. Other lines are
/// ignored; a path with `.` or `..` components (a cgroup outside the
/// process's cgroup namespace) gives the hierarchy's root only.
fn cgroup_memory_files(proc_self_cgroup: &str, root: &Path) -> Vec<CgroupFiles> {
    let mut out = Vec::new();
    for line in proc_self_cgroup.lines() {
        let mut fields = line.trim_end().splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        let (base, limit, usage) = if id == "0" && controllers.is_empty() {
            (root.to_path_buf(), "memory.max", "memory.current")
        } else if controllers.split(',').any(|c| c == "memory") {
            (root.join("memory"), "memory.limit_in_bytes", "memory.usage_in_bytes")
        } else {
            continue;
        };
        let mut parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        if parts.iter().any(|&p| p == "." || p == "..") {
            parts.clear();
        }
        for depth in (0..=parts.len()).rev() {
            let dir = parts[..depth].iter().fold(base.clone(), |d, p| d.join(p));
            out.push(CgroupFiles {
                limit: dir.join(limit),
                usage: dir.join(usage),
            });
        }
    }
    out
}

/// A cgroup's memory limit from the text of its limit file: `None` for
/// `max` (v2's "no limit"), text that is not a number, or a number above
/// `mem_total` (v1's "no limit" is 9223372036854771712, and no limit above
/// the machine's memory can bind).
fn parse_limit(text: &str, mem_total: Option<u64>) -> Option<u64> {
    let limit = text.trim().parse::<u64>().ok()?;
    match mem_total {
        Some(total) if limit > total => None,
        _ => Some(limit),
    }
}

/// A cgroup with a memory limit: the limit and its usage file.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Limited {
    limit: u64,
    usage: PathBuf,
}

/// The cgroups among `groups` whose limit file exists and holds a limit
/// ([`parse_limit`]).
fn limited_cgroups(groups: &[CgroupFiles], mem_total: Option<u64>) -> Vec<Limited> {
    groups
        .iter()
        .filter_map(|g| {
            let text = std::fs::read_to_string(&g.limit).ok()?;
            Some(Limited {
                limit: parse_limit(&text, mem_total)?,
                usage: g.usage.clone(),
            })
        })
        .collect()
}

/// The smallest limit − usage (0 if the usage exceeds the limit) over
/// `limited`, reading each usage file now; a group whose usage cannot be
/// read is skipped. `None` if no group gives a value.
fn cgroup_headroom(limited: &[Limited]) -> Option<u64> {
    limited
        .iter()
        .filter_map(|g| {
            let usage = std::fs::read_to_string(&g.usage).ok()?.trim().parse::<u64>().ok()?;
            Some(g.limit.saturating_sub(usage))
        })
        .min()
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

    /// Many checks within a second read the files at most once (other
    /// tests of this binary may check the budget at the same time, but the
    /// reading is shared).
    #[test]
    fn readings_are_reused_for_a_second() {
        machine_available();
        let before = READINGS.load(Ordering::Relaxed);
        let start = Instant::now();
        for _ in 0..1000 {
            memory_limit();
        }
        let readings = READINGS.load(Ordering::Relaxed) - before;
        if start.elapsed() < REFRESH {
            assert!(readings <= 1, "{readings} readings");
        }
    }

    fn files(dir: &Path, v2: bool) -> CgroupFiles {
        let (limit, usage) = if v2 {
            ("memory.max", "memory.current")
        } else {
            ("memory.limit_in_bytes", "memory.usage_in_bytes")
        };
        CgroupFiles {
            limit: dir.join(limit),
            usage: dir.join(usage),
        }
    }

    #[test]
    fn cgroup_v2_paths_walk_up_to_the_root() {
        let root = Path::new("/sys/fs/cgroup");
        let text = "0::/user.slice/user-1000.slice/session-2.scope\n";
        assert_eq!(
            cgroup_memory_files(text, root),
            vec![
                files(&root.join("user.slice/user-1000.slice/session-2.scope"), true),
                files(&root.join("user.slice/user-1000.slice"), true),
                files(&root.join("user.slice"), true),
                files(root, true),
            ]
        );
        // The root cgroup, or a private cgroup namespace: the mount's root only.
        assert_eq!(cgroup_memory_files("0::/\n", root), vec![files(root, true)]);
        // A trailing slash, blank and malformed lines.
        assert_eq!(
            cgroup_memory_files("\ngarbage\n0::/a/\n", root),
            vec![files(&root.join("a"), true), files(root, true)]
        );
        // Outside the namespace's root: nothing to walk but the root.
        assert_eq!(cgroup_memory_files("0::/../../x\n", root), vec![files(root, true)]);
        // A path with a colon stays whole.
        assert_eq!(
            cgroup_memory_files("0::/a:b\n", root),
            vec![files(&root.join("a:b"), true), files(root, true)]
        );
    }

    #[test]
    fn cgroup_v1_paths_use_the_memory_controller() {
        let root = Path::new("/sys/fs/cgroup");
        let memory = root.join("memory");
        // A v1 machine (with the empty unified line of a hybrid mount).
        let text = "9:name=systemd:/\n8:pids:/\n7:blkio:/\n4:memory:/process_api/8899c0f7\n3:cpuset:/\n\
                    1:cpu:/\n0::/\n";
        assert_eq!(
            cgroup_memory_files(text, root),
            vec![
                files(&memory.join("process_api/8899c0f7"), false),
                files(&memory.join("process_api"), false),
                files(&memory, false),
                files(root, true),
            ]
        );
        // Co-mounted controllers.
        assert_eq!(
            cgroup_memory_files("5:cpu,memory:/docker/abc\n", root),
            vec![
                files(&memory.join("docker/abc"), false),
                files(&memory.join("docker"), false),
                files(&memory, false)
            ]
        );
        // Lookalike controllers are not `memory`; nor is a named hierarchy.
        assert!(cgroup_memory_files("3:memory_x:/a\n2:name=memory:/b\n1:cpu:/c\n", root).is_empty());
        assert!(cgroup_memory_files("", root).is_empty());
    }

    #[test]
    fn hybrid_and_nested_cgroups_list_both_hierarchies() {
        let root = Path::new("/cg");
        let text = "12:memory:/system.slice/app.service\n11:cpu,cpuacct:/system.slice/app.service\n\
                    0::/system.slice/app.service\n";
        let got = cgroup_memory_files(text, root);
        assert_eq!(
            got,
            vec![
                files(&root.join("memory/system.slice/app.service"), false),
                files(&root.join("memory/system.slice"), false),
                files(&root.join("memory"), false),
                files(&root.join("system.slice/app.service"), true),
                files(&root.join("system.slice"), true),
                files(root, true),
            ]
        );
    }

    #[test]
    fn limits_above_the_machine_are_none() {
        let total = Some(24 << 30);
        assert_eq!(parse_limit("max\n", total), None);
        assert_eq!(parse_limit("1073741824\n", total), Some(1 << 30));
        assert_eq!(parse_limit("9223372036854771712\n", total), None);
        assert_eq!(parse_limit("9223372036854771712", None), Some(9223372036854771712));
        assert_eq!(parse_limit("", total), None);
        assert_eq!(parse_limit("-1", total), None);
        assert_eq!(
            meminfo_bytes("MemTotal:       24683772 kB\nMemAvailable:   100 kB\n", "MemAvailable"),
            Some(102400)
        );
        assert_eq!(meminfo_bytes("MemAvailableX: 1 kB\n", "MemAvailable"), None);
    }

    /// A fake cgroup tree in a temporary directory.
    struct Tree(PathBuf);

    impl Tree {
        fn new(name: &str) -> Tree {
            let dir = std::env::temp_dir().join(format!("ntk_momentum_cgroup_{name}_{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Tree(dir)
        }

        fn write(&self, file: &str, text: &str) {
            let path = self.0.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }

        fn headroom(&self, proc_self_cgroup: &str, total: Option<u64>) -> Option<u64> {
            cgroup_headroom(&limited_cgroups(&cgroup_memory_files(proc_self_cgroup, &self.0), total))
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn the_tightest_ancestor_limits_a_v2_cgroup() {
        let tree = Tree::new("v2");
        let total = Some(1 << 40);
        // The root has no memory.max (as the real root cgroup).
        tree.write("memory.current", "999999999\n");
        tree.write("a/memory.max", "max\n");
        tree.write("a/memory.current", "5000\n");
        tree.write("a/b/memory.max", "10000\n");
        tree.write("a/b/memory.current", "4000\n");
        tree.write("a/b/c/memory.max", "3000\n");
        tree.write("a/b/c/memory.current", "2500\n");
        // Own group: 3000 - 2500; its parent has 6000 left.
        assert_eq!(tree.headroom("0::/a/b/c\n", total), Some(500));
        // A parent tighter than its child binds it.
        tree.write("a/b/memory.current", "9800\n");
        assert_eq!(tree.headroom("0::/a/b/c\n", total), Some(200));
        // Usage above the limit: nothing left.
        tree.write("a/b/c/memory.current", "3500\n");
        assert_eq!(tree.headroom("0::/a/b/c\n", total), Some(0));
        // No limit anywhere on the way up.
        assert_eq!(tree.headroom("0::/a\n", total), None);
        // A missing own directory (not mounted in this view): the ancestors still count.
        assert_eq!(tree.headroom("0::/a/b/gone\n", total), Some(200));
        // A limit whose usage cannot be read is skipped.
        tree.write("a/x/memory.max", "100\n");
        assert_eq!(tree.headroom("0::/a/x\n", total), None);
    }

    #[test]
    fn v1_unlimited_is_a_huge_number_and_hybrid_takes_the_smallest() {
        let tree = Tree::new("v1");
        let total = Some(24 << 30);
        let unlimited = "9223372036854771712\n";
        tree.write("memory/memory.limit_in_bytes", unlimited);
        tree.write("memory/memory.usage_in_bytes", "3899527168\n");
        tree.write("memory/docker/memory.limit_in_bytes", unlimited);
        tree.write("memory/docker/memory.usage_in_bytes", "100000\n");
        tree.write("memory/docker/abc/memory.limit_in_bytes", unlimited);
        tree.write("memory/docker/abc/memory.usage_in_bytes", "3350528\n");
        let text = "4:memory:/docker/abc\n0::/\n";
        assert_eq!(tree.headroom(text, total), None);
        // Without MemTotal the huge number is a (useless) limit.
        assert_eq!(tree.headroom(text, None), Some(9223372036854771712 - 3899527168));
        // A real limit on the container.
        tree.write("memory/docker/abc/memory.limit_in_bytes", "1073741824\n");
        assert_eq!(tree.headroom(text, total), Some(1073741824 - 3350528));
        // Hybrid: a v2 limit on the same process, tighter still.
        tree.write("app/memory.max", "4000000\n");
        tree.write("app/memory.current", "1000000\n");
        let hybrid = "4:memory:/docker/abc\n0::/app\n";
        assert_eq!(tree.headroom(hybrid, total), Some(3000000));
    }
}
