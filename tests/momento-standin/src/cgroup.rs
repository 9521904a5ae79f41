//! CPU accounting and CPU limits for a function process, through Linux
//! cgroups (v1 `cpuacct` + `cpu` hierarchies, or the v2 unified hierarchy
//! with the `cpu` controller), so a benchmark can count the CPU time of every
//! thread of the process and emulate Lambda's CPU share for a memory size.
//!
//! Needs write access to the cgroup filesystem (root, here). [`CpuGroups::create`]
//! says why when it can't be used, so a benchmark can skip with a clear note.

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const ROOT: &str = "/sys/fs/cgroup";

/// Which cgroup layout the machine has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `cpuacct` and `cpu` hierarchies (mounted apart or together).
    V1 {
        cpuacct: &'static str,
        cpu: &'static str,
    },
    /// One unified hierarchy with the `cpu` controller.
    V2,
}

fn layout() -> io::Result<Layout> {
    let root = Path::new(ROOT);
    for (cpuacct, cpu) in [("cpuacct", "cpu"), ("cpu,cpuacct", "cpu,cpuacct")] {
        if root.join(cpuacct).join("cpuacct.usage").exists()
            && root.join(cpu).join("cpu.cfs_quota_us").exists()
        {
            return Ok(Layout::V1 { cpuacct, cpu });
        }
    }
    let controllers = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    if controllers.split_whitespace().any(|c| c == "cpu") {
        return Ok(Layout::V2);
    }
    Err(io::Error::other(
        "no cgroup v1 cpuacct+cpu hierarchies and no cgroup v2 cpu controller under /sys/fs/cgroup",
    ))
}

/// Lambda gives a function one vCPU at 1,769 MB, and CPU in proportion below that.
pub const MB_PER_VCPU: f64 = 1769.0;

/// A pair of cgroups for one function process: one that counts its CPU time
/// (joined before exec), one that limits it (joined when it first polls for
/// an event, so INIT runs unthrottled, as Lambda's INIT phase does).
pub struct CpuGroups {
    layout: Layout,
    /// v1: the cpuacct group; v2: the parent group (accounting).
    account: PathBuf,
    /// v1: the cpu group; v2: a child of `account` (limit).
    limit: PathBuf,
    /// `cgroup.procs` of `account`, ready for `pre_exec` (no allocation after fork).
    account_procs: CString,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

impl CpuGroups {
    /// Creates the groups, unlimited until [`CpuGroups::limit_to_memory`].
    pub fn create() -> io::Result<Self> {
        let layout = layout()?;
        let name = format!(
            "tvm-bench-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let (account, limit) = match layout {
            Layout::V1 { cpuacct, cpu } => (
                Path::new(ROOT).join(cpuacct).join(&name),
                Path::new(ROOT).join(cpu).join(&name),
            ),
            Layout::V2 => {
                let account = Path::new(ROOT).join(&name);
                (account.clone(), account.join("limited"))
            }
        };
        std::fs::create_dir_all(&account)?;
        if layout == Layout::V2 {
            // Processes live in leaves only: the limit group is the leaf, the
            // account group its parent, whose cpu.stat covers it.
            std::fs::write(account.join("cgroup.subtree_control"), "+cpu")?;
        }
        std::fs::create_dir_all(&limit)?;
        let procs = match layout {
            Layout::V1 { .. } => account.join("cgroup.procs"),
            // v2: a process can't sit in an inner group; it starts in the leaf, unlimited.
            Layout::V2 => limit.join("cgroup.procs"),
        };
        let account_procs =
            CString::new(procs.to_string_lossy().into_owned()).map_err(io::Error::other)?;
        Ok(CpuGroups {
            layout,
            account,
            limit,
            account_procs,
        })
    }

    /// The path whose `cgroup.procs` a child writes its pid to before exec.
    pub fn join_before_exec(&self) -> &CString {
        &self.account_procs
    }

    /// CPU time used so far by every process and thread that joined.
    pub fn usage(&self) -> io::Result<Duration> {
        self.read_counter("cpuacct.usage", "usage_usec")
    }

    /// Of [`CpuGroups::usage`], the part spent in the kernel (system time).
    pub fn system_usage(&self) -> io::Result<Duration> {
        self.read_counter("cpuacct.usage_sys", "system_usec")
    }

    /// A v1 `cpuacct` file (nanoseconds) or a v2 `cpu.stat` field (microseconds).
    fn read_counter(&self, v1_file: &str, v2_field: &str) -> io::Result<Duration> {
        let number = |text: &str| text.trim().parse::<u64>().map_err(io::Error::other);
        match self.layout {
            Layout::V1 { .. } => {
                let text = std::fs::read_to_string(self.account.join(v1_file))?;
                Ok(Duration::from_nanos(number(&text)?))
            }
            Layout::V2 => {
                let stat = std::fs::read_to_string(self.account.join("cpu.stat"))?;
                let value = stat
                    .lines()
                    .find_map(|l| l.strip_prefix(v2_field)?.strip_prefix(' '))
                    .ok_or_else(|| io::Error::other(format!("cpu.stat has no {v2_field}")))?;
                Ok(Duration::from_micros(number(value)?))
            }
        }
    }

    /// From now on, limits process `pid` (every thread) to Lambda's CPU share
    /// at `memory_mb`: a quota of `period × memory_mb / 1769` per `period`.
    pub fn throttle(&self, pid: u32, memory_mb: u32, period: Duration) -> io::Result<()> {
        let period_us = period.as_micros() as u64;
        let quota_us = ((period_us as f64) * f64::from(memory_mb) / MB_PER_VCPU).round() as u64;
        let quota_us = quota_us.max(1000); // the kernel's floor is 1 ms
        match self.layout {
            Layout::V1 { .. } => {
                std::fs::write(self.limit.join("cpu.cfs_period_us"), period_us.to_string())?;
                std::fs::write(self.limit.join("cpu.cfs_quota_us"), quota_us.to_string())?;
                std::fs::write(self.limit.join("cgroup.procs"), pid.to_string())
            }
            // The process already sits in the leaf; the limit applies once written.
            Layout::V2 => std::fs::write(
                self.limit.join("cpu.max"),
                format!("{quota_us} {period_us}"),
            ),
        }
    }
}

impl Drop for CpuGroups {
    fn drop(&mut self) {
        // Empty once the process is gone; a busy group is left for the OS to reap.
        let _ = std::fs::remove_dir(&self.limit);
        let _ = std::fs::remove_dir(&self.account);
    }
}

/// Writes the calling process's pid to the `cgroup.procs` file `procs`.
/// Async-signal-safe (open/write/close on a pre-built path, digits on the
/// stack): for use between fork and exec.
pub fn join_self(procs: &CString) -> io::Result<()> {
    let mut digits = [0u8; 20];
    let mut n = std::process::id();
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // SAFETY: plain syscalls on a valid NUL-terminated path and a stack buffer.
    unsafe {
        let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let written = libc::write(fd, digits[i..].as_ptr().cast(), digits.len() - i);
        libc::close(fd);
        if written < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// CPU time of the calling thread so far (`CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill in.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
