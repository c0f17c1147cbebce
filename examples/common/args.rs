//! Command-line helpers the GEMM benchmarks share (included with `#[path]`; not an example).

/// The value after `--name`, parsed, or `default`.
pub fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `32x768x3072,30x768x3072` → [(32, 768, 3072), (30, 768, 3072)]; exits on a bad entry.
pub fn parse_shapes(list: &str) -> Vec<(usize, usize, usize)> {
    list.split(',')
        .map(|s| {
            let d: Vec<usize> = s.split(['x', '×']).filter_map(|v| v.parse().ok()).collect();
            match d[..] {
                [m, k, n] if m > 0 && k > 0 && n > 0 => (m, k, n),
                _ => {
                    eprintln!("--shapes entry {s:?} is not MxKxN (e.g. 32x768x3072)");
                    std::process::exit(2)
                }
            }
        })
        .collect()
}
