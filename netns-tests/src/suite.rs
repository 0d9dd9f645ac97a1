//! The frame every namespace test binary shares: run the suite with a fresh [`Lab`], tear
//! everything down whatever happened (success, failed assertion, panic), print one closing
//! line with the time taken, and exit non-zero on failure; and the `PASS` line format.
#![forbid(unsafe_code)]

use std::time::Instant;

use crate::lab::Lab;

/// Prints one passed check.
pub fn pass(msg: &str) {
    println!("  PASS {msg}");
}

/// Runs `suite` in a new lab named `what` (e.g. "daemon tests"); exits 1 when it panicked.
pub fn run_suite(what: &str, suite: impl FnOnce(&Lab) + std::panic::UnwindSafe) {
    let lab = Lab::new();
    let t_all = Instant::now();
    let result = std::panic::catch_unwind(|| suite(&lab));
    // Dropping the lab tears everything down and removes its scratch files; it must happen
    // before `exit`, which runs no destructors.
    drop(lab);
    match result {
        Ok(()) => println!(
            "{what}: all passed in {:.1} s",
            t_all.elapsed().as_secs_f64()
        ),
        Err(_) => {
            eprintln!("{what}: FAILED");
            std::process::exit(1);
        }
    }
}
