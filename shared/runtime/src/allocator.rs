//! How a service's process gives freed memory back.

/// Freed blocks of this size and more go back to the system at once (glibc's default threshold).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MAP_ALONE_FROM: libc::c_int = 128 * 1024;

/// Keeps glibc's malloc from holding on to freed memory. Called before any other thread starts
/// ([`crate::app::run_process`]): a thread that allocated before keeps the arena it got.
///
/// Left to itself, glibc raises its mmap threshold to the size of each large block freed (up to
/// 32 MiB) and the heaps' trim threshold to twice that, so once a few large batches have come
/// and gone every heap keeps tens of MiB it no longer uses: the metrics service, consuming a
/// backlog, sat at 84 MiB resident while holding 21 MiB (heaptrack). A fixed threshold turns
/// that off: 61 MiB at its peak in the same bench.
///
/// It also keeps one arena for every thread (unless the operator set a number of arenas) instead
/// of up to eight per core: a batch or a report allocated on one tokio worker and freed on
/// another left free pages in each worker's arena. `charla bench --rounds 2`, alternating: the
/// metrics service's peak 63.9 -> 54.2 / 54.5 MiB on SQLite and 60.2 / 60.7 -> 50.2 / 49.6 MiB on
/// PostgreSQL, after the reports and export 52.9 -> 43.0 / 43.4 and 49.6 / 49.2 -> 39.3 / 38.8 MiB;
/// calls, consumer and reports within the machine's noise (each thread's small blocks come from
/// its own cache, without the arena's lock).
///
/// Elsewhere (musl, other systems) the allocator is left as it is.
pub fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let one_arena = !arenas_set_by_operator();
        // SAFETY: `mallopt` only sets parameters of glibc's allocator, under the allocator's own
        // lock; it reads and writes no memory of ours.
        #[allow(unsafe_code)]
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MAP_ALONE_FROM);
            if one_arena {
                libc::mallopt(libc::M_ARENA_MAX, 1);
            }
        }
    }
}

/// Whether the environment sets glibc's number of malloc arenas: a positive `MALLOC_ARENA_MAX`
/// or the `glibc.malloc.arena_max` tunable. A value glibc would ignore counts as unset.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn arenas_set_by_operator() -> bool {
    let variable = std::env::var("MALLOC_ARENA_MAX")
        .ok()
        .and_then(|value| value.trim().parse::<u32>().ok())
        .is_some_and(|arenas| arenas > 0);
    let tunable = std::env::var("GLIBC_TUNABLES")
        .is_ok_and(|tunables| tunables.contains("glibc.malloc.arena_max="));
    variable || tunable
}
