//! Orphans adopted by herd: once herd is a child subreaper (for the fork server), a process a
//! test left behind whose parent ended (`sh -c 'sleep 9 &'`) becomes herd's child, and would
//! stay a zombie until herd exits. A thread reaps those, and only those: a zombie child of herd
//! in a worker's process group that is not that group's leader. herd's own children (workers,
//! the controller, hooks, probes) lead their own group or share herd's, and are left to their
//! owners' `wait`.

use std::sync::Once;

use crate::process::ProcStat;
use std::time::Duration;

/// How often the adopted zombies are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Starts the reaping thread (once per process; Linux only).
pub fn start_reaping() {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        let started = std::thread::Builder::new()
            .name("herd-orphans".into())
            .spawn(|| loop {
                std::thread::sleep(SWEEP_EVERY);
                reap_adopted();
            });
        if let Err(e) = started {
            tracing::warn!("cannot start the thread that reaps adopted orphans: {e}");
        }
    });
}

/// Reaps every adopted orphan that has exited; returns how many.
pub fn reap_adopted() -> usize {
    let me = std::process::id();
    let my_group = nix::unistd::getpgrp().as_raw() as u32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut reaped = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Some(stat) = ProcStat::read(pid) else {
            continue;
        };
        if is_adopted_zombie(&stat, pid, me, my_group) {
            // SAFETY: waitpid on one pid that is our exited child, with WNOHANG.
            let r = unsafe { libc::waitpid(pid as i32, std::ptr::null_mut(), libc::WNOHANG) };
            if r == pid as i32 {
                reaped += 1;
                tracing::debug!(pid, "reaped an orphan a test left behind");
            }
        }
    }
    reaped
}

/// Whether `stat` (of process `pid`) is an exited child of `me` that a worker's process group
/// left behind: a zombie whose parent is herd, in a group neither its own nor herd's.
fn is_adopted_zombie(stat: &ProcStat, pid: u32, me: u32, my_group: u32) -> bool {
    stat.state == 'Z' && stat.ppid == me && stat.group != pid && stat.group != my_group
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_zombie_child_in_a_workers_group_is_an_adopted_orphan() {
        let stat = |state: &str, ppid: u32, group: u32| {
            let text =
                format!("4242 (sleep (x) 9) {state} {ppid} {group} {group} 0 -1 0 0 0 0 0 1 2");
            ProcStat::parse(&text).unwrap()
        };
        // herd is 100 in group 100; a worker leads group 300.
        assert!(is_adopted_zombie(&stat("Z", 100, 300), 4242, 100, 100));
        assert!(
            !is_adopted_zombie(&stat("S", 100, 300), 4242, 100, 100),
            "still running"
        );
        assert!(
            !is_adopted_zombie(&stat("Z", 99, 300), 4242, 100, 100),
            "someone else's"
        );
        assert!(
            !is_adopted_zombie(&stat("Z", 100, 4242), 4242, 100, 100),
            "a group leader: a worker"
        );
        assert!(
            !is_adopted_zombie(&stat("Z", 100, 100), 4242, 100, 100),
            "in herd's group: a probe"
        );
    }

    #[test]
    fn an_orphan_of_a_process_group_is_reaped_and_a_child_we_wait_for_is_not() {
        // Only a subreaper adopts orphans: this test process becomes one.
        // SAFETY: prctl with PR_SET_CHILD_SUBREAPER only sets a flag of this process.
        assert_eq!(
            unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) },
            0
        );
        // A child we own, in its own group, that exits at once: it must stay ours to wait for.
        let mut own = std::process::Command::new("true");
        std::os::unix::process::CommandExt::process_group(&mut own, 0);
        let mut own = own.spawn().unwrap();
        // A group whose leader leaves an orphan behind: `sleep` outlives its `sh`.
        let mut sh = std::process::Command::new("sh");
        sh.args(["-c", "sleep 0.2 & echo $!"]);
        std::os::unix::process::CommandExt::process_group(&mut sh, 0);
        let out = sh.output().unwrap();
        let orphan: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        std::thread::sleep(Duration::from_millis(600));
        reap_adopted();
        assert!(
            std::fs::metadata(format!("/proc/{orphan}")).is_err(),
            "the orphan was reaped"
        );
        assert!(
            own.wait().unwrap().success(),
            "our own child's status is still ours"
        );
    }
}
