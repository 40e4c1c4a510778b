//! Workers on other hosts: the token, the endpoint, and the session's private directory.

use super::*;

/// Checks the options for workers on other hosts and returns the session token: the token file's
/// (trimmed), else a fresh random one. Listening beyond this machine without a token file, or
/// awaiting external workers without one, is refused: they could not authenticate.
pub(super) fn check_remote_options(config: &SessionConfig) -> Result<Token, SessionError> {
    let external = config.launcher.as_deref() == Some("external");
    if config.token_file.is_none() {
        if let Some(endpoint) = config.endpoint.as_deref().filter(|e| !endpoint_is_local(e)) {
            return Err(SessionError::Usage(format!(
                "listening on {endpoint} (reachable from other machines) needs --token-file FILE: \
                 workers must present its secret (traffic is not encrypted; see the README)"
            )));
        }
        if external {
            return Err(SessionError::Usage(
                "--launcher external needs --token-file FILE (each worker reads the session token \
                 from its own copy)"
                    .into(),
            ));
        }
    }
    if !config.hosts.is_empty()
        && config
            .launcher
            .as_deref()
            .is_none_or(|l| !l.contains("{host}"))
    {
        return Err(SessionError::Usage(
            "--hosts needs a --launcher template with {host} (like 'ssh {host} {cmd}')".into(),
        ));
    }
    match &config.token_file {
        None => Ok(Token::generate()),
        Some(path) => {
            warn_if_readable_by_others(path);
            crate::client::read_token_file(path)
                .map(Token::from_secret)
                .map_err(SessionError::Usage)
        }
    }
}

/// Whether only this machine can reach `endpoint`: an `ipc://` or `inproc://` socket, or TCP on a
/// loopback address.
pub fn endpoint_is_local(endpoint: &str) -> bool {
    if endpoint.starts_with("ipc://") || endpoint.starts_with("inproc://") {
        return true;
    }
    let Some(rest) = endpoint.strip_prefix("tcp://") else {
        return false;
    };
    // `tcp://HOST:PORT`; a `SOURCE;` prefix names a local interface to connect from.
    let rest = rest.rsplit(';').next().unwrap_or(rest);
    let Some((host, _port)) = rest.rsplit_once(':') else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host == "lo"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub(super) fn warn_if_readable_by_others(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "the token file {} is readable by other users (chmod 600 it)",
                path.display()
            );
        }
    }
}

/// A reference collection must name at least one test, each once.
pub(super) fn check_reference(reference: &[herd_core::TestId]) -> Result<(), SessionError> {
    if reference.is_empty() {
        return Err(SessionError::NoTests);
    }
    match duplicates_error(reference) {
        Some(why) => Err(SessionError::Collection(why)),
        None => Ok(()),
    }
}

/// A fresh directory only this user can enter, removed when dropped.
pub(super) fn private_dir() -> Result<tempfile::TempDir, SessionError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("herd-")
        .tempdir()
        .map_err(|e| SessionError::Internal(format!("cannot create a private directory: {e}")))?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).map_err(|e| {
        SessionError::Internal(format!("cannot make {} private: {e}", dir.path().display()))
    })?;
    Ok(dir)
}
