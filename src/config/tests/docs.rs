//! README.md and packaging/hookd.toml show every key, variable and default the parser has.
use super::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The crate's root, where README.md and packaging/ live.
fn repo_file(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(name)).unwrap()
}

/// The key list in README.md's "Configuration" section.
fn readme_block() -> String {
    let readme = repo_file("README.md");
    let section = &readme[readme.find("## Configuration").unwrap()..];
    let start = section.find("```toml\n").unwrap() + "```toml\n".len();
    section[start..start + section[start..].find("```").unwrap()].to_owned()
}

/// Every `(section, key)` a documentation text shows, set or commented out; a table counts
/// as a key of its parent (`("", "admin")`, `("endpoints", "forward")`).
fn documented_keys(text: &str) -> BTreeSet<(String, String)> {
    let mut keys = BTreeSet::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim_start_matches('#').trim();
        if let Some(header) = line.strip_prefix('[') {
            let name = header.trim_start_matches('[').split(']').next().unwrap();
            let (parent, last) = name.rsplit_once('.').unwrap_or(("", name));
            keys.insert((parent.to_owned(), last.to_owned()));
            section = name.to_owned();
        } else if let Some((key, _)) = line.split_once('=') {
            let key = key.trim();
            if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                keys.insert((section.clone(), key.to_owned()));
            }
        }
    }
    keys
}

/// Every `(section, key)` the parser accepts, from its own "the keys here are" message, so a
/// new key cannot be left out of the documentation.
fn accepted_keys() -> BTreeSet<(String, String)> {
    let probes = [
        ("", ""),
        ("retention", "[retention]\n"),
        ("admin", "[admin]\n"),
        ("processing", "[processing]\n"),
        ("receive", "[receive]\n"),
        ("fasten", "[fasten]\n"),
        ("alerts", "[alerts]\n"),
        ("push", "[push]\n"),
        ("store", "[store]\n"),
        ("postgres", "[store]\nkind = \"postgres\"\n[postgres]\n"),
        ("endpoints", "[[endpoints]]\nname = \"x\"\n"),
        (
            "endpoints.forward",
            "[[endpoints]]\nname = \"x\"\n[endpoints.forward]\nurl = \"http://x\"\n",
        ),
    ];
    let mut keys = BTreeSet::new();
    for (section, table) in probes {
        let err = load_str(&format!("{table}zz_unknown = 0\n"), &[])
            .unwrap_err()
            .to_string();
        let at = err
            .find("the keys here are:")
            .unwrap_or_else(|| panic!("{err}"));
        let expected = err[at..].lines().next().unwrap();
        let names = expected.split('`').skip(1).step_by(2);
        keys.extend(names.map(|k| (section.to_owned(), k.to_owned())));
    }
    keys
}

#[test]
fn readme_and_packaged_file_show_every_key() {
    let accepted = accepted_keys();
    assert!(accepted.contains(&("admin".into(), "token_file".into())));
    for (name, text) in [
        ("README.md", readme_block()),
        ("packaging/hookd.toml", repo_file("packaging/hookd.toml")),
    ] {
        let documented = documented_keys(&text);
        let missing: Vec<_> = accepted.difference(&documented).collect();
        let unknown: Vec<_> = documented.difference(&accepted).collect();
        assert!(
            missing.is_empty() && unknown.is_empty(),
            "{name}: missing {missing:?}, unknown {unknown:?}"
        );
    }
}

/// Loads a documentation text as a config file; the same as no file, but for `source`.
fn load_doc(text: &str) -> Config {
    let mut c = load_str(text, &[]).unwrap();
    c.source = None;
    c
}

#[test]
fn readme_shows_the_real_defaults() {
    let block = readme_block();
    // The endpoint there is an example (its secret a placeholder); the rest are defaults.
    let defaults_part = &block[..block.find("[[endpoints]]").unwrap()];
    let defaults = Config::load(None, &HashMap::new()).unwrap();
    assert_eq!(
        format!("{:?}", load_doc(defaults_part)),
        format!("{defaults:?}")
    );
}

#[test]
fn packaged_file_shows_the_real_defaults() {
    // Keys without a default are shown there as examples.
    let examples = [
        "token",
        "token_file",
        "metrics_token",
        "password_hash",
        "backup_dir",
        "export_token",
        "export_token_file",
        "public_id",
        "private_key_file",
        "max_rate_per_sec",
        "exports_dir",
    ];
    let packaged = repo_file("packaging/hookd.toml");
    let settings = &packaged[..packaged.find("\n# Endpoints.").unwrap()];
    let uncommented: Vec<&str> = settings
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest)
                if rest.split_once(" = ").is_some_and(|(k, _)| {
                    k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && !examples.contains(&k)
                }) =>
            {
                rest
            }
            _ => line,
        })
        .collect();
    let mut c = load_doc(&uncommented.join("\n"));
    // The package keeps its data where systemd's StateDirectory puts it.
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/hookd"));
    c.data_dir = PathBuf::from(defaults::DATA_DIR);
    let defaults = Config::load(None, &HashMap::new()).unwrap();
    assert_eq!(format!("{c:?}"), format!("{defaults:?}"));
}

#[test]
fn readme_and_packaged_file_list_every_variable() {
    // Every variable `env` reads, from its own string literals.
    let source = repo_file("src/config/env.rs");
    let vars: BTreeSet<String> = source
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with("HOOKD_"))
        .map(|s| match s.strip_prefix("HOOKD_SECRETS_") {
            Some(_) => "HOOKD_SECRETS_<ENDPOINT>".to_owned(),
            None => s.to_owned(),
        })
        .collect();
    assert!(vars.len() >= 9, "{vars:?}");
    let packaged = repo_file("packaging/hookd.toml");
    let header: String = packaged
        .lines()
        .take_while(|l| l.starts_with('#'))
        .collect();
    let readme = repo_file("README.md");
    for var in &vars {
        assert!(
            header.contains(var.as_str()),
            "packaging/hookd.toml's header lacks {var}"
        );
        assert!(readme.contains(var.as_str()), "README.md lacks {var}");
    }
}
