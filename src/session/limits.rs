//! The open-file limit: a coordinator holds a few descriptors per worker (its connection, the
//! pipes of its output, its log), so hundreds of workers need more than the usual soft limit
//! of 1024. herd raises its own soft limit to the hard one, and says what to do when even the
//! hard limit is too low for the session.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

use super::SessionError;

/// Open files a coordinator may need for `workers` slots: a base for herd itself (its sockets,
/// ZeroMQ's, the events and report files) and a few per worker.
pub fn files_needed(workers: usize) -> u64 {
    const BASE: u64 = 64;
    const PER_WORKER: u64 = 6;
    BASE + PER_WORKER * workers as u64
}

/// The error when `needed` open files exceed the `hard` limit.
pub fn too_few_files(needed: u64, hard: u64, workers: usize) -> String {
    format!(
        "{workers} workers need about {needed} open files, but this process may open at most \
         {hard} (its hard limit): raise it in the shell that starts herd (`ulimit -n {needed}`; \
         as root, or through /etc/security/limits.conf, `LimitNOFILE=` of a systemd service, or \
         `docker run --ulimit nofile={needed}`), or use fewer workers"
    )
}

/// Raises the soft open-file limit to the hard one (as far as the kernel allows); an error
/// naming `ulimit -n` if the hard limit is below what `workers` need.
pub(super) fn raise_file_limit(workers: usize) -> Result<(), SessionError> {
    let needed = files_needed(workers);
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return Ok(());
    };
    // An unlimited hard limit is capped at what the kernel takes (fs.nr_open, 1048576 by default).
    let target = hard.min(1 << 20);
    if target > soft && setrlimit(Resource::RLIMIT_NOFILE, target, hard).is_err() {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, needed.min(hard), hard);
    }
    let soft = getrlimit(Resource::RLIMIT_NOFILE).map_or(soft, |(s, _)| s);
    tracing::debug!(soft, hard, needed, "open-file limit");
    if soft < needed {
        return Err(SessionError::Usage(too_few_files(needed, soft, workers)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_need_grows_with_the_workers_and_the_error_says_what_to_do() {
        assert_eq!(files_needed(0), 64);
        assert_eq!(files_needed(1000), 6064);
        let msg = too_few_files(6064, 1024, 1000);
        assert!(
            msg.starts_with("1000 workers need about 6064 open files"),
            "{msg}"
        );
        assert!(
            msg.contains("at most 1024") && msg.contains("`ulimit -n 6064`"),
            "{msg}"
        );
    }
}
