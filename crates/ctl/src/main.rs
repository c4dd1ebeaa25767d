use clap::Parser;

fn main() {
    // Like other command-line tools (and unlike Rust's default), end quietly when the reader of our output goes
    // away (`patronictl list -W | head`).
    // SAFETY: called before any other thread exists; restores the default disposition of one signal.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = patroni_ctl::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(patroni_ctl::run(cli)) {
        std::process::exit(e.report());
    }
}
