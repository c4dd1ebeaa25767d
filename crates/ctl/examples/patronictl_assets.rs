//! Writes what the Debian package installs beside `patronictl`: its shell completions (bash, zsh, fish) and man
//! pages (one for `patronictl`, one per command), generated from the clap definition of the parser.
//!
//! `cargo run -p patroni-ctl --example patronictl_assets -- OUT_DIR` → `OUT_DIR/completions/{patronictl.bash,
//! _patronictl, patronictl.fish}` and `OUT_DIR/man/patronictl.1`, `OUT_DIR/man/patronictl-list.1`, …
//! (`scripts/package.sh` runs it).

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

/// Writes the completions and man pages under `out`; returns the files written.
pub fn write_assets(out: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let completions = out.join("completions");
    std::fs::create_dir_all(&completions)?;
    for (shell, file) in
        [(Shell::Bash, "patronictl.bash"), (Shell::Zsh, "_patronictl"), (Shell::Fish, "patronictl.fish")]
    {
        let path = completions.join(file);
        std::fs::write(&path, patroni_ctl::completion::script(shell))?;
        written.push(path);
    }
    let man = out.join("man");
    std::fs::create_dir_all(&man)?;
    let cmd = patroni_ctl::cli::Cli::command()
        .version(patroni_ctl::VERSION)
        .author("patroni-rs, a drop-in replacement for Patroni (https://patroni.readthedocs.io)");
    clap_mangen::generate_to(cmd, &man)?;
    for entry in std::fs::read_dir(&man)? {
        written.push(entry?.path());
    }
    written.sort();
    Ok(written)
}

#[allow(dead_code)] // the test includes this file as a module and calls write_assets only
fn main() {
    let Some(out) = std::env::args_os().nth(1) else {
        eprintln!("usage: patronictl_assets OUT_DIR");
        std::process::exit(2);
    };
    match write_assets(Path::new(&out)) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
        }
        Err(e) => {
            eprintln!("patronictl_assets: writing under {}: {e}", Path::new(&out).display());
            std::process::exit(1);
        }
    }
}
