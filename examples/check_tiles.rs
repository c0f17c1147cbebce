//! Checks every GEMM register tile this CPU runs against the scalar tile (bit-identical
//! results required): `cargo run --release --example check_tiles`. The AVX-512 tile was
//! verified this way under an emulated AVX-512 CPU (Bochs) on a machine without AVX-512.

use bert4rs::kernels::gemm::{tile_mismatches, Tile};

fn main() {
    let mut failed = false;
    for tile in Tile::available() {
        let bad = tile_mismatches(tile);
        println!("{tile:?}: {} mismatches", bad.len());
        for line in bad.iter().take(20) {
            println!("  {line}");
        }
        failed |= !bad.is_empty();
    }
    std::process::exit(i32::from(failed));
}
