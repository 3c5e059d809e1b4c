//! Giving memory back once a burst is over. glibc's allocator keeps what a burst freed (a
//! backfill's read chunks, a drained spool's batches), arena by arena, one arena per thread that
//! allocated, so an idle collector would hold the peak of its busiest moment for good. On Linux
//! with glibc the arenas are limited at start and freed memory is handed back when the
//! collector goes idle; elsewhere these do nothing (Windows' heap decommits on its own).

/// Most malloc arenas: the collector's threads mostly wait, so contention is no concern.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MAX_ARENAS: i32 = 2;

/// Limits the allocator's arenas (call first thing, before threads start).
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    glibc::limit_arenas(MAX_ARENAS);
}

/// Returns the free memory of every arena to the system (a few milliseconds; call when idle).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    glibc::trim();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
mod glibc {
    pub fn limit_arenas(arenas: i32) {
        // SAFETY: mallopt takes two integers and only sets an allocator parameter.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }

    pub fn trim() {
        // SAFETY: malloc_trim takes an integer and only releases free pages; it is thread-safe.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}
