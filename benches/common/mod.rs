//! What the benches that run hookd as a process of its own share.

use std::io::{BufRead, BufReader};
use std::process::Child;

/// Reads `child`'s stdout (piped) up to hookd's `listening receiver=ADDR ...` line, the last
/// of its start-up, and returns ADDR; `None` when the output ends first. The rest of the
/// output is drained on a thread of its own, so the child never blocks on a full pipe.
pub fn receiver_addr(child: &mut Child) -> Option<String> {
    let mut lines = BufReader::new(child.stdout.take()?).lines();
    for line in lines.by_ref() {
        let line = line.ok()?;
        if let Some(rest) = line.strip_prefix("listening receiver=") {
            std::thread::spawn(move || for _ in lines {});
            return rest.split(' ').next().map(str::to_string);
        }
    }
    None
}
