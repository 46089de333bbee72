//! Keeps the process's memory near the byte budget under glibc.
//!
//! Measured with `scripts/rss.sh` (4 KiB commits, 4 producers outrunning a
//! local-directory store, 256 MiB budget): peak RSS was 424 MiB with glibc's
//! defaults although the live commits never exceed the budget. Two habits of
//! glibc's malloc hold on to freed memory:
//!
//! - Its mmap threshold rises to the size of any mmapped chunk freed, so
//!   after the first 1 MiB batch buffer is freed, later ones come from the
//!   heap arenas and stay resident there. A fixed 128 KiB threshold (the
//!   default's starting value) keeps every batch buffer an mmap that goes
//!   back to the OS when freed: 424 → 350 MiB.
//! - Commit payloads (here 4 KiB, an allocation per commit) pile up in the
//!   arenas whenever producers run ahead of the writer task, and once copied
//!   into batches they are freed in the middle of the heap, where glibc does
//!   not give pages back by itself. `malloc_trim` does, so a background
//!   thread calls it a few times a second.
//!
//! Together: 424 → 338 MiB at a 256 MiB budget, 111 → 74 MiB at 32 MiB.
//! Trimming every 50 ms instead of 200 ms changed nothing measurable. Most
//! of what was left came from payloads piling up in the command queue (now
//! the driver's inbox); the
//! driver now bounds the bytes waiting there (`QUEUE_BYTES` in
//! `src/driver.rs`), which took the same run to 86–189 MiB (BENCHMARKS.md,
//! memory).
//!
//! Other allocators have their own habits (Debian's mimalloc 2.0 gave 368
//! MiB in the same run); the library itself allocates nothing per commit
//! beyond what the budget counts.

use std::time::Duration;

/// How often freed heap pages are handed back to the OS.
const TRIM_INTERVAL: Duration = Duration::from_millis(200);
/// Allocations at least this big are mmapped and unmapped when freed.
const MMAP_THRESHOLD: libc::c_int = 128 << 10;

/// Call first thing in `main`, before the runtime starts its threads.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn bound_allocator_retention() {
    // SAFETY: mallopt only sets a parameter of the allocator; it takes the
    // allocator's own lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
    let trimmer = std::thread::Builder::new().name("s3wal-malloc-trim".into()).spawn(|| loop {
        std::thread::sleep(TRIM_INTERVAL);
        // SAFETY: malloc_trim takes each arena's lock while it releases
        // free pages; it frees nothing that is in use.
        unsafe {
            libc::malloc_trim(0);
        }
    });
    if let Err(e) = trimmer {
        eprintln!("s3wal: cannot start the malloc_trim thread ({e}); memory may exceed the byte budget");
    }
}

/// Other platforms and allocators: nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn bound_allocator_retention() {}
