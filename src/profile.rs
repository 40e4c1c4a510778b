//! `herd.toml`: every `herd run` option, in named profiles, like nextest's.
//!
//! ```toml
//! [profile.default]          # used when no --profile is given; every profile inherits it
//! workers = 4
//! timeout = 300
//! providers = ["pg", "mysql"]
//! command = ["pytest", "tests/"]
//!
//! [profile.ci]
//! workers = 8
//! maxfail = 5
//! junit-xml = "reports/herd.xml"
//! ```
//!
//! The file is `--config PATH`, or `herd.toml` in the current directory or the nearest parent
//! that has one. Keys are the long option names; an unknown key or profile is an error that names
//! it. Command-line flags override the profile; the profile overrides herd's defaults.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use crate::options::RunOptions;

/// The name of the config file looked for in the project.
pub const CONFIG_FILE: &str = "herd.toml";

/// The options of one profile (or of the command line): `None` means "not given". The keys of
/// a profile are the fields of [`RunOptions`], in kebab-case.
pub type Profile = RunOptions;

/// A parsed `herd.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Profiles by name.
    #[serde(default)]
    pub profile: BTreeMap<String, Profile>,
}

impl ConfigFile {
    /// Parses a config file's text; `origin` names it in errors.
    /// Every value is checked against its option's range; an error names the file, the profile
    /// and the key.
    pub fn parse(text: &str, origin: &Path) -> Result<ConfigFile, String> {
        let file: ConfigFile = toml::from_str(text)
            .map_err(|e| format!("{}: {}", origin.display(), e.to_string().trim_end()))?;
        for (name, profile) in &file.profile {
            profile
                .check()
                .map_err(|e| format!("{} [profile.{name}]: {e}", origin.display()))?;
        }
        Ok(file)
    }

    /// Reads `path`.
    pub fn read(path: &Path) -> Result<ConfigFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        ConfigFile::parse(&text, path)
    }

    /// The options of profile `name`: the `default` profile, overridden by `name`'s.
    pub fn profile(&self, name: &str) -> Result<Profile, String> {
        let base = self.profile.get("default").cloned().unwrap_or_default();
        if name == "default" {
            return Ok(base);
        }
        match self.profile.get(name) {
            Some(profile) => Ok(base.merge(profile.clone())),
            None => {
                let known: Vec<&str> = self.profile.keys().map(String::as_str).collect();
                Err(format!(
                    "no profile {name:?} in the config file (it has: {})",
                    known.join(", ")
                ))
            }
        }
    }
}

/// `herd.toml` in `dir` or its nearest parent that has one.
pub fn find_config(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .map(|d| d.join(CONFIG_FILE))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionConfig;
    use std::time::Duration;

    const FILE: &str = r#"
[profile.default]
workers = 4
timeout = 300
providers = ["pg", "mysql"]
command = ["pytest", "tests/"]

[profile.ci]
workers = 8
maxfail = 5
junit-xml = "reports/herd.xml"
"#;

    #[test]
    fn profiles_inherit_the_default_and_flags_override_them() {
        let file = ConfigFile::parse(FILE, Path::new("herd.toml")).unwrap();
        let ci = file.profile("ci").unwrap();
        assert_eq!(
            (ci.workers, ci.maxfail, ci.timeout),
            (Some(8), Some(5), Some(300.0))
        );
        assert_eq!(
            ci.command,
            Some(vec!["pytest".to_string(), "tests/".to_string()])
        );
        let cli = Profile {
            workers: Some(2),
            ..Profile::default()
        };
        let merged = ci.merge(cli);
        assert_eq!((merged.workers, merged.maxfail), (Some(2), Some(5)));
        let config = merged.session_config(0).unwrap();
        assert_eq!(config.timeout, Some(Duration::from_secs(300)));
        assert_eq!(config.junit_xml, Some(PathBuf::from("reports/herd.xml")));
        assert_eq!(config.providers, ["pg", "mysql"]);
        assert_eq!(config.grace, SessionConfig::default().grace);
        assert_eq!(file.profile("default").unwrap().workers, Some(4));
    }

    #[test]
    fn unknown_keys_and_profiles_are_clear_errors() {
        let err = ConfigFile::parse("[profile.default]\nworkerz = 3\n", Path::new("herd.toml"))
            .unwrap_err();
        assert!(
            err.starts_with("herd.toml:") && err.contains("unknown field `workerz`"),
            "{err}"
        );
        let err = ConfigFile::parse("[profiles.default]\n", Path::new("x.toml")).unwrap_err();
        assert!(err.contains("unknown field `profiles`"), "{err}");
        let err = ConfigFile::parse(
            "[profile.default]\nworkers = \"four\"\n",
            Path::new("h.toml"),
        )
        .unwrap_err();
        assert!(err.contains("invalid type"), "{err}");
        let file = ConfigFile::parse(FILE, Path::new("herd.toml")).unwrap();
        assert!(file
            .profile("nightly")
            .unwrap_err()
            .contains("no profile \"nightly\" in the config file (it has: ci, default)"));
        let bad = Profile {
            timeout: Some(-1.0),
            ..Profile::default()
        };
        assert!(bad
            .session_config(0)
            .unwrap_err()
            .contains("--timeout -1 is out of range: give seconds from 0.001 to 604800"));
    }

    #[test]
    fn values_out_of_range_name_the_file_profile_and_key() {
        let err = |text: &str| ConfigFile::parse(text, Path::new("herd.toml")).unwrap_err();
        assert_eq!(
            err("[profile.ci]\ntimeout = 1e300\n"),
            "herd.toml [profile.ci]: timeout = 1e300 is out of range: give seconds from 0.001 \
             to 604800"
        );
        assert_eq!(
            err("[profile.default]\nworkers = 99999999999\n"),
            "herd.toml [profile.default]: workers = 99999999999 is out of range: give a number \
             of workers from 1 to 1024"
        );
        assert!(err("[profile.x]\ngrace = nan\n").contains("grace = NaN is not a number"));
        assert!(err("[profile.x]\nappliances = [\"a\", \"\"]\n")
            .contains("[profile.x]: appliances has an empty entry"));
        assert!(err("[profile.x]\nlist = \"\"\n").contains("list = \"\" is empty"));
        // A negative count is refused by its type, naming the key and the line.
        assert!(err("[profile.x]\nworkers = -1\n").contains("workers"));
    }

    #[test]
    fn the_nearest_herd_toml_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        assert_eq!(find_config(&nested), None);
        std::fs::write(dir.path().join("a/herd.toml"), "").unwrap();
        assert_eq!(find_config(&nested), Some(dir.path().join("a/herd.toml")));
    }
}
