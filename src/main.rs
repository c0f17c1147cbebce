//! The `bert4rs` binary: everything lives in the library's `cli` module.

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    bert4rs::util::init_process();
    std::process::exit(bert4rs::cli::main());
}
