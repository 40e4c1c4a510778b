//! The Reporter shell with its sinks: the exactly-once check end to end, output failures, and
//! the console and `--events` text of a scripted session, byte for byte (the golden files were
//! made by the Reporter before it was split into sinks).

use super::*;
use herd_core::outcome::{Outcome, Verdict};
use std::fs::File;

fn finished(test: &str, outcome: Outcome) -> Publish {
    let verdict = Verdict::decided(outcome, 0.1, None, None);
    Publish(Event::TestFinished {
        test: test.into(),
        worker: Some("w1".into()),
        verdict,
    })
}

fn reporter() -> Addr<Reporter> {
    Reporter::new(ReporterOptions {
        name_workers: false,
        out: Box::new(std::io::sink()),
        events: None,
        report_files: Vec::new(),
        verbosity: 0,
        maxfail: None,
        dots: false,
        durations: None,
        progress_bar: false,
        color: false,
        subscribers: Vec::new(),
        controller: None,
        usage_error: None,
    })
    .start()
}

#[actix_rt::test]
async fn a_second_outcome_for_a_test_is_an_internal_error() {
    let reporter = reporter();
    reporter.do_send(Publish(Event::Collected {
        tests: vec!["a".into(), "b".into()],
        deselected: Vec::new(),
    }));
    reporter.do_send(finished("a", Outcome::Passed));
    reporter.do_send(finished("a", Outcome::Failed));
    reporter.do_send(finished("ghost", Outcome::Passed));
    let report = reporter
        .send(Finish {
            end: SessionEnd::Completed,
        })
        .await
        .unwrap();
    assert_eq!(report.exit_code, exit_code::INTERNAL_ERROR);
    assert_eq!(report.violations.len(), 2, "{:?}", report.violations);
    assert!(report.violations[0].contains("second outcome FAILED for a (first: PASSED on w1)"));
    assert!(report.violations[1].contains("ghost which was never collected"));
    assert!(matches!(report.end, SessionEnd::Aborted(ref why) if why.contains("exactly-once")));
    // The first outcome stands; the test nobody ran is settled as not run.
    let outcomes: Vec<Outcome> = report.results.iter().map(|r| r.verdict.outcome).collect();
    assert_eq!(outcomes, [Outcome::Passed, Outcome::NotRun]);
}

/// Output shared with the test.
#[derive(Clone, Default)]
struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn report_file(what: &str, fails_session: bool) -> ReportFile {
    ReportFile {
        what: what.into(),
        path: format!("/out/{what}").into(),
        fails_session,
        consequence: "it is gone".into(),
        write: Box::new(|_| Err(std::io::Error::from_raw_os_error(28))),
    }
}

#[actix_rt::test]
async fn a_failed_output_file_is_said_before_the_summary_and_exits_3() {
    let out = Shared::default();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.jsonl");
    let events = LineFile::new("--events", path.clone(), File::create(&path).unwrap());
    let reporter = Reporter::new(ReporterOptions {
        name_workers: false,
        out: Box::new(out.clone()),
        events: Some(events),
        report_files: vec![
            report_file("--junit-xml", true),
            report_file("history", false),
        ],
        verbosity: 0,
        maxfail: None,
        dots: false,
        durations: None,
        progress_bar: false,
        color: false,
        subscribers: Vec::new(),
        controller: None,
        usage_error: None,
    })
    .start();
    reporter.do_send(Publish(Event::Collected {
        tests: vec!["a".into()],
        deselected: Vec::new(),
    }));
    reporter.do_send(finished("a", Outcome::Failed));
    let log = std::io::Error::from_raw_os_error(28);
    let failure = OutputFailure::new("the worker log", "/logs/w1.log".as_ref(), &log, "cut");
    reporter.do_send(failure.clone());
    let end = SessionEnd::Completed;
    let report = reporter.send(Finish { end }).await.unwrap();
    // Tests failed (1), but a result file is incomplete: internal error.
    assert_eq!(report.exit_code, exit_code::INTERNAL_ERROR);
    assert_eq!(report.output_failures.len(), 3);
    assert_eq!(report.output_failures[0], failure);
    assert!(!report.output_failures[2].fails_session);
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().rev().take(4).collect();
    assert!(lines[0].contains("1 failed in"), "{text}");
    assert!(lines[1].starts_with("herd: warning: could not write history /out/history: No space left on device (os error 28); it is gone"), "{text}");
    assert!(
        lines[2].starts_with("herd: could not write --junit-xml /out/--junit-xml: No space"),
        "{text}"
    );
    assert!(
        lines[3].starts_with("herd: could not write the worker log /logs/w1.log: No space"),
        "{text}"
    );
    // The events file is whole and says the exit code.
    let last = std::fs::read_to_string(&path).unwrap();
    let last: serde_json::Value = serde_json::from_str(last.lines().last().unwrap()).unwrap();
    assert_eq!(last["exit_code"], 3);
}

#[actix_rt::test]
async fn a_failed_warning_file_keeps_the_exit_code() {
    let reporter = Reporter::new(ReporterOptions {
        name_workers: false,
        out: Box::new(std::io::sink()),
        events: None,
        report_files: vec![report_file("history", false)],
        verbosity: 0,
        maxfail: None,
        dots: false,
        durations: None,
        progress_bar: false,
        color: false,
        subscribers: Vec::new(),
        controller: None,
        usage_error: None,
    })
    .start();
    reporter.do_send(Publish(Event::Collected {
        tests: vec!["a".into()],
        deselected: Vec::new(),
    }));
    reporter.do_send(finished("a", Outcome::Passed));
    let end = SessionEnd::Completed;
    let report = reporter.send(Finish { end }).await.unwrap();
    assert_eq!(report.exit_code, exit_code::OK);
    assert_eq!(report.output_failures.len(), 1);
}

#[actix_rt::test]
async fn a_clean_session_settles_every_test_once() {
    let reporter = reporter();
    reporter.do_send(Publish(Event::Collected {
        tests: vec!["a".into(), "b".into(), "c".into()],
        deselected: Vec::new(),
    }));
    reporter.do_send(finished("b", Outcome::Failed));
    let report = reporter
        .send(Finish {
            end: SessionEnd::Interrupted("SIGINT".into()),
        })
        .await
        .unwrap();
    assert!(report.violations.is_empty());
    assert_eq!(report.tally.total(), 3);
    assert_eq!(report.tally.get(Outcome::NotRun), 2);
    assert_eq!(report.exit_code, exit_code::INTERRUPTED);
}

/// A session of every kind of event, printed at `verbosity` with or without dots; returns
/// the console text, the events file and what a subscriber saw.
async fn scripted(verbosity: i8, dots: bool) -> (String, String, usize) {
    let out = Shared::default();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.jsonl");
    let events = LineFile::new("--events", path.clone(), File::create(&path).unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(0usize));
    let counter = seen.clone();
    let reporter = Reporter::new(ReporterOptions {
        name_workers: false,
        out: Box::new(out.clone()),
        events: Some(events),
        report_files: vec![report_file("--junit-xml", true)],
        verbosity,
        maxfail: Some(2),
        dots,
        durations: Some(0),
        progress_bar: false,
        color: true,
        subscribers: vec![Box::new(move |_| *counter.lock().unwrap() += 1)],
        controller: None,
        usage_error: None,
    })
    .start();
    for event in script() {
        reporter.do_send(Publish(event));
    }
    let end = SessionEnd::MaxfailReached;
    let report = reporter.send(Finish { end }).await.unwrap();
    assert_eq!(report.exit_code, exit_code::INTERNAL_ERROR);
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    // Times vary: the final line's seconds are cut off.
    let text = text
        .rsplit_once(" in ")
        .map_or(text.clone(), |(a, _)| a.to_string());
    let lines: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("t");
            v.as_object_mut().unwrap().remove("duration");
            v.to_string()
        })
        .collect();
    let seen = *seen.lock().unwrap();
    (text, lines.join("\n"), seen)
}

/// Every kind of event a session publishes, with 65 of 70 tests finished (5 failed).
fn script() -> Vec<Event> {
    use herd_core::protocol::CollectionError;
    let tests: Vec<String> = (0..70).map(|i| format!("m::t{i}")).collect();
    let mut script = vec![
        Event::SessionStarted {
            runner: "exec".into(),
            workers: 2,
            endpoint: "ipc://x".into(),
            slots: Vec::new(),
        },
        Event::WorkerSpawned {
            worker: "w1".into(),
            incarnation: 1,
            pid: 10,
            appliance: None,
        },
        Event::Collected {
            tests: tests.clone(),
            deselected: Vec::new(),
        },
        Event::CollectionErrors {
            worker: "w2".into(),
            errors: vec![CollectionError {
                nodeid: "m/bad.py".into(),
                longrepr: "SyntaxError\n".into(),
            }],
        },
        Event::GroupSent {
            worker: "w1".into(),
            tests: 3,
            sent: 3,
            total: 70,
        },
        Event::TestStarted {
            test: "m::t0".into(),
            worker: "w1".into(),
        },
        Event::Warning {
            worker: "w1".into(),
            test: None,
            text: "at import\nline two".into(),
            outside_tests: true,
        },
        Event::Warning {
            worker: "w2".into(),
            test: None,
            text: "at import\nline two".into(),
            outside_tests: true,
        },
        Event::Warning {
            worker: "w1".into(),
            test: Some("m::t1".into()),
            text: "deprecated".into(),
            outside_tests: false,
        },
        Event::FaultInjected {
            worker: "w1".into(),
            incarnation: 1,
            kind: herd_core::faults::FaultKind::ALL[0],
            test: Some("m::t3".into()),
        },
        Event::WorkerExited {
            worker: "w1".into(),
            incarnation: 1,
            status: "signal 9 (SIGKILL)".into(),
            clean: false,
        },
        Event::WorkerSpawned {
            worker: "w1".into(),
            incarnation: 2,
            pid: 11,
            appliance: Some("db".into()),
        },
        Event::TestsRequeued {
            worker: "w1".into(),
            tests: vec!["m::t4".into()],
        },
        Event::WorkStolen {
            from: "w2".into(),
            tests: 4,
        },
        Event::Notice {
            worker: None,
            text: "a notice".into(),
        },
    ];
    for (i, t) in tests.iter().enumerate().take(65) {
        let outcome = match i % 13 {
            3 => Outcome::Failed,
            5 => Outcome::Skipped,
            _ => Outcome::Passed,
        };
        let mut verdict = Verdict::decided(outcome, (i % 7) as f64 * 0.25, None, None);
        if outcome == Outcome::Failed {
            verdict.details = Some(format!("assert {i} == 0\n"));
            verdict.message = Some(format!("AssertionError: {i} "));
        }
        script.push(Event::TestFinished {
            test: t.clone(),
            worker: Some(["w1", "w2"][i % 2].into()),
            verdict,
        });
    }
    script.push(Event::WorkerExited {
        worker: "w2".into(),
        incarnation: 1,
        status: "exit code 0".into(),
        clean: true,
    });
    script
}

#[actix_rt::test]
async fn the_console_and_events_text_are_as_before_the_split() {
    let golden = [
        (0, true, include_str!("golden/dots.txt")),
        (1, false, include_str!("golden/verbose.txt")),
        (-1, false, include_str!("golden/quiet.txt")),
    ];
    for (verbosity, dots, expected) in golden {
        let (text, events, seen) = scripted(verbosity, dots).await;
        assert_eq!(text, expected, "at verbosity {verbosity}, dots {dots}");
        let lines = events.lines().count();
        assert_eq!(
            format!("{events}\n{seen}\n"),
            include_str!("golden/events.jsonl")
        );
        assert_eq!(seen, lines, "the subscriber sees every event written");
    }
}
