fn main() {
    std::process::exit(bert4rs::cli::main());
}
