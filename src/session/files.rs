//! The session's output files: `--events`, `--junit-xml` and the duration history,
//! each path checked before any worker starts.

use super::*;

/// `--junit-xml`, written from the finished report into `file`; a file that could not be
/// written whole is removed, so CI never reads half a report.
pub(super) fn junit_file(path: PathBuf, file: std::fs::File) -> ReportFile {
    let at = path.clone();
    ReportFile {
        what: "--junit-xml".into(),
        path,
        fails_session: true,
        consequence: "the partial file was removed; the summary above has every outcome".into(),
        write: Box::new(move |report| {
            crate::junit::write_junit(report, file).inspect_err(|_| {
                let _ = std::fs::remove_file(&at);
            })
        }),
    }
}

/// The duration history, saved from the finished report. Not a result: a failed save is a
/// warning (the old history stays whole, as saves are atomic), not a failed session.
pub(super) fn history_file(path: PathBuf) -> ReportFile {
    let at = path.clone();
    ReportFile {
        what: "the duration history".into(),
        path,
        fails_session: false,
        consequence: "the previous history is kept; the next run orders tests without this \
                      run's durations"
            .into(),
        write: Box::new(move |report| save_history(&at, report)),
    }
}

/// The duration history at `path`; a missing file is an empty history, a corrupt one is
/// rebuilt (with a warning).
pub(super) fn load_history(path: &std::path::Path) -> History {
    match std::fs::read_to_string(path) {
        Err(_) => History::default(),
        Ok(text) => History::parse(&text).unwrap_or_else(|e| {
            tracing::warn!(
                "the duration history {} is corrupt ({e}); rebuilding it",
                path.display()
            );
            History::default()
        }),
    }
}

/// Adds this run's durations to the history at `path`. Safe against concurrent runs: the file is
/// re-read just before writing, and replaced atomically (a temporary file, then a rename), so a
/// reader never sees half a file.
pub(super) fn save_history(path: &std::path::Path, report: &SessionReport) -> std::io::Result<()> {
    use herd_core::outcome::Outcome;
    let mut history = load_history(path);
    let ran = report.results.iter().filter(|r| {
        r.worker.is_some()
            && !matches!(
                r.verdict.outcome,
                Outcome::Crashed | Outcome::TimedOut | Outcome::NotRun
            )
    });
    history.record(ran.map(|r| (r.test.clone(), r.verdict.duration)));
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut file| {
        file.write_all(history.to_json().as_bytes())?;
        file.sync_all()
    });
    let saved = written.and_then(|()| std::fs::rename(&tmp, path));
    if saved.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    saved
}

/// Creates (truncates) the output file `path` of `flag`, and its parent directories, or says
/// what is wrong with the path (a usage error).
pub(super) fn open_output(flag: &str, path: &Path) -> Result<std::fs::File, SessionError> {
    let usage = |what: String| {
        SessionError::Usage(format!(
            "cannot write {flag} {}: {what}; give a file path herd can write",
            path.display()
        ))
    };
    if path.is_dir() {
        return Err(usage("it is a directory".into()));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        make_dir(parent).map_err(usage)?;
    }
    std::fs::File::create(path).map_err(|e| usage(e.to_string()))
}

/// Creates the output directory `dir` of `flag` (if need be) and checks that files can be
/// created in it (a usage error if not).
pub(super) fn check_output_dir(flag: &str, dir: &Path) -> Result<(), SessionError> {
    let usage = |what: String| {
        SessionError::Usage(format!(
            "cannot write in {flag} {}: {what}; give a directory herd can write",
            dir.display()
        ))
    };
    make_dir(dir).map_err(usage)?;
    tempfile::Builder::new()
        .prefix(".herd-probe")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| usage(e.to_string()))
}

/// Creates `dir` and its parents; the error names an ancestor that is a file (where the OS
/// would only say "File exists" or "Not a directory").
pub(super) fn make_dir(dir: &Path) -> Result<(), String> {
    for ancestor in dir.ancestors().filter(|a| !a.as_os_str().is_empty()) {
        match std::fs::metadata(ancestor) {
            Ok(meta) if meta.is_dir() => break,
            Ok(_) => return Err(format!("{} is a file, not a directory", ancestor.display())),
            Err(_) => continue,
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())
}
