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

/// Every `HOOKD_*` variable the program reads: the string literals of every source file
/// outside its tests (a file's `#[cfg(test)]` module ends what counts), so a variable read
/// anywhere, not only by `config::env`, must be documented.
fn variables_read() -> BTreeSet<String> {
    fn walk(dir: &Path, vars: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if name != "tests" {
                    walk(&path, vars);
                }
            } else if name.ends_with(".rs") && !name.ends_with("tests.rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                // Up to the file's test module (a `#[cfg(test)]` on anything else counts).
                let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
                // Each literal `"HOOKD_...` up to its closing quote.
                for (at, _) in code.match_indices("\"HOOKD_") {
                    let literal = &code[at + 1..];
                    let end = literal
                        .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                        .unwrap_or(literal.len());
                    let (literal, after) = literal.split_at(end);
                    if !after.starts_with('"') || literal == "HOOKD_" {
                        continue;
                    }
                    vars.insert(match literal.strip_prefix("HOOKD_SECRETS_") {
                        Some(_) => "HOOKD_SECRETS_<ENDPOINT>".to_owned(),
                        None => literal.to_owned(),
                    });
                }
            }
        }
    }
    let mut vars = BTreeSet::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut vars,
    );
    vars
}

#[test]
fn readme_and_packaged_file_list_every_variable() {
    let vars = variables_read();
    // The configuration's own, and the command line's.
    for known in [
        "HOOKD_DATA_DIR",
        "HOOKD_CONFIG",
        "HOOKD_LOG",
        "HOOKD_SHOW_SECRET",
    ] {
        assert!(vars.contains(known), "{known} not found in {vars:?}");
    }
    assert!(vars.len() >= 12, "{vars:?}");
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

/// The Fasten walk-through runs beside the README's instance, which is still running on
/// the default addresses: it must use other ports.
#[test]
fn the_fasten_walk_through_keeps_off_the_readme_instance_ports() {
    let doc = repo_file("docs/fasten.md");
    let ports: BTreeSet<&str> = doc
        .match_indices("127.0.0.1:")
        .map(|(at, m)| {
            let rest = &doc[at + m.len()..];
            &rest[..rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len())]
        })
        .filter(|p| !p.is_empty())
        .collect();
    assert!(!ports.is_empty());
    for taken in [defaults::LISTEN, defaults::ADMIN_LISTEN] {
        let port = taken.rsplit(':').next().unwrap();
        assert!(!ports.contains(port), "docs/fasten.md uses port {port}");
    }
}

/// docs/backup.md describes the user the packaged unit runs as.
#[test]
fn the_backup_guide_names_the_units_user() {
    let unit = repo_file("packaging/hookd.service");
    let user = unit
        .lines()
        .find_map(|l| l.strip_prefix("User="))
        .expect("the unit names its user");
    let guide = repo_file("docs/backup.md");
    assert!(guide.contains(&format!("`User={user}`")), "{user}");
    assert!(!unit.contains("DynamicUser=yes"));
}
