//! `hookd hash-password`: read a password from standard input and print the argon2 hash
//! that `admin.password_hash` takes.

use super::{done, Failure, Outcome};

/// Passwords shorter than this are refused.
const MIN_LEN: usize = 8;

/// Reads one line from stdin and prints its hash.
pub(super) fn run() -> Outcome {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(|e| {
        Failure::Failed(format!("cannot read the password from standard input: {e}"))
    })?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.len() < MIN_LEN {
        return Err(Failure::Usage(format!(
            "the password must be at least {MIN_LEN} characters"
        )));
    }
    let hash = crate::admin::auth::hash_password(password)
        .map_err(|e| Failure::Failed(format!("cannot hash the password: {e}")))?;
    done(hash)
}
