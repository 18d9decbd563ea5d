//! Job Objects: one per started instance, so everything the instance starts (its grandchildren
//! included: a job is inherited) is stopped with it, and nothing outlives a supervisor that
//! dies (`JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`: the system closes our handles, the jobs' members
//! are killed).

use std::collections::HashMap;
use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle, RawHandle};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_CPU_RATE_CONTROL_ENABLE,
    JOB_OBJECT_CPU_RATE_CONTROL_HARD_CAP, JOB_OBJECT_LIMIT_JOB_MEMORY,
    JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE, JOBOBJECT_BASIC_ACCOUNTING_INFORMATION,
    JOBOBJECT_CPU_RATE_CONTROL_INFORMATION, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
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
        Ok(Job { handle })
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
        }
        Ok(())
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
