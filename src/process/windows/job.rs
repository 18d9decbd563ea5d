//! Job Objects: one per started instance, so everything the instance starts (its grandchildren
//! included: a job is inherited) is stopped with it, and nothing outlives a supervisor that
//! dies (`JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`: the system closes our handles, the jobs' members
//! are killed). `memory_max` and `cpu_max` are limits of the job ([`Job::limit_memory`],
//! [`Job::limit_cpu`]); the jobs with a memory limit report to one completion port, read by one
//! thread, so an exit after the limit was hit is told apart ([`Job::hit_memory_limit`]).

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle, RawHandle};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::INVALID_HANDLE_VALUE;
use windows_sys::Win32::System::IO::{CreateIoCompletionPort, GetQueuedCompletionStatus};
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_CPU_RATE_CONTROL_ENABLE,
    JOB_OBJECT_CPU_RATE_CONTROL_HARD_CAP, JOB_OBJECT_LIMIT_JOB_MEMORY,
    JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE, JOBOBJECT_ASSOCIATE_COMPLETION_PORT,
    JOBOBJECT_BASIC_ACCOUNTING_INFORMATION, JOBOBJECT_CPU_RATE_CONTROL_INFORMATION,
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION, JobObjectAssociateCompletionPortInformation,
    JobObjectBasicAccountingInformation, JobObjectCpuRateControlInformation,
    JobObjectExtendedLimitInformation, QueryInformationJobObject, SetInformationJobObject,
    TerminateJobObject,
};

/// `cpu_max` cores as a job's CPU rate (see [`crate::process::job_cpu_rate`]).
pub fn cpu_rate(cores: f64, cpus: usize) -> u32 {
    crate::process::job_cpu_rate(cores, cpus)
}

/// This machine's logical CPUs, as the CPU rate counts them.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The limits a job holds, as the system reads them back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobLimits {
    /// `JOB_OBJECT_LIMIT_JOB_MEMORY`: the committed memory of all its processes together.
    pub memory_max: Option<u64>,
    /// The hard cap of `JOB_OBJECT_CPU_RATE_CONTROL_HARD_CAP`, in 1/10000 of the machine.
    pub cpu_rate: Option<u32>,
    /// `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE` is set.
    pub kill_on_close: bool,
}

/// The extended limits of `job` (null: the job of the calling process).
fn query_extended(job: RawHandle) -> io::Result<JOBOBJECT_EXTENDED_LIMIT_INFORMATION> {
    // SAFETY: all-zero is a valid value of this plain struct.
    let mut info: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: a pointer to `info` and its exact size; no length is returned.
    let ok = unsafe {
        QueryInformationJobObject(
            job,
            JobObjectExtendedLimitInformation,
            (&mut info as *mut JOBOBJECT_EXTENDED_LIMIT_INFORMATION).cast(),
            std::mem::size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
            std::ptr::null_mut(),
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info)
}

/// The limits of `job` (null: the job of the calling process).
fn query_limits(job: RawHandle) -> io::Result<JobLimits> {
    let info = query_extended(job)?;
    let flags = info.BasicLimitInformation.LimitFlags;
    // SAFETY: all-zero is a valid value of this plain struct.
    let mut cpu: JOBOBJECT_CPU_RATE_CONTROL_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: a pointer to `cpu` and its exact size; no length is returned.
    let cpu_ok = unsafe {
        QueryInformationJobObject(
            job,
            JobObjectCpuRateControlInformation,
            (&mut cpu as *mut JOBOBJECT_CPU_RATE_CONTROL_INFORMATION).cast(),
            std::mem::size_of::<JOBOBJECT_CPU_RATE_CONTROL_INFORMATION>() as u32,
            std::ptr::null_mut(),
        )
    } != 0;
    let hard = JOB_OBJECT_CPU_RATE_CONTROL_ENABLE | JOB_OBJECT_CPU_RATE_CONTROL_HARD_CAP;
    // SAFETY: every member of the union is a u32 (zeroed when the call failed).
    let rate = unsafe { cpu.Anonymous.CpuRate };
    Ok(JobLimits {
        memory_max: (flags & JOB_OBJECT_LIMIT_JOB_MEMORY != 0)
            .then_some(info.JobMemoryLimit as u64),
        // `CpuRate` is the member the hard-cap flags say is set.
        cpu_rate: (cpu_ok && cpu.ControlFlags & hard == hard).then_some(rate),
        kill_on_close: flags & JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE != 0,
    })
}

/// The limits of the job this process runs in (an app asks about its own instance's job).
pub fn own_job_limits() -> io::Result<JobLimits> {
    query_limits(std::ptr::null_mut())
}

/// The exit code of a process pypm killed (`TerminateJobObject`): reported as SIGKILL.
pub const KILL_EXIT_CODE: u32 = 0x5059_4D09;

/// A Job Object handle.
#[derive(Debug)]
pub struct Job {
    handle: OwnedHandle,
    /// Its key on the completion port ([`PortEvents`]).
    id: u64,
    /// Its notifications go to the port (it has a memory limit).
    on_port: AtomicBool,
}

// Job notifications (winnt.h): the memory limit was hit; a process of the job ended.
const MSG_JOB_MEMORY_LIMIT: u32 = 10;
const MSG_EXIT_PROCESS: u32 = 7;
const MSG_ABNORMAL_EXIT_PROCESS: u32 = 8;

/// What the completion port of the jobs with a memory limit said: which jobs hit it, and which
/// (job, pid) exits it has delivered. The port delivers a job's messages in order, so once the
/// exit of a job's first process is seen, a memory-limit message before it was seen too.
#[derive(Default)]
struct PortEvents {
    memory_hit: HashSet<u64>,
    exited: HashSet<(u64, u32)>,
}

struct Port {
    handle: usize,
    events: Mutex<PortEvents>,
    changed: Condvar,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The one completion port of the process and the thread that reads it, started on first use;
/// `None` when either cannot be created (then no exit is reported as a memory limit).
fn port() -> Option<&'static Port> {
    static PORT: OnceLock<Option<Port>> = OnceLock::new();
    PORT.get_or_init(|| {
        // SAFETY: a new port not tied to a file; the handle lives as long as the process.
        let raw =
            unsafe { CreateIoCompletionPort(INVALID_HANDLE_VALUE, std::ptr::null_mut(), 0, 1) };
        if raw.is_null() {
            log::debug!(
                "no completion port for job notifications: {}",
                io::Error::last_os_error()
            );
            return None;
        }
        Some(Port {
            handle: raw as usize,
            events: Mutex::default(),
            changed: Condvar::new(),
        })
    })
    .as_ref()
    .filter(|p| start_port_thread(p))
}

fn start_port_thread(port: &'static Port) -> bool {
    static STARTED: OnceLock<bool> = OnceLock::new();
    *STARTED.get_or_init(|| {
        std::thread::Builder::new()
            .name("pypm-jobs".into())
            .stack_size(64 * 1024)
            .spawn(move || read_port(port))
            .is_ok()
    })
}

fn read_port(port: &'static Port) {
    loop {
        let (mut msg, mut key, mut overlapped) = (0u32, 0usize, std::ptr::null_mut());
        // SAFETY: out-pointers for the call; the port handle is never closed.
        let ok = unsafe {
            GetQueuedCompletionStatus(
                port.handle as RawHandle,
                &mut msg,
                &mut key,
                &mut overlapped,
                u32::MAX,
            )
        };
        if ok == 0 {
            continue;
        }
        let id = key as u64;
        // For the exit messages the "overlapped" pointer is the process id.
        let pid = overlapped as usize as u32;
        // Only an instance's first process's exit is waited for (not each of its children's).
        let is_root = || jobs().get(&(pid as i32)).is_some_and(|j| j.id == id);
        let root_exit = matches!(msg, MSG_EXIT_PROCESS | MSG_ABNORMAL_EXIT_PROCESS) && is_root();
        let mut ev = port.events.lock().unwrap_or_else(|p| p.into_inner());
        match msg {
            MSG_JOB_MEMORY_LIMIT => {
                ev.memory_hit.insert(id);
            }
            _ if root_exit => {
                ev.exited.insert((id, pid));
            }
            _ => continue,
        }
        drop(ev);
        port.changed.notify_all();
    }
}

impl Job {
    /// A new job whose members die when its last handle closes.
    pub fn new() -> io::Result<Job> {
        // SAFETY: no name, no security attributes; the handle is checked and then owned.
        let raw = unsafe { CreateJobObjectW(std::ptr::null(), std::ptr::null()) };
        if raw.is_null() {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh handle nothing else owns.
        let handle = unsafe { OwnedHandle::from_raw_handle(raw) };
        // SAFETY: all-zero is a valid JOBOBJECT_EXTENDED_LIMIT_INFORMATION (no limits).
        let mut info: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { std::mem::zeroed() };
        info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
        // SAFETY: passes a pointer to `info` and its exact size.
        let ok = unsafe {
            SetInformationJobObject(
                handle.as_raw_handle(),
                JobObjectExtendedLimitInformation,
                (&info as *const JOBOBJECT_EXTENDED_LIMIT_INFORMATION).cast(),
                std::mem::size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
            )
        };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Job {
            handle,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            on_port: AtomicBool::new(false),
        })
    }

    /// Sets the instance's `memory_max` (bytes, `JOB_OBJECT_LIMIT_JOB_MEMORY`: an allocation
    /// that would take the job's committed memory over it fails), before any process is in the
    /// job.
    pub fn limit_memory(&self, memory_max: Option<u64>) -> io::Result<()> {
        if let Some(max) = memory_max {
            let mut info = query_extended(self.raw())?;
            info.BasicLimitInformation.LimitFlags |= JOB_OBJECT_LIMIT_JOB_MEMORY;
            info.JobMemoryLimit = usize::try_from(max).unwrap_or(usize::MAX);
            // SAFETY: passes a pointer to `info` and its exact size.
            let ok = unsafe {
                SetInformationJobObject(
                    self.raw(),
                    JobObjectExtendedLimitInformation,
                    (&info as *const JOBOBJECT_EXTENDED_LIMIT_INFORMATION).cast(),
                    std::mem::size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
                )
            };
            if ok == 0 {
                return Err(io::Error::last_os_error());
            }
            self.notify_to_port();
        }
        Ok(())
    }

    /// Has the job's notifications sent to the port, so an exit after the memory limit was hit
    /// is told apart ([`Job::hit_memory_limit`]). Without it only that is lost.
    fn notify_to_port(&self) {
        let Some(port) = port() else {
            return;
        };
        let info = JOBOBJECT_ASSOCIATE_COMPLETION_PORT {
            CompletionKey: self.id as usize as *mut core::ffi::c_void,
            CompletionPort: port.handle as RawHandle,
        };
        // SAFETY: passes a pointer to `info` and its exact size.
        let ok = unsafe {
            SetInformationJobObject(
                self.raw(),
                JobObjectAssociateCompletionPortInformation,
                (&info as *const JOBOBJECT_ASSOCIATE_COMPLETION_PORT).cast(),
                std::mem::size_of::<JOBOBJECT_ASSOCIATE_COMPLETION_PORT>() as u32,
            )
        };
        if ok == 0 {
            log::debug!(
                "job notifications not available: {}",
                io::Error::last_os_error()
            );
        } else {
            self.on_port.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the job hit its memory limit before its process `pid` ended: waits (at most
    /// `wait`) until the port has delivered that exit, since the port's messages come in order.
    pub fn hit_memory_limit(&self, pid: u32, wait: Duration) -> bool {
        if !self.on_port.load(Ordering::Relaxed) {
            return false;
        }
        let Some(port) = port() else {
            return false;
        };
        let deadline = Instant::now() + wait;
        let mut ev = port.events.lock().unwrap_or_else(|p| p.into_inner());
        while !ev.exited.contains(&(self.id, pid)) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            ev = match port.changed.wait_timeout(ev, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        ev.exited.retain(|(id, _)| *id != self.id);
        ev.memory_hit.remove(&self.id)
    }

    /// Sets the instance's `cpu_max` (cores): a CPU rate hard cap, see [`cpu_rate`].
    pub fn limit_cpu(&self, cpu_max: Option<f64>) -> io::Result<()> {
        if let Some(cores) = cpu_max {
            // SAFETY: all-zero is a valid value of this plain struct.
            let mut info: JOBOBJECT_CPU_RATE_CONTROL_INFORMATION = unsafe { std::mem::zeroed() };
            info.ControlFlags =
                JOB_OBJECT_CPU_RATE_CONTROL_ENABLE | JOB_OBJECT_CPU_RATE_CONTROL_HARD_CAP;
            info.Anonymous.CpuRate = cpu_rate(cores, cpus());
            // SAFETY: passes a pointer to `info` and its exact size.
            let ok = unsafe {
                SetInformationJobObject(
                    self.raw(),
                    JobObjectCpuRateControlInformation,
                    (&info as *const JOBOBJECT_CPU_RATE_CONTROL_INFORMATION).cast(),
                    std::mem::size_of::<JOBOBJECT_CPU_RATE_CONTROL_INFORMATION>() as u32,
                )
            };
            if ok == 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// The limits the job holds, as the system reads them back.
    pub fn limits(&self) -> io::Result<JobLimits> {
        query_limits(self.raw())
    }

    pub(super) fn raw(&self) -> RawHandle {
        self.handle.as_raw_handle()
    }

    /// Puts a (suspended) process in the job.
    pub fn assign(&self, process: &OwnedHandle) -> io::Result<()> {
        // SAFETY: both handles are valid for the call.
        if unsafe { AssignProcessToJobObject(self.handle.as_raw_handle(), process.as_raw_handle()) }
            == 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Kills every process in the job.
    pub fn terminate(&self) -> io::Result<()> {
        // SAFETY: a valid job handle.
        if unsafe { TerminateJobObject(self.handle.as_raw_handle(), KILL_EXIT_CODE) } == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// CPU time (user + kernel) of every process that ran in the job, in seconds, and how
    /// many run now.
    pub fn accounting(&self) -> Option<(f64, u32)> {
        // SAFETY: all-zero is a valid value of this plain struct.
        let mut info: JOBOBJECT_BASIC_ACCOUNTING_INFORMATION = unsafe { std::mem::zeroed() };
        // SAFETY: a pointer to `info` and its exact size; no length is returned.
        let ok = unsafe {
            QueryInformationJobObject(
                self.handle.as_raw_handle(),
                JobObjectBasicAccountingInformation,
                (&mut info as *mut JOBOBJECT_BASIC_ACCOUNTING_INFORMATION).cast(),
                std::mem::size_of::<JOBOBJECT_BASIC_ACCOUNTING_INFORMATION>() as u32,
                std::ptr::null_mut(),
            )
        };
        if ok == 0 {
            return None;
        }
        let ticks = info
            .TotalUserTime
            .saturating_add(info.TotalKernelTime)
            .max(0);
        Some((ticks as f64 / 1e7, info.ActiveProcesses))
    }
}

/// The job of each running instance, by the pid of its first process.
static JOBS: LazyLock<Mutex<HashMap<i32, Arc<Job>>>> = LazyLock::new(Default::default);

fn jobs() -> MutexGuard<'static, HashMap<i32, Arc<Job>>> {
    JOBS.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn register(pid: i32, job: Arc<Job>) {
    jobs().insert(pid, job);
}

pub fn job_of(pid: i32) -> Option<Arc<Job>> {
    jobs().get(&pid).cloned()
}

/// Forgets the job of `pid`, killing what is left in it (its app has exited).
pub fn release(pid: i32) {
    let job = jobs().remove(&pid);
    if let Some(job) = job {
        let _ = job.terminate();
    }
}
