//! Returning memory the supervisor no longer needs once it has settled.

/// Returns the heap pages start-up (or a reload) freed to the kernel (`malloc_trim`): glibc keeps
/// them otherwise, and an idle supervisor would carry them forever. Linux with glibc only;
/// elsewhere a no-op.
///
/// On Linux it also unmaps the pages of pypm's own machine code and read-only data that start-up
/// faulted in (parsing, resolving, spawning, and the static-pie relocation table: what an idle
/// supervisor does not use); what is used again comes back from the page cache with a minor
/// fault per 64 KiB (the kernel's fault-around).
pub fn release_startup_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only returns free heap memory to the kernel.
        unsafe {
            libc::malloc_trim(0);
        }
    }
    #[cfg(target_os = "linux")]
    super::os::release_code_pages();
}
