//! The fork server's policy (sans-I/O): whether a session forks its workers from a zygote, and
//! what herd says when it falls back to plain starts.
//!
//! A zygote is one worker process that loaded the suite (conftest files, plugins, collection)
//! once; each worker incarnation is forked from it. It is local only, on unix platforms (Linux,
//! where herd is a child subreaper; macOS, where the zygote is its workers' parent and reports
//! their exits), for runners that support it (pytest), unless `--no-fork`.

/// What a session needs to know to decide on a fork server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForkWish {
    /// The user did not say `--no-fork` (or `fork = false`).
    pub wanted: bool,
    /// The runner's workers can be forked from a zygote.
    pub runner_can: bool,
    /// Workers start on this machine (not through a launcher template, nor externally).
    pub local: bool,
    /// The platform has what forking needs (a unix `fork`).
    pub platform_can: bool,
}

/// The decision: fork, or start each worker the plain way (and why, for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForkDecision {
    /// Start a zygote and fork every worker incarnation from it.
    Fork,
    /// Plain starts, for this reason.
    Plain(&'static str),
}

/// Decides whether the session forks its workers from a zygote.
pub fn decide(wish: ForkWish) -> ForkDecision {
    if !wish.wanted {
        ForkDecision::Plain("--no-fork")
    } else if !wish.runner_can {
        ForkDecision::Plain("the runner's workers cannot be forked")
    } else if !wish.local {
        ForkDecision::Plain("workers do not start on this machine")
    } else if !wish.platform_can {
        ForkDecision::Plain("this platform has no fork server support")
    } else {
        ForkDecision::Fork
    }
}

/// Why a session stopped forking and starts its workers the plain way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fallback {
    /// The zygote could not be started at all.
    NotStarted(String),
    /// The zygote ended (or stopped answering) before it was ready.
    NotReady(String),
    /// The suite must not fork: the zygote found threads or connections as the collection started.
    Unsafe(String),
    /// The zygote died (or failed a fork) after it was ready.
    Died(String),
}

/// The one line herd says when it falls back (a notice through the Reporter).
pub fn fallback_notice(why: &Fallback) -> String {
    let tail = "workers start the plain way (a full start-up each)";
    match why {
        Fallback::NotStarted(e) => format!("the fork server could not start ({e}); {tail}"),
        Fallback::NotReady(e) => format!("the fork server ended before it was ready ({e}); {tail}"),
        Fallback::Unsafe(e) => format!(
            "the fork server is off: this suite is not safe to fork ({e}); {tail} \
             (use --no-fork to skip the fork server)"
        ),
        Fallback::Died(e) => format!("the fork server died ({e}); {tail} from now on"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wish() -> ForkWish {
        ForkWish {
            wanted: true,
            runner_can: true,
            local: true,
            platform_can: true,
        }
    }

    #[test]
    fn a_local_pytest_session_forks_unless_something_says_no() {
        assert_eq!(decide(wish()), ForkDecision::Fork);
        let no = |w: ForkWish| matches!(decide(w), ForkDecision::Plain(_));
        assert!(no(ForkWish {
            wanted: false,
            ..wish()
        }));
        assert!(no(ForkWish {
            runner_can: false,
            ..wish()
        }));
        assert!(no(ForkWish {
            local: false,
            ..wish()
        }));
        assert!(no(ForkWish {
            platform_can: false,
            ..wish()
        }));
    }

    #[test]
    fn every_fallback_is_said_with_its_reason() {
        let died = fallback_notice(&Fallback::Died("signal 9 (SIGKILL)".into()));
        assert!(died.contains("died") && died.contains("SIGKILL") && died.contains("plain"));
        let unsafe_ = fallback_notice(&Fallback::Unsafe("2 threads running".into()));
        assert!(unsafe_.contains("not safe to fork") && unsafe_.contains("--no-fork"));
        assert!(fallback_notice(&Fallback::NotReady("exit code 4".into())).contains("exit code 4"));
        assert!(fallback_notice(&Fallback::NotStarted("ENOENT".into())).contains("ENOENT"));
    }
}
