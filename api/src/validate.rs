//! Checks on what clients send. Each returns the cleaned value or a message
//! that names the field.

/// Normalizes an email address (trimmed, lower case) or says why it is not
/// one.
pub fn email(raw: &str) -> Result<String, String> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(email.split_once('@'), Some((local, domain))
            if !local.is_empty() && domain.contains('.') && !domain.contains('@')
                && !domain.starts_with('.') && !domain.ends_with('.'));
    if valid {
        Ok(email)
    } else {
        Err("`email`: not an email address".to_owned())
    }
}

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password accepted, in bytes; bounds the hashing work per request.
pub const MAX_PASSWORD_BYTES: usize = 1024;

pub fn password(raw: &str) -> Result<(), String> {
    if raw.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "`password`: must be at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    if raw.len() > MAX_PASSWORD_BYTES {
        return Err(format!(
            "`password`: must be at most {MAX_PASSWORD_BYTES} bytes"
        ));
    }
    Ok(())
}

/// A display name for a site or token: 1 to 64 characters, no control
/// characters.
pub fn label(field: &str, raw: &str) -> Result<String, String> {
    let value = raw.trim();
    let count = value.chars().count();
    if count == 0 || count > 64 || value.chars().any(char::is_control) {
        return Err(format!(
            "`{field}`: must be 1 to 64 characters without control characters"
        ));
    }
    Ok(value.to_owned())
}

/// A branch name, by the rules of `git check-ref-format --branch`.
pub fn branch(raw: &str) -> Result<String, String> {
    let bad = raw.is_empty()
        || raw.len() > 200
        || raw.starts_with(['-', '/', '.'])
        || raw.ends_with(['/', '.'])
        || raw.ends_with(".lock")
        || raw.contains("..")
        || raw.contains("//")
        || raw.contains("@{")
        || raw.contains("/.")
        || raw == "@"
        || raw
            .chars()
            .any(|c| c.is_control() || " ~^:?*[\\".contains(c));
    if bad {
        Err("`branch`: not a valid git branch name".to_owned())
    } else {
        Ok(raw.to_owned())
    }
}

/// The directory to publish, relative to the repository root; empty for the
/// root itself. A trailing `/` is dropped.
pub fn publish_dir(raw: &str) -> Result<String, String> {
    let dir = raw.trim_end_matches('/');
    if dir.is_empty() {
        return Ok(String::new());
    }
    let bad = dir.len() > 255
        || dir.starts_with('/')
        || dir.contains('\\')
        || dir.chars().any(char::is_control)
        || dir.split('/').any(|part| matches!(part, "" | "." | ".."));
    if bad {
        Err(
            "`publish_dir`: must be a relative path inside the repository, without `.` or \
             `..` parts"
                .to_owned(),
        )
    } else {
        Ok(dir.to_owned())
    }
}

/// A DNS host name (lower case, no trailing dot): labels of letters, digits
/// and inner hyphens, at least two labels, not an IP address.
pub fn hostname(raw: &str) -> Result<String, String> {
    let name = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = name.split('.').collect();
    let label_ok = |l: &&str| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    let tld_ok = labels
        .last()
        .is_some_and(|t| !t.bytes().all(|b| b.is_ascii_digit()));
    if name.len() <= 253 && labels.len() >= 2 && labels.iter().all(label_ok) && tld_ok {
        Ok(name)
    } else {
        Err(
            "`hostname`: not a valid DNS host name (letters, digits and hyphens in dot-separated \
             labels, like `www.example.com`)"
                .to_owned(),
        )
    }
}

/// A git object id: 40 (SHA-1) or 64 (SHA-256) hex digits, returned in lower
/// case.
pub fn commit(raw: &str) -> Result<String, String> {
    let ok = matches!(raw.len(), 40 | 64) && raw.bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(raw.to_ascii_lowercase())
    } else {
        Err("`commit`: must be a full commit id of 40 or 64 hex digits".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(email(" Ann@Example.COM ").unwrap(), "ann@example.com");
        for bad in [
            "",
            "ann",
            "@example.com",
            "ann@example",
            "a b@example.com",
            "a@b@c.d",
        ] {
            assert!(email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords() {
        assert!(password("123456789").is_err());
        assert!(password("1234567890").is_ok());
        assert!(
            password("ééééééééé").is_err(),
            "counts characters, not bytes"
        );
        assert!(password(&"x".repeat(2000)).is_err());
    }

    #[test]
    fn branches() {
        for good in ["main", "gh-pages", "release/2024", "feature_x"] {
            assert_eq!(branch(good).unwrap(), good);
        }
        for bad in [
            "", "-x", "a..b", "a b", "x.lock", "a//b", "x/", "@", "a@{1}", "a:b", ".x",
        ] {
            assert!(branch(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn publish_dirs() {
        assert_eq!(publish_dir("").unwrap(), "");
        assert_eq!(publish_dir("public/").unwrap(), "public");
        assert_eq!(publish_dir("site/dist").unwrap(), "site/dist");
        for bad in ["/etc", "../x", "a/../b", "./a", "a//b", "a\\b"] {
            assert!(publish_dir(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hostnames() {
        assert_eq!(hostname("WWW.Example.com.").unwrap(), "www.example.com");
        assert_eq!(hostname("a-b.c0.io").unwrap(), "a-b.c0.io");
        let long = format!("{}.com", "a".repeat(64));
        for bad in [
            "",
            "localhost",
            "-a.com",
            "a-.com",
            "a..com",
            "1.2.3.4",
            "*.x.com",
            &long,
        ] {
            assert!(hostname(bad).is_err(), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panic_and_are_idempotent(raw in "\\PC{0,80}") {
            for check in [email, branch, publish_dir, hostname, commit] {
                if let Ok(clean) = check(&raw) {
                    proptest::prop_assert_eq!(check(&clean), Ok(clean.clone()));
                }
            }
            let _ = password(&raw);
            let _ = label("name", &raw);
        }

        #[test]
        fn accepts_generated_hostnames(
            labels in proptest::collection::vec("[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", 1..4),
            tld in "[a-z]{2,6}",
        ) {
            let name = format!("{}.{tld}", labels.join("."));
            proptest::prop_assert_eq!(hostname(&name.to_uppercase()), Ok(name));
        }

        #[test]
        fn published_dirs_stay_inside(raw in "[a-z./]{0,30}") {
            if let Ok(dir) = publish_dir(&raw) {
                proptest::prop_assert!(!dir.starts_with('/'));
                proptest::prop_assert!(dir.split('/').all(|p| p != ".." && p != "."));
            }
        }
    }

    #[test]
    fn commits() {
        assert!(commit(&"a".repeat(40)).is_ok());
        assert_eq!(commit(&"AB".repeat(32)).unwrap(), "ab".repeat(32));
        assert!(commit("abc").is_err());
        assert!(commit(&"g".repeat(40)).is_err());
    }
}
