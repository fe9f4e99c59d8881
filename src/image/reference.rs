//! Image names (`myapp`, `myapp:v2`, `registry.example/team/app:1.0`), normalized
//! to always carry a tag, as stored in the store's index.

use super::{Error, Result};

/// A validated image name with its tag, e.g. `myapp:latest`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name {
    repo: String,
    tag: String,
}

impl Name {
    /// Parses `repo[:tag]`, defaulting the tag to `latest`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::invalid(format!("image name {s:?}"), why);
        // The tag is after the last ':' that follows the last '/' (a registry port is not a tag).
        let slash = s.rfind('/').map_or(0, |i| i + 1);
        let (repo, tag) = match s[slash..].rfind(':') {
            Some(i) => (&s[..slash + i], &s[slash + i + 1..]),
            None => (s, "latest"),
        };
        if repo.is_empty() || repo.len() > 255 {
            return Err(bad("repository must be 1 to 255 characters"));
        }
        let repo_ok = repo.split('/').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-:".contains(&b))
                && part.as_bytes()[0].is_ascii_alphanumeric()
        });
        if !repo_ok {
            return Err(bad(
                "repository may hold lowercase letters, digits, '.', '_', '-' and '/' separators",
            ));
        }
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            && !tag.starts_with(['.', '-']);
        if !tag_ok {
            return Err(bad(
                "tag may hold letters, digits, '.', '_' and '-' (128 at most)",
            ));
        }
        Ok(Self {
            repo: repo.to_string(),
            tag: tag.to_string(),
        })
    }

    /// A name for an image that came without one, from a file stem like `app.img`.
    pub fn from_file_stem(stem: &str, tag: Option<&str>) -> Result<Self> {
        let repo: String = stem
            .to_ascii_lowercase()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let repo = repo.trim_start_matches(['.', '_', '-']);
        let repo = if repo.is_empty() { "image" } else { repo };
        Self::parse(&format!("{repo}:{}", tag.unwrap_or("latest")))
    }

    pub fn repo(&self) -> &str {
        &self.repo
    }

    pub fn tag(&self) -> &str {
        &self.tag
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.repo, self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_validates() {
        assert_eq!(Name::parse("app").unwrap().to_string(), "app:latest");
        assert_eq!(Name::parse("app:v2").unwrap().tag(), "v2");
        let n = Name::parse("localhost:5000/team/app").unwrap();
        assert_eq!((n.repo(), n.tag()), ("localhost:5000/team/app", "latest"));
        for bad in [
            "", "App", "app:", ":tag", "a//b", "app:-x", "app:a b", "/app",
        ] {
            assert!(Name::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn names_from_files() {
        assert_eq!(
            Name::from_file_stem("My App", None).unwrap().to_string(),
            "my-app:latest"
        );
        assert_eq!(
            Name::from_file_stem("__", Some("v1")).unwrap().to_string(),
            "image:v1"
        );
    }
}
