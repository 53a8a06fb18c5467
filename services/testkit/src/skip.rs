//! Tests that do not apply to the server at hand say so, and `./scripts/test`
//! counts them as skipped rather than passed: libtest has no runtime skip, so
//! a skipped test returns early after [`skipped`] records it in
//! `$TEST_SCRATCH_DIR/skipped-tests`, one line each.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

/// Records that `test` does not apply here and why; the caller then returns.
///
/// # Panics
/// When the record cannot be written: a skip that is not counted would pass.
pub fn skipped(test: &str, why: &str) {
    let record =
        std::env::var_os("TEST_SCRATCH_DIR").map(|dir| PathBuf::from(dir).join("skipped-tests"));
    record_skip(record.as_deref(), test, why);
}

fn record_skip(record: Option<&Path>, test: &str, why: &str) {
    let line = format!("{test}: {why}");
    eprintln!("SKIPPED {line}");
    if let Some(path) = record {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| writeln!(file, "{line}"))
            .unwrap_or_else(|e| panic!("recording a skip in {}: {e}", path.display()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skip_is_one_line_of_the_record() {
        let path = std::env::temp_dir().join(format!("skipped-tests-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        record_skip(Some(&path), "a::test", "not here");
        record_skip(Some(&path), "b::test", "nor here");
        let record = std::fs::read_to_string(&path).expect("record");
        std::fs::remove_file(&path).expect("clean up");
        assert_eq!(record, "a::test: not here\nb::test: nor here\n");
    }
}
