//! The files a commit publishes: check the commit out into a temporary
//! directory, then walk its publish directory, hashing every regular file.
//!
//! Symlinks are never followed nor published, names `.git` are skipped, and
//! the publish directory itself must be a plain directory inside the tree,
//! so nothing outside the checkout can be reached.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::process::Command;

use crate::Limits;

/// Why the files of a commit could not be gathered.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("checking out commit {commit} failed: {stderr}")]
    Checkout { commit: String, stderr: String },
    #[error("running `git` failed")]
    Spawn(#[source] std::io::Error),
    #[error("reading the checkout failed at {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the publish directory `{0}` must be a relative path inside the repository")]
    BadPublishDir(String),
    #[error(
        "the publish directory `{0}` is not a directory in this commit: \
        add it, or change the site's `publish_dir`"
    )]
    MissingPublishDir(String),
    #[error("{count} files to publish, more than the limit of {max} (`--max-files`)")]
    TooManyFiles { count: u64, max: u64 },
    #[error(
        "`{key}` is {size} bytes, more than the limit of {max} per file \
        (`--max-file-bytes`)"
    )]
    FileTooBig { key: String, size: u64, max: u64 },
    #[error("the files to publish add up to more than {max} bytes (`--max-push-bytes`)")]
    TooBig { max: u64 },
}

/// One file to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishFile {
    /// Storage key: the path under the publish directory, `/`-separated.
    pub key: String,
    /// Where the file is in the checkout.
    pub path: PathBuf,
    pub size: u64,
    /// SHA-256 of the contents, lower-case hex.
    pub sha256: String,
}

/// What a walk found.
#[derive(Debug, Default)]
pub struct Walk {
    pub files: Vec<PublishFile>,
    /// Entries left out (symlinks, `.git`, names that are not UTF-8, special
    /// files), as paths relative to the publish directory.
    pub skipped: Vec<String>,
}

/// Checks `commit` of the bare repository `repo` out into `dest`, using an
/// index file of its own so that the repository is left untouched.
pub async fn checkout(repo: &Path, commit: &str, dest: &Path) -> Result<(), TreeError> {
    let index = dest.with_extension("index");
    let io_error = |source| TreeError::Io {
        path: dest.to_path_buf(),
        source,
    };
    tokio::fs::create_dir_all(dest).await.map_err(io_error)?;
    for args in [
        &["read-tree", commit][..],
        &["checkout-index", "--all", "--force"][..],
    ] {
        let output = Command::new("git")
            .args(["-c", "core.bare=false"])
            .arg("--git-dir")
            .arg(repo)
            .arg("--work-tree")
            .arg(dest)
            .args(args)
            .env("GIT_INDEX_FILE", &index)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .kill_on_drop(true)
            .output()
            .await
            .map_err(TreeError::Spawn)?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
            return Err(TreeError::Checkout {
                commit: commit.to_owned(),
                stderr,
            });
        }
    }
    Ok(())
}

/// Cleans a site's `publish_dir` into normal components, refusing anything
/// that could leave the tree.
pub fn publish_dir_components(publish_dir: &str) -> Result<Vec<String>, TreeError> {
    let bad = || TreeError::BadPublishDir(publish_dir.to_owned());
    let mut parts = Vec::new();
    for component in Path::new(publish_dir.trim_end_matches('/')).components() {
        match component {
            Component::Normal(part) => {
                let part = part.to_str().ok_or_else(bad)?;
                if part == ".git" {
                    return Err(bad());
                }
                parts.push(part.to_owned());
            }
            Component::CurDir => {}
            _ => return Err(bad()),
        }
    }
    Ok(parts)
}

/// Walks the publish directory of a checkout at `root`, hashing every file
/// and enforcing `limits`. Blocking: run it off the async threads.
pub fn walk(root: &Path, publish_dir: &str, limits: &Limits) -> Result<Walk, TreeError> {
    let mut dir = root.to_path_buf();
    for part in publish_dir_components(publish_dir)? {
        dir.push(part);
        let meta = std::fs::symlink_metadata(&dir);
        // A symlinked publish directory could point anywhere: refuse it.
        if !meta.is_ok_and(|m| m.file_type().is_dir()) {
            return Err(TreeError::MissingPublishDir(publish_dir.to_owned()));
        }
    }

    let mut walk = Walk::default();
    let mut total = 0u64;
    let mut pending = vec![(dir, String::new())];
    while let Some((dir, prefix)) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| io(&dir, source))?;
        for entry in entries {
            let entry = entry.map_err(|source| io(&dir, source))?;
            let path = entry.path();
            let file_type = entry.file_type().map_err(|source| io(&path, source))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                walk.skipped
                    .push(format!("{prefix}{}", entry.file_name().to_string_lossy()));
                continue;
            };
            let key = format!("{prefix}{name}");
            if name == ".git" || file_type.is_symlink() {
                walk.skipped.push(key);
            } else if file_type.is_dir() {
                pending.push((path, format!("{key}/")));
            } else if file_type.is_file() {
                let file = hash_file(path, key, limits)?;
                total += file.size;
                if total > limits.max_push_bytes {
                    return Err(TreeError::TooBig {
                        max: limits.max_push_bytes,
                    });
                }
                walk.files.push(file);
                let count = walk.files.len() as u64;
                if count > limits.max_files {
                    return Err(TreeError::TooManyFiles {
                        count,
                        max: limits.max_files,
                    });
                }
            } else {
                walk.skipped.push(key);
            }
        }
    }
    walk.files.sort_by(|a, b| a.key.cmp(&b.key));
    walk.skipped.sort();
    Ok(walk)
}

fn hash_file(path: PathBuf, key: String, limits: &Limits) -> Result<PublishFile, TreeError> {
    let mut file = std::fs::File::open(&path).map_err(|source| io(&path, source))?;
    let size = file.metadata().map_err(|source| io(&path, source))?.len();
    if size > limits.max_file_bytes {
        return Err(TreeError::FileTooBig {
            key,
            size,
            max: limits.max_file_bytes,
        });
    }
    let sha256 = hash_reader(&mut file).map_err(|source| io(&path, source))?;
    Ok(PublishFile {
        key,
        path,
        size,
        sha256,
    })
}

/// SHA-256 of everything `reader` yields, lower-case hex.
pub fn hash_reader(reader: &mut impl Read) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match reader.read(&mut buf)? {
            0 => return Ok(hex::encode(hasher.finalize())),
            n => hasher.update(&buf[..n]),
        }
    }
}

fn io(path: &Path, source: std::io::Error) -> TreeError {
    TreeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOMY: Limits = Limits {
        max_push_bytes: 1 << 20,
        max_files: 100,
        max_file_bytes: 1 << 20,
    };

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let public = dir.path().join("public");
        std::fs::create_dir_all(public.join("css")).unwrap();
        std::fs::write(public.join("index.html"), "<h1>hi</h1>").unwrap();
        std::fs::write(public.join("css/site.css"), "h1{}").unwrap();
        std::fs::write(dir.path().join("README"), "not published").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", public.join("passwd")).unwrap();
        std::os::unix::fs::symlink("/etc", public.join("etc")).unwrap();
        std::fs::create_dir(public.join(".git")).unwrap();
        std::fs::write(public.join(".git/config"), "[core]").unwrap();
        dir
    }

    #[test]
    fn walks_the_publish_dir_and_skips_symlinks() {
        let dir = tree();
        let walk = walk(dir.path(), "public", &ROOMY).unwrap();
        let keys: Vec<_> = walk.files.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["css/site.css", "index.html"]);
        assert_eq!(walk.skipped, [".git", "etc", "passwd"]);
        // sha256("h1{}")
        assert_eq!(walk.files[0].sha256, hex::encode(Sha256::digest(b"h1{}")));
    }

    #[test]
    fn an_empty_publish_dir_means_the_whole_tree() {
        let dir = tree();
        let walk = walk(dir.path(), "", &ROOMY).unwrap();
        assert!(walk.files.iter().any(|f| f.key == "README"));
        assert!(walk.files.iter().any(|f| f.key == "public/index.html"));
    }

    #[test]
    fn refuses_publish_dirs_that_leave_the_tree() {
        let dir = tree();
        for bad in ["../x", "/etc", "public/../../x", ".git"] {
            assert!(matches!(
                walk(dir.path(), bad, &ROOMY),
                Err(TreeError::BadPublishDir(_))
            ));
        }
        std::os::unix::fs::symlink("/etc", dir.path().join("linked")).unwrap();
        assert!(matches!(
            walk(dir.path(), "linked", &ROOMY),
            Err(TreeError::MissingPublishDir(_))
        ));
        assert!(matches!(
            walk(dir.path(), "nope", &ROOMY),
            Err(TreeError::MissingPublishDir(_))
        ));
    }

    #[test]
    fn enforces_every_limit() {
        let dir = tree();
        let few = Limits {
            max_files: 1,
            ..ROOMY
        };
        assert!(matches!(
            walk(dir.path(), "public", &few),
            Err(TreeError::TooManyFiles { .. })
        ));
        let small = Limits {
            max_file_bytes: 5,
            ..ROOMY
        };
        assert!(matches!(
            walk(dir.path(), "public", &small),
            Err(TreeError::FileTooBig { .. })
        ));
        let tight = Limits {
            max_push_bytes: 12,
            ..ROOMY
        };
        assert!(matches!(
            walk(dir.path(), "public", &tight),
            Err(TreeError::TooBig { .. })
        ));
    }
}
