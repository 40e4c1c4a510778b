//! What herd reads in the pytest arguments itself, before any worker starts:
//!
//! * options after which pytest ends without running a test (`--collect-only`, `--fixtures`,
//!   `--help`...): herd runs that command once as plain pytest (see [`super::run_plain`]);
//! * pytest-xdist's own flags (`-n 2`, `--dist loadscope`...): a usage error saying where herd's
//!   flags go, since herd runs the workers itself;
//! * `--maxfail N` and `-x`/`--exitfirst`: they become the session's maxfail (counted over every
//!   worker, like herd's own `--maxfail`) and are taken out of the workers' arguments, so that no
//!   worker stops itself.
//!
//! The arguments are read as pytest's argparse reads them: options are never abbreviated
//! (pytest turns abbreviations off), every token that starts with `-` (and is not a negative
//! number) is an option, a short option that takes a value (`-k`, `-m`, `-r`...) takes the rest
//! of its cluster (`-rx` is `-r x`) or the next token, and after `--` every token is a path.

/// Options after which pytest ends without running any test.
const ENDS_EARLY: [&str; 10] = [
    "--collect-only",
    "--co",
    "--fixtures",
    "--funcargs",
    "--fixtures-per-test",
    "--markers",
    "--setup-plan",
    "--cache-show",
    "--version",
    "--help",
];

/// pytest's short options that take a value (pytest-xdist's `-n` among them).
const SHORT_WITH_VALUE: &str = "kmrWcpon";

/// What herd reads in the arguments of `pytest` (those after `pytest` or `python -m pytest`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PytestArgs {
    /// The first option after which pytest ends without running a test, as given.
    pub ends_early: Option<String>,
    /// The first pytest-xdist option, with its value, as given (`-n 2`, `--dist=load`).
    pub xdist: Option<XdistFlag>,
    /// The session's maxfail from `--maxfail N`, `-x` or `--exitfirst` (the last one wins, as
    /// in pytest); `Some(0)` is `--maxfail 0` (no limit).
    pub maxfail: Option<usize>,
    /// The arguments without the maxfail options: what every worker gets.
    pub for_workers: Vec<String>,
}

/// A pytest-xdist flag found after `--`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdistFlag {
    /// The flag as given, with its value (`-n 2`).
    pub given: String,
    /// The option's name (`-n`, `--dist`).
    pub name: String,
    /// Its value, if any.
    pub value: Option<String>,
}

impl PytestArgs {
    /// Reads `args`, the arguments that follow `pytest`.
    pub fn read(args: &[String]) -> PytestArgs {
        let mut read = PytestArgs::default();
        let mut i = 0;
        while i < args.len() {
            let arg = &args[i];
            let next = args.get(i + 1);
            let taken = if arg == "--" {
                read.for_workers.extend(args[i..].iter().cloned());
                break;
            } else if arg.starts_with("--") {
                read.long(arg, next)
            } else if is_short_cluster(arg) {
                read.cluster(arg, next)
            } else {
                read.for_workers.push(arg.clone());
                1
            };
            i += taken;
        }
        read
    }

    /// A long option (`--name` or `--name=value`); returns how many tokens it took.
    fn long(&mut self, arg: &str, next: Option<&String>) -> usize {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (arg, None),
        };
        if ENDS_EARLY.contains(&name) && self.ends_early.is_none() {
            self.ends_early = Some(name.to_string());
        }
        let separate = || next.filter(|v| !v.starts_with('-')).cloned();
        match name {
            "--exitfirst" if inline.is_none() => {
                self.maxfail = Some(1);
                return 1;
            }
            "--maxfail" => {
                let (value, taken) = match inline {
                    Some(value) => (Some(value), 1),
                    None => (separate(), 2),
                };
                if let Some(n) = value.and_then(|v| v.parse::<usize>().ok()) {
                    self.maxfail = Some(n);
                    return taken;
                }
            }
            "--numprocesses" | "--maxprocesses" | "--max-worker-restart" | "--dist" | "--tx" => {
                let (value, taken) = match inline {
                    Some(value) => (Some(value), 1),
                    None => (separate(), 1 + usize::from(separate().is_some())),
                };
                self.xdist_flag(name, value, arg, taken == 2);
                self.for_workers.push(arg.to_string());
                if taken == 2 {
                    self.for_workers.extend(next.cloned());
                }
                return taken;
            }
            _ => {}
        }
        self.for_workers.push(arg.to_string());
        1
    }

    /// A cluster of short options (`-x`, `-vx`, `-rA`, `-k expr`, `-n2`); returns how many
    /// tokens it took. `-x` is taken out of it.
    fn cluster(&mut self, arg: &str, next: Option<&String>) -> usize {
        let mut kept = String::from("-");
        let mut taken = 1;
        for (at, c) in arg.char_indices().skip(1) {
            if SHORT_WITH_VALUE.contains(c) {
                let rest = &arg[at + c.len_utf8()..];
                kept.push_str(&arg[at..]);
                let value = if rest.is_empty() {
                    taken = 1 + usize::from(next.is_some());
                    next.cloned()
                } else {
                    Some(rest.to_string())
                };
                if c == 'n' {
                    self.xdist_flag("-n", value, arg, rest.is_empty() && next.is_some());
                }
                break;
            }
            match c {
                'x' => self.maxfail = Some(1),
                'h' | 'V' if self.ends_early.is_none() => self.ends_early = Some(format!("-{c}")),
                _ => {}
            }
            if c != 'x' {
                kept.push(c);
            }
        }
        if kept != "-" {
            self.for_workers.push(kept);
        }
        if taken == 2 {
            self.for_workers.extend(next.cloned());
        }
        taken
    }

    fn xdist_flag(&mut self, name: &str, value: Option<String>, arg: &str, separate: bool) {
        if self.xdist.is_some() {
            return;
        }
        let given = match (&value, separate) {
            (Some(value), true) => format!("{arg} {value}"),
            _ => arg.to_string(),
        };
        self.xdist = Some(XdistFlag {
            given,
            name: name.to_string(),
            value,
        });
    }
}

/// Whether `arg` is a cluster of short options: `-` then a letter (`-1` is a number, `-` a
/// path: stdin).
fn is_short_cluster(arg: &str) -> bool {
    let mut chars = arg.chars();
    chars.next() == Some('-') && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
}

impl XdistFlag {
    /// herd's own flag for what this one asks, when there is one (`-n 2` for `--numprocesses 2`).
    pub fn herd_equivalent(&self) -> Option<String> {
        let value = self.value.as_deref();
        match (self.name.as_str(), value) {
            ("-n" | "--numprocesses", Some("auto" | "logical")) => None,
            ("-n" | "--numprocesses" | "--maxprocesses", Some(n)) => Some(format!("-n {n}")),
            ("--max-worker-restart", Some(n)) => Some(format!("--max-respawns {n}")),
            ("--dist", Some(mode)) => {
                let herd = match mode {
                    "load" | "worksteal" => "load",
                    "loadscope" => "modscope",
                    "loadfile" => "file",
                    "loadgroup" => "group",
                    _ => return None,
                };
                Some(format!("--dist {herd}"))
            }
            _ => None,
        }
    }

    /// The usage error for this flag after `--` in `command` (the whole pytest command line):
    /// what it is and where herd's flag goes.
    pub fn usage_error(&self, command: &[String]) -> String {
        let given = &self.given;
        let what = format!(
            "{given} after -- is pytest-xdist's flag; herd runs the workers itself (its -n, \
             --dist, --max-respawns and --launcher come before --)"
        );
        let without: Vec<&str> = strip_flag(command, given);
        match self.herd_equivalent() {
            Some(herd) => format!(
                "{what}: put it before --: herd run {herd} -- {}",
                without.join(" ")
            ),
            None if self.name == "-n" || self.name == "--numprocesses" => format!(
                "{what}: herd starts one worker per CPU by default: herd run -- {}",
                without.join(" ")
            ),
            None => format!("{what}: see herd run --help"),
        }
    }
}

/// `command` without the tokens of `given` (`-n 2` is two tokens, `-n2` one).
fn strip_flag<'a>(command: &'a [String], given: &str) -> Vec<&'a str> {
    let tokens: Vec<&str> = given.split(' ').collect();
    let at = command
        .windows(tokens.len())
        .position(|w| w.iter().zip(&tokens).all(|(a, b)| a == b));
    command
        .iter()
        .enumerate()
        .filter(|(i, _)| at.is_none_or(|at| *i < at || *i >= at + tokens.len()))
        .map(|(_, a)| a.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(s: &str) -> PytestArgs {
        let args: Vec<String> = s.split_whitespace().map(str::to_string).collect();
        PytestArgs::read(&args)
    }

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn options_that_end_early_are_found_in_clusters_and_long_forms() {
        assert_eq!(read("tests --co -q").ends_early.as_deref(), Some("--co"));
        assert_eq!(
            read("--collect-only").ends_early.as_deref(),
            Some("--collect-only")
        );
        assert_eq!(read("-vh").ends_early.as_deref(), Some("-h"));
        assert_eq!(
            read("--cache-show=x*").ends_early.as_deref(),
            Some("--cache-show")
        );
        assert_eq!(read("-V").ends_early.as_deref(), Some("-V"));
        // A value is not an option: `-k h` selects tests named h; `-rh`... `h` is -r's value.
        assert_eq!(read("-k h -rh tests").ends_early, None);
        assert_eq!(read("tests -- --co").ends_early, None);
        assert_eq!(read("--setup-only --tb=short").ends_early, None);
    }

    #[test]
    fn maxfail_options_become_the_sessions_and_leave_the_workers_arguments() {
        let r = read("tests --maxfail=2 -k smoke");
        assert_eq!(
            (r.maxfail, r.for_workers),
            (Some(2), words("tests -k smoke"))
        );
        let r = read("--maxfail 3 tests");
        assert_eq!((r.maxfail, r.for_workers), (Some(3), words("tests")));
        let r = read("-x tests --exitfirst");
        assert_eq!((r.maxfail, r.for_workers), (Some(1), words("tests")));
        let r = read("-vxs tests");
        assert_eq!((r.maxfail, r.for_workers), (Some(1), words("-vs tests")));
        // The last one wins, as in pytest; 0 is no limit.
        assert_eq!(read("-x --maxfail=0").maxfail, Some(0));
        assert_eq!(read("--maxfail=5 -x").maxfail, Some(1));
        // `x` as a value is not -x: -rx reports xfails, -k x selects.
        let r = read("-rx -k x -pxdist");
        assert_eq!(
            (r.maxfail, r.for_workers),
            (None, words("-rx -k x -pxdist"))
        );
        // A value pytest would refuse is left for pytest to refuse.
        let r = read("--maxfail=many");
        assert_eq!((r.maxfail, r.for_workers), (None, words("--maxfail=many")));
        assert_eq!(read("tests -- -x").for_workers, words("tests -- -x"));
    }

    #[test]
    fn xdist_flags_are_named_with_herds_equivalent() {
        let r = read("-n 2 tests");
        let flag = r.xdist.clone().unwrap();
        assert_eq!(
            (flag.given.as_str(), flag.value.as_deref()),
            ("-n 2", Some("2"))
        );
        let command = words("pytest -n 2 tests/");
        assert_eq!(
            flag.usage_error(&command),
            "-n 2 after -- is pytest-xdist's flag; herd runs the workers itself (its -n, --dist, \
             --max-respawns and --launcher come before --): put it before --: \
             herd run -n 2 -- pytest tests/"
        );
        assert_eq!(
            read("-n4").xdist.unwrap().herd_equivalent().as_deref(),
            Some("-n 4")
        );
        assert_eq!(read("-vn4").xdist.unwrap().given, "-vn4");
        let dist = read("--dist loadscope tests").xdist.unwrap();
        assert_eq!(dist.herd_equivalent().as_deref(), Some("--dist modscope"));
        assert!(dist
            .usage_error(&words("pytest --dist loadscope tests"))
            .ends_with("herd run --dist modscope -- pytest tests"));
        let restarts = read("--max-worker-restart=2").xdist.unwrap();
        assert_eq!(
            restarts.herd_equivalent().as_deref(),
            Some("--max-respawns 2")
        );
        let auto = read("--numprocesses auto").xdist.unwrap();
        assert!(auto
            .usage_error(&words("pytest --numprocesses auto"))
            .ends_with("one worker per CPU by default: herd run -- pytest"));
        assert!(read("--tx ssh=h")
            .xdist
            .unwrap()
            .usage_error(&[])
            .ends_with("see herd run --help"));
        assert_eq!(read("-k n -m n tests").xdist, None);
    }
}
