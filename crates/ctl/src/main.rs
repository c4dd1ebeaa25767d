use clap::Parser;

fn main() {
    // Like other command-line tools (and unlike Rust's default), end quietly when the reader of our output goes
    // away (`patronictl list -W | head`).
    // SAFETY: called before any other thread exists; restores the default disposition of one signal.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // click's completion protocol, as Python's patronictl answers it (see `completion`).
    if let Some(value) = std::env::var_os(patroni_ctl::completion::COMPLETE_ENV) {
        match value.to_str().and_then(patroni_ctl::completion::shell_of_click_request) {
            Some(shell) => {
                use std::io::Write;
                let _ = std::io::stdout().write_all(&patroni_ctl::completion::script(shell));
                return;
            }
            None => {
                eprintln!(
                    "Error: unsupported completion request {value:?}; use bash_source, zsh_source or fish_source"
                );
                std::process::exit(1);
            }
        }
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
