use clap::Parser;

fn main() {
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
