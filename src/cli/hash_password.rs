//! `hookd hash-password`: the argon2 hash that `admin.password_hash` takes. At a terminal it
//! asks for the password twice without echoing it; from a pipe it reads one line, so
//! `echo ... | hookd hash-password` and scripts keep working.

use super::{done, Failure, Outcome};
use std::io::{BufRead, IsTerminal, Write};

/// Passwords shorter than this are refused.
const MIN_LEN: usize = 8;

/// Reads the password (prompted at a terminal, one line of stdin otherwise), prints its hash.
pub(super) fn run() -> Outcome {
    let password = if std::io::stdin().is_terminal() {
        let first = prompt("Password: ")?;
        check_length(&first)?;
        if prompt("Again: ")? != first {
            return Err(Failure::Usage("the two passwords differ".into()));
        }
        first
    } else {
        read_line(&mut std::io::stdin().lock()).map_err(|e| {
            Failure::Failed(format!("cannot read the password from standard input: {e}"))
        })?
    };
    check_length(&password)?;
    let hash = crate::admin::auth::hash_password(&password)
        .map_err(|e| Failure::Failed(format!("cannot hash the password: {e}")))?;
    done(hash)
}

fn check_length(password: &str) -> Result<(), Failure> {
    if password.is_empty() {
        return Err(Failure::Usage(
            "no password given (type it at the prompt, or pipe one line to standard input)".into(),
        ));
    }
    if password.chars().count() < MIN_LEN {
        return Err(Failure::Usage(format!(
            "the password must be at least {MIN_LEN} characters"
        )));
    }
    Ok(())
}

/// One line without its line ending.
fn read_line(input: &mut impl BufRead) -> std::io::Result<String> {
    let mut line = String::new();
    input.read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Asks on stderr (stdout carries only the hash) and reads a line from the terminal on stdin
/// with echo off.
fn prompt(text: &str) -> Result<String, Failure> {
    let fail = |e: std::io::Error| Failure::Failed(format!("cannot read the password: {e}"));
    let mut stderr = std::io::stderr();
    let _ = write!(stderr, "{text}");
    let _ = stderr.flush();
    let line = {
        let _quiet = NoEcho::on_stdin().map_err(fail)?;
        read_line(&mut std::io::stdin().lock()).map_err(fail)?
    };
    // The Enter typed was not echoed either.
    let _ = writeln!(stderr);
    Ok(line)
}

/// Terminal echo switched off on stdin until dropped (also when reading fails).
struct NoEcho {
    saved: libc::termios,
}

impl NoEcho {
    fn on_stdin() -> std::io::Result<NoEcho> {
        // SAFETY: termios is plain data; tcgetattr fills it completely or fails, and both
        // calls only read or set the terminal attributes of fd 0.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(libc::STDIN_FILENO, &mut saved) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mut quiet = saved;
            quiet.c_lflag &= !(libc::ECHO | libc::ECHONL);
            if libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &quiet) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(NoEcho { saved })
        }
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        // SAFETY: restores the attributes read in `on_stdin` on the same fd.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.saved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_piped_line_loses_only_its_line_ending() {
        let mut input = std::io::Cursor::new(b"a long password \r\nsecond".to_vec());
        assert_eq!(read_line(&mut input).unwrap(), "a long password ");
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(check_length("1234567").is_err());
        assert!(check_length("12345678").is_ok());
    }
}
