//! Small helpers shared across layers: atomic file writes.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` through a temp file in the same directory and a rename, so a
/// reader never sees a half-written file and an interrupted run leaves the old one intact.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = temp_file_in(dir)?;
    tmp.write_all(bytes).map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// A temp file in `dir` that becomes an ordinary output file on rename: mode 0644 (before
/// the umask) rather than tempfile's private 0600, so saved models and reports are readable
/// like any file the user writes.
pub fn temp_file_in(dir: &Path) -> Result<tempfile::NamedTempFile> {
    let mut b = tempfile::Builder::new();
    b.prefix(".bert4rs-tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(0o644));
    }
    b.tempfile_in(dir).map_err(|e| Error::io(dir, e))
}

/// Pretty JSON, written atomically.
pub fn write_json_atomic(path: &Path, v: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(|e| Error::Invalid(e.to_string()))?;
    write_atomic(path, text.as_bytes())
}

/// `12.3M` / `1.10B` as the bert4torch notes print parameter counts.
pub fn human_count(n: usize) -> String {
    if n >= 1_000_000_000 {
        format!("{:.2}B", n as f64 / 1e9)
    } else {
        format!("{:.2}M", n as f64 / 1e6)
    }
}

/// Process-wide runtime settings for the binaries, to call first thing in `main` (before
/// any thread starts): [`keep_freed_pages`], and a short spin for candle's element-wise
/// thread pool. After each candle op its worker spins 25,000 times before parking, on a core
/// our GEMM threads need (4 % of a MiniLM training step's CPU time in a profile); the few
/// candle ops left between our kernels do not need the low wake-up latency. An explicit
/// `CANDLE_BARRIER_POOL_SPIN_LIMIT` is kept.
pub fn init_runtime() {
    keep_freed_pages();
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        // Called before any thread starts, so nothing reads the environment concurrently.
        std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", "1000");
    }
}

/// Tells mimalloc (the binaries' allocator) to keep freed pages instead of returning them to
/// the OS after 10 ms. A training step frees and reallocates the same ~100 MB of activations
/// and gradients; returned pages come back as fresh huge pages the kernel must zero, which a
/// profile showed as 25 % of a MiniLM training step (`clear_page_erms`). PyTorch's caching
/// allocator keeps memory for the same reason. Harmless when mimalloc is not the allocator.
pub fn keep_freed_pages() {
    // `mi_option_purge_delay` in mimalloc.h (v2 and v3); the crate's bindings lack the name.
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: sets a process-wide integer option; mimalloc reads options atomically.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}
