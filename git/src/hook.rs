//! `ecstatic-git pre-receive-hook`: run by `git receive-pack` before any ref
//! moves (through `core.hooksPath`), it refuses a push to the site's branch
//! whose publish directory is missing or over the limits, so that the pusher
//! sees `remote: error: …` and `[remote rejected]` instead of a ref that moved
//! but never went live.
//!
//! The server passes the site's branch and publish directory in
//! [`BRANCH_ENV`] and [`PUBLISH_DIR_ENV`], and the limits in the same
//! `ECSTATIC_MAX_*` variables its own flags read.

use std::io::BufRead;
use std::process::{Command, ExitCode};

use crate::Limits;
use crate::tree::{TreeError, publish_dir_components};

/// Environment variable naming the branch that publishes.
pub const BRANCH_ENV: &str = "ECSTATIC_HOOK_BRANCH";
/// Environment variable naming the site's publish directory.
pub const PUBLISH_DIR_ENV: &str = "ECSTATIC_HOOK_PUBLISH_DIR";

/// The hook's entry point: reads `<old> <new> <ref>` lines from stdin.
pub fn run(limits: &Limits) -> ExitCode {
    let branch = std::env::var(BRANCH_ENV).unwrap_or_else(|_| "main".to_owned());
    let publish_dir = std::env::var(PUBLISH_DIR_ENV).unwrap_or_default();
    let target = format!("refs/heads/{branch}");

    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let mut parts = line.split(' ');
        let (Some(_old), Some(new), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if name != target || new.bytes().all(|b| b == b'0') {
            continue;
        }
        if let Err(message) = check_commit(new, &publish_dir, limits) {
            eprintln!("error: push refused: {message}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// Checks the publish directory of `commit` against `limits` from the tree
/// alone, without checking anything out.
fn check_commit(commit: &str, publish_dir: &str, limits: &Limits) -> Result<(), String> {
    let parts = publish_dir_components(publish_dir).map_err(|e| e.to_string())?;
    let prefix: String = parts.iter().map(|p| format!("{p}/")).collect();
    let output = Command::new("git")
        .args(["ls-tree", "-r", "-t", "-l", "-z", commit])
        .output()
        .map_err(|e| format!("listing the pushed tree failed: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "listing the pushed tree failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    check_listing(&output.stdout, &prefix, limits).map_err(|e| {
        if matches!(e, TreeError::MissingPublishDir(_)) {
            TreeError::MissingPublishDir(publish_dir.to_owned()).to_string()
        } else {
            e.to_string()
        }
    })
}

/// Applies `limits` to an `ls-tree -r -t -l -z` listing, counting the
/// regular files under `prefix` (empty for the whole tree).
fn check_listing(listing: &[u8], prefix: &str, limits: &Limits) -> Result<(), TreeError> {
    let dir = prefix.trim_end_matches('/');
    let mut dir_found = prefix.is_empty();
    let (mut count, mut total) = (0u64, 0u64);
    for record in listing.split(|&b| b == 0).filter(|r| !r.is_empty()) {
        let record = String::from_utf8_lossy(record);
        let Some((meta, path)) = record.split_once('\t') else {
            continue;
        };
        let mut fields = meta.split_whitespace();
        let (mode, size) = (fields.next().unwrap_or(""), fields.nth(2).unwrap_or("-"));
        if mode == "040000" && path == dir {
            dir_found = true;
        }
        let is_file = matches!(mode, "100644" | "100755" | "100664");
        let Some(key) = path.strip_prefix(prefix) else {
            continue;
        };
        if !is_file {
            continue;
        }
        let size: u64 = size.parse().unwrap_or(0);
        if size > limits.max_file_bytes {
            let (key, max) = (key.to_owned(), limits.max_file_bytes);
            return Err(TreeError::FileTooBig { key, size, max });
        }
        count += 1;
        total += size;
    }
    if !dir_found {
        return Err(TreeError::MissingPublishDir(dir.to_owned()));
    }
    if count > limits.max_files {
        return Err(TreeError::TooManyFiles {
            count,
            max: limits.max_files,
        });
    }
    if total > limits.max_push_bytes {
        return Err(TreeError::TooBig {
            max: limits.max_push_bytes,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_push_bytes: 100,
        max_files: 2,
        max_file_bytes: 50,
    };

    fn listing(entries: &[(&str, &str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (mode, size, path) in entries {
            let kind = if *mode == "040000" { "tree" } else { "blob" };
            let line = format!("{mode} {kind} {} {size:>7}\t{path}\0", "a".repeat(40));
            out.extend_from_slice(line.as_bytes());
        }
        out
    }

    #[test]
    fn counts_only_regular_files_under_the_publish_dir() {
        let tree = listing(&[
            ("100644", "999", "big-but-unpublished"),
            ("040000", "-", "public"),
            ("100644", "10", "public/a"),
            ("120000", "11", "public/passwd"),
            ("100755", "20", "public/b"),
        ]);
        assert!(check_listing(&tree, "public/", &LIMITS).is_ok());
        assert!(matches!(
            check_listing(&tree, "", &LIMITS),
            Err(TreeError::FileTooBig { size: 999, .. })
        ));
    }

    #[test]
    fn refuses_each_limit_and_a_missing_dir() {
        let many = listing(&[
            ("100644", "1", "a"),
            ("100644", "1", "b"),
            ("100644", "1", "c"),
        ]);
        assert!(matches!(
            check_listing(&many, "", &LIMITS),
            Err(TreeError::TooManyFiles { count: 3, max: 2 })
        ));
        let heavy = listing(&[
            ("100644", "50", "a"),
            ("100644", "50", "b"),
            ("040000", "-", "d"),
        ]);
        assert!(check_listing(&heavy, "", &LIMITS).is_ok());
        let heavier = listing(&[("100644", "50", "a"), ("100644", "51", "b")]);
        assert!(check_listing(&heavier, "", &LIMITS).is_err());
        let too_heavy = listing(&[
            ("100644", "50", "a"),
            ("100644", "50", "b"),
            ("100644", "1", "c"),
        ]);
        assert!(
            check_listing(
                &too_heavy,
                "",
                &Limits {
                    max_files: 9,
                    ..LIMITS
                }
            )
            .is_err()
        );
        assert!(matches!(
            check_listing(&many, "public/", &LIMITS),
            Err(TreeError::MissingPublishDir(_))
        ));
    }
}
