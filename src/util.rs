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
/// like any file the user writes. A missing output directory is created, as `save_pretrained`
/// does.
pub fn temp_file_in(dir: &Path) -> Result<tempfile::NamedTempFile> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
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
    match n {
        1_000_000_000.. => format!("{:.2}B", n as f64 / 1e9),
        10_000.. => format!("{:.2}M", n as f64 / 1e6),
        _ => n.to_string(),
    }
}

/// Process-wide settings the binaries apply first thing in `main`, before any thread starts:
/// mimalloc keeps freed pages ([`keep_freed_pages`]) and candle's element-wise thread pool
/// parks its workers soon after each op ([`CANDLE_SPIN_LIMIT`]). Library users who drive
/// the same workloads from their own `main` get the same speed by calling it there.
pub fn init_process() {
    keep_freed_pages();
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        // Called before any thread starts, so nothing reads the environment concurrently.
        std::env::set_var(
            "CANDLE_BARRIER_POOL_SPIN_LIMIT",
            CANDLE_SPIN_LIMIT.to_string(),
        );
    }
}

/// Spin iterations of candle 0.11's element-wise pool worker after each op before it parks
/// (candle's default: 25,000, about half a millisecond). Our GEMMs and fused kernels run on
/// rayon's threads; a candle worker spinning beside them on a 2-core machine takes a core
/// from each GEMM that follows a candle op (4 % of a MiniLM training step's CPU samples).
/// (`CANDLE_BARRIER_POOL_SPIN_LIMIT` in the environment still wins.)
pub const CANDLE_SPIN_LIMIT: u32 = 1_000;

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

/// Runs `free`, which drops large buffers for good (an int8 model's f32 weights), with
/// mimalloc handing freed pages back to the OS, then keeps freed pages again (as
/// [`keep_freed_pages`] set), so resident memory shows the saving. The pages must be freed
/// while the purge delay is non-negative: mimalloc never schedules pages freed under a
/// negative delay, and a later collection does not reach them.
pub fn returning_freed_pages<T>(free: impl FnOnce() -> T) -> T {
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: process-wide integer options and a collection; mimalloc is thread-safe here.
    let before = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    let out = free();
    unsafe {
        libmimalloc_sys::mi_collect(true);
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, before);
    }
    out
}

/// Sizes rayon's global pool to `threads` (0: rayon's default, one per core or
/// `RAYON_NUM_THREADS`). Only the first call before the pool's first use takes effect: it
/// returns false when the pool already existed (it then keeps its size).
pub fn init_threads(threads: usize) -> bool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .is_ok()
}

/// The progress bar every long job draws on stderr: `{bar} pos/len <unit> [elapsed<eta]`
/// then `tail` (an indicatif template piece such as `{msg}` or `{per_sec}`). indicatif
/// hides it when stderr is not a terminal; without the `progress` feature nothing is drawn.
pub fn progress_bar(len: u64, unit: &str, tail: &str) -> Progress {
    #[cfg(feature = "progress")]
    {
        let bar = indicatif::ProgressBar::new(len);
        let template = format!(
            "{{bar:30}} {{pos}}/{{len}} {unit} [{{elapsed_precise}}<{{eta_precise}}] {tail}"
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
            bar.set_style(style);
        }
        Progress { bar }
    }
    #[cfg(not(feature = "progress"))]
    {
        let _ = (len, unit, tail);
        Progress {}
    }
}

/// A progress bar from [`progress_bar`] (a no-op without the `progress` feature).
pub struct Progress {
    #[cfg(feature = "progress")]
    bar: indicatif::ProgressBar,
}

#[cfg_attr(not(feature = "progress"), allow(unused_variables))]
impl Progress {
    /// Moves the bar to `pos`.
    pub fn set_position(&self, pos: u64) {
        #[cfg(feature = "progress")]
        self.bar.set_position(pos);
    }

    /// Advances the bar by `n`.
    pub fn inc(&self, n: u64) {
        #[cfg(feature = "progress")]
        self.bar.inc(n);
    }

    /// The text after the bar.
    pub fn set_message(&self, msg: String) {
        #[cfg(feature = "progress")]
        self.bar.set_message(msg);
    }

    /// Stops drawing, leaving the bar as it is (an interrupted job).
    pub fn abandon(&self) {
        #[cfg(feature = "progress")]
        self.bar.abandon();
    }

    /// Removes the bar (a finished job).
    pub fn finish_and_clear(&self) {
        #[cfg(feature = "progress")]
        self.bar.finish_and_clear();
    }

    /// The indicatif bar itself.
    #[cfg(feature = "progress")]
    pub fn indicatif(&self) -> &indicatif::ProgressBar {
        &self.bar
    }
}
