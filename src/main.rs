// mimalloc: glibc's malloc was a twelfth of the gateway's CPU under load (many small,
// short-lived allocations moving between tokio's worker threads).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tiergate::cli::main()
}
