//! Giving memory back once a burst is over. glibc's allocator keeps what a burst freed (a
//! backfill's read chunks, a drained spool's batches), arena by arena, one arena per thread that
//! allocated, so an idle collector would hold the peak of its busiest moment for good. On Linux
//! with glibc the allocator is set up at start (see [`configure`]) and freed memory is handed back
//! when the collector goes idle; elsewhere these do nothing (Windows' heap decommits on its own).

/// Most malloc arenas: the collector's threads mostly wait, so contention is no concern.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MAX_ARENAS: i32 = 2;

/// Allocations from this size on get their own mapping, returned to the system when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 256 << 10;

/// Free memory at the top of an arena beyond this is returned to the system at once.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: i32 = 512 << 10;

/// Sets the allocator up for a long-running process that is idle most of the time (call first
/// thing, before threads start): at most [`MAX_ARENAS`] arenas, and fixed mmap and trim
/// thresholds. Left to itself glibc raises both thresholds after the first large buffer is freed
/// (up to 32 and 64 MiB), and `malloc_trim` never shrinks the top of a thread's arena: an idle
/// collector kept 4.5 MB of a backfill's freed buffers resident that way.
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        glibc::set(libc::M_ARENA_MAX, MAX_ARENAS);
        glibc::set(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        glibc::set(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// Returns the free memory of every arena to the system (a few milliseconds; call when idle).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    glibc::trim();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
mod glibc {
    pub fn set(parameter: i32, value: i32) {
        // SAFETY: mallopt takes two integers and only sets an allocator parameter.
        let accepted = unsafe { libc::mallopt(parameter, value) };
        if accepted != 1 {
            tracing::debug!(parameter, value, "the allocator refused a parameter");
        }
    }

    pub fn trim() {
        // SAFETY: malloc_trim takes an integer and only releases free pages; it is thread-safe.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}
