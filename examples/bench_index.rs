//! bert4rs side of bench/index.sh: exact cosine top-k over `--count` random unit vectors of
//! `--dim` values. Builds the index once under `--dir` (with the library's writer, as
//! `bert4rs index build` does), writes the seeded queries to `DIR/queries.f32` for the peers,
//! times one search per query (warm page cache) and prints one JSON line with the latencies
//! and every query's hits.

use bert4rs::index::{BuildSpec, IndexMeta, IndexWriter, VectorIndex, FORMAT};
use std::path::Path;
use std::time::Instant;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

/// Seeded standard-normal values (splitmix64 + Box–Muller): the same on every run.
fn normals(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed;
    let mut uniform = || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (((z ^ (z >> 31)) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u, v) = (uniform(), uniform());
            ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
        })
        .collect()
}

fn build(dir: &Path, count: usize, dim: usize) -> bert4rs::Result<()> {
    let spec = BuildSpec {
        meta: IndexMeta {
            format: FORMAT.into(),
            dim,
            count,
            model: "random".into(),
            pooling: "none".into(),
            max_length: None,
            source: format!("normals(seed 1, {count} x {dim})"),
        },
        source_bytes: 0,
    };
    let mut w = IndexWriter::create_or_resume(dir, spec)?;
    let chunk = 50_000;
    for start in (w.done()..count).step_by(chunk) {
        let rows = chunk.min(count - start);
        let vals = normals(1 + start as u64, rows * dim);
        let vecs: Vec<Vec<f32>> = vals.chunks_exact(dim).map(<[f32]>::to_vec).collect();
        let texts: Vec<_> = (start..start + rows)
            .map(|i| serde_json::json!({ "text": format!("row {i}") }))
            .collect();
        w.append(&vecs, &texts)?;
    }
    w.finish()?;
    Ok(())
}

fn main() -> bert4rs::Result<()> {
    let count: usize = arg("--count", "100000").parse().unwrap();
    let dim: usize = arg("--dim", "384").parse().unwrap();
    let k: usize = arg("--k", "10").parse().unwrap();
    let queries: usize = arg("--queries", "50").parse().unwrap();
    let threads: usize = arg("--threads", "2").parse().unwrap();
    let dir = std::path::PathBuf::from(arg("--dir", "target/bench-index"));
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .unwrap();
    let idx_dir = dir.join(format!("idx-{count}x{dim}"));
    if !idx_dir.join("index.json").exists() {
        build(&idx_dir, count, dim)?;
    }
    let index = VectorIndex::open(&idx_dir)?;
    let q = normals(999, queries * dim);
    let bytes: Vec<u8> = q.iter().flat_map(|x| x.to_le_bytes()).collect();
    bert4rs::util::write_atomic(&dir.join(format!("queries-{dim}.f32")), &bytes)?;
    index.search(&q[..dim], k)?; // pages in the vectors
    let mut times = Vec::with_capacity(queries);
    let mut hits = Vec::with_capacity(queries);
    for query in q.chunks_exact(dim) {
        let t0 = Instant::now();
        let h = index.search(query, k)?;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        hits.push(h.iter().map(|h| h.index).collect::<Vec<_>>());
    }
    times.sort_by(f64::total_cmp);
    let gb = (count * dim * 4) as f64 / 1e9;
    println!(
        "{}",
        serde_json::json!({"impl": "bert4rs", "count": count, "dim": dim, "k": k,
            "p50_ms": times[times.len() / 2], "min_ms": times[0],
            "gb_per_s": gb / (times[times.len() / 2] / 1e3),
            "vectors": idx_dir.join("vectors.f32"), "hits": hits})
    );
    Ok(())
}
