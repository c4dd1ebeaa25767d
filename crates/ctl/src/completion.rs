//! Shell completion for `patronictl`, generated from the same clap definition as the parser, so it never lags
//! behind the commands.
//!
//! Python's patronictl (click) prints its completion script when `_PATRONICTL_COMPLETE` is `bash_source`,
//! `zsh_source` or `fish_source`, and DBAs put `eval "$(_PATRONICTL_COMPLETE=bash_source patronictl)"` in their
//! shell profile; ours answers the same variable, so such a profile keeps working after the switch. The script is
//! self-contained (it does not call patronictl back as click's does). The Debian package installs the same
//! scripts where bash-completion, zsh and fish look for them.

use clap::CommandFactory;
use clap_complete::Shell;

/// The environment variable click reads for patronictl.
pub const COMPLETE_ENV: &str = "_PATRONICTL_COMPLETE";

/// The shell named by a click `_PATRONICTL_COMPLETE` value (`bash_source`, `zsh_source`, `fish_source`).
pub fn shell_of_click_request(value: &str) -> Option<Shell> {
    match value {
        "bash_source" => Some(Shell::Bash),
        "zsh_source" => Some(Shell::Zsh),
        "fish_source" => Some(Shell::Fish),
        _ => None,
    }
}

/// The completion script of `patronictl` for `shell`.
pub fn script(shell: Shell) -> Vec<u8> {
    let mut cmd = crate::cli::Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "patronictl", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn click_values_name_the_shells() {
        assert_eq!(shell_of_click_request("bash_source"), Some(Shell::Bash));
        assert_eq!(shell_of_click_request("zsh_source"), Some(Shell::Zsh));
        assert_eq!(shell_of_click_request("fish_source"), Some(Shell::Fish));
        assert_eq!(shell_of_click_request("bash_complete"), None);
    }

    #[test]
    fn scripts_complete_every_command() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let text = String::from_utf8(script(shell)).expect("utf-8");
            for command in ["list", "switchover", "edit-config", "reinit", "topology"] {
                assert!(text.contains(command), "{shell:?} completion lacks {command}");
            }
        }
    }
}
