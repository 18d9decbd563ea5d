//! Kernel-enforced limits (SPEC §6): `memory_max` and `cpu_max` through a cgroup, v2 else v1,
//! when pypm may create one (root, or a delegated cgroup). Linux only; elsewhere
//! [`Cgroups::setup`] finds none and the supervisor falls back to sampling.
//!
//! Layout: the supervisor's own cgroup `C` gets `C/pypm-PID/`, and every started process its own
//! `C/pypm-PID/APP.IDX.SEQ/` (a roll's old and new processes never share a limit). The child joins
//! it before `execve` by writing `0` to the `cgroup.procs` that the parent opened
//! ([`super::SpawnSpec::cgroup_procs`]), so nothing it allocates is charged elsewhere. Memory is
//! limited with swap (`memory.memsw.limit_in_bytes` / `memory.swap.max = 0`) so a leak meets the
//! OOM killer instead of swapping; CPU with a CFS quota per 100 ms period.
//!
//! cgroup v2 has a rule v1 does not: a cgroup with controllers enabled for its children holds no
//! process itself. So on v2 the supervisor first moves itself into `C/pypm-PID/supervisor/`,
//! then enables `memory` and `cpu` in `C` and `C/pypm-PID`; on any failure it moves back and uses
//! no cgroup.

use super::ext::fd::{AsRawFd, RawFd};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// The CFS period `cpu_max` is a share of.
pub const CPU_PERIOD_US: u64 = 100_000;

/// Which cgroup hierarchy enforces the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

impl Version {
    /// `cgroup v1` or `cgroup v2`, as messages show it.
    pub fn name(self) -> &'static str {
        match self {
            Version::V1 => "cgroup v1",
            Version::V2 => "cgroup v2",
        }
    }
}

/// The supervisor's cgroup directories, created by [`Cgroups::setup`].
#[derive(Debug)]
pub struct Cgroups {
    pub version: Version,
    /// `…/pypm-PID` in the memory hierarchy (v1) or the unified one (v2), when memory limits can
    /// be set.
    memory: Option<PathBuf>,
    /// The same in the cpu hierarchy (v1; on v2 the same directory as `memory`).
    cpu: Option<PathBuf>,
    /// v2: the cgroup the supervisor was in, to go back to at the end.
    home: Option<PathBuf>,
    /// v2: the controllers pypm enabled in each `cgroup.subtree_control`, to disable again.
    enabled: Vec<(PathBuf, Vec<String>)>,
}

/// One started process's cgroup(s).
#[derive(Debug)]
pub struct ProcessCgroup {
    dirs: Vec<PathBuf>,
    procs: Vec<File>,
    memory_dir: Option<PathBuf>,
    version: Version,
}

/// A `/proc/self/mountinfo` line of a cgroup file system: (mount point, root, fstype, options).
fn cgroup_mounts(mountinfo: &str) -> Vec<(PathBuf, String, String, Vec<String>)> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        let (Some(root), Some(point), Some(fstype)) = (pre.get(3), pre.get(4), post.first()) else {
            continue;
        };
        if *fstype != "cgroup" && *fstype != "cgroup2" {
            continue;
        }
        let opts = post
            .get(2)
            .map(|o| o.split(',').map(str::to_string).collect())
            .unwrap_or_default();
        out.push((
            PathBuf::from(unescape(point)),
            unescape(root),
            fstype.to_string(),
            opts,
        ));
    }
    out
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// The directory of this process's cgroup in the hierarchy that has `controller` (v1), or in
/// the unified hierarchy (`controller` = None).
pub fn own_dir(cgroup: &str, mountinfo: &str, controller: Option<&str>) -> Option<PathBuf> {
    let path = cgroup.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        let hit = match controller {
            None => ctrls.is_empty(),
            Some(c) => ctrls.split(',').any(|x| x == c),
        };
        hit.then(|| path.to_string())
    })?;
    let (point, root, _, _) =
        cgroup_mounts(mountinfo)
            .into_iter()
            .find(|(_, _, fstype, opts)| match controller {
                None => fstype == "cgroup2",
                Some(c) => fstype == "cgroup" && opts.iter().any(|o| o == c),
            })?;
    let rel = if root == "/" {
        path.as_str()
    } else {
        path.strip_prefix(root.as_str())?
    };
    Some(point.join(rel.trim_start_matches('/')))
}

fn write(path: &Path, text: &str) -> io::Result<()> {
    std::fs::write(path, text)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

impl Cgroups {
    /// Creates the supervisor's cgroup directories, v2 first, else v1; `None` when neither can
    /// be used (not root and nothing delegated, no cgroup file system, a container without
    /// write access).
    /// `PYPM_CGROUPS=off` in the supervisor's environment turns them off (limits are then
    /// enforced by sampling, as where no cgroup can be created).
    pub fn setup() -> Option<Cgroups> {
        if !cfg!(target_os = "linux") || std::env::var("PYPM_CGROUPS").is_ok_and(|v| v == "off") {
            return None;
        }
        let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let name = format!("pypm-{}", std::process::id());
        if let Some(dir) = own_dir(&cgroup, &mountinfo, None) {
            let controllers =
                std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
            if controllers.split_whitespace().any(|c| c == "memory") {
                match Self::setup_v2(&dir, &name, &controllers) {
                    Ok(c) => return Some(c),
                    Err(e) => log::debug!("cgroup v2 not usable: {e}"),
                }
            }
        }
        let mk = |controller: &str| -> Option<PathBuf> {
            let parent = own_dir(&cgroup, &mountinfo, Some(controller))?;
            remove_stale(&parent);
            let dir = parent.join(&name);
            match std::fs::create_dir(&dir) {
                Ok(()) => Some(dir),
                Err(e) => {
                    log::debug!(
                        "cgroup v1 {controller}: cannot create {}: {e}",
                        dir.display()
                    );
                    None
                }
            }
        };
        let memory = mk("memory");
        let cpu = mk("cpu");
        if memory.is_none() && cpu.is_none() {
            return None;
        }
        Some(Cgroups {
            version: Version::V1,
            memory,
            cpu,
            home: None,
            enabled: Vec::new(),
        })
    }

    fn setup_v2(dir: &Path, name: &str, controllers: &str) -> io::Result<Cgroups> {
        remove_stale(dir);
        let base = dir.join(name);
        std::fs::create_dir(&base)?;
        let mut c = Cgroups {
            version: Version::V2,
            memory: None,
            cpu: None,
            home: Some(dir.to_path_buf()),
            enabled: Vec::new(),
        };
        let me = base.join("supervisor");
        let result = (|| {
            std::fs::create_dir(&me)?;
            write(&me.join("cgroup.procs"), "0")?;
            let wanted: Vec<&str> = ["memory", "cpu"]
                .into_iter()
                .filter(|w| controllers.split_whitespace().any(|x| x == *w))
                .collect();
            for d in [dir, base.as_path()] {
                let ctl = d.join("cgroup.subtree_control");
                let have = std::fs::read_to_string(&ctl).unwrap_or_default();
                let missing: Vec<String> = wanted
                    .iter()
                    .filter(|w| !have.split_whitespace().any(|x| x == **w))
                    .map(|w| w.to_string())
                    .collect();
                if !missing.is_empty() {
                    let add: Vec<String> = missing.iter().map(|m| format!("+{m}")).collect();
                    write(&ctl, &add.join(" "))?;
                    c.enabled.push((d.to_path_buf(), missing));
                }
            }
            c.cpu = wanted.contains(&"cpu").then(|| base.clone());
            c.memory = Some(base.clone());
            Ok(())
        })();
        match result {
            Ok(()) => Ok(c),
            Err(e) => {
                c.memory = Some(base); // for `remove`: it rmdirs `supervisor` and the base
                c.remove();
                Err(e)
            }
        }
    }

    pub fn limits_memory(&self) -> bool {
        self.memory.is_some()
    }

    pub fn limits_cpu(&self) -> bool {
        self.cpu.is_some()
    }

    /// A cgroup for one process named `name` (`APP.IDX.SEQ`) with these limits, and its
    /// `cgroup.procs` opened for the child to join.
    pub fn create(
        &self,
        name: &str,
        memory_max: Option<u64>,
        cpu_max: Option<f64>,
    ) -> io::Result<ProcessCgroup> {
        let mut pc = ProcessCgroup {
            dirs: Vec::new(),
            procs: Vec::new(),
            memory_dir: None,
            version: self.version,
        };
        let join = |pc: &mut ProcessCgroup, dir: PathBuf| -> io::Result<()> {
            if !pc.dirs.contains(&dir) {
                std::fs::create_dir(&dir)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
                pc.procs.push(
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(dir.join("cgroup.procs"))?,
                );
                pc.dirs.push(dir);
            }
            Ok(())
        };
        let quota = cpu_max.map(|c| ((c * CPU_PERIOD_US as f64).round() as u64).max(1000));
        let result = (|| {
            if let (Some(max), Some(base)) = (memory_max, &self.memory) {
                let dir = base.join(name);
                join(&mut pc, dir.clone())?;
                match self.version {
                    Version::V1 => {
                        write(&dir.join("memory.limit_in_bytes"), &max.to_string())?;
                        // Absent without swap accounting; then there is no swap to limit.
                        let _ = write(&dir.join("memory.memsw.limit_in_bytes"), &max.to_string());
                    }
                    Version::V2 => {
                        write(&dir.join("memory.max"), &max.to_string())?;
                        let _ = write(&dir.join("memory.swap.max"), "0");
                    }
                }
                pc.memory_dir = Some(dir);
            }
            if let (Some(quota), Some(base)) = (quota, &self.cpu) {
                let dir = base.join(name);
                join(&mut pc, dir.clone())?;
                match self.version {
                    Version::V1 => {
                        write(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                        write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
                    }
                    Version::V2 => {
                        write(&dir.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?
                    }
                }
            }
            Ok(())
        })();
        match result {
            Ok(()) => Ok(pc),
            Err(e) => {
                pc.procs.clear();
                pc.remove();
                Err(e)
            }
        }
    }

    /// At the end, once every process cgroup is gone: on v2 disables the controllers pypm
    /// enabled (innermost first) and goes back to the cgroup it started in (a cgroup with
    /// controllers enabled for its children may hold no process); then removes its directories.
    /// What cannot be removed now is removed by the next supervisor's `remove_stale`.
    pub fn remove(&self) {
        for (dir, ctrls) in self.enabled.iter().rev() {
            let off: Vec<String> = ctrls.iter().map(|c| format!("-{c}")).collect();
            let _ = write(&dir.join("cgroup.subtree_control"), &off.join(" "));
        }
        if let Some(home) = &self.home {
            let _ = write(&home.join("cgroup.procs"), "0");
        }
        for base in [&self.memory, &self.cpu].into_iter().flatten() {
            let _ = std::fs::remove_dir(base.join("supervisor"));
            let _ = std::fs::remove_dir(base);
        }
    }
}

/// Removes the empty `pypm-PID` trees of supervisors that are gone (killed before they could
/// clean up). A cgroup that still holds a process is left alone.
fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("pypm-"))
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if super::is_alive(pid) {
            continue;
        }
        let dir = e.path();
        if let Ok(children) = std::fs::read_dir(&dir) {
            for c in children.flatten() {
                if c.file_type().is_ok_and(|t| t.is_dir()) {
                    let _ = std::fs::remove_dir(c.path());
                }
            }
        }
        let _ = std::fs::remove_dir(&dir);
    }
}

impl ProcessCgroup {
    /// Its memory is limited by the kernel (else `memory_max` is sampled).
    pub fn limits_memory(&self) -> bool {
        self.memory_dir.is_some()
    }

    /// The opened `cgroup.procs` files the child writes `0` to before `execve`.
    pub fn procs_fds(&self) -> Vec<RawFd> {
        self.procs.iter().map(AsRawFd::as_raw_fd).collect()
    }

    /// The child has joined (or failed): the parent's handles are no longer needed.
    pub fn close_procs(&mut self) {
        self.procs.clear();
    }

    /// How many processes the kernel's OOM killer ended in this cgroup.
    pub fn oom_kills(&self) -> u64 {
        let Some(dir) = &self.memory_dir else {
            return 0;
        };
        let file = match self.version {
            Version::V1 => "memory.oom_control",
            Version::V2 => "memory.events",
        };
        std::fs::read_to_string(dir.join(file))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// Removes the directories; false while a process is still in one (try again later).
    pub fn remove(&self) -> bool {
        let mut all = true;
        for d in &self.dirs {
            if std::fs::remove_dir(d).is_err() && d.exists() {
                all = false;
            }
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 30 0:30 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 30 0:31 /docker/abc /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
";

    const CGROUP: &str = "\
5:memory:/docker/abc/inner
4:cpuset:/
3:cpu,cpuacct:/user.slice
0::/user.slice/session-1.scope
";

    #[test]
    fn finds_its_own_directory_in_each_hierarchy() {
        assert_eq!(
            own_dir(CGROUP, MOUNTINFO, Some("memory")),
            Some(PathBuf::from("/sys/fs/cgroup/memory/inner")),
            "the mount's root is stripped from the path"
        );
        assert_eq!(
            own_dir(CGROUP, MOUNTINFO, Some("cpu")),
            Some(PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/user.slice"))
        );
        assert_eq!(
            own_dir(CGROUP, MOUNTINFO, None),
            Some(PathBuf::from(
                "/sys/fs/cgroup/unified/user.slice/session-1.scope"
            ))
        );
        assert_eq!(own_dir(CGROUP, MOUNTINFO, Some("pids")), None);
        // `cpu` is not `cpuset` or `cpuacct`.
        assert_eq!(own_dir("4:cpuset:/\n", MOUNTINFO, Some("cpu")), None);
    }

    #[test]
    fn mount_points_are_unescaped() {
        let m = cgroup_mounts("1 2 0:1 / /a\\040b rw - cgroup2 cgroup2 rw\n");
        assert_eq!(m[0].0, PathBuf::from("/a b"));
    }
}
