//! Prompts worded and answered like click's (`text [default]: `, `text [y/N]: `), on plain stdin/stdout so
//! they work from pipes and expect scripts as well as terminals.

use std::io::{BufRead, Write};

use crate::context::{CtlError, CtlResult};

fn read_line() -> CtlResult<String> {
    let mut line = String::new();
    let n = std::io::stdin().lock().read_line(&mut line).map_err(|e| CtlError::new(e.to_string()))?;
    if n == 0 {
        // click raises Abort on end of input.
        return Err(CtlError::aborted());
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

fn show(text: &str) {
    print!("{text}");
    let _ = std::io::stdout().flush();
}

/// `click.prompt(text, default=...)`: asks again on an empty answer when there is no default.
pub fn prompt(text: &str, default: Option<&str>) -> CtlResult<String> {
    let shown = match default {
        Some(d) => format!("{text} [{d}]: "),
        None => format!("{text}: "),
    };
    loop {
        show(&shown);
        let answer = read_line()?;
        if !answer.is_empty() {
            return Ok(answer);
        }
        if let Some(d) = default {
            return Ok(d.to_string());
        }
    }
}

/// `click.prompt(text, hide_input=True)`: the answer is not echoed on a terminal.
pub fn prompt_hidden(text: &str) -> CtlResult<String> {
    show(&format!("{text}: "));
    match rpassword::read_password() {
        Ok(p) => Ok(p),
        Err(_) => read_line(),
    }
}

/// `click.confirm(text)` with default No.
pub fn confirm(text: &str) -> CtlResult<bool> {
    loop {
        show(&format!("{text} [y/N]: "));
        let answer = read_line()?.trim().to_lowercase();
        match answer.as_str() {
            "y" | "yes" => return Ok(true),
            "n" | "no" | "" => return Ok(false),
            _ => println!("Error: invalid input"),
        }
    }
}
