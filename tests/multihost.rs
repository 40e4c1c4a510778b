//! Several hosts on one machine: the coordinator and its workers live in two network namespaces
//! joined by a veth pair, and talk TCP. The link blips (shorter than the heartbeat timeout: the
//! workers resume), then is cut for longer (the workers are given up, their tests re-queued);
//! when it comes back the old workers are refused and exit, their next incarnations join, and
//! every test still ends with exactly one outcome.
//!
//! Needs root (`ip netns`). Where namespaces cannot be created the test prints `SKIPPED: ...` to
//! stderr and returns: libtest has no runtime skip, so the skip is made visible instead.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

const COORDINATOR_IP: &str = "10.77.0.1";
const WORKER_IP: &str = "10.77.0.2";

/// Two network namespaces (coordinator, workers) and the veth pair between them; removed on drop.
struct Hosts {
    coordinator: String,
    workers: String,
    link: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Hosts {
    fn create() -> Result<Hosts, String> {
        let tag = std::process::id();
        let hosts = Hosts {
            coordinator: format!("herd-c{tag}"),
            workers: format!("herd-w{tag}"),
            link: format!("hc{tag}"),
        };
        let peer = format!("hw{tag}");
        let (c, w) = (hosts.coordinator.as_str(), hosts.workers.as_str());
        ip(&["netns", "add", c])?;
        ip(&["netns", "add", w])?;
        ip(&[
            "link",
            "add",
            &hosts.link,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ])?;
        ip(&["link", "set", &hosts.link, "netns", c])?;
        ip(&["link", "set", &peer, "netns", w])?;
        ip(&[
            "-n",
            c,
            "addr",
            "add",
            &format!("{COORDINATOR_IP}/24"),
            "dev",
            &hosts.link,
        ])?;
        ip(&[
            "-n",
            w,
            "addr",
            "add",
            &format!("{WORKER_IP}/24"),
            "dev",
            &peer,
        ])?;
        for (ns, dev) in [(c, hosts.link.as_str()), (w, peer.as_str())] {
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(hosts)
    }

    /// Takes the coordinator's end of the link down (or up again).
    fn link(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.coordinator, "link", "set", &self.link, state]).unwrap();
    }

    /// A command run on host `ns`.
    fn on(ns: &str, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, program]);
        cmd
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth pair with it.
        let _ = ip(&["netns", "del", &self.coordinator]);
        let _ = ip(&["netns", "del", &self.workers]);
    }
}

/// Processes killed when the test ends, however it ends.
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn count(events: &Path, kind: &str) -> usize {
    read_events(events)
        .iter()
        .filter(|e| e["event"] == kind)
        .count()
}

/// The command herd printed for `worker.incarnation`.
fn printed_command(events: &Path, worker: &str, incarnation: u64) -> String {
    wait_for(
        &format!("the command for {worker}.{incarnation}"),
        Duration::from_secs(60),
        || {
            read_events(events)
                .into_iter()
                .find(|e| {
                    e["event"] == "worker_awaited"
                        && e["worker"] == worker
                        && e["incarnation"] == incarnation
                })
                .map(|e| e["command"].as_str().unwrap().to_string())
        },
    )
}

/// Runs a printed `herd worker` command line on the workers' host.
fn start_worker(hosts: &Hosts, dir: &Path, command: &str, log: &str) -> Child {
    let log = std::fs::File::create(dir.join(log)).unwrap();
    Hosts::on(&hosts.workers, "sh")
        .arg("-c")
        .arg(format!("exec {command}"))
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

#[test]
fn workers_on_another_host_survive_blips_and_cuts_with_exactly_one_outcome_per_test() {
    let hosts = match Hosts::create() {
        Ok(hosts) => hosts,
        Err(why) => {
            eprintln!("SKIPPED: network namespaces are not available here ({why})");
            return;
        }
    };
    let mut suite = Suite::new();
    for i in 0..40 {
        suite = suite.test(&format!("m::t{i}"), "sleep 0.2\n");
    }
    let token = suite.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let events = suite.events_path();
    let listen = format!("tcp://{COORDINATOR_IP}:5555");
    let herd_args = [
        "run",
        "-n",
        "2",
        "--listen",
        &listen,
        "--token-file",
        token.to_str().unwrap(),
        "--launcher",
        "external",
        "--heartbeat-timeout",
        "4",
        "--events",
        events.to_str().unwrap(),
        "--list",
        "cat ids.txt",
        "--",
        "sh",
        "-c",
        r#"exec sh "./${1##*::}.sh""#,
        "herd-test",
        "{}",
    ];
    let herd = Hosts::on(&hosts.coordinator, env!("CARGO_BIN_EXE_herd"))
        .args(herd_args)
        .current_dir(suite.path())
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut processes = Processes(Vec::new());
    for worker in ["w1", "w2"] {
        let command = printed_command(&events, worker, 1);
        assert!(command.contains(&listen), "{command}");
        processes.0.push(start_worker(
            &hosts,
            suite.path(),
            &command,
            &format!("{worker}.1.log"),
        ));
    }
    let limit = Duration::from_secs(60);
    wait_for("3 finished tests", limit, || {
        (count(&events, "test_finished") >= 3).then_some(())
    });

    // A blip, shorter than the heartbeat timeout: the workers resume, nothing is re-queued.
    hosts.link(false);
    std::thread::sleep(Duration::from_millis(500));
    hosts.link(true);
    let before = count(&events, "test_finished");
    wait_for("4 more finished tests after the blip", limit, || {
        (count(&events, "test_finished") >= before + 4).then_some(())
    });
    assert_eq!(count(&events, "tests_requeued"), 0, "a blip lost a worker");
    assert_eq!(count(&events, "worker_exited"), 0, "a blip lost a worker");

    // A cut, longer than the heartbeat timeout: both workers are given up, their tests
    // re-queued, and herd prints the commands of their next incarnations.
    hosts.link(false);
    let second: Vec<String> = ["w1", "w2"]
        .iter()
        .map(|w| printed_command(&events, w, 2))
        .collect();
    hosts.link(true);
    // The old workers come back to a coordinator that refuses them: they exit.
    for (i, child) in processes.0.iter_mut().enumerate() {
        let status = wait_for("an old worker to exit", limit, || child.try_wait().unwrap());
        let log = std::fs::read_to_string(suite.path().join(format!("w{}.1.log", i + 1)));
        assert_eq!(status.code(), Some(1), "{log:?}");
        assert!(log.unwrap().contains("refused"));
    }
    for (i, command) in second.iter().enumerate() {
        let log = format!("w{}.2.log", i + 1);
        processes
            .0
            .push(start_worker(&hosts, suite.path(), command, &log));
    }
    let run = Run::wait(herd, &events);
    drop(processes);
    let outcomes = run.outcomes();
    assert_eq!(outcomes.len(), 40);
    assert!(
        outcomes.values().all(|o| o == "passed"),
        "{outcomes:?}\n{}",
        run.dump()
    );
    assert_eq!(run.code, 0, "{}", run.dump());
    assert!(!run.of("tests_requeued").is_empty(), "{}", run.dump());
    assert!(
        run.stdout.contains("giving it up for lost"),
        "{}",
        run.dump()
    );
}
